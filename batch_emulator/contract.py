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

SPEC_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'spec', 'BatchService.json')
_METHODS = ('get', 'put', 'post', 'patch', 'delete', 'head')


@dataclasses.dataclass(frozen=True)
class Operation:
    method: str          # GET, POST, ...
    path: str            # the spec's template: /pools/{poolId}/nodes/{nodeId}
    operation_id: str    # Pools_CreatePool
    body_schema: dict | None  # the request body's schema ($ref resolved once), if the operation takes one

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
                body = next((parameter['schema'] for parameter in item[method].get('parameters', [])
                             if parameter.get('in') == 'body'), None)
                found.append(Operation(method.upper(), path, item[method]['operationId'], body))
    return tuple(found)


@functools.cache
def _path_patterns() -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile('^' + re.sub(r'\{filePath\}', '.+', re.sub(r'\{(?!filePath)\w+\}', '[^/]+', path)) + '$')
                 for path in spec()['paths'])


def is_spec_path(path: str) -> bool:
    """Does a request path name a resource of the spec (whatever the method)?"""
    return any(pattern.match(path) for pattern in _path_patterns())
