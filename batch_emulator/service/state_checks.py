"""What a location's ``state.jsonl`` must hold before the emulator restores from it.

The file is the emulator's own, but anyone who can write the folder can change it, and a
restart acts on it: it kills recorded process groups, it deletes node folders when their
pool goes. So every line is checked before anything is restored: its shape (each record's
fields and their types, the states the spec allows), the entity's spec against the spec's
create schema, node folders inside the location's ``nodes`` folder, a certificate's thumbprint and
public data (the api-versions before 2025-06-01 have certificates: ``contract/certificates.py``).
A line that fails is one ``StateFileError`` naming the file, the line and what is wrong, never a traceback.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator

from batch_emulator.common.errors import BatchServiceError
from batch_emulator.contract.certificates import definition
from batch_emulator.contract.schema import conform, resolve
from batch_emulator.service.certificates import check_certificate_record
from batch_emulator.service.models import parse_iso

TIME, OPTIONAL_TIME = 'time', 'time?'
_ID = re.compile(r'^[A-Za-z0-9_-]{1,100}$')
_SCHEMAS = {'pool': 'BatchPoolCreateOptions', 'job': 'BatchJobCreateOptions', 'task': 'BatchTaskCreateOptions',
            'schedule': 'BatchJobScheduleCreateOptions'}
_STATES = {'pool': 'BatchPoolState', 'job': 'BatchJobState', 'task': 'BatchTaskState',
           'schedule': 'BatchJobScheduleState'}
_OPTIONAL_DICT, _OPTIONAL_INT, _OPTIONAL_STR = (dict, type(None)), (int, type(None)), (str, type(None))
_ENTITY = {'id': str, 'spec': dict, 'etag': str, 'creationTime': TIME, 'lastModified': TIME, 'state': str,
           'stateTransitionTime': TIME}
FIELDS: dict[str, dict] = {
    'pool': {**_ENTITY, 'allocationState': str, 'resizeErrors': list, 'nodes': list},
    'node': {'id': str, 'rootDir': str, 'ipAddress': str, 'allocationTime': OPTIONAL_TIME,
             'startTaskInfo': _OPTIONAL_DICT, 'totalTasksRun': int, 'totalTasksSucceeded': int, 'preparedJobs': dict},
    'job': {**_ENTITY, 'poolId': str, 'previousState': _OPTIONAL_STR, 'previousStateTransitionTime': OPTIONAL_TIME,
            'executionInfo': dict},
    'task': {**_ENTITY, 'jobId': str, 'previousState': _OPTIONAL_STR, 'previousStateTransitionTime': OPTIONAL_TIME,
             'executionInfo': dict, 'nodeInfo': _OPTIONAL_DICT, 'nodeId': _OPTIONAL_STR, 'processId': _OPTIONAL_INT,
             'processStartTime': _OPTIONAL_INT},
    'schedule': {**_ENTITY, 'previousState': _OPTIONAL_STR, 'previousStateTransitionTime': OPTIONAL_TIME,
                 'nextRun': OPTIONAL_TIME, 'lastRun': OPTIONAL_TIME, 'jobCount': int, 'endTime': OPTIONAL_TIME,
                 'autoPool': _OPTIONAL_DICT},
    'certificate': {'thumbprint': str, 'thumbprintAlgorithm': str, 'publicData': str, 'state': str,
                    'stateTransitionTime': TIME, 'previousState': _OPTIONAL_STR,
                    'previousStateTransitionTime': OPTIONAL_TIME, 'deleteCertificateError': _OPTIONAL_DICT},
}
_KINDS = (*_SCHEMAS, 'certificate')
_TWO_PART_KEYS = ('task', 'certificate')  # (job id, task id); (thumbprint algorithm, thumbprint)


class StateFileError(Exception):
    """The location's state file cannot be restored from: which line, and why."""


class Invalid(ValueError):
    """One record does not hold what the emulator writes."""


def _check_fields(record: object, kind: str) -> dict:
    if not isinstance(record, dict):
        raise Invalid(f'a {kind} record must be a JSON object')
    for name, expected in FIELDS[kind].items():
        if name not in record:
            raise Invalid(f'a {kind} record has no {name}')
        value = record[name]
        if expected in (TIME, OPTIONAL_TIME):
            if value is None and expected == OPTIONAL_TIME:
                continue
            try:
                parse_iso(value) if isinstance(value, str) else None
            except ValueError:
                value = object()
            if not isinstance(value, str):
                raise Invalid(f'{kind} {name} must be a time (ISO 8601, UTC)')
        elif isinstance(value, bool) or not isinstance(value, expected):
            raise Invalid(f'{kind} {name} has the wrong type ({type(value).__name__})')
    return record


def _check_state(record: dict, kind: str) -> None:
    allowed = resolve({'$ref': f'#/definitions/{_STATES[kind]}'})['enum']
    if record['state'] not in allowed:
        raise Invalid(f'{kind} state {record["state"][:50]!r} is not one of {", ".join(allowed)}')


def _check_spec(record: dict, kind: str) -> None:
    try:
        conform({**record['spec'], 'id': record['id']}, {'$ref': f'#/definitions/{_SCHEMAS[kind]}'})
    except BatchServiceError as error:
        named = error.values.get('PropertyName')  # not its value: it may be a password
        raise Invalid(f'{kind} {record["id"][:64]!r} has a spec the service would refuse ({error.code}'
                      + (f' {named})' if named else ')')) from None


def check_node_folder(saved: dict, pool_id: str, nodes_dir: str) -> str:
    """The node's folder in this location; its recorded rootDir must name the same (the location may have moved)."""
    node_id = saved['id']
    if not _ID.match(pool_id) or not _ID.match(node_id):
        raise Invalid(f'pool {pool_id[:64]!r} or node {node_id[:80]!r} is not an id the emulator gives')
    recorded = os.path.normpath(saved['rootDir']).split(os.sep)
    if recorded[-3:] != ['nodes', pool_id, node_id]:
        raise Invalid(f'node rootDir {saved["rootDir"][:200]!r} is not the node\'s folder in this location '
                      f'(nodes/{pool_id}/{node_id})')
    folder = os.path.join(nodes_dir, pool_id, node_id)
    real_nodes = os.path.realpath(nodes_dir)
    if os.path.commonpath([real_nodes, os.path.realpath(folder)]) != real_nodes:
        raise Invalid(f'node folder {folder} leads outside the location (a link)')
    return folder


def check_record(event: object) -> tuple[str, dict]:
    """(kind, record) of one line of the file, checked; ('remove', event) for a removal."""
    if not isinstance(event, dict):
        raise Invalid('a line must be a JSON object')
    if 'remove' in event:
        kind, key = event.get('remove'), event.get('key')
        length = 2 if kind in _TWO_PART_KEYS else 1
        if kind not in _KINDS or not isinstance(key, list) or len(key) != length \
                or not all(isinstance(part, str) for part in key):
            raise Invalid('a removal must name a pool, job, task, schedule or certificate by its key')
        return 'remove', event
    kinds = [kind for kind in _KINDS if kind in event]
    if len(kinds) != 1:
        raise Invalid('a line must hold one pool, job, task, schedule or certificate, or a removal')
    kind = kinds[0]
    record = _check_fields(event[kind], kind)
    if kind == 'certificate':
        try:
            check_certificate_record(record, definition('CertificateState')['enum'])
        except ValueError as error:
            raise Invalid(str(error)) from None
        return kind, record
    _check_state(record, kind)
    _check_spec(record, kind)
    for node in record.get('nodes', []) if kind == 'pool' else []:
        _check_fields(node, 'node')
    return kind, record


@contextlib.contextmanager
def about_line(path: str, line: int | None) -> Iterator[None]:
    """Whatever goes wrong restoring a record becomes a StateFileError naming its line."""
    try:
        yield
    except StateFileError:
        raise
    except (Invalid, KeyError, TypeError, ValueError, AttributeError) as error:
        reason = str(error) if isinstance(error, Invalid) else f'{type(error).__name__}: {error}'
        raise StateFileError(f'{path}, line {line}: {reason[:500]}') from None
