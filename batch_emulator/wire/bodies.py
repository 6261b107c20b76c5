"""Response bodies of entities written once per change, and list pages put together from them.

A task is rendered (``contract.render``: its spec schema, the service's defaults and spellings) and
encoded the first time a response needs it, and the bytes are kept on it (``Task.written``) until it
next changes: any attribute set on it and every ``Room.changed`` drop them. One entity is kept in a
few forms at most, each for one response schema, api-version, ``$select`` and base URL. A list page
is the page's kept bytes joined, byte for byte what ``json.dumps`` of the whole body writes; a
``$filter`` reads, of each entity, only the properties it names (``contract.render_property``), and only
the page is written.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from batch_emulator.contract.odata import apply_select, compile_filter
from batch_emulator.contract.schema import render, render_property

MAX_FORMS = 4  # forms of one entity kept at once (the oldest goes first)
_COMPACT = (',', ':')


def dumps(value: object) -> bytes:
    """JSON as every response body is written (``server.json_response``)."""
    return json.dumps(value, separators=_COMPACT).encode()


class Writer:
    """What one request writes an entity as: its schema, api-version, ``$select`` and base URL."""

    def __init__(self, schema: dict | None, api_version: str | None, select: str | None, base_url: str,
                 build: Callable[[object], dict], build_property: Callable[[object, str], object] | None = None,
                 adapt: Callable[[dict], dict] | None = None) -> None:
        self.schema = schema
        self.select = select
        self.build = build  # the entity's plain resource (``TaskRoom.task_resource``)
        self.build_property = build_property  # one property of it (``TaskRoom.task_property``)
        self.adapt = adapt  # an older api-version's shapes (``versions.write_body``); None: the spec's own
        schema_key = schema.get('$ref') if schema is not None and '$ref' in schema else id(schema)
        self.key = (schema_key, api_version, select or None, base_url)
        self.whole_key = (schema_key, '', None, base_url)  # in the spec's own shapes: what $filter sees

    def body(self, entity: object) -> dict:
        """The entity as the service writes it, without $select."""
        resource = self.build(entity)
        return resource if self.schema is None else render(resource, self.schema)

    def bytes_of(self, entity: object) -> bytes:
        """The entity's body for this request (``$select`` applied), encoded."""
        forms = entity.written  # type: ignore[attr-defined]
        if forms is not None and self.key in forms:
            return forms[self.key]
        if not self.select and self.adapt is None:
            data = dumps(self.body(entity))
        else:
            written = apply_select(self.whole(entity), self.select)
            data = dumps(self.adapt(written) if self.adapt is not None else written)
        self._keep(entity, self.key, data)
        return data

    def view(self, entity: object) -> dict:
        """What a $filter sees: the whole body as written; each property it names worked out alone when the
        entity can give one property at a time, else decoded from its kept bytes when there are some."""
        if self.build_property is not None and self.schema is not None:
            return _PropertyView(self, entity)
        return self.whole(entity)

    def whole(self, entity: object) -> dict:
        """The whole body as written, decoded from its kept bytes when there are some."""
        forms = entity.written  # type: ignore[attr-defined]
        if forms is not None and self.whole_key in forms:
            return json.loads(forms[self.whole_key])
        whole = self.body(entity)
        self._keep(entity, self.whole_key, dumps(whole))
        return whole

    @staticmethod
    def _keep(entity: object, key: tuple, data: bytes) -> None:
        forms = entity.written  # type: ignore[attr-defined]
        if forms is None:
            forms = {}
            entity.written = forms  # type: ignore[attr-defined]
        elif len(forms) >= MAX_FORMS:
            del forms[next(iter(forms))]
        forms[key] = data


class _PropertyView(dict):
    """An entity's body as written, for a $filter (``odata``, which reads it with ``get``): each top-level
    property rendered alone when first asked for."""

    def __init__(self, writer: Writer, entity: object) -> None:
        super().__init__()
        self._writer, self._entity = writer, entity

    def get(self, key: str, default: object = None) -> object:
        if key not in self:
            writer = self._writer
            self[key] = render_property(writer.build_property(self._entity, key), writer.schema, key)
        value = self[key]
        return default if value is None else value


def page(entities: Sequence, writer: Writer, *, filter_text: str | None, limit: int,
         skip: int) -> tuple[list[bytes], int | None]:
    """The page's items as written (filtered, selected) and the next skip, or None (as ``room.page``)."""
    predicate = compile_filter(filter_text)
    matched = entities if predicate is None else [entity for entity in entities if predicate(writer.view(entity))]
    chunk = [writer.bytes_of(entity) for entity in matched[skip:skip + limit]]
    return chunk, (skip + limit if skip + limit < len(matched) else None)


def list_body(metadata: str, items: list[bytes], next_link: str | None) -> bytes:
    """``{"odata.metadata":...,"value":[...],"odata.nextLink":...}`` from items already written."""
    parts = [b'{"odata.metadata":', dumps(metadata), b',"value":[', b','.join(items), b']']
    if next_link is not None:
        parts += [b',"odata.nextLink":', dumps(next_link)]
    parts.append(b'}')
    return b''.join(parts)


def element_body(metadata: str, item: bytes) -> bytes:
    """``{"odata.metadata":..., <the item's properties>}`` from an item already written."""
    head = b'{"odata.metadata":' + dumps(metadata)
    return head + b'}' if item == b'{}' else head + b',' + item[1:]
