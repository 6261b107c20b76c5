"""The adapter's reading and writing: a body read within its limit, and the bodies of the answers.

``adapter.py`` reads a request's body with ``read_limited`` and writes each result's body with these: lists
(``odata.metadata``, $filter, $select, maxresults, ``odata.nextLink``), entities and other answers, each
rendered from the operation's response schema (``contract.render``) and, for tasks, kept between requests
(``bodies.py``). The request's api-version's shapes are applied by ``server.json_response``.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from batch_emulator.common.errors import BatchServiceError
from batch_emulator.contract import versions
from batch_emulator.contract.odata import apply_select
from batch_emulator.contract.schema import Operation, render, resolve
from batch_emulator.service.state import MAX_LIST_RESULTS, page
from batch_emulator.wire import bodies
from batch_emulator.wire.checks import paging
from batch_emulator.wire.server import BODY_BYTES, OLDER_OPERATION, OPERATION, SETTINGS


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
    request[BODY_BYTES] = bytes(data)  # for the portal's request log (redacted there)
    return bytes(data)


def odata_metadata(request: web.Request, entity_set: str, element: bool = True) -> str:
    return f"{request.app[SETTINGS]['base_url']}/$metadata#{entity_set}{'/@Element' if element else ''}"


def next_link(request: web.Request, next_skip: int | None) -> str | None:
    if next_skip is None:
        return None
    # The SDK does not resend $filter/$select/maxresults for the next page: the link carries them,
    # as the service does, in the caller's order and as the caller encoded them, then $skiptoken.
    carried = [part for part in request.rel_url.raw_query_string.split('&')
               if part and not part.startswith('$skiptoken=')]
    carried.append(f'$skiptoken={next_skip}')
    return f"{request.app[SETTINGS]['base_url']}{request.raw_path.partition('?')[0]}?" + '&'.join(carried)


def list_body(request: web.Request, items: Sequence[dict], entity_set: str) -> dict:
    """A list page: $filter, $select, maxresults, then odata.nextLink carrying them along."""
    limit, skip = paging(request.query)
    query = request.query
    chunk, next_skip = page(items, filter_text=query.get('$filter'), select=query.get('$select'),
                            max_results=limit, skip=skip, written=writer(request, 'value'))
    body: dict = {'odata.metadata': odata_metadata(request, entity_set, element=False), 'value': chunk}
    link = next_link(request, next_skip)
    if link is not None:
        body['odata.nextLink'] = link
    return body


def entity_writer(request: web.Request, build, part: str | None = None, build_property=None) -> bodies.Writer:
    """How this request writes entities that keep their written bodies (tasks): ``bodies.py``."""
    older = not versions.is_current(request)  # an older api-version's shapes: each item written in them
    return bodies.Writer(response_schema(request, part), request.query.get('api-version') if older else '',
                       request.query.get('$select'), request.app[SETTINGS]['base_url'], build, build_property,
                       adapt=(lambda item: versions.write_body(request, item, request.get(OLDER_OPERATION))) if older
                       else None)


def kept_list_body(request: web.Request, entities: Sequence, build, entity_set: str, build_property=None) -> bytes:
    """``list_body`` for entities whose bodies are kept until they change: only the page is written."""
    limit, skip = paging(request.query)
    chunk, next_skip = bodies.page(entities, entity_writer(request, build, 'value', build_property),
                                 filter_text=request.query.get('$filter'),
                                 limit=min(limit or MAX_LIST_RESULTS, MAX_LIST_RESULTS), skip=skip)
    return bodies.list_body(odata_metadata(request, entity_set, element=False), chunk, next_link(request, next_skip))


def response_schema(request: web.Request, part: str | None = None) -> dict | None:
    """The response body's spec schema (or its ``part``'s items'), if the operation has one."""
    operation: Operation | None = request.get(OPERATION)
    schema = operation.response_schema if operation is not None else None
    if schema is not None and part is not None:
        schema = resolve(schema).get('properties', {}).get(part, {}).get('items')
    return schema


def writer(request: web.Request, part: str | None = None):
    """What writes a response body (or its ``part``'s items) as the service does: its spec schema."""
    schema = response_schema(request, part)
    return (lambda body: body) if schema is None else (lambda body: render(body, schema))


def entity_body(request: web.Request, resource: dict, entity_set: str) -> dict:
    written = writer(request)(resource)
    select = request.query.get('$select')
    return {'odata.metadata': odata_metadata(request, entity_set), **apply_select(written, select)}


def kept_entity_body(request: web.Request, entity, build, entity_set: str) -> bytes:
    """``entity_body`` for an entity whose bodies are kept until it changes (``bodies.py``)."""
    item = entity_writer(request, build).bytes_of(entity)
    return bodies.element_body(odata_metadata(request, entity_set), item)


def other_body(request: web.Request, value: dict, metadata: str) -> dict:
    """Any other body: its ``odata.metadata`` (the fragment given), then the value as its schema writes it."""
    return {'odata.metadata': f"{request.app[SETTINGS]['base_url']}/$metadata#{metadata}", **writer(request)(value)}
