"""The certificate operations of the older api-versions, from Microsoft's spec of 2024-07-01.20.0.

The emulator's spec (2025-06-01) has no certificates: the service removed them in that version. Every
earlier version has them (``versions.json``: ``operations_extra``), so ``certificates.json`` keeps the
excerpt of the 2024-07-01.20.0 spec that defines them (its source and commit are in the file): the five
operations (add, list, get, delete, cancel deletion) and the definitions they use. This module makes
them ``schema.Operation`` values like the current spec's, each definition written out in place of its
``$ref`` (the current spec's definitions do not have them), so the contract's checks (``conform``) and
writer (``render``) read them as they read any other; ``versions.check_operation`` refuses them in 2025-06-01.
"""

from __future__ import annotations

import functools
import json
import os

from batch_emulator.contract.schema import Operation

TABLE_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'certificates.json')
_METHODS = ('get', 'post', 'delete')
ENTITY_SET = 'certificates'


@functools.cache
def excerpt() -> dict:
    with open(TABLE_PATH, encoding='utf-8') as file:
        return json.load(file)


def _inlined(schema: object, definitions: dict) -> object:
    """``schema`` with each ``$ref`` replaced by its definition (none of them refers to itself)."""
    if isinstance(schema, list):
        return [_inlined(item, definitions) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if '$ref' in schema:
        return _inlined(definitions[schema['$ref'].rsplit('/', 1)[1]], definitions)
    return {key: _inlined(value, definitions) for key, value in schema.items()}


@functools.cache
def operations() -> tuple[Operation, ...]:
    """The certificate operations, as ``schema.operations`` gives the current spec's."""
    definitions = excerpt()['definitions']
    found = []
    for path, item in excerpt()['paths'].items():
        for method in _METHODS:
            if method not in item:
                continue
            parameters = item[method]['parameters']
            body = next((parameter for parameter in parameters if parameter['in'] == 'body'), None)
            code, answer = next(iter(item[method]['responses'].items()))
            schema = answer.get('schema')
            found.append(Operation(
                method.upper(), path, item[method]['operationId'],
                _inlined(body['schema'], definitions) if body else None,  # type: ignore[arg-type]
                _inlined(schema, definitions) if schema else None,  # type: ignore[arg-type]
                int(code), frozenset(answer.get('headers', {})), bool(body and body['required']),
                any(parameter['name'] == 'maxresults' for parameter in parameters)))
    return tuple(found)


def definition(name: str) -> dict:
    """A definition of the excerpt, written out (``CertificateState``'s enum, ``Certificate``'s properties)."""
    return _inlined(excerpt()['definitions'][name], excerpt()['definitions'])  # type: ignore[return-value]
