"""Reading a request and writing the service's answer: body limits, paging, list and entity responses.

Handlers (``pool_routes``, ``job_routes``, ``file_routes``, ``node_routes``, ``schedule_routes``) read their
body with ``read_body`` and answer with ``list_response`` / ``entity_response`` (or ``json_response`` for an
action); those write the status, the headers and the body as the service does (``odata.metadata``,
``odata.nextLink``, the ETag and Last-Modified of the entity, its body rendered for the request's api-version).
"""

from __future__ import annotations

import datetime
import json

from aiohttp import web

from batch_emulator.common.errors import BatchServiceError, invalid_query
from batch_emulator.contract import versions
from batch_emulator.contract.odata import apply_select
from batch_emulator.contract.schema import Operation, conform, render, resolve
from batch_emulator.service.state import MAX_LIST_RESULTS, BatchState, page
from batch_emulator.wire import bodies
from batch_emulator.wire.server import (
    MAX_JSON_DEPTH,
    MAX_REQUEST_BODY_BYTES,
    SETTINGS,
    STATE,
    json_response,
)

MAX_TASK_COLLECTION_BYTES = 1024 * 1024


def state_of(request: web.Request) -> BatchState:
    return request.app[STATE]


async def read_limited(request: web.Request, limit: int) -> bytes:
    """The body, refused as soon as it passes ``limit`` bytes: chunked bodies (no Content-Length) too."""
    too_large = BatchServiceError('RequestBodyTooLarge', values={'MaxLimit': str(limit)})
    if (request.content_length or 0) > limit:
        raise too_large
    data = bytearray()
    async for chunk in request.content.iter_any():
        data += chunk
        if len(data) > limit:
            raise too_large
    request['body_bytes'] = bytes(data)  # for the portal's request log (redacted there)
    return bytes(data)


def _depth(value: object) -> int:
    """How deep JSON values nest (without recursion: the body may be hostile)."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if depth <= MAX_JSON_DEPTH:
                pending.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


async def read_body(request: web.Request, limit: int = MAX_REQUEST_BODY_BYTES, *, parse: bool = True) -> dict:
    if not request.can_read_body:
        raise BatchServiceError('InvalidRequestBody', 'The request body is missing.')
    data = await read_limited(request, limit)
    too_deep = BatchServiceError('InvalidRequestBody', values={
        'Reason': f'The JSON nests deeper than {MAX_JSON_DEPTH} levels.'})
    try:
        body = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BatchServiceError('InvalidRequestBody', values={'Reason': str(error)}) from None
    except RecursionError:
        raise too_deep from None
    if _depth(body) > MAX_JSON_DEPTH:
        raise too_deep
    if not isinstance(body, dict):
        raise BatchServiceError('InvalidRequestBody', values={'Reason': 'The body must be a JSON object.'})
    body = versions.read_body(request, body)  # an older api-version's names read as the current ones
    operation = request.get('operation')
    return conform(body, operation.body_schema) if parse and operation is not None else body


def odata_metadata(request: web.Request, entity_set: str, element: bool = True) -> str:
    return f"{request.app[SETTINGS]['base_url']}/$metadata#{entity_set}{'/@Element' if element else ''}"


def paging(request: web.Request) -> tuple[int | None, int]:
    """maxresults and $skiptoken of a list request, checked as the service checks them."""
    query = request.query
    max_results = query.get('maxresults')
    try:
        limit = int(max_results) if max_results else None
        skip = int(query.get('$skiptoken', '0') or 0)
    except ValueError:
        raise invalid_query('maxresults', max_results or '', 'The value must be an integer.') from None
    if limit is not None and limit < 1:
        raise invalid_query('maxresults', str(limit), 'MaxResults cannot be less than 1')
    if limit is not None and limit > MAX_LIST_RESULTS:
        raise invalid_query('maxresults', str(limit), f'MaxResults cannot be more than {MAX_LIST_RESULTS}')
    return limit, skip


def next_link(request: web.Request, next_skip: int | None) -> str | None:
    if next_skip is None:
        return None
    # The SDK does not resend $filter/$select/maxresults for the next page: the link carries them,
    # as the service does, in the caller's order and as the caller encoded them, then $skiptoken.
    carried = [part for part in request.rel_url.raw_query_string.split('&')
               if part and not part.startswith('$skiptoken=')]
    carried.append(f'$skiptoken={next_skip}')
    return f"{request.app[SETTINGS]['base_url']}{request.raw_path.partition('?')[0]}?" + '&'.join(carried)


def list_response(request: web.Request, items: list[dict], entity_set: str) -> web.Response:
    """A list page: $filter, $select, maxresults, then odata.nextLink carrying them along."""
    limit, skip = paging(request)
    query = request.query
    chunk, next_skip = page(items, filter_text=query.get('$filter'), select=query.get('$select'),
                            max_results=limit, skip=skip, written=writer(request, 'value'))
    body: dict = {'odata.metadata': odata_metadata(request, entity_set, element=False), 'value': chunk}
    link = next_link(request, next_skip)
    if link is not None:
        body['odata.nextLink'] = link
    return json_response(request, body)


def entity_writer(request: web.Request, build, part: str | None = None, build_property=None) -> bodies.Writer:
    """How this request writes entities that keep their written bodies (tasks): ``bodies.py``."""
    older = not versions.is_current(request)  # an older api-version's shapes: each item written in them
    return bodies.Writer(response_schema(request, part), request.query.get('api-version') if older else '',
                       request.query.get('$select'), request.app[SETTINGS]['base_url'], build, build_property,
                       adapt=(lambda item: versions.write_body(request, item)) if older else None)


def entities_list_response(request: web.Request, entities: list, build, entity_set: str,
                            build_property=None) -> web.Response:
    """``list_response`` for entities whose bodies are kept until they change: only the page is written."""
    limit, skip = paging(request)
    chunk, next_skip = bodies.page(entities, entity_writer(request, build, 'value', build_property),
                                 filter_text=request.query.get('$filter'),
                                 limit=min(limit or MAX_LIST_RESULTS, MAX_LIST_RESULTS), skip=skip)
    return json_response(request, bodies.list_body(odata_metadata(request, entity_set, element=False), chunk,
                                                 next_link(request, next_skip)))


def response_schema(request: web.Request, part: str | None = None) -> dict | None:
    """The response body's spec schema (or its ``part``'s items'), if the operation has one."""
    operation: Operation | None = request.get('operation')
    schema = operation.response_schema if operation is not None else None
    if schema is not None and part is not None:
        schema = resolve(schema).get('properties', {}).get(part, {}).get('items')
    return schema


def writer(request: web.Request, part: str | None = None):
    """What writes a response body (or its ``part``'s items) as the service does: its spec schema."""
    schema = response_schema(request, part)
    return (lambda body: body) if schema is None else (lambda body: render(body, schema))


def entity_response(request: web.Request, resource: dict, entity_set: str, etag: str | None = None,
                     last_modified: datetime.datetime | None = None) -> web.Response:
    written = writer(request)(resource)
    body = {'odata.metadata': odata_metadata(request, entity_set),
            **apply_select(written, request.query.get('$select'))}
    return json_response(request, body, etag=etag, last_modified=last_modified)


def kept_entity_response(request: web.Request, entity, build, entity_set: str) -> web.Response:
    """``entity_response`` for an entity whose bodies are kept until it changes (``bodies.py``)."""
    item = entity_writer(request, build).bytes_of(entity)
    return json_response(request, bodies.element_body(odata_metadata(request, entity_set), item), etag=entity.etag,
                         last_modified=entity.last_modified)
