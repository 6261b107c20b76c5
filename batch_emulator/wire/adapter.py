"""The one place that speaks HTTP for the spec's operations: request in, handler's result out, answer written.

For each operation of the spec (``contract.schema.operations``) ``wrap`` gives the aiohttp handler that:

1. checks the request's api-version has the operation (``versions.check_operation``), reads its body
   within its limit, and checks it once in the service's order (``checks.py``: shape and required
   properties, then types and ranges, then the list's paging query);
2. calls the operation's handler with a ``results.Context`` (state, path parameters, query, checked body);
   the handler finds the entity (404) and checks its state (409) in ``service/``;
3. writes the answer from the ``results`` value it returns: the status is the success status the spec
   lists for the operation (200, 201, 202 or 204); ``ETag`` and ``Last-Modified`` when the result has them
   and the spec lists them; ``DataServiceId`` (the URL sent to, or the created entity's) and ``Location``
   as the spec lists them and ``contract/recorded.py`` corrects; ``DataServiceVersion``, ``request-id``,
   the service's fixed headers and ``client-request-id`` when asked for (``server.service_headers``);
   the body rendered from the operation's response schema in the request's api-version (``respond.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from email.utils import format_datetime

from aiohttp import web

from batch_emulator.common.errors import BatchServiceError
from batch_emulator.contract import recorded, versions
from batch_emulator.contract.schema import Operation
from batch_emulator.runtime.files import read_chunks
from batch_emulator.wire import checks, respond
from batch_emulator.wire.results import (
    Body,
    Context,
    Done,
    Entity,
    File,
    KeptEntity,
    KeptPage,
    Page,
    Result,
)
from batch_emulator.wire.server import (
    OLDER_OPERATION,
    OPERATION,
    SCHEDULER,
    SETTINGS,
    STATE,
    json_response,
    service_headers,
)

OperationHandler = Callable[[Context], Awaitable[Result]]


async def _body(request: web.Request, operation: Operation) -> dict:
    """The body, parsed and checked (steps 1 and 2); {} for an operation without one, or an optional one left out
    (the JS SDK sends disablescheduling with none)."""
    if operation.body_schema is None:
        return {}
    if not operation.body_required and (not request.can_read_body or request.content_length == 0):
        return {}
    if not request.can_read_body:
        raise BatchServiceError('InvalidRequestBody', 'The request body is missing.')
    body = checks.parsed(await respond.read_limited(request, checks.body_limit(operation)))
    body = versions.read_body(request, body)  # an older api-version's names read as the current ones
    return checks.checked_body(operation, body)


def wrap(operation: Operation, handler: OperationHandler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The aiohttp handler of ``operation``: ``handler`` between the contract's checks and the adapter's answer."""
    async def answer(request: web.Request) -> web.StreamResponse:
        request[OPERATION] = operation  # its response schema writes the body; the request log names it
        # Does the api-version have it? (And which older operation it calls, if one.)
        request[OLDER_OPERATION] = versions.check_operation(request, operation.method, operation.path)
        body = await _body(request, operation)
        checks.check_query(operation, request.query)
        app = request.app
        context = Context(state=app[STATE], scheduler=app[SCHEDULER], params=request.match_info, query=request.query,
                          body=body, headers=request.headers, path=request.path, base_url=app[SETTINGS]['base_url'],
                          api_version=request.query.get('api-version', ''))
        return await write(request, operation, await handler(context))
    return answer


def headers_of(request: web.Request, operation: Operation, etag: str | None = None, last_modified=None,
               location: str | None = None) -> dict[str, str]:
    """The headers of a success answer to ``operation`` beyond the body's (section 1.2 of the recordings)."""
    headers = {'DataServiceVersion': '3.0'}
    listed = operation.response_headers
    base_url = request.app[SETTINGS]['base_url']
    created = None if location is None else base_url + recorded.CREATED_URL.get(operation.operation_id, location)
    if recorded.writes_data_service_id(operation.operation_id, operation.method, 'DataServiceId' in listed):
        headers['DataServiceId'] = created or base_url + request.path
    if etag and 'ETag' in listed:
        headers['ETag'] = etag
    if last_modified is not None and 'Last-Modified' in listed:
        headers['Last-Modified'] = format_datetime(last_modified, usegmt=True)
    if created is not None:
        headers['Location'] = created
    headers.update(service_headers(request))
    return headers


async def write(request: web.Request, operation: Operation, result: Result) -> web.StreamResponse:
    """The answer to ``request`` from its handler's ``result``."""
    status = operation.status
    if isinstance(result, Done):
        headers = headers_of(request, operation, result.etag, result.last_modified, result.location)
        return json_response(request, None, status=status, headers=headers)
    if isinstance(result, KeptPage):
        body = respond.kept_list_body(request, result.entities, result.build, result.entity_set,
                                      result.build_property)
        return json_response(request, body, status=status, headers=headers_of(request, operation))
    if isinstance(result, Page):
        body = respond.list_body(request, result.items, result.entity_set)
        return json_response(request, body, status=status, headers=headers_of(request, operation))
    if isinstance(result, KeptEntity):
        entity = result.entity
        headers = headers_of(request, operation, entity.etag, entity.last_modified)  # type: ignore[attr-defined]
        body = respond.kept_entity_body(request, entity, result.build, result.entity_set)
        return json_response(request, body, status=status, headers=headers)
    if isinstance(result, Entity):
        headers = headers_of(request, operation, result.etag, result.last_modified)
        return json_response(request, respond.entity_body(request, result.value, result.entity_set), status=status,
                             headers=headers)
    if isinstance(result, Body):
        body = respond.other_body(request, result.value, result.metadata)
        return json_response(request, body, status=status, headers=headers_of(request, operation))
    if isinstance(result, File):
        return await _file(request, operation, result)
    raise TypeError(f'{operation.operation_id} answered {result!r}')


async def _file(request: web.Request, operation: Operation, file: File) -> web.StreamResponse:
    """A file's properties (HEAD) or content, streamed in pieces read off the event loop. As recorded from a Linux
    node: the whole file URL percent-encoded, the mode, no ocp-creation-time; every header set before the first
    byte leaves."""
    headers = {'ocp-batch-file-isdirectory': 'True' if file.directory else 'False', 'ocp-batch-file-url': file.url,
               'ocp-batch-file-mode': file.mode, **headers_of(request, operation, last_modified=file.last_modified),
               'Content-Type': file.content_type}
    if request.method == 'HEAD':
        headers['Content-Length'] = str(file.length)  # aiohttp keeps an explicit one on a HEAD answer
        return web.Response(status=operation.status, headers=headers)
    headers['Content-Length'] = str(file.size)
    response = web.StreamResponse(status=operation.status, headers=headers)
    await response.prepare(request)
    chunks = read_chunks(file.path, file.start, file.size)
    try:
        while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
            await response.write(chunk)
    except OSError:  # the file went away or the client hung up: the response just ends short
        return response
    finally:
        chunks.close()
    await response.write_eof()
    return response
