"""Every served api-version with its own contract: requests read, and answers written, in that version's shapes.

The emulator's handlers speak the current contract (2025-06-01, the spec it loads). ``versions.json``,
derived by ``tools/derive_api_versions.py`` from each azure-batch release's wire contract, says what
every older version lacks or names otherwise. This module, called from the router and the response
writer (never from handlers), translates at the edge:

- an operation the request's version does not have answers as an unknown URL does (InvalidUri), and
  one the current contract no longer has but the version had is answered from its successor when there
  is one (``GET /nodeagentskus``, removed in 2019-06-01.9.0, from the supported images), or from the
  older spec's own definition (the certificate operations, removed in 2025-06-01: ``certificates.py``);
- a request body's old property names are read as the current ones (``blobSource`` → ``httpUrl``);
- an answer drops the properties the version does not have and writes renamed ones with the old name.

Property names are matched by name wherever they appear in a body (the table is of names, not of
definitions): a current name that no definition of the older version has is not in its answers.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re

from batch_emulator.common.errors import BatchServiceError
from batch_emulator.contract import certificates
from batch_emulator.contract.schema import Operation, operations

TABLE_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'versions.json')
_PARAMETER = re.compile(r'\{[^}]*\}')
# Operations of older versions answered by a current operation, with the answer translated.
SUCCESSORS = {'GET /nodeagentskus': 'GET /supportedimages'}


@functools.cache
def table() -> dict:
    with open(TABLE_PATH, encoding='utf-8') as file:
        return json.load(file)


@functools.cache
def _contract(version: str) -> tuple[frozenset, frozenset, frozenset, dict, dict] | None:
    """(absent operations, extra operations, absent properties, renamed new→old, renamed old→new), or None
    for the current version."""
    entry = table()['versions'].get(version)
    if entry is None:
        return None
    renamed = entry['renamed']
    return (frozenset(entry['operations_absent']), frozenset(entry['operations_extra']),
            frozenset(entry['properties_absent']), renamed, {old: new for new, old in renamed.items()})


def operation_key(method: str, path_template: str) -> str:
    return f'{method.upper()} {_PARAMETER.sub("{}", path_template)}'


def older_operations() -> tuple[Operation, ...]:
    """The operations of older versions only: those answered by a current one (its Operation at the older path,
    its handler's id), then those defined by an older spec (the certificates)."""
    current = {operation_key(operation.method, operation.path): operation for operation in operations()}
    return tuple(dataclasses.replace(current[successor], method=key.split(' ', 1)[0], path=key.split(' ', 1)[1])
                 for key, successor in SUCCESSORS.items()) + certificates.operations()


@functools.cache
def _older_only() -> frozenset[str]:
    """The keys of the operations the current version does not have (and older versions may)."""
    return frozenset(SUCCESSORS) | frozenset(operation_key(operation.method, operation.path)
                                            for operation in certificates.operations())


@functools.cache
def _older_paths() -> tuple[tuple[str, re.Pattern[str]], ...]:
    """(operation key, the pattern of its paths) of the operations older versions have and the current one does not."""
    return tuple((operation_key(operation.method, operation.path),
                  re.compile('^' + '[^/]+'.join(re.escape(part) for part in _PARAMETER.split(operation.path)) + '$'))
                 for operation in older_operations())


def is_older_path(request) -> bool:
    """Does the request's path name a resource of an operation its api-version has only as an older version
    (``PUT /certificates`` at 2024-07-01.20.0: the path is known there, the method is not)?"""
    contract = _contract(request.query.get('api-version', ''))
    return contract is not None and any(key in contract[1] and pattern.match(request.path)
                                        for key, pattern in _older_paths())


def check_operation(request, method: str, path_template: str) -> str | None:
    """An operation the request's api-version does not have: the service's answer to an unknown URL. Returns the
    key of the older operation the request calls (``write_body`` writes some of them apart), or None."""
    contract = _contract(request.query.get('api-version', ''))
    key = operation_key(method, path_template)
    older_only = key in _older_only()
    if contract is None:
        known = not older_only
    else:
        absent, extra = contract[0], contract[1]
        known = key in extra if older_only else key not in absent
    if not known:
        raise BatchServiceError('InvalidUri', values={'RequestUri': request.path})
    return key if key in SUCCESSORS else None


def read_body(request, body: object) -> object:
    """A request body of an older version with its old property names read as the current ones."""
    contract = _contract(request.query.get('api-version', ''))
    if contract is None or not contract[4]:
        return body
    return _renamed(body, contract[4])


def is_current(request) -> bool:
    """Is the request's api-version the current one (answered in the spec's own shapes)?"""
    return _contract(request.query.get('api-version', '')) is None


def write_body(request, body: dict | None, older_operation: str | None = None) -> dict | None:
    """An answer in the request's version's shapes (``older_operation``: what ``check_operation`` returned)."""
    contract = _contract(request.query.get('api-version', ''))
    if contract is None or body is None:
        return body
    if older_operation == 'GET /nodeagentskus':
        body = _node_agent_skus(body)
    absent, renamed = contract[2], contract[3]
    if 'taskCounts' in absent and isinstance(body.get('taskCounts'), dict):
        # Before 2020-09-01.12.0 (no taskSlotCounts) GetTaskCounts answered the TaskCounts themselves.
        body = {**{key: value for key, value in body.items() if key.startswith('odata.')}, **body['taskCounts']}
    return _written(body, absent, renamed)


def _renamed(value: object, names: dict) -> object:
    if isinstance(value, dict):
        return {names.get(key, key): _renamed(item, names) for key, item in value.items()}
    if isinstance(value, list):
        return [_renamed(item, names) for item in value]
    return value


def _written(value: object, absent: frozenset, renamed: dict) -> object:
    if isinstance(value, dict):
        return {renamed.get(key, key): _written(item, absent, renamed) for key, item in value.items()
                if key not in absent}
    if isinstance(value, list):
        return [_written(item, absent, renamed) for item in value]
    return value


def _node_agent_skus(body: dict) -> dict:
    """ListSupportedImages' page as ListNodeAgentSkus wrote it: one entry per node agent SKU, with the
    images verified for it (NodeAgentSku: id, verifiedImageReferences, osType)."""
    skus: dict[str, dict] = {}
    for image in body.get('value', []):
        sku = skus.setdefault(image['nodeAgentSKUId'], {'id': image['nodeAgentSKUId'], 'verifiedImageReferences': [],
                                                        'osType': image.get('osType')})
        sku['verifiedImageReferences'].append(image['imageReference'])
    answer = {key: value for key, value in body.items() if key != 'value'}
    if 'odata.metadata' in answer:
        answer['odata.metadata'] = answer['odata.metadata'].replace('#supportedimages', '#nodeagentskus')
    answer['value'] = list(skus.values())
    return answer
