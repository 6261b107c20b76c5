"""Request bodies with one property of a wrong type, against the emulator over HTTP.

For every operation the emulator implements, a body the spec accepts (built from the spec's required
properties, with values of the spec's types), then exactly one property changed to each JSON type the
service does not read it as: the answer is 400 InvalidPropertyValue naming that property, and nothing is
created or changed. Every property is changed at the top level and one level down in every operation, and
every property of every definition reached deeper at least once (the first path that reaches it).

Where the service reads a value of another type (numbers and booleans sent as strings — the Azure CLI sends
``"targetDedicatedNodes": "1"`` — a number where a string is expected, an integral number for an integer,
an enum in another casing, null as absent), the value is read back as the service reads it.

``null`` is not a wrong type: the service treats it as the property being absent (the SDKs send it).
"""

from __future__ import annotations

import json
import re
import uuid

import pytest
from azure.batch import models as m

from batch_emulator.contract import schema as contract
from batch_emulator.wire.routes import HANDLERS
from tests.conftest import eventually
from tests.test_emulator import create_pool, raw, raw_json, wait_for_nodes, wait_for_task

pytestmark = pytest.mark.emulator

_WRONG = {'string': 'abc', 'integer': 7, 'number': 1.5, 'boolean': True, 'array': [1, 'x'],
          'object': {'unexpected': [1]}}
# The JSON types each schema type is NOT read from (the others are read: see the coercion table below).
_REJECTED = {'string': ('boolean', 'array', 'object'),
             'integer': ('string', 'number', 'boolean', 'array', 'object'),
             'number': ('string', 'boolean', 'array', 'object'),
             'boolean': ('string', 'integer', 'number', 'array', 'object'),
             'array': ('string', 'integer', 'number', 'boolean', 'object'),
             'object': ('string', 'integer', 'number', 'boolean', 'array')}
_VALID_SCALAR = {'integer': 1, 'number': 1.0, 'boolean': False, 'array': []}
_VALID_FORMAT = {'duration': 'PT1M', 'date-time': '2030-01-01T00:00:00Z', 'int64': '1'}

# The shared parents every case's URL names; no case here can change them (each is refused before it acts).
_NAMES = {'poolId': 'bodytypes-pool', 'jobId': 'bodytypes-job', 'taskId': 'bodytypes-task',
          'jobScheduleId': 'bodytypes-schedule', 'userName': 'bodytypes-user'}

# A body the spec accepts, per operation (what the spec requires; "NEW" is a fresh id per case).
_VALID_BODIES = {
    'Jobs_CreateJob': {'id': 'NEW', 'poolInfo': {'poolId': _NAMES['poolId']}},
    'Jobs_ReplaceJob': {'poolInfo': {'poolId': _NAMES['poolId']}},
    'Jobs_UpdateJob': {},
    'Tasks_CreateTaskCollection': {'value': [{'id': 'NEW', 'commandLine': 'true'}]},
    'Jobs_DisableJob': {'disableTasks': 'requeue'},
    'Tasks_CreateTask': {'id': 'NEW', 'commandLine': 'true'},
    'Tasks_ReplaceTask': {},
    'Jobs_TerminateJob': {},
    'JobSchedules_CreateJobSchedule': {'id': 'NEW', 'schedule': {},
                                       'jobSpecification': {'poolInfo': {'poolId': _NAMES['poolId']}}},
    'JobSchedules_ReplaceJobSchedule': {'jobSpecification': {'poolInfo': {'poolId': _NAMES['poolId']}}},
    'JobSchedules_UpdateJobSchedule': {},
    'Pools_CreatePool': {'id': 'NEW', 'vmSize': 'standard_d2s_v3', 'virtualMachineConfiguration': {
        'imageReference': {'publisher': 'canonical', 'offer': 'ubuntu-24_04-lts', 'sku': 'server'},
        'nodeAgentSKUId': 'batch.node.ubuntu 24.04'}},
    'Pools_UpdatePool': {},
    'Pools_EnablePoolAutoScale': {},
    'Pools_EvaluatePoolAutoScale': {'autoScaleFormula': '$TargetDedicatedNodes = 1;'},
    'Nodes_DeallocateNode': {},
    'Nodes_DisableNodeScheduling': {},
    'Nodes_RebootNode': {},
    'Nodes_ReimageNode': {},
    'Nodes_UploadNodeLogs': {'containerUrl': 'http://127.0.0.1:9/logs', 'startTime': '2030-01-01T00:00:00Z'},
    'Nodes_CreateNodeUser': {'name': 'NEW'},
    'Nodes_ReplaceNodeUser': {},
    'Pools_RemoveNodes': {'nodeList': []},
    'Pools_ResizePool': {},
    'Pools_ReplacePoolProperties': {'applicationPackageReferences': [], 'metadata': []},
}
# Where a create would have put what it made (checked absent after the refusal).
_CREATED_AT = {'Jobs_CreateJob': '/jobs/{id}', 'Tasks_CreateTask': '/jobs/{jobId}/tasks/{id}',
               'Tasks_CreateTaskCollection': '/jobs/{jobId}/tasks/{id}', 'Pools_CreatePool': '/pools/{id}',
               'JobSchedules_CreateJobSchedule': '/jobschedules/{id}'}


def _kind(schema: dict) -> str | None:
    schema = contract.resolve(schema)
    return schema.get('type') or ('object' if 'properties' in schema else None)


def _object_schema(schema: dict) -> dict:
    """The object schema below a property: its own, or its items' for a list of objects."""
    schema = contract.resolve(schema)
    return contract.resolve(schema.get('items') or {}) if _kind(schema) == 'array' else schema


def _writable(schema: dict) -> dict:
    """The properties a request may set (readOnly ones are the service's: ignored when sent)."""
    return {name: child for name, child in _object_schema(schema).get('properties', {}).items()
            if not child.get('readOnly')}


def _ref(schema: dict) -> str:
    schema = contract.resolve(schema) if '$ref' not in schema else schema
    return schema.get('$ref') or (schema.get('items') or {}).get('$ref') or ''


def minimal(schema: dict) -> object:
    """A value of the schema's type with every required (writable) property, recursively."""
    schema = contract.resolve(schema)
    kind = _kind(schema)
    if kind == 'object':
        properties = schema.get('properties', {})
        return {name: minimal(properties[name]) for name in schema.get('required', [])
                if not properties.get(name, {}).get('readOnly')}
    if kind == 'string':
        return schema['enum'][0] if 'enum' in schema else _VALID_FORMAT.get(schema.get('format'), 'x')
    return _VALID_SCALAR.get(kind)


def _property_paths() -> list[tuple[str, tuple[str, ...], dict]]:
    """(operation id, path of property names, the property's schema): every writable property at the top level
    and one level down, and each (definition, property) pair deeper the first time a path reaches it."""
    found, seen = [], set()

    def walk(operation_id: str, schema: dict, path: tuple[str, ...], stack: tuple[str, ...]) -> None:
        owner = _ref(schema) or '.'.join((operation_id, *path))
        for name, child in _writable(schema).items():
            key = (owner, name)
            if len(path) < 2 or key not in seen:
                found.append((operation_id, (*path, name), child))
            seen.add(key)
            if _writable(child) and _ref(child) not in stack:
                walk(operation_id, child, (*path, name), (*stack, _ref(child)))

    for operation in contract.operations():
        if operation.body_schema is not None and operation.operation_id in HANDLERS:
            walk(operation.operation_id, operation.body_schema, (), (_ref(operation.body_schema),))
    return found


def _wrong_values(schema: dict) -> list[tuple[str, object]]:
    """(kind of case, value) for a property: each JSON type it is not read from, a string outside its enum or
    format, an integer outside int32, and an item of a wrong type in a list of plain values."""
    schema = contract.resolve(schema)
    kind = _kind(schema)
    cases = [('wrong type', _WRONG[name]) for name in _REJECTED.get(kind, ())]
    if kind == 'string' and 'enum' in schema:
        cases.append(('not in the enum', 'abc'))
    if kind == 'string' and schema.get('format') in _VALID_FORMAT:
        cases.append(('wrong format', 'PT1.2.3S' if schema['format'] != 'int64' else '1.5'))
    if kind == 'integer':
        cases.append(('outside int32', 2 ** 40))
    if kind == 'array' and _kind(schema.get('items') or {}) not in ('object', None):
        item_kind = _kind(schema['items'])
        cases.append(('wrong item type', [_WRONG[_REJECTED[item_kind][-1]]]))
    return cases


def _body_with(operation_id: str, path: tuple[str, ...], value: object, new_id: str) -> dict:
    """The operation's valid body with the property at ``path`` set to ``value`` (its parents made valid)."""
    operation = _operation(operation_id)
    body = _fresh(_VALID_BODIES[operation_id], new_id)
    holder, schema = body, operation.body_schema
    for name in path[:-1]:
        schema = _writable(schema)[name]
        if _kind(schema) == 'array':
            items = holder.get(name) or []
            holder[name] = [items[0] if items else minimal(_object_schema(schema))]
            holder = holder[name][0]
        else:
            holder[name] = holder.get(name) or minimal(schema)
            holder = holder[name]
    holder[path[-1]] = value
    return body


def _fresh(value: object, new_id: str) -> object:
    """A copy of a valid body with its "NEW" placeholders replaced by the case's own id."""
    if isinstance(value, dict):
        return {name: _fresh(item, new_id) for name, item in value.items()}
    if isinstance(value, list):
        return [_fresh(item, new_id) for item in value]
    return new_id if value == 'NEW' else value


def _operation(operation_id: str) -> contract.Operation:
    return next(o for o in contract.operations() if o.operation_id == operation_id)


def _url(operation_id: str, node_id: str) -> str:
    names = {**_NAMES, 'nodeId': node_id}
    return re.sub(r'\{(\w+)\}', lambda match: names[match.group(1)], _operation(operation_id).path)


def _unchanged(client, operation_id: str, node_id: str) -> object:
    """What a refused request must leave as it was: the ETag of the resource it names (a node: its state)."""
    url = _url(operation_id, node_id)
    if '/nodes/' in url:
        node = raw_json(client, '/'.join(url.split('/')[:5]))
        return node['state'], node['schedulingState']
    target = re.match(r'^(/pools/[^/]+|/jobschedules/[^/]+|/jobs/[^/]+/tasks/[^/]+|/jobs/[^/]+)', url)
    return raw_json(client, target.group(1))['eTag'] if target else None


_CASES = _property_paths()


@pytest.fixture(scope='module')
def parents(emulator):
    """One of each resource the operations' URLs name; every case here is refused, so none changes them."""
    client = emulator.client()
    create_pool(client, _NAMES['poolId'])
    client.create_job(m.BatchJobCreateOptions(id=_NAMES['jobId'], pool_info=m.BatchPoolInfo(
        pool_id=_NAMES['poolId'])))
    client.create_task(_NAMES['jobId'], m.BatchTaskCreateOptions(id=_NAMES['taskId'], command_line='true'))
    raw(client, 'POST', '/jobschedules', {'id': _NAMES['jobScheduleId'],
                                         'schedule': {'doNotRunUntil': '2099-01-01T00:00:00Z'},
                                         'jobSpecification': {'poolInfo': {'poolId': _NAMES['poolId']}}})
    node_id = wait_for_nodes(client, _NAMES['poolId'])[0].id
    wait_for_task(client, _NAMES['jobId'], _NAMES['taskId'])
    yield client, node_id
    raw(client, 'DELETE', f"/jobschedules/{_NAMES['jobScheduleId']}")
    client.begin_delete_job(_NAMES['jobId'])
    client.begin_delete_pool(_NAMES['poolId'])


def test_the_table_covers_every_parsed_body_and_each_case_changes_one_property():
    """The table's own guarantees: a valid body for each implemented operation with a body, a case for every
    writable top-level property, and the valid bodies pass the emulator's parser as they are."""
    parsed = {o.operation_id for o in contract.operations() if o.body_schema is not None and o.operation_id in HANDLERS}
    assert set(_VALID_BODIES) == parsed
    for operation_id, body in _VALID_BODIES.items():
        contract.conform(body, _operation(operation_id).body_schema)  # raises if the spec would refuse it
        top = {path[0] for op, path, _ in _CASES if op == operation_id}
        assert top == set(_writable(_operation(operation_id).body_schema)), operation_id
    for operation_id, path, schema in _CASES:
        for _, value in _wrong_values(schema):
            changed = _body_with(operation_id, path, value, 'x')
            valid = _body_with(operation_id, path, minimal(schema), 'x')
            contract.conform(valid, _operation(operation_id).body_schema)  # only the changed property is wrong
            assert json.dumps(changed) != json.dumps(valid)  # (True == 1 in Python, not in JSON)


@pytest.mark.parametrize(('operation_id', 'path', 'schema'), _CASES,
                         ids=[f'{op}:{".".join(path)}' for op, path, _ in _CASES])
def test_a_property_of_a_wrong_type_is_refused_naming_it(parents, operation_id, path, schema):
    client, node_id = parents
    operation = _operation(operation_id)
    failures = []
    before = _unchanged(client, operation_id, node_id)
    new_id = f'bt-{uuid.uuid4().hex[:10]}'  # one id for the case's creates: one accepted would make the next a 409
    for kind, value in _wrong_values(schema):
        response = raw(client, operation.method, _url(operation_id, node_id),
                       body=_body_with(operation_id, path, value, new_id))
        answer = response.json() if response.status_code != 204 and response.content else {}
        if operation_id == 'Tasks_CreateTaskCollection' and response.status_code == 200 and path[0] == 'value' \
                and len(path) > 1:
            answer = answer['value'][0].get('error', {})  # each task is added or refused on its own
            status = 400 if answer else 200
        else:
            status = response.status_code
        named = {value['key']: value['value'] for value in answer.get('values', [])}
        if (status, answer.get('code'), named.get('PropertyName')) != (400, 'InvalidPropertyValue', path[-1]):
            failures.append((kind, value, response.status_code, response.text()[:300]))
    if operation_id in _CREATED_AT:  # nothing was created
        where = _CREATED_AT[operation_id].format(id=new_id, jobId=_NAMES['jobId'])
        if raw(client, 'GET', where).status_code != 404:
            failures.append(('created', where))
    assert not failures, failures
    assert _unchanged(client, operation_id, node_id) == before, 'a refused request changed what it names'


# ----- what the service reads as another type: the value read back ----------------------------------------

_ABSENT = object()
_COERCIONS = [  # (what is sent, operation, properties merged into its valid body, read back at, as)
    ('an integer as a string (the Azure CLI sends these)', 'Pools_CreatePool', {'taskSlotsPerNode': '2'},
     ('taskSlotsPerNode',), 2),
    ('an integer as a string', 'Pools_ResizePool', {'targetDedicatedNodes': '0', 'targetLowPriorityNodes': ' 1 '},
     ('targetLowPriorityNodes',), 1),
    ('an integer as a string', 'Jobs_UpdateJob', {'priority': '-5'}, ('priority',), -5),
    ('an integral number for an integer', 'Jobs_CreateJob', {'maxParallelTasks': 3.0}, ('maxParallelTasks',), 3),
    ('a nested integer as a string', 'Tasks_CreateTask', {'constraints': {'maxTaskRetryCount': '3'}},
     ('constraints', 'maxTaskRetryCount'), 3),
    ('a boolean as a string', 'Jobs_CreateJob', {'allowTaskPreemption': 'true'}, ('allowTaskPreemption',), True),
    ('a boolean as a string in another casing', 'Pools_CreatePool', {'enableInterNodeCommunication': 'True'},
     ('enableInterNodeCommunication',), True),
    ('a number for a string', 'Tasks_CreateTask', {'displayName': 12}, ('displayName',), '12'),
    ('a number for a string in a list of objects', 'Jobs_CreateJob', {'metadata': [{'name': 'n', 'value': 5}]},
     ('metadata',), [{'name': 'n', 'value': '5'}]),
    ('an enum value in another casing', 'Jobs_CreateJob', {'onAllTasksComplete': 'TerminateJob'},
     ('onAllTasksComplete',), 'terminatejob'),
    ('null (read as absent)', 'Tasks_CreateTask', {'displayName': None}, ('displayName',), _ABSENT),
    ('null (read as absent: the default, unlimited, recorded as TimeSpan.MaxValue) in a nested object',
     'Jobs_CreateJob', {'constraints': {'maxWallClockTime': None, 'maxTaskRetryCount': 1}},
     ('constraints', 'maxWallClockTime'), 'P10675199DT2H48M5.4775807S'),
]


@pytest.mark.parametrize(('sent', 'operation_id', 'changes', 'path', 'expected'), _COERCIONS,
                         ids=[f'{case[1]}:{".".join(case[3])}' for case in _COERCIONS])
def test_a_value_the_service_reads_as_another_type_is_read_back_so(batch_client, unique_id, sent, operation_id,
                                                                    changes, path, expected):
    """Each case on resources of its own: sent, accepted, and read back as the spec's type."""
    pool_id, job_id, task_id = unique_id('coerced'), unique_id('coerced'), unique_id('coerced')
    names = {'poolId': pool_id, 'jobId': job_id, 'taskId': task_id}
    if operation_id in ('Pools_ResizePool',):
        pool = _fresh(_VALID_BODIES['Pools_CreatePool'], pool_id)
        assert raw(batch_client, 'POST', '/pools', pool).status_code == 201
        eventually(lambda: raw_json(batch_client, f'/pools/{pool_id}')['allocationState'] == 'steady',
                   message='the pool steady (a resize needs it)')
    if operation_id in ('Jobs_UpdateJob', 'Tasks_CreateTask'):
        assert raw(batch_client, 'POST', '/jobs', {'id': job_id, 'poolInfo': {'poolId': pool_id}}).status_code == 201
    new_id = {'Pools_CreatePool': pool_id, 'Jobs_CreateJob': job_id, 'Tasks_CreateTask': task_id}.get(operation_id)
    operation = _operation(operation_id)
    url = re.sub(r'\{(\w+)\}', lambda match: names[match.group(1)], operation.path)
    try:
        response = raw(batch_client, operation.method, url, body={**_fresh(_VALID_BODIES[operation_id], new_id),
                                                                  **changes})
        assert 200 <= response.status_code < 300, (sent, response.text())
        resource = {'Tasks_CreateTask': f'/jobs/{job_id}/tasks/{task_id}'}.get(
            operation_id, f'/pools/{pool_id}' if operation_id.startswith('Pools_') else f'/jobs/{job_id}')
        value = raw_json(batch_client, resource)
        for name in path:
            value = value.get(name, _ABSENT) if value is not _ABSENT else _ABSENT
        assert value == expected, sent
    finally:
        raw(batch_client, 'DELETE', f'/jobs/{job_id}')
        raw(batch_client, 'DELETE', f'/pools/{pool_id}')
