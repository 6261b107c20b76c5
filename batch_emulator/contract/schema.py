"""The wire contract, from Microsoft's OpenAPI spec of the Batch service (``spec/BatchService.json``).

Loaded once, it gives the route table: every operation of the spec, by method, path template
and operation id. ``routes.py`` maps operation ids to handlers; an operation without one
answers 501 naming it, so no path of the spec ever gets a 404 or 405 from routing. A new
operation is a handler, not a new set of hand-written routes.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
from collections.abc import Callable

from batch_emulator.common.errors import invalid_property, missing_property

SPEC_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'spec', 'BatchService.json')
_METHODS = ('get', 'put', 'post', 'patch', 'delete', 'head')


@dataclasses.dataclass(frozen=True)
class Operation:
    method: str          # GET, POST, ...
    path: str            # the spec's template: /pools/{poolId}/nodes/{nodeId}
    operation_id: str    # Pools_CreatePool
    body_schema: dict | None  # the request body's schema ($ref resolved once), if the operation takes one
    response_schema: dict | None = None  # the success response body's schema, if it has one
    status: int = 200  # the success status the spec lists (201 create, 202 accepted, 204 no content...)
    response_headers: frozenset[str] = frozenset()  # the headers the spec lists for that success response
    body_required: bool = True  # the spec's ``required`` of the body parameter (reboot, terminate...: optional)
    paged: bool = False  # a list with maxresults: maxresults and $skiptoken are checked before it is read

    @property
    def route(self) -> str:
        """The aiohttp route: ``{filePath}`` spans folders (it arrives with %2F, decoded to /)."""
        return self.path.replace('{filePath}', '{filePath:.+}')


@functools.cache
def spec() -> dict:
    with open(SPEC_PATH, encoding='utf-8') as file:
        return json.load(file)


def resolve(schema: dict) -> dict:
    """A schema with its top-level $ref followed (definitions stay references below it)."""
    while '$ref' in schema:
        schema = spec()['definitions'][schema['$ref'].rsplit('/', 1)[1]]
    return schema


@functools.cache
def operations() -> tuple[Operation, ...]:
    found = []
    for path, item in spec()['paths'].items():
        for method in _METHODS:
            if method in item:
                parameter = next((parameter for parameter in item[method].get('parameters', [])
                                  if parameter.get('in') == 'body'), None)
                code, answer = next((code, answer) for code, answer in item[method]['responses'].items()
                                    if code.startswith('2'))
                found.append(Operation(method.upper(), path, item[method]['operationId'],
                                       parameter['schema'] if parameter else None, answer.get('schema'), int(code),
                                       frozenset(answer.get('headers', {})),
                                       bool(parameter.get('required')) if parameter else False,
                                       any(parameter.get('name') == 'maxresults'
                                           for parameter in item[method].get('parameters', []))))
    return tuple(found)


@functools.cache
def _path_patterns() -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile('^' + re.sub(r'\{filePath\}', '.+', re.sub(r'\{(?!filePath)\w+\}', '[^/]+', path)) + '$')
                 for path in spec()['paths'])


def is_spec_path(path: str) -> bool:
    """Does a request path name a resource of the spec (whatever the method)?"""
    return any(pattern.match(path) for pattern in _path_patterns())


# ----- request bodies: parsed by the schema, as the service's deserialiser parses them ---------------------

_INT32 = (-2 ** 31, 2 ** 31 - 1)
_DURATION = re.compile(r'^P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$')
_DATE_TIME = re.compile(r'^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$', re.IGNORECASE)
_INTEGER_TEXT = re.compile(r'^\s*-?\d+\s*$')


def conform(value: object, schema: dict | None, name: str = '') -> object:
    """The body as the handlers may rely on it: types, formats and enums checked against the schema.

    Lenient where the service's deserialiser is: numbers and booleans sent as strings (the Azure CLI
    sends "targetDedicatedNodes": "1"), numbers where a string is expected, enum values in any
    casing (given back in the spec's casing), nulls (dropped, as if absent). Strict where it is:
    a missing required property is MissingRequiredProperty, anything else that does not fit is
    InvalidPropertyValue naming the property (its own name, as the service names it).

    Each schema is turned once into a function that checks a value in one walk (``_conformer``).
    """
    return _conformer(schema)(value, name)


_Conform = Callable[[object, str], object]
_conformers: dict[object, tuple[dict | None, _Conform]] = {}


def _as_is(value: object, name: str) -> object:
    return value


def _conformer(schema: dict | None) -> _Conform:
    """The function that conforms values to ``schema``, made once per schema (by its $ref, else the object,
    which is kept so that its id stays its own)."""
    if schema is None:
        return _as_is
    key = schema['$ref'] if '$ref' in schema else id(schema)
    found = _conformers.get(key)
    if found is None:
        found = _conformers[key] = (schema, _make_conformer(resolve(schema)))
    return found[1]


def _make_conformer(schema: dict) -> _Conform:
    kind = schema.get('type') or ('object' if 'properties' in schema else None)
    if kind == 'object':
        return _object_conformer(schema)
    if kind == 'array':
        items = schema.get('items')

        def conform_array(value: object, name: str) -> object:
            if not isinstance(value, list):
                raise invalid_property(name, _shown(value))
            item_conformer = _conformer(items)
            return [item_conformer(item, name) for item in value if item is not None]
        return conform_array
    if kind == 'integer':
        return _integer
    if kind == 'number':
        return _number
    if kind == 'boolean':
        return _boolean
    if kind == 'string':
        return lambda value, name: _string(value, schema, name)
    return _as_is


def _object_conformer(schema: dict) -> _Conform:
    properties = schema.get('properties', {})
    # A readOnly property is the service's to set: never required in a request and ignored if sent
    # (a PUT job body is the whole BatchJob; the JS SDK sends its id along) [J:job/update].
    read_only = frozenset(key for key, child in properties.items() if child.get('readOnly'))
    required = tuple(key for key in schema.get('required', []) if key not in read_only)
    extra = schema.get('additionalProperties')
    children: dict[str, _Conform] = {}  # filled on first use: schemas may refer to themselves

    def conform_object(value: object, name: str) -> object:
        if not isinstance(value, dict):
            raise invalid_property(name or 'body', _shown(value))
        for key in required:
            if value.get(key) is None:
                raise missing_property(key)
        if not children:
            children.update({key: _conformer(child) for key, child in properties.items()})
            children[''] = _conformer(extra if isinstance(extra, dict) else None)  # any other property
        other = children['']
        return {key: children.get(key, other)(item, key)
                for key, item in value.items() if item is not None and key not in read_only}
    return conform_object


def _number(value: object, name: str) -> object:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise invalid_property(name, value) from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid_property(name, _shown(value))
    return value


def _boolean(value: object, name: str) -> bool:
    if isinstance(value, str) and value.strip().lower() in ('true', 'false'):
        return value.strip().lower() == 'true'
    if not isinstance(value, bool):
        raise invalid_property(name, _shown(value))
    return value


def _integer(value: object, name: str) -> int:
    if isinstance(value, str) and _INTEGER_TEXT.match(value):
        value = int(value)
    elif isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not _INT32[0] <= value <= _INT32[1]:
        raise invalid_property(name, _shown(value))
    return value


def _string(value: object, schema: dict, name: str) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise invalid_property(name, _shown(value))
    if 'enum' in schema:
        for allowed in schema['enum']:
            if allowed.lower() == value.lower():
                return allowed
        raise invalid_property(name, value)
    form = schema.get('format')
    if form == 'duration' and not _is_time_span(value) or form == 'date-time' and not _DATE_TIME.match(value) \
            or form == 'int64' and not _INTEGER_TEXT.match(value):
        raise invalid_property(name, value)
    return value


# The longest duration the service holds (.NET's TimeSpan.MaxValue, which it writes for "unbounded"), in
# ten-millionths of a second; a year counts 365 days and a month 30, as .NET reads XML durations.
_LONGEST_TICKS = 10675199 * 864_000_000_000 + 2 * 36_000_000_000 + 48 * 600_000_000 + 54_775_807
_TICKS = (365 * 864_000_000_000, 30 * 864_000_000_000, 7 * 864_000_000_000, 864_000_000_000, None, 36_000_000_000,
          600_000_000)


def _is_time_span(value: str) -> bool:
    """An ISO 8601 duration the service can hold: its form, and no longer than TimeSpan.MaxValue."""
    match = _DURATION.match(value)
    if match is None:
        return False
    ticks = sum(int(part[:-1]) * unit for part, unit in zip(match.groups(), _TICKS, strict=False)
                if part and unit is not None)
    seconds = match.group(8)
    if seconds:
        whole, _, fraction = seconds[:-1].partition('.')
        ticks += int(whole) * 10_000_000 + int((fraction + '0000000')[:7])
    return ticks <= _LONGEST_TICKS


# ----- response bodies: written as the service's serialiser writes them ------------------------------

def render(value: object, schema: dict | None) -> object:
    """A response body as the service writes it, from the handler's plain data.

    The spec says which properties each definition has: others are not written, nor are nulls.
    ``recorded.py`` adds what the service's serialiser does beyond the spec: the defaults it fills
    in, how it spells some values, its key order. ``odata.*`` annotations are kept, first.
    """
    if schema is None:
        return value
    if isinstance(value, list):
        items = resolve(schema).get('items')
        return [render(item, items) for item in value if item is not None] if items else value
    if isinstance(value, dict):
        plan = _plan(schema['$ref'].rsplit('/', 1)[1]) if '$ref' in schema else _inline_plan(schema)
        if plan is None:
            return value  # free-form (settings, additionalProperties)
        defaults, properties, names = plan
        if defaults:
            value = {**defaults, **value}
        # odata.* annotations first (only a body with a key the definition does not have can hold one)
        body = {} if names.issuperset(value) else {key: item for key, item in value.items() if key.startswith('odata.')}
        get = value.get
        for key, child, spell in properties:
            item = get(key)
            if item is not None and (item != [] or key == 'value'):  # an empty list is not written (recorded)
                item = render(item, child) if child is not None else item
                body[key] = spell(item) if spell is not None else item
        return body
    return value


ABSENT = object()  # what ``render_property`` is told for a property the handler's data does not have


def render_property(value: object, schema: dict, key: str) -> object:
    """``render(data, schema).get(key)`` from ``value``, the data's ``key`` alone (ABSENT if it has none)."""
    if key.startswith('odata.'):  # annotations are kept as they are
        return None if value is ABSENT else value
    plan = _plan(schema['$ref'].rsplit('/', 1)[1]) if '$ref' in schema else _inline_plan(schema)
    if plan is None:
        return None if value is ABSENT else value  # free-form: written as it is
    defaults, properties, names = plan
    if key not in names:
        return None
    item = defaults.get(key) if value is ABSENT else value
    if item is None or (item == [] and key != 'value'):
        return None
    _, child, spell = next(entry for entry in properties if entry[0] == key)
    item = render(item, child) if child is not None else item
    return spell(item) if spell is not None else item


# (defaults, (property, its schema to render it with, its spelling) in order, the property names)
_Plan = tuple[dict, tuple[tuple[str, 'dict | None', object], ...], frozenset]


@functools.cache
def _plan(name: str) -> _Plan | None:
    from batch_emulator.contract import recorded

    definition = resolve({'$ref': f'#/definitions/{name}'})
    properties = definition.get('properties')
    if not properties:
        return None
    order = [key for key in recorded.ORDER.get(name, ()) if key in properties]
    order += [key for key in properties if key not in order]
    return recorded.DEFAULTS.get(name, {}), tuple(
        (key, _child(properties[key]), recorded.SPELLING.get((name, key))) for key in order), _names(properties)


def _inline_plan(schema: dict) -> _Plan | None:
    properties = resolve(schema).get('properties')
    if not properties:
        return None
    return {}, tuple((key, _child(child), None) for key, child in properties.items()), _names(properties)


def _names(properties: dict) -> frozenset:
    return frozenset(key for key in properties if not key.startswith('odata.'))


def _child(schema: dict) -> dict | None:
    """The schema to render a property with, or None when it is a plain value (nothing to do)."""
    if '$ref' in schema:
        target = resolve(schema)
        return schema if target.get('properties') or target.get('type') == 'array' else None
    if schema.get('type') == 'array' and _child(schema.get('items') or {}) is not None:
        return schema
    if schema.get('properties'):
        return schema
    return None


def _shown(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 200 else text[:200] + '...'
