"""Updates from the spec: every PATCH / PUT (and pool updateproperties) sets every property its body schema
lets a client write, and a GET shows it; every rule the properties' descriptions state gets its refusal.

The property sets are read here from the spec itself (``batch_emulator/contract/spec/BatchService.json``: the body
schema's properties that are not readOnly), so a property the spec has and this file gives no value fails the
walk. The values are valid ones built for the schema (the spec's examples have no update bodies).
"""

from __future__ import annotations

import json
import os
import re

import pytest
from azure.batch import models as m

from batch_emulator.pytest_plugin import start_batch_emulator
from tests.conftest import eventually
from tests.test_emulator import raw

SPEC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'batch_emulator', 'contract', 'spec',
                    'BatchService.json')
IMAGE = {'imageReference': {'publisher': 'canonical', 'offer': 'ubuntu-24_04-lts', 'sku': 'server'},
         'nodeAgentSKUId': 'batch.node.ubuntu 24.04'}
SECRETS = {'password', 'accountKey', 'sasKey'}  # never given back by the service (recorded)
WALKED = {'Pools_UpdatePool', 'Pools_ReplacePoolProperties', 'Jobs_UpdateJob', 'Jobs_ReplaceJob',
          'JobSchedules_UpdateJobSchedule', 'JobSchedules_ReplaceJobSchedule', 'Tasks_ReplaceTask'}

# One valid value per writable property of each update operation's body, by operation id.
POOL = {
    'displayName': 'updated pool',
    'vmSize': 'STANDARD_D4S_V3',
    'enableInterNodeCommunication': True,
    'startTask': {'commandLine': '/bin/sh -c "echo updated"', 'maxTaskRetryCount': 2, 'waitForSuccess': False},
    'applicationPackageReferences': [{'applicationId': 'app1', 'version': '1'}],
    'metadata': [{'name': 'updated', 'value': 'yes'}],
    'virtualMachineConfiguration': {**IMAGE, 'nodePlacementConfiguration': {'policy': 'zonal'}},
    'taskSlotsPerNode': 2,
    'taskSchedulingPolicy': {'nodeFillType': 'pack', 'jobDefaultOrder': 'creationtime'},
    'networkConfiguration': {'enableAcceleratedNetworking': True, 'endpointConfiguration': {'inboundNATPools': [
        {'name': 'ssh', 'protocol': 'tcp', 'backendPort': 22, 'frontendPortRangeStart': 15000,
         'frontendPortRangeEnd': 15100}]}},
    'userAccounts': [{'name': 'updated-user', 'password': 'Upd#Pass-1234', 'elevationLevel': 'admin'}],
    'mountConfiguration': [{'azureBlobFileSystemConfiguration': {
        'accountName': 'account', 'containerName': 'container', 'accountKey': 'not-a-real-key',
        'relativeMountPath': 'blobs'}}],
    'upgradePolicy': {'mode': 'automatic', 'automaticOSUpgradePolicy': {'enableAutomaticOSUpgrade': True}},
}
JOB = {
    'priority': 100,
    'allowTaskPreemption': True,
    'maxParallelTasks': 2,
    'constraints': {'maxWallClockTime': 'PT1H', 'maxTaskRetryCount': 2},
    'onAllTasksComplete': 'noaction',
    'metadata': [{'name': 'updated', 'value': 'yes'}],
    'networkConfiguration': {'subnetId': '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/'
                                         'providers/Microsoft.Network/virtualNetworks/vnet/subnets/default',
                             'skipWithdrawFromVNet': True},
}
SCHEDULE = {
    'schedule': {'doNotRunUntil': '2099-01-01T00:00:00Z', 'doNotRunAfter': '2099-06-01T00:00:00Z',
                 'startWindow': 'PT1H', 'recurrenceInterval': 'PT5H'},
    'metadata': [{'name': 'updated', 'value': 'yes'}],
}
TASK = {'constraints': {'maxWallClockTime': 'PT1H', 'retentionTime': 'P2D', 'maxTaskRetryCount': 3}}


def _writable(operation_id: str) -> set[str]:
    with open(SPEC, encoding='utf-8') as file:
        spec = json.load(file)
    for item in spec['paths'].values():
        for operation in item.values():
            if isinstance(operation, dict) and operation.get('operationId') == operation_id:
                ref = next(p['schema']['$ref'] for p in operation['parameters'] if p.get('in') == 'body')
                schema = spec['definitions'][ref.rsplit('/', 1)[1]]
                return {name for name, prop in schema['properties'].items() if not prop.get('readOnly')}
    raise AssertionError(f'{operation_id} is not in the spec')


def _shows(read: object, sent: object, where: str = '') -> None:
    """GET shows what was sent: every sent property (secrets aside), strings in any case (the service writes
    enum values in its own casing and lower-cases vmSize)."""
    if isinstance(sent, dict):
        assert isinstance(read, dict), f'{where}: {read!r}'
        for key, value in sent.items():
            if key in SECRETS:
                assert key not in read, f'{where}.{key} is given back'
            else:
                assert key in read, f'{where}.{key} was dropped: {read!r}'
                _shows(read[key], value, f'{where}.{key}')
    elif isinstance(sent, list):
        assert isinstance(read, list) and len(read) == len(sent), f'{where}: {read!r}'
        for index, (got, value) in enumerate(zip(read, sent, strict=True)):
            _shows(got, value, f'{where}[{index}]')
    elif isinstance(sent, str):
        assert isinstance(read, str) and read.lower() == sent.lower(), f'{where}: {read!r} != {sent!r}'
    else:
        assert read == sent, f'{where}: {read!r} != {sent!r}'


def _send(client, method: str, path: str, body: dict, status: int = 200, code: str | None = None):
    response = raw(client, method, path, body)
    assert response.status_code == status, response.text()
    if code is not None:
        assert response.json()['code'] == code
    return response


def _get(client, path: str) -> dict:
    response = raw(client, 'GET', path)
    assert response.status_code == 200, response.text()
    return response.json()


def _pool(client, pool_id: str, nodes: int = 0, **more) -> str:
    _send(client, 'POST', '/pools', {'id': pool_id, 'vmSize': 'STANDARD_D2S_V3', 'targetDedicatedNodes': nodes,
                                     'virtualMachineConfiguration': IMAGE, **more}, 201)
    return f'/pools/{pool_id}'


@pytest.fixture
def ids(unique_id, batch_client):
    """Unique ids; the pools, jobs and schedules made under them are deleted afterwards."""
    made: list[str] = []

    def new(prefix: str) -> str:
        made.append(unique_id(prefix))
        return made[-1]
    yield new
    for name in made:
        kind = name.split('-', 1)[0]
        raw(batch_client, 'DELETE', f'/{kind}s/{name}')


# ----- every property of every update operation round-trips --------------------------------------------

def test_the_walk_covers_every_update_and_replace_operation_of_the_spec():
    with open(SPEC, encoding='utf-8') as file:
        spec = json.load(file)
    found = {operation['operationId'] for path, item in spec['paths'].items() for method, operation in item.items()
             if method in ('put', 'patch') or path.endswith('/updateproperties')}
    # A node user's password, SSH key and expiry are never given back by any operation: nothing to read back.
    assert found - {'Nodes_ReplaceNodeUser'} == WALKED
    assert set(POOL) == _writable('Pools_UpdatePool')
    assert _writable('Pools_ReplacePoolProperties') <= set(POOL)
    assert set(JOB) | {'poolInfo'} == _writable('Jobs_UpdateJob')
    assert _writable('Jobs_ReplaceJob') <= set(JOB) | {'poolInfo'}
    assert set(SCHEDULE) | {'jobSpecification'} == _writable('JobSchedules_UpdateJobSchedule') \
        == _writable('JobSchedules_ReplaceJobSchedule')
    assert set(TASK) == _writable('Tasks_ReplaceTask')


def test_pool_patch_sets_every_property_and_keeps_what_it_leaves_out(batch_client, ids):
    client = batch_client
    path = _pool(client, ids('pool'), metadata=[{'name': 'first', 'value': '1'}])
    before = _get(client, path)
    response = _send(client, 'PATCH', path, POOL)
    after = _get(client, path)
    _shows(after, POOL, 'pool')
    # The answer as recorded [N:PatchPool]: 200, no body, DataServiceId, and the new ETag.
    assert response.headers['DataServiceId'] == f'{client._config.endpoint}{path}'
    assert 'Content-Type' not in response.headers and response.body() == b''
    assert after['eTag'] == response.headers['ETag'] != before['eTag']
    assert after['vmSize'] == 'standard_d4s_v3'  # lower-cased, as the service writes it (recorded)
    # A PATCH of one property keeps every other one.
    _send(client, 'PATCH', path, {'displayName': 'renamed'})
    again = _get(client, path)
    assert again['displayName'] == 'renamed'
    _shows(again, {key: value for key, value in POOL.items() if key != 'displayName'}, 'pool')


def test_pool_updateproperties_replaces_its_set(batch_client, ids):
    client = batch_client
    path = _pool(client, ids('pool'))
    body = {name: POOL[name] for name in _writable('Pools_ReplacePoolProperties')}
    before = _get(client, path)
    response = _send(client, 'POST', f'{path}/updateproperties', body, 204)
    after = _get(client, path)
    _shows(after, body, 'pool')
    # As recorded [N:ReplacePool]: 204, DataServiceId with the action's suffix, the new ETag.
    assert response.headers['DataServiceId'] == f'{client._config.endpoint}{path}/updateproperties'
    assert after['eTag'] == response.headers['ETag'] != before['eTag']
    # Left out: removed (the start task), or emptied (metadata sent empty).
    _send(client, 'POST', f'{path}/updateproperties', {'applicationPackageReferences': [], 'metadata': []}, 204)
    replaced = _get(client, path)
    assert not {'startTask', 'metadata', 'applicationPackageReferences'} & replaced.keys()


def test_job_patch_and_put_set_every_property(batch_client, ids):
    client = batch_client
    first, second = _pool(client, ids('pool')), _pool(client, ids('pool'))
    job_id = ids('job')
    path = f'/jobs/{job_id}'
    _send(client, 'POST', '/jobs', {'id': job_id, 'poolInfo': {'poolId': first.rsplit('/', 1)[1]},
                                    'jobPreparationTask': {'commandLine': '/bin/true'}}, 201)
    put = {name: JOB[name] for name in _writable('Jobs_ReplaceJob') if name != 'poolInfo'}
    _send(client, 'PUT', path, {**put, 'poolInfo': {'poolId': first.rsplit('/', 1)[1]}})
    _shows(_get(client, path), put, 'job')
    # PUT: what it leaves out goes back to its default; the job preparation task is not the PUT's.
    _send(client, 'PUT', path, {'poolInfo': {'poolId': first.rsplit('/', 1)[1]}})
    reset = _get(client, path)
    assert (reset['priority'], reset['maxParallelTasks'], reset['constraints']['maxTaskRetryCount']) == (0, -1, 0)
    assert 'metadata' not in reset and reset['jobPreparationTask']['commandLine'] == '/bin/true'
    # PATCH, the job disabled so that its pool may change.
    _send(client, 'POST', f'{path}/disable', {'disableTasks': 'requeue'}, 202)
    patch = {**JOB, 'poolInfo': {'poolId': second.rsplit('/', 1)[1]}, 'onAllTasksComplete': 'terminatejob'}
    _send(client, 'PATCH', path, patch)
    after = _get(client, path)
    _shows(after, patch, 'job')
    assert after['executionInfo']['poolId'] == second.rsplit('/', 1)[1]


def test_job_schedule_patch_and_put_set_every_property(batch_client, ids):
    client = batch_client
    schedule_id = ids('jobschedule')
    path = f'/jobschedules/{schedule_id}'
    _send(client, 'POST', '/jobschedules', {'id': schedule_id, 'schedule': {'doNotRunUntil': '2099-01-01T00:00:00Z'},
                                            'jobSpecification': {'poolInfo': {'poolId': 'no-such-pool'}}}, 201)
    job_specification = {'poolInfo': {'poolId': 'another-pool'}, 'priority': 5, 'displayName': 'updated',
                         'constraints': {'maxTaskRetryCount': 1}, 'metadata': [{'name': 'spec', 'value': '1'}]}
    for method in ('PATCH', 'PUT'):
        body = {**SCHEDULE, 'jobSpecification': {**job_specification, 'priority': 5 if method == 'PATCH' else 6}}
        response = _send(client, method, path, body)
        after = _get(client, path)
        _shows(after, body, method)
        assert after['eTag'] == response.headers['ETag']
    # PUT: what it leaves out is removed; PATCH keeps it.
    _send(client, 'PATCH', path, {'metadata': [{'name': 'patched', 'value': '1'}]})
    assert _get(client, path)['schedule']['recurrenceInterval'] == 'PT5H'
    _send(client, 'PUT', path, {'jobSpecification': job_specification})
    replaced = _get(client, path)
    assert 'metadata' not in replaced and 'recurrenceInterval' not in replaced.get('schedule', {})


def test_task_put_sets_its_constraints_and_resets_them_when_left_out(batch_client, ids):
    client = batch_client
    job_id = ids('job')
    _send(client, 'POST', '/jobs', {'id': job_id, 'poolInfo': {'poolId': 'no-such-pool'}}, 201)  # never runs
    _send(client, 'POST', f'/jobs/{job_id}/tasks', {'id': 'task', 'commandLine': '/bin/true'}, 201)
    path = f'/jobs/{job_id}/tasks/task'
    _send(client, 'PUT', path, TASK)
    _shows(_get(client, path), TASK, 'task')
    _send(client, 'PUT', path, {})
    assert _get(client, path)['constraints'] == {'maxWallClockTime': 'P10675199DT2H48M5.4775807S',
                                                 'retentionTime': 'P7D', 'maxTaskRetryCount': 0}


def test_pool_update_through_the_sdk(batch_client, ids):
    client = batch_client
    pool_id = ids('pool')
    _pool(client, pool_id)
    client.update_pool(pool_id, m.BatchPoolUpdateOptions(
        display_name='through the sdk', vm_size='Standard_D4s_v3', task_slots_per_node=3,
        task_scheduling_policy=m.BatchTaskSchedulingPolicy(node_fill_type=m.BatchNodeFillType.PACK),
        user_accounts=[m.UserAccount(name='sdk-user', password='Sdk#Pass-1234')]))
    pool = client.get_pool(pool_id)
    assert (pool.display_name, pool.vm_size, pool.task_slots_per_node) == ('through the sdk', 'standard_d4s_v3', 3)
    assert pool.task_scheduling_policy.node_fill_type.lower() == 'pack'  # the service writes Pack (recorded)
    assert [(user.name, user.password) for user in pool.user_accounts] == [('sdk-user', None)]


# ----- the rules the descriptions state ------------------------------------------------------------------

# "This field can be updated only when the pool is empty." (BatchPoolUpdateOptions, 2025-06-01)
ONLY_WHEN_EMPTY = ('displayName', 'vmSize', 'enableInterNodeCommunication', 'virtualMachineConfiguration',
                   'taskSlotsPerNode', 'taskSchedulingPolicy', 'networkConfiguration', 'userAccounts',
                   'mountConfiguration', 'upgradePolicy')


def test_every_rule_the_descriptions_state_has_a_test_here():
    """A sentence of a writable property's description that restricts an update (only when, may not, must be,
    a range, a maximum) names a rule: each is tested below, so a rule the spec adds fails here first."""
    with open(SPEC, encoding='utf-8') as file:
        spec = json.load(file)
    restricted = set()
    for item in spec['paths'].values():
        for operation in item.values():
            operation_id = operation.get('operationId') if isinstance(operation, dict) else None
            if operation_id not in WALKED:
                continue
            ref = next(p['schema']['$ref'] for p in operation['parameters'] if p.get('in') == 'body')
            properties = spec['definitions'][ref.rsplit('/', 1)[1]]['properties']
            restricted |= {(operation_id, name) for name in _writable(operation_id) if re.search(
                r'only when|only if|may not|must be -1|can range|maximum of', properties[name].get('description', ''))}
    tested = {('Pools_UpdatePool', name) for name in ONLY_WHEN_EMPTY} | {
        ('Pools_ReplacePoolProperties', 'applicationPackageReferences'),  # test_at_most_ten_...
        ('Jobs_UpdateJob', 'poolInfo'),  # test_the_pool_of_a_job_..., test_only_keep_alive_...
        ('Jobs_UpdateJob', 'onAllTasksComplete'),  # test_automatic_job_termination_...
        *{(operation_id, name) for operation_id in ('Jobs_UpdateJob', 'Jobs_ReplaceJob')
          for name in ('priority', 'maxParallelTasks')}}  # test_job_priority_and_parallel_tasks_out_of_range
    assert restricted == tested


def test_a_pool_with_nodes_refuses_what_can_change_only_when_it_is_empty(batch_client, ids):
    client = batch_client
    path = _pool(client, ids('pool'), nodes=1)
    eventually(lambda: _get(client, f'{path}/nodes')['value'], message='a node in the pool')
    before = _get(client, path)
    for name in ONLY_WHEN_EMPTY:
        response = _send(client, 'PATCH', path, {name: POOL[name]}, 409, 'OperationInvalidForCurrentState')
        assert {'key': 'PropertyName', 'value': name} in response.json()['values']
    assert _get(client, path)['eTag'] == before['eTag']  # nothing stored
    # What is not restricted still changes, and a restricted property sent unchanged is no change.
    _send(client, 'PATCH', path, {'metadata': POOL['metadata'], 'startTask': POOL['startTask'],
                                  'vmSize': before['vmSize']})
    _shows(_get(client, path), {'metadata': POOL['metadata'], 'startTask': POOL['startTask']}, 'pool')


def test_the_pool_of_a_job_changes_only_while_the_job_is_disabled(batch_client, ids):
    client = batch_client
    first, second = _pool(client, ids('pool')).rsplit('/', 1)[1], _pool(client, ids('pool')).rsplit('/', 1)[1]
    job_id = ids('job')
    _send(client, 'POST', '/jobs', {'id': job_id, 'poolInfo': {'poolId': first}}, 201)
    _send(client, 'PATCH', f'/jobs/{job_id}', {'poolInfo': {'poolId': first}})  # its own pool: no change (recorded)
    _send(client, 'PATCH', f'/jobs/{job_id}', {'poolInfo': {'poolId': second}}, 409, 'OperationInvalidForCurrentState')
    _send(client, 'PUT', f'/jobs/{job_id}', {'poolInfo': {'poolId': second}}, 409, 'OperationInvalidForCurrentState')
    assert _get(client, f'/jobs/{job_id}')['poolInfo'] == {'poolId': first}


def test_a_job_task_runs_on_the_pool_it_was_moved_to(batch_client, ids):
    client = batch_client
    empty, busy = _pool(client, ids('pool')).rsplit('/', 1)[1], _pool(client, ids('pool'), nodes=1).rsplit('/', 1)[1]
    job_id = ids('job')
    _send(client, 'POST', '/jobs', {'id': job_id, 'poolInfo': {'poolId': empty}}, 201)
    _send(client, 'POST', f'/jobs/{job_id}/tasks', {'id': 'moved', 'commandLine': '/bin/true'}, 201)
    _send(client, 'POST', f'/jobs/{job_id}/disable', {'disableTasks': 'requeue'}, 202)
    _send(client, 'PATCH', f'/jobs/{job_id}', {'poolInfo': {'poolId': busy}})
    _send(client, 'POST', f'/jobs/{job_id}/enable', {}, 202)
    task = eventually(lambda: (task := _get(client, f'/jobs/{job_id}/tasks/moved'))['state'] == 'completed' and task,
                      message='the moved task completed')
    assert task['nodeInfo']['poolId'] == busy


def test_automatic_job_termination_cannot_be_turned_off(batch_client, ids):
    client = batch_client
    job_id = ids('job')
    path = f'/jobs/{job_id}'
    _send(client, 'POST', '/jobs', {'id': job_id, 'poolInfo': {'poolId': 'no-such-pool'}}, 201)
    _send(client, 'PATCH', path, {'onAllTasksComplete': 'terminatejob'})
    _send(client, 'PATCH', path, {'onAllTasksComplete': 'noaction'}, 400, 'InvalidPropertyValue')
    # Left out of a PUT it is noaction: refused too (the REST documentation of job update).
    _send(client, 'PUT', path, {'poolInfo': {'poolId': 'no-such-pool'}}, 400, 'InvalidPropertyValue')
    _send(client, 'PUT', path, {'poolInfo': {'poolId': 'no-such-pool'}, 'onAllTasksComplete': 'terminatejob'})
    assert _get(client, path)['onAllTasksComplete'] == 'terminatejob'


@pytest.mark.parametrize('method', ['PATCH', 'PUT'])
@pytest.mark.parametrize(('change', 'code'), [({'priority': 1001}, 'OutOfRangePriority'),
                                              ({'priority': -1001}, 'OutOfRangePriority'),
                                              ({'maxParallelTasks': 0}, 'InvalidPropertyValue'),
                                              ({'maxParallelTasks': -2}, 'InvalidPropertyValue')])
def test_job_priority_and_parallel_tasks_out_of_range(batch_client, ids, method, change, code):
    client = batch_client
    job_id = ids('job')
    _send(client, 'POST', '/jobs', {'id': job_id, 'poolInfo': {'poolId': 'no-such-pool'}}, 201)
    before = _get(client, f'/jobs/{job_id}')
    _send(client, method, f'/jobs/{job_id}', {'poolInfo': {'poolId': 'no-such-pool'}, **change}, 400, code)
    assert _get(client, f'/jobs/{job_id}')['eTag'] == before['eTag']


def test_only_keep_alive_of_a_jobs_auto_pool_can_be_updated(batch_client, ids):
    client = batch_client
    job_id = ids('job')
    path = f'/jobs/{job_id}'
    auto_pool = {'poolLifetimeOption': 'job', 'autoPoolIdPrefix': 'upd',
                 'pool': {'vmSize': 'STANDARD_D2S_V3', 'virtualMachineConfiguration': IMAGE}}
    _send(client, 'POST', '/jobs', {'id': job_id, 'poolInfo': {'autoPoolSpecification': auto_pool}}, 201)
    _send(client, 'PATCH', path, {'poolInfo': {'autoPoolSpecification': {'keepAlive': True}}})
    job = _get(client, path)
    assert job['poolInfo']['autoPoolSpecification']['keepAlive'] is True
    _shows(job['poolInfo']['autoPoolSpecification'], auto_pool, 'autoPoolSpecification')  # the rest kept
    _send(client, 'PATCH', path, {'poolInfo': {'autoPoolSpecification': {**auto_pool, 'autoPoolIdPrefix': 'other'}}},
          409, 'OperationInvalidForCurrentState')
    # kept alive: the auto pool outlives its job
    pool_id = job['executionInfo']['poolId']
    _send(client, 'DELETE', path, {}, 202)
    eventually(lambda: raw(client, 'GET', path).status_code == 404, message='the job gone')
    assert _get(client, f'/pools/{pool_id}')['state'] == 'active'
    raw(client, 'DELETE', f'/pools/{pool_id}')


def test_at_most_ten_application_package_references(batch_client, ids):
    client = batch_client
    path = _pool(client, ids('pool'))
    references = [{'applicationId': f'app{index}'} for index in range(11)]
    _send(client, 'POST', f'{path}/updateproperties', {'applicationPackageReferences': references, 'metadata': []},
          400, 'InvalidPropertyValue')
    _send(client, 'PATCH', path, {'applicationPackageReferences': references}, 400, 'InvalidPropertyValue')
    assert 'applicationPackageReferences' not in _get(client, path)


def test_an_update_that_breaks_the_create_rules_is_refused_and_not_stored(batch_client, ids):
    client = batch_client
    path = _pool(client, ids('pool'))
    _send(client, 'PATCH', path, {'virtualMachineConfiguration': {'nodePlacementConfiguration': {'policy': 'zonal'}}},
          400, 'MissingRequiredProperty')
    _send(client, 'PATCH', path, {'taskSlotsPerNode': 0}, 400, 'InvalidPropertyValue')
    _send(client, 'PATCH', path, {'startTask': {'maxTaskRetryCount': 1}}, 400, 'MissingRequiredProperty')
    pool = _get(client, path)
    assert (pool['taskSlotsPerNode'], 'startTask' in pool) == (1, False)
    job_id = ids('job')
    _send(client, 'POST', '/jobs', {'id': job_id, 'poolInfo': {'poolId': 'no-such-pool'}}, 201)
    _send(client, 'PATCH', f'/jobs/{job_id}', {'poolInfo': {}}, 400, 'MissingRequiredProperty')
    assert _get(client, f'/jobs/{job_id}')['poolInfo'] == {'poolId': 'no-such-pool'}


# ----- an update survives a restart ---------------------------------------------------------------------

def test_updates_survive_a_restart_from_the_location(tmp_path):
    with start_batch_emulator(tmp_path) as emulator:
        client = emulator.client()
        path = _pool(client, 'kept-pool')
        _send(client, 'PATCH', path, POOL)
        _send(client, 'POST', '/jobs', {'id': 'kept-job', 'poolInfo': {'poolId': 'kept-pool'}}, 201)
        _send(client, 'PATCH', '/jobs/kept-job', JOB)
        etag = _get(client, path)['eTag']
        client.close()
    with start_batch_emulator(tmp_path) as emulator:
        client = emulator.client()
        pool = _get(client, path)
        _shows(pool, POOL, 'pool')
        assert pool['eTag'] == etag
        _shows(_get(client, '/jobs/kept-job'), JOB, 'job')
        client.close()
