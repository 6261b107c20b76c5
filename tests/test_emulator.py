"""The Batch emulator, driven by the real azure-batch SDK over HTTP; bodies validated against the spec."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request

import jsonschema
import pytest
from azure.batch import models as m
from azure.batch._patch import BatchSharedKeyAuthPolicy
from azure.core import PipelineClient
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.core.rest import HttpRequest

from batch_emulator.contract import schema as contract
from batch_emulator.wire import auth
from batch_emulator.wire.routes import HANDLERS
from tests.conftest import eventually

pytestmark = pytest.mark.emulator

with open(contract.SPEC_PATH, encoding='utf-8') as _spec_file:
    SPEC = json.load(_spec_file)

API = 'api-version=2025-06-01'
UBUNTU = m.VirtualMachineConfiguration(
    image_reference=m.BatchVmImageReference(publisher='canonical', offer='ubuntu-24_04-lts', sku='server'),
    node_agent_sku_id='batch.node.ubuntu 24.04')


def _enum_in_any_casing(validator, enums, instance, schema):
    """The spec's enums are extensible strings (modelAsString) that every SDK reads in any casing; the
    service writes some in PascalCase (recorded: "Spread", "UserError"). Any other value still fails."""
    if isinstance(instance, str) and any(isinstance(e, str) and e.lower() == instance.lower() for e in enums):
        return
    yield from jsonschema._keywords.enum(validator, enums, instance, schema)


_SpecValidator = jsonschema.validators.extend(jsonschema.Draft4Validator, {'enum': _enum_in_any_casing})


# Required by the spec, absent from the real service's answers: a node has no ipv6Address outside dual-stack
# pools and no lastBootTime before it first boots (recorded-service-behaviour 2.5 [P:nodes, J:pool2/ipv6]).
_RECORDED_ABSENT = {'BatchNode': {'ipv6Address', 'lastBootTime'}}
_DEFINITIONS = {name: {**definition, 'required': [key for key in definition['required']
                                                 if key not in _RECORDED_ABSENT.get(name, ())]}
                if 'required' in definition else definition for name, definition in SPEC['definitions'].items()}


def validate(body: dict, definition: str) -> None:
    """Checks a response body against a definition of Microsoft's OpenAPI spec (Draft 4, as Swagger 2.0)."""
    schema = {'$ref': f'#/definitions/{definition}', 'definitions': _DEFINITIONS}
    _SpecValidator(schema).validate(body)


def raw(client, method: str, path: str, body: dict | None = None, query: str = API, headers: dict | None = None):
    """A request signed by the SDK's own SharedKey policy, without its error policy: the raw HTTP response."""
    endpoint = client._config.endpoint
    pipeline = PipelineClient(base_url=endpoint, policies=[BatchSharedKeyAuthPolicy(client._config.credential)])
    separator = '&' if '?' in path else '?'
    url = f'{endpoint}{path}{separator}{query}' if query else f'{endpoint}{path}'
    return pipeline.send_request(HttpRequest(method, url, json=body, headers=headers))


def raw_json(client, path: str) -> dict:
    response = raw(client, 'GET', path)
    assert response.status_code == 200, response.text()
    return response.json()


def create_pool(client, pool_id: str, nodes: int = 1, start_task: m.BatchStartTask | None = None,
                slots: int = 1) -> None:
    client.create_pool(m.BatchPoolCreateOptions(id=pool_id, vm_size='STANDARD_D2S_V3', target_dedicated_nodes=nodes,
                                                virtual_machine_configuration=UBUNTU, start_task=start_task,
                                                task_slots_per_node=slots))


def wait_for_nodes(client, pool_id: str, state: str = 'idle', count: int = 1) -> list[m.BatchNode]:
    return eventually(lambda: (nodes := list(client.list_nodes(pool_id))) and len(nodes) == count
                      and all(n.state == state for n in nodes) and nodes, message=f'nodes {state}')


def wait_for_task(client, job_id: str, task_id: str) -> m.BatchTask:
    return eventually(lambda: (task := client.get_task(job_id, task_id)).state == 'completed' and task,
                      message=f'task {task_id} completed')


# ----- images, pools, nodes --------------------------------------------------------------------

def test_supported_images_include_current_ubuntu_with_end_of_life(batch_client):
    body = raw_json(batch_client, '/supportedimages')
    validate(body, 'BatchAccountListSupportedImagesResult')
    images = {(i.image_reference.offer, i.image_reference.sku): i for i in batch_client.list_supported_images()}
    assert images[('ubuntu-24_04-lts', 'server')].node_agent_sku_id == 'batch.node.ubuntu 24.04'
    assert images[('0001-com-ubuntu-server-jammy', '22_04-lts-gen2')].batch_support_end_of_life.year == 2027
    windows = list(batch_client.list_supported_images(filter="osType eq 'windows'"))
    assert windows and all(i.os_type == 'windows' for i in windows)


def test_pool_lifecycle_create_get_exists_list_resize_delete(batch_client, unique_id):
    pool_id = unique_id('pool')
    create_pool(batch_client, pool_id, nodes=1)
    assert batch_client.pool_exists(pool_id) is True
    pool = batch_client.get_pool(pool_id)
    assert (pool.id, pool.vm_size, pool.state, pool.target_dedicated_nodes) == (pool_id, 'standard_d2s_v3',
                                                                               'active', 1)
    validate(raw_json(batch_client, f'/pools/{pool_id}'), 'BatchPool')
    wait_for_nodes(batch_client, pool_id)
    eventually(lambda: batch_client.get_pool(pool_id).allocation_state == 'steady', message='steady')

    listed = list(batch_client.list_pools(filter=f"id eq '{pool_id}'", select=['id', 'allocationState']))
    assert [(p.id, p.allocation_state, p.vm_size) for p in listed] == [(pool_id, 'steady', None)]

    batch_client.begin_resize_pool(pool_id, m.BatchPoolResizeOptions(target_dedicated_nodes=2), polling_interval=0)
    wait_for_nodes(batch_client, pool_id, count=2)
    eventually(lambda: batch_client.get_pool(pool_id).current_dedicated_nodes == 2, message='2 nodes')

    poller = batch_client.begin_delete_pool(pool_id, polling_interval=0.05)
    assert batch_client.get_pool(pool_id).state == 'deleting'
    poller.result()
    with pytest.raises(ResourceNotFoundError) as raised:
        batch_client.get_pool(pool_id)
    assert raised.value.model.code == 'PoolNotFound'
    with pytest.raises(ResourceNotFoundError):  # the SDK's pool_exists raises on 404
        batch_client.pool_exists(pool_id)


def test_pool_that_exists_gets_the_services_error_body(batch_client, unique_id):
    pool_id = unique_id('pool')
    create_pool(batch_client, pool_id, nodes=0)
    with pytest.raises(ResourceExistsError) as raised:
        create_pool(batch_client, pool_id.upper(), nodes=0)  # ids are case-insensitive
    assert raised.value.model.code == 'PoolExists'
    assert raised.value.model.message.value.startswith('The specified pool already exists.\nRequestId:')
    response = raw(batch_client, 'POST', '/pools', {'id': pool_id, 'vmSize': 'standard_d2s_v3',
                                                    'virtualMachineConfiguration': UBUNTU.as_dict()})
    assert response.status_code == 409
    validate(response.json(), 'BatchError')


@pytest.mark.parametrize(('body', 'code', 'property_name'), [
    ({'id': 'bad id!', 'vmSize': 'standard_d2s_v3'}, 'InvalidPropertyValue', 'id'),
    ({'vmSize': 'standard_d2s_v3'}, 'MissingRequiredProperty', 'id'),
    ({'id': 'p-no-size'}, 'MissingRequiredProperty', 'vmSize'),
    ({'id': 'p-retired', 'vmSize': 'STANDARD_A1'}, 'InvalidPropertyValue', 'vmSize'),
    ({'id': 'p-image', 'vmSize': 'standard_d2s_v3', 'virtualMachineConfiguration': {
        'imageReference': {'publisher': 'canonical', 'offer': 'ubuntu-24_04-lts', 'sku': 'server'},
        'nodeAgentSKUId': 'batch.node.ubuntu 14.04'}}, 'InvalidPropertyValue',
     'virtualMachineConfiguration.nodeAgentSKUId'),
])
def test_invalid_pools_are_refused_with_the_property_named(batch_client, body, code, property_name):
    body.setdefault('virtualMachineConfiguration', UBUNTU.as_dict())
    response = raw(batch_client, 'POST', '/pools', body)
    assert response.status_code == 400
    error = response.json()
    validate(error, 'BatchError')
    assert error['code'] == code
    assert {'key': 'PropertyName', 'value': property_name} in error['values']


def test_nodes_go_through_their_states_and_are_laid_out_like_real_nodes(batch_client, emulator, unique_id, tmp_path):
    pool_id = unique_id('pool')
    gate = tmp_path / 'gate'  # the start task waits for it: the node stays in waitingforstarttask until then
    start_task = m.BatchStartTask(command_line=f"/bin/bash -c 'until [ -e {gate} ]; do sleep 0.05; done; "
                                               "echo prepared > $AZ_BATCH_NODE_SHARED_DIR/ready; "
                                               "echo start-task-output'", wait_for_success=True)
    create_pool(batch_client, pool_id, start_task=start_task)
    waiting = eventually(lambda: (nodes := list(batch_client.list_nodes(pool_id))) and nodes[0].state not in (
        'creating', 'starting') and nodes[0], message='the node past creating and starting')
    assert waiting.state == 'waitingforstarttask' and waiting.start_task_info.state == 'running'
    gate.touch()
    node = eventually(lambda: (found := batch_client.get_node(pool_id, waiting.id)).state != 'waitingforstarttask'
                      and found, message='the start task done')
    validate(raw_json(batch_client, f'/pools/{pool_id}/nodes'), 'BatchNodeListResult')
    assert node.start_task_info.result == 'success' and node.start_task_info.exit_code == 0
    assert batch_client.get_node(pool_id, node.id).state == 'idle'
    validate(raw_json(batch_client, f'/pools/{pool_id}/nodes/{node.id}'), 'BatchNode')
    assert batch_client.get_node_file_properties(pool_id, node.id, 'startup/stdout.txt').content_length == 18
    names = {f.name for f in batch_client.list_node_files(pool_id, node.id, recursive=True)}
    assert {'shared', 'shared/ready', 'startup', 'startup/stdout.txt', 'startup/stderr.txt', 'startup/wd',
            'workitems'} <= names
    stdout = b''.join(batch_client.download_node_file(pool_id, node.id, 'startup/stdout.txt'))
    assert stdout == b'start-task-output\n'


def test_a_failing_start_task_leaves_the_node_in_starttaskfailed(batch_client, unique_id):
    pool_id = unique_id('pool')
    start_task = m.BatchStartTask(command_line="/bin/bash -c 'echo no package >&2; exit 100'",
                                  wait_for_success=True, max_task_retry_count=1)
    create_pool(batch_client, pool_id, start_task=start_task)
    node = wait_for_nodes(batch_client, pool_id, state='starttaskfailed')[0]
    info = node.start_task_info
    assert (info.exit_code, info.result, info.retry_count, info.failure_info.code) == (
        100, 'failure', 1, 'FailureExitCode')
    failed = list(batch_client.list_nodes(pool_id, filter="state eq 'starttaskfailed'"))
    assert [n.id for n in failed] == [node.id]
    stderr = b''.join(batch_client.download_node_file(pool_id, node.id, 'startup/stderr.txt'))
    assert stderr == b'no package\nno package\n'  # the first run and its retry


# ----- jobs and tasks ---------------------------------------------------------------------------

def test_tasks_run_with_the_batch_environment_and_exit_codes(batch_client, pool_and_job):
    pool_id, job_id = pool_and_job
    batch_client.create_task(job_id, m.BatchTaskCreateOptions(
        id='env', command_line="/bin/bash -c 'echo $AZ_BATCH_TASK_ID $AZ_BATCH_JOB_ID $AZ_BATCH_POOL_ID $MY_SETTING; "
                               "pwd; test \"$PWD\" = \"$AZ_BATCH_TASK_WORKING_DIR\"'",
        environment_settings=[m.EnvironmentSetting(name='MY_SETTING', value='hello')]))
    batch_client.create_task(job_id, m.BatchTaskCreateOptions(id='fails', command_line="/bin/sh -c 'exit 3'"))
    task = wait_for_task(batch_client, job_id, 'env')
    assert (task.execution_info.exit_code, task.execution_info.result) == (0, 'success')
    stdout = b''.join(batch_client.download_task_file(job_id, 'env', 'stdout.txt')).decode()
    assert stdout.splitlines()[0] == f'env {job_id} {pool_id} hello'
    assert stdout.splitlines()[1].endswith(f'workitems/{job_id}/job-1/env/wd')
    assert task.node_info.pool_id == pool_id
    failed = wait_for_task(batch_client, job_id, 'fails')
    assert (failed.execution_info.exit_code, failed.execution_info.result) == (3, 'failure')
    assert failed.execution_info.failure_info.code == 'FailureExitCode'
    validate(raw_json(batch_client, f'/jobs/{job_id}/tasks/fails'), 'BatchTask')
    counts = raw_json(batch_client, f'/jobs/{job_id}/taskcounts')
    validate(counts, 'BatchTaskCountsResult')
    assert counts['taskCounts'] == {'active': 0, 'running': 0, 'completed': 2, 'succeeded': 1, 'failed': 1}


def test_the_command_line_is_not_run_through_a_shell(batch_client, pool_and_job):
    _, job_id = pool_and_job
    batch_client.create_task(job_id, m.BatchTaskCreateOptions(id='noshell', command_line='echo $HOME "a  b"'))
    batch_client.create_task(job_id, m.BatchTaskCreateOptions(id='missing', command_line='no-such-program --x'))
    wait_for_task(batch_client, job_id, 'noshell')
    assert b''.join(batch_client.download_task_file(job_id, 'noshell', 'stdout.txt')) == b'$HOME a  b\n'
    missing = wait_for_task(batch_client, job_id, 'missing')
    assert missing.execution_info.failure_info.code == 'CommandProgramNotFound'
    assert missing.execution_info.exit_code is None


def test_add_task_collection_gives_per_task_results_and_lists_page(batch_client, pool_and_job):
    _, job_id = pool_and_job
    tasks = [m.BatchTaskCreateOptions(id=f't{i:03}', command_line='true') for i in range(250)]
    result = batch_client.create_tasks(job_id, tasks, max_concurrency=3)
    assert sorted(r.task_id for r in result.result_values) == [t.id for t in tasks]

    response = raw(batch_client, 'POST', f'/jobs/{job_id}/addtaskcollection', {'value': [
        {'id': 't000', 'commandLine': 'true'}, {'id': 'new-one', 'commandLine': 'true'}, {'id': 'no command'}]})
    body = response.json()
    validate(body, 'BatchCreateTaskCollectionResult')
    by_id = {r['taskId']: r for r in body['value']}
    assert by_id['t000']['status'] == 'clienterror' and by_id['t000']['error']['code'] == 'TaskExists'
    assert by_id['new-one']['status'] == 'success' and by_id['new-one']['eTag']
    # The body is parsed before the id is checked: the missing commandLine is what the service names.
    assert by_id['no command']['error']['code'] == 'MissingRequiredProperty'
    assert {'key': 'PropertyName', 'value': 'commandLine'} in by_id['no command']['error']['values']

    too_many = raw(batch_client, 'POST', f'/jobs/{job_id}/addtaskcollection',
                   {'value': [{'id': f'x{i}', 'commandLine': 'true'} for i in range(101)]})
    assert too_many.status_code == 400 and too_many.json()['code'] == 'InvalidPropertyValue'

    validate(raw_json(batch_client, f'/jobs/{job_id}/tasks?maxresults=10'), 'BatchTaskListResult')
    first_page = raw_json(batch_client, f'/jobs/{job_id}/tasks?maxresults=100&$select=id')
    assert len(first_page['value']) == 100 and set(first_page['value'][0]) == {'id'}
    # As the service does: the caller's query in the caller's order, then $skiptoken (recorded with JS and Python).
    assert first_page['odata.nextLink'].endswith(f'/jobs/{job_id}/tasks?maxresults=100&$select=id'
                                                 '&api-version=2025-06-01&$skiptoken=100')
    listed = [t.id for t in batch_client.list_tasks(job_id, max_results=100, select=['id'])]
    assert len(listed) == 251 and len(set(listed)) == 251
    eventually(lambda: batch_client.get_job_task_counts(job_id).task_counts.completed == 251, message='all done')
    assert len(list(batch_client.list_tasks(job_id, filter="state eq 'Completed' and startswith(id,'t1')"))) == 100


def test_a_too_large_collection_is_refused_and_the_sdk_splits_it(batch_client, pool_and_job, emulator):
    _, job_id = pool_and_job
    padding = 'x' * 20_000  # 100 tasks of 20 KB: 2 MB, over the 1 MB limit of one request
    tasks = [m.BatchTaskCreateOptions(id=f'big{i}', command_line=f'echo {padding}') for i in range(100)]
    batch_client.create_tasks(job_id, tasks)
    assert len(list(batch_client.list_tasks(job_id, select=['id']))) == 100
    with open(emulator.request_log, encoding='utf-8') as log:
        statuses = [entry['status'] for entry in map(json.loads, log)
                    if entry['path'] == f'/jobs/{job_id}/addtaskcollection']
    assert 413 in statuses and statuses[-1] == 200


def test_retries_wall_clock_limit_terminate_and_delete(batch_client, pool_and_job):
    pool_id, job_id = pool_and_job
    batch_client.create_task(job_id, m.BatchTaskCreateOptions(
        id='retried', command_line="/bin/sh -c 'echo try >> ../../attempts; exit 1'",
        constraints=m.BatchTaskConstraints(max_task_retry_count=2)))
    retried = wait_for_task(batch_client, job_id, 'retried')
    assert (retried.execution_info.retry_count, retried.execution_info.result) == (2, 'failure')

    batch_client.create_task(job_id, m.BatchTaskCreateOptions(
        id='slow', command_line='sleep 60', constraints=m.BatchTaskConstraints(max_wall_clock_time='PT0.5S')))
    slow = wait_for_task(batch_client, job_id, 'slow')
    assert slow.execution_info.failure_info.code == 'MaxWallClockTimeExpiry'

    batch_client.create_task(job_id, m.BatchTaskCreateOptions(id='ended', command_line='sleep 60'))
    eventually(lambda: batch_client.get_task(job_id, 'ended').state == 'running', message='running')
    batch_client.terminate_task(job_id, 'ended')
    ended = wait_for_task(batch_client, job_id, 'ended')
    assert ended.execution_info.failure_info.code == 'TaskEnded'

    batch_client.delete_task(job_id, 'ended')
    with pytest.raises(ResourceNotFoundError) as raised:
        batch_client.get_task(job_id, 'ended')
    assert raised.value.model.code == 'TaskNotFound'


def test_task_slots_let_tasks_run_side_by_side(batch_client, unique_id):
    pool_id, job_id = unique_id('pool'), unique_id('job')
    create_pool(batch_client, pool_id, slots=2)
    batch_client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool_id)))
    # Each task waits (bounded) for the other to have started: only possible when both run at once.
    command = ("/bin/bash -c 'touch $AZ_BATCH_NODE_SHARED_DIR/$AZ_BATCH_TASK_ID; for i in $(seq 200); do "
               "[ $(ls $AZ_BATCH_NODE_SHARED_DIR | wc -l) -ge 2 ] && exit 0; sleep 0.05; done; exit 1'")
    batch_client.create_tasks(job_id, [m.BatchTaskCreateOptions(id=f'pair{i}', command_line=command)
                                       for i in range(2)])
    for i in range(2):
        assert wait_for_task(batch_client, job_id, f'pair{i}').execution_info.exit_code == 0
    batch_client.begin_delete_pool(pool_id)


def test_task_files_list_get_range_and_head(batch_client, pool_and_job):
    _, job_id = pool_and_job
    batch_client.create_task(job_id, m.BatchTaskCreateOptions(
        id='files', command_line="/bin/bash -c 'printf 0123456789; echo data > \"out put+1.txt\"'"))
    wait_for_task(batch_client, job_id, 'files')
    names = {f.name: f for f in batch_client.list_task_files(job_id, 'files', recursive=True)}
    assert {'stdout.txt', 'stderr.txt', 'wd', 'wd/out put+1.txt'} <= set(names)
    assert names['wd'].is_directory and names['stdout.txt'].properties.content_length == 10
    validate(raw_json(batch_client, f'/jobs/{job_id}/tasks/files/files?recursive=true'), 'BatchNodeFileListResult')
    assert b''.join(batch_client.download_task_file(job_id, 'files', 'stdout.txt', ocp_range='bytes=2-5')) == b'2345'
    assert b''.join(batch_client.download_task_file(job_id, 'files', 'wd/out put+1.txt')) == b'data\n'
    properties = batch_client.get_task_file_properties(job_id, 'files', 'stdout.txt')
    assert (properties.content_length, properties.is_directory) == (10, False)
    only_wd = [f.name for f in batch_client.list_task_files(job_id, 'files', recursive=True,
                                                             filter="startswith(name,'wd')")]
    assert only_wd and all(name.startswith('wd') for name in only_wd)


@pytest.mark.parametrize('escape', ['..%2F..%2F..%2F..%2Fetc%2Fpasswd', '%2Fetc%2Fpasswd', 'wd%2F..%2F..%2F..%2Fx'])
def test_file_paths_cannot_leave_the_task_folder(batch_client, pool_and_job, escape):
    _, job_id = pool_and_job
    batch_client.create_task(job_id, m.BatchTaskCreateOptions(id='confined', command_line='true'))
    wait_for_task(batch_client, job_id, 'confined')
    response = raw(batch_client, 'GET', f'/jobs/{job_id}/tasks/confined/files/{escape}')
    assert response.status_code == 404 and response.json()['code'] == 'FileNotFound'


def test_resource_file_paths_may_not_leave_the_working_directory(batch_client, pool_and_job):
    _, job_id = pool_and_job
    with pytest.raises(HttpResponseError) as raised:
        batch_client.create_task(job_id, m.BatchTaskCreateOptions(id='escape', command_line='true', resource_files=[
            m.ResourceFile(http_url='http://127.0.0.1:1/x', file_path='../../outside.txt')]))
    assert raised.value.model.code == 'InvalidPropertyValue'


def test_jobs_errors_terminate_and_all_tasks_complete(batch_client, pool_and_job, unique_id):
    pool_id, job_id = pool_and_job
    with pytest.raises(ResourceExistsError) as raised:
        batch_client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool_id)))
    assert raised.value.model.code == 'JobExists'
    with pytest.raises(ResourceNotFoundError) as raised:
        batch_client.get_job('no-such-job')
    assert raised.value.model.code == 'JobNotFound'
    validate(raw_json(batch_client, f'/jobs/{job_id}'), 'BatchJob')
    assert job_id in [j.id for j in batch_client.list_jobs(filter=f"id eq '{job_id}'")]

    auto_job = unique_id('job')
    batch_client.create_job(m.BatchJobCreateOptions(id=auto_job, pool_info=m.BatchPoolInfo(pool_id=pool_id),
                                                    all_tasks_complete_mode='terminatejob'))
    batch_client.create_task(auto_job, m.BatchTaskCreateOptions(id='only', command_line='true'))
    eventually(lambda: batch_client.get_job(auto_job).state == 'completed', message='job completed')
    assert batch_client.get_job(auto_job).all_tasks_complete_mode == 'terminatejob'

    batch_client.create_task(job_id, m.BatchTaskCreateOptions(id='long', command_line='sleep 60'))
    eventually(lambda: batch_client.get_task(job_id, 'long').state == 'running', message='running')
    batch_client.begin_terminate_job(job_id, m._models.BatchJobTerminateOptions(termination_reason='done'),
                                     polling_interval=0.05).result()
    assert batch_client.get_job(job_id).state == 'completed'
    assert batch_client.get_task(job_id, 'long').execution_info.failure_info.code == 'TaskEnded'
    with pytest.raises(HttpResponseError) as raised:
        batch_client.create_task(job_id, m.BatchTaskCreateOptions(id='late', command_line='true'))
    assert raised.value.model.code == 'JobCompleted'

    batch_client.begin_delete_job(auto_job, polling_interval=0.05).result()
    with pytest.raises(ResourceNotFoundError):
        batch_client.get_job(auto_job)


def test_disable_enable_reactivate_and_reboot(batch_client, pool_and_job):
    pool_id, job_id = pool_and_job
    batch_client.create_task(job_id, m.BatchTaskCreateOptions(id='long', command_line='sleep 60'))
    eventually(lambda: batch_client.get_task(job_id, 'long').state == 'running', message='running')
    batch_client.begin_disable_job(job_id, m.BatchJobDisableOptions(disable_tasks='requeue'),
                                   polling_interval=0.05).result()
    assert batch_client.get_job(job_id).state == 'disabled'
    eventually(lambda: batch_client.get_task(job_id, 'long').state == 'active', message='requeued')
    assert batch_client.get_task(job_id, 'long').execution_info.requeue_count == 1
    batch_client.create_task(job_id, m.BatchTaskCreateOptions(id='waits', command_line='true'))
    batch_client.update_job(job_id, m.BatchJobUpdateOptions(priority=100))
    assert (batch_client.get_job(job_id).priority, batch_client.get_task(job_id, 'waits').state) == (100, 'active')
    batch_client.terminate_task(job_id, 'long')  # an active task ends at once
    assert batch_client.get_task(job_id, 'long').execution_info.failure_info.code == 'TaskEnded'
    batch_client.begin_enable_job(job_id, polling_interval=0.05).result()
    assert wait_for_task(batch_client, job_id, 'waits').execution_info.result == 'success'

    batch_client.create_task(job_id, m.BatchTaskCreateOptions(
        id='flaky', command_line="/bin/sh -c 'test -f ../../second && exit 0; touch ../../second; exit 4'"))
    assert wait_for_task(batch_client, job_id, 'flaky').execution_info.exit_code == 4
    batch_client.reactivate_task(job_id, 'flaky')
    eventually(lambda: batch_client.get_task(job_id, 'flaky').execution_info.result == 'success',
               message='reactivated task succeeded')

    node = wait_for_nodes(batch_client, pool_id)[0]
    # (azure-batch 15.1 cannot send a reboot without an options body, as with terminate job.)
    batch_client.begin_reboot_node(pool_id, node.id, m._models.BatchNodeRebootOptions(node_reboot_kind='requeue'),
                                   polling_interval=0.05).result()
    assert wait_for_nodes(batch_client, pool_id)[0].id == node.id


def test_job_preparation_runs_before_the_first_task_and_release_at_the_end(batch_client, unique_id):
    pool_id, job_id = unique_id('pool'), unique_id('job')
    create_pool(batch_client, pool_id)
    batch_client.create_job(m.BatchJobCreateOptions(
        id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool_id),
        job_preparation_task=m.BatchJobPreparationTask(
            command_line="/bin/bash -c 'echo prepared > $AZ_BATCH_NODE_SHARED_DIR/prep-$AZ_BATCH_JOB_ID'"),
        job_release_task=m.BatchJobReleaseTask(
            command_line="/bin/bash -c 'echo released > $AZ_BATCH_NODE_SHARED_DIR/release-$AZ_BATCH_JOB_ID'")))
    batch_client.create_task(job_id, m.BatchTaskCreateOptions(
        id='uses-prep', command_line="/bin/bash -c 'cat $AZ_BATCH_NODE_SHARED_DIR/prep-$AZ_BATCH_JOB_ID'"))
    task = wait_for_task(batch_client, job_id, 'uses-prep')
    assert task.execution_info.exit_code == 0
    assert b''.join(batch_client.download_task_file(job_id, 'uses-prep', 'stdout.txt')) == b'prepared\n'
    batch_client.begin_terminate_job(job_id, m._models.BatchJobTerminateOptions(termination_reason='done'),
                                     polling_interval=0.05).result()

    def release_done():
        statuses = list(batch_client.list_job_preparation_and_release_task_status(job_id))
        return statuses and statuses[0].job_release_task_execution_info and \
            statuses[0].job_release_task_execution_info.state == 'completed' and statuses
    status = eventually(release_done, message='release task completed')[0]
    assert status.job_preparation_task_execution_info.result == 'success'
    assert status.job_release_task_execution_info.exit_code == 0
    validate(raw_json(batch_client, f'/jobs/{job_id}/jobpreparationandreleasetaskstatus'),
             'BatchJobPreparationAndReleaseTaskStatusListResult')
    batch_client.begin_delete_pool(pool_id)


# ----- the protocol: auth, versions, unsupported operations, request log ----------------------------

def test_a_wrong_key_or_account_is_refused_with_403(emulator):
    wrong_key = emulator.client(key=auth.base64.b64encode(b'not the key').decode())
    with pytest.raises(HttpResponseError) as raised:
        list(wrong_key.list_pools())
    assert raised.value.status_code == 403 and raised.value.model.code == 'AuthenticationFailed'
    wrong_account = emulator.client(account='someoneelse')
    with pytest.raises(HttpResponseError) as raised:
        list(wrong_account.list_pools())
    assert raised.value.status_code == 403


def test_an_unsigned_request_is_refused(emulator):
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(f'{emulator.endpoint}/pools?{API}', timeout=10)
    assert raised.value.code == 403
    body = json.loads(raised.value.read())
    validate(body, 'BatchError')
    assert body['code'] == 'AuthenticationFailed'


def test_the_api_version_of_azure_batch_14_is_accepted(emulator):
    old_client = emulator.client(api_version='2024-02-01.19.0')
    assert any(i.image_reference.sku == 'server' for i in old_client.list_supported_images())


@pytest.mark.parametrize('version', ['2024-07-01.20.0', '2020-09-01.12.0', '2018-03-01.6.1'])
def test_versions_newer_than_september_2017_still_answer(batch_client, version):
    """Microsoft's API status page: every Batch API version newer than September 2017 is available."""
    assert raw(batch_client, 'GET', '/pools', query=f'api-version={version}').status_code == 200


@pytest.mark.parametrize(('query', 'code'), [('api-version=2017-09-01.6.0', 'InvalidQueryParameterValue'),
                                             ('api-version=2016-07-01.3.1', 'InvalidQueryParameterValue'),
                                             ('api-version=2099-01-01', 'InvalidQueryParameterValue'),
                                             ('', 'MissingRequiredQueryParameter')])
def test_removed_and_unknown_api_versions_get_the_services_error(batch_client, query, code):
    response = raw(batch_client, 'GET', '/pools', query=query)
    assert response.status_code == 400 and response.json()['code'] == code
    if query:
        assert {'key': 'QueryParameterName', 'value': 'api-version'} in response.json()['values']


@pytest.mark.filterwarnings('ignore:It is recommended to use web.RequestKey')  # the app's, run in this process
def test_an_operation_without_a_handler_answers_501_naming_it(tmp_path, mocker):
    """Today every operation of the spec has a handler, so the route table's fallback is reached by building
    the app with one handler taken away: a signed request to it answers 501 NotImplemented naming it."""
    import asyncio
    from email.utils import formatdate

    from aiohttp.test_utils import TestClient, TestServer

    from batch_emulator import DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME, create_app
    from batch_emulator.wire import server
    operation = next(o for o in contract.operations() if o.operation_id == 'Pools_ListSupportedImages')
    mocker.patch.dict(HANDLERS)
    del HANDLERS[operation.operation_id]
    from batch_emulator.runtime import processes
    mocker.patch.object(processes, 'become_subreaper', return_value=False)  # pytest's process stays as it is

    async def ask() -> tuple[int, dict]:
        app = create_app(data_dir=str(tmp_path))
        async with TestClient(TestServer(app, host='127.0.0.1')) as client:
            server.set_base_url(app, str(client.make_url('')).rstrip('/'))
            path = f'{operation.path}?{API}'
            headers = {'ocp-date': formatdate(usegmt=True)}
            signature = auth.sign(DEFAULT_ACCOUNT_KEY, auth.string_to_sign('GET', path, headers, DEFAULT_ACCOUNT_NAME))
            headers['Authorization'] = f'SharedKey {DEFAULT_ACCOUNT_NAME}:{signature}'
            response = await client.get(path, headers=headers)
            return response.status, await response.json()

    status, body = asyncio.run(ask())
    assert (status, body['code']) == (501, 'NotImplemented')
    assert body['message']['value'].startswith('The local Batch emulator does not implement Pools_ListSupportedImages '
                                               '(GET /supportedimages).')


def test_paths_outside_the_operations_answer_clearly(batch_client):
    applications = raw(batch_client, 'GET', '/applications')
    assert (applications.status_code, applications.json()['value']) == (200, [])  # no packages in the account
    missing = raw(batch_client, 'GET', '/applications/none')
    assert (missing.status_code, missing.json()['code']) == (404, 'ApplicationNotFound')
    unknown = raw(batch_client, 'GET', '/no/such/thing')
    assert unknown.status_code == 400 and unknown.json()['code'] == 'InvalidUri'


def test_the_request_log_has_one_json_line_per_request(batch_client, emulator):
    started = time.time()
    list(batch_client.list_pools(select=['id']))
    finished = time.time()
    with open(emulator.request_log, encoding='utf-8') as log:
        entries = [json.loads(line) for line in log]
    last = [e for e in entries if e['path'] == '/pools' and e['method'] == 'GET'][-1]
    assert last['status'] == 200 and last['query']['$select'] == 'id' and last['ms'] >= 0
    # The time is UTC, to the second, while the request was served (ISO 8601 strings sort as times do).
    utc = [time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(moment)) for moment in (started, finished)]
    assert utc[0] <= last['time'] <= utc[1]


def test_the_shared_key_string_to_sign_matches_the_sdk():
    """The verifier and the SDK's own SharedKey policy agree on a request with a body, ocp- headers and an
    encoded filter: the same string to sign, the same Authorization header."""
    from azure.core.credentials import AzureNamedKeyCredential
    from azure.core.pipeline import PipelineContext, PipelineRequest

    from batch_emulator import DEFAULT_ACCOUNT_KEY
    path = '/jobs/j/addtaskcollection?api-version=2025-06-01&%24filter=a%20eq%20%27b%27'
    headers = {'Content-Type': 'application/json', 'Content-Length': '12',
               'ocp-date': 'Tue, 01 Jan 2030 00:00:00 GMT', 'client-request-id': 'x'}
    text = auth.string_to_sign('POST', path, headers, 'acct')
    assert text == ('POST\n\n\n12\n\napplication/json\n\n\n\n\n\n\nocp-date:Tue, 01 Jan 2030 00:00:00 GMT\n'
                    "/acct/jobs/j/addtaskcollection\n$filter:a eq 'b'\napi-version:2025-06-01")
    policy = BatchSharedKeyAuthPolicy(AzureNamedKeyCredential('acct', DEFAULT_ACCOUNT_KEY))
    signed: list[str] = []
    sign = policy._sign_string
    policy._sign_string = lambda string: signed.append(string) or sign(string)
    request = HttpRequest('POST', f'http://127.0.0.1:1{path}', headers=dict(headers))
    policy.on_request(PipelineRequest(request, PipelineContext(None)))
    assert signed == [text]
    assert request.headers['Authorization'] == f'SharedKey acct:{auth.sign(DEFAULT_ACCOUNT_KEY, text)}'


# ----- the route table comes from the spec ------------------------------------------------------------

def _filled(path: str) -> str:
    return re.sub(r'\{(\w+)\}', lambda match: 'no-such-' + match.group(1).lower(), path)


@pytest.mark.parametrize('operation', [o for o in contract.operations() if o.operation_id in HANDLERS],
                         ids=lambda operation: operation.operation_id)
def test_every_implemented_operation_of_the_spec_is_routed_to_its_handler(batch_client, operation):
    """Each implemented operation answers its behaviour; none falls through routing (an operation without a
    handler answers 501: test_an_operation_without_a_handler_answers_501_naming_it)."""
    body = {} if operation.body_schema else None
    response = raw(batch_client, operation.method, _filled(operation.path), body=body)
    code = None if operation.method == 'HEAD' else response.json().get('code')
    assert response.status_code < 500 and code not in ('UnsupportedHttpVerb', 'InvalidUri', 'NotImplemented')


@pytest.mark.parametrize(('method', 'path', 'status', 'code'), [
    ('PUT', '/pools/p', 405, 'UnsupportedHttpVerb'), ('DELETE', '/supportedimages', 405, 'UnsupportedHttpVerb'),
    ('GET', '/no/such/thing', 400, 'InvalidUri'), ('GET', '/pools/p/nodes/n/nothing', 400, 'InvalidUri')])
def test_methods_and_paths_outside_the_spec_get_the_services_errors(batch_client, method, path, status, code):
    response = raw(batch_client, method, path)
    assert (response.status_code, response.json()['code']) == (status, code)


# ----- request bodies are parsed by the spec's schemas -------------------------------------------------

def _pool(pool_id: str, **extra) -> dict:
    return {'id': pool_id, 'vmSize': 'standard_d2s_v3', 'targetDedicatedNodes': 0, **extra,
            'virtualMachineConfiguration': extra.get('virtualMachineConfiguration', {
                'imageReference': {'publisher': 'canonical', 'offer': 'ubuntu-24_04-lts', 'sku': 'server'},
                'nodeAgentSKUId': 'batch.node.ubuntu 24.04'})}


def test_numbers_and_booleans_sent_as_strings_and_enums_in_any_casing_are_accepted(batch_client, unique_id):
    """The Azure CLI sends "targetDedicatedNodes": "1"; the service's deserialiser takes it, and so do we."""
    pool_id = unique_id('strings')
    response = raw(batch_client, 'POST', '/pools', _pool(pool_id, targetDedicatedNodes='1', taskSlotsPerNode='2',
                                                         enableInterNodeCommunication='False',
                                                         taskSchedulingPolicy={'nodeFillType': 'Pack'}))
    assert response.status_code == 201, response.text()
    pool = batch_client.get_pool(pool_id)
    assert (pool.target_dedicated_nodes, pool.task_slots_per_node) == (1, 2)
    # Any casing in; out as the service spells it (recorded: "Pack").
    assert pool.task_scheduling_policy.node_fill_type == 'Pack' and pool.enable_inter_node_communication is False
    batch_client.begin_delete_pool(pool_id)


@pytest.mark.parametrize(('extra', 'code', 'property_name'), [
    ({'virtualMachineConfiguration': 'abc'}, 'InvalidPropertyValue', 'virtualMachineConfiguration'),
    ({'targetDedicatedNodes': 'one'}, 'InvalidPropertyValue', 'targetDedicatedNodes'),
    ({'targetDedicatedNodes': 2 ** 31}, 'InvalidPropertyValue', 'targetDedicatedNodes'),
    ({'resizeTimeout': 'PT1.2.3S'}, 'InvalidPropertyValue', 'resizeTimeout'),
    ({'taskSchedulingPolicy': {'nodeFillType': 'sideways'}}, 'InvalidPropertyValue', 'nodeFillType'),
    ({'startTask': {'waitForSuccess': True}}, 'MissingRequiredProperty', 'commandLine'),
    ({'metadata': [{'name': 'a', 'value': {'nested': 1}}]}, 'InvalidPropertyValue', 'value'),
    ({'enableAutoScale': 'maybe'}, 'InvalidPropertyValue', 'enableAutoScale'),
])
def test_bodies_that_do_not_fit_the_schema_get_400_naming_the_property(batch_client, unique_id, extra, code,
                                                                       property_name):
    pool_id = unique_id('misfit')
    response = raw(batch_client, 'POST', '/pools', _pool(pool_id, **extra))
    assert (response.status_code, response.json()['code']) == (400, code), response.text()
    assert {'key': 'PropertyName', 'value': property_name} in response.json()['values']
    assert raw(batch_client, 'GET', f'/pools/{pool_id}').status_code == 404


def test_a_number_for_a_string_property_is_taken_as_text_and_breaks_nothing(batch_client, unique_id):
    job_id = unique_id('numbered')
    response = raw(batch_client, 'POST', '/jobs', {'id': job_id, 'poolInfo': {'poolId': 123}})
    assert response.status_code == 201, response.text()
    assert batch_client.get_job(job_id).pool_info.pool_id == '123'
    pool_id = unique_id('after')
    assert raw(batch_client, 'POST', '/pools', _pool(pool_id)).status_code == 201  # pools still get created
    batch_client.begin_delete_pool(pool_id)
    batch_client.begin_delete_job(job_id)


@pytest.mark.parametrize('body', [{'id': 'x', 'commandLine': 'true', 'constraints': {'maxWallClockTime': 'PT1.2.3S'}},
                                  {'id': 'newline\n', 'commandLine': 'true'}])
def test_a_task_with_a_bad_duration_or_id_is_refused(batch_client, pool_and_job, body):
    _, job_id = pool_and_job
    response = raw(batch_client, 'POST', f'/jobs/{job_id}/tasks', body)
    assert (response.status_code, response.json()['code']) == (400, 'InvalidPropertyValue')


# ----- headers and bodies as the real service sends them (recorded-service-behaviour.md, section 1) -------

@pytest.mark.parametrize(('last_modified', 'etag'), [
    # Pairs recorded from the real service: ETag = 0x + hex of the .NET ticks of lastModified.
    ('2026-01-22T22:54:28.3312136Z', '0x8DE5A0932997408'), ('2026-01-22T22:58:03.4323848Z', '0x8DE5A09B2CF4988'),
    ('2026-01-22T23:07:36.1483897Z', '0x8DE5A0B082CD079'), ('2026-02-03T01:09:19.3786162Z', '0x8DE62C0DBC88F32')])
def test_the_etag_is_the_tick_count_of_last_modified(last_modified, etag):
    from batch_emulator.service.state import etag_for, parse_iso
    moment = parse_iso(last_modified)
    extra_ticks = int(last_modified.rstrip('Z').rsplit('.', 1)[1][6:] or 0)  # the 7th digit Python cannot hold
    assert int(etag_for(moment), 16) + extra_ticks == int(etag, 16)


def test_responses_carry_the_services_headers_etag_and_timestamps(batch_client, pool_and_job):
    pool_id, job_id = pool_and_job
    response = raw(batch_client, 'GET', f'/pools/{pool_id}')
    body = response.json()
    assert response.headers['Content-Type'] == 'application/json; odata=minimalmetadata'
    assert response.headers['Server'] == 'Microsoft-HTTPAPI/2.0'
    assert response.headers['X-Content-Type-Options'] == 'nosniff'
    assert response.headers['DataServiceVersion'] == '3.0' and 'client-request-id' not in response.headers
    assert response.headers['ETag'] == body['eTag'] == auth_etag(body['lastModified'])
    assert re.fullmatch(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?Z', body['lastModified'])
    node_id = wait_for_nodes(batch_client, pool_id)[0].id
    node = raw(batch_client, 'GET', f'/pools/{pool_id}/nodes/{node_id}')
    assert node.status_code == 200 and 'ETag' not in node.headers and 'Last-Modified' not in node.headers
    counts = raw_json(batch_client, f'/jobs/{job_id}/taskcounts')
    assert counts['odata.metadata'].endswith('$metadata#taskcountsresult/@Element')
    created = raw(batch_client, 'POST', f'/jobs/{job_id}/tasks', {'id': 'headers', 'commandLine': 'true'})
    assert created.status_code == 201 and 'Content-Type' not in created.headers
    assert created.headers['Location'] == created.headers['DataServiceId']


def test_client_request_id_is_echoed_only_when_asked(batch_client):
    asked = raw(batch_client, 'GET', '/pools', headers={'client-request-id': 'abc', 'return-client-request-id': 'true'})
    assert asked.headers['client-request-id'] == 'abc'


def auth_etag(last_modified: str) -> str:
    from batch_emulator.service.state import etag_for, parse_iso
    return etag_for(parse_iso(last_modified))


@pytest.mark.parametrize(('path', 'status', 'code', 'values'), [
    # As recorded from the real service (recorded-service-behaviour.md section 3).
    ('/pools?maxresults=-5', 400, 'InvalidQueryParameterValue',
     [{'key': 'QueryParameterName', 'value': 'maxresults'}, {'key': 'QueryParameterValue', 'value': '-5'},
      {'key': 'Reason', 'value': 'MaxResults cannot be less than 1'}]),
    ('/jobs/{job}/jobpreparationandreleasetaskstatus', 409, 'JobPreparationTaskOrReleaseTaskNotSpecified', None),
])
def test_failing_requests_answer_as_recorded(batch_client, pool_and_job, path, status, code, values):
    response = raw(batch_client, 'GET', path.format(job=pool_and_job[1]))
    body = response.json()
    assert (response.status_code, body['code'], body.get('values')) == (status, code, values)


def test_a_failing_exit_code_is_reported_as_recorded(batch_client, pool_and_job):
    _, job_id = pool_and_job
    batch_client.create_task(job_id, m.BatchTaskCreateOptions(id='exit2', command_line="/bin/sh -c 'exit 2'"))
    wait_for_task(batch_client, job_id, 'exit2')
    info = raw_json(batch_client, f'/jobs/{job_id}/tasks/exit2')['executionInfo']
    assert (info['exitCode'], info['result']) == (2, 'failure')
    # The spec's enum value is "usererror"; the service writes it as recorded, and SDKs read either.
    assert info['failureInfo'] == {
        'category': 'UserError', 'code': 'FailureExitCode',
        'message': 'The task exited with an exit code representing a failure',
        'details': [{'name': 'Message', 'value': 'The task process exited with an unexpected exit code'},
                    {'name': 'AdditionalErrorCode', 'value': 'FailureExitCode'}]}


def test_get_fills_in_the_defaults_the_service_fills_in_and_drops_secrets(batch_client, unique_id):
    """Recorded-service-behaviour section 2: what a pool and a job read back as when little was sent."""
    pool_id, job_id = unique_id('defaults'), unique_id('defaults')
    response = raw(batch_client, 'POST', '/pools', _pool(pool_id, startTask={'commandLine': 'true'}, userAccounts=[
        {'name': 'someone', 'password': 'not-to-be-returned'}], virtualMachineConfiguration={
        'imageReference': {'publisher': 'canonical', 'offer': 'ubuntu-24_04-lts', 'sku': 'server'},
        'nodeAgentSKUId': 'batch.node.ubuntu 24.04'}))
    assert response.status_code == 201, response.text()
    pool = raw_json(batch_client, f'/pools/{pool_id}')
    assert pool['taskSchedulingPolicy'] == {'nodeFillType': 'Spread', 'jobDefaultOrder': 'none'}
    assert pool['virtualMachineConfiguration']['imageReference']['version'] == 'latest'
    assert pool['startTask'] == {'commandLine': 'true', 'maxTaskRetryCount': 0, 'waitForSuccess': True,
                                 'userIdentity': {'autoUser': {'scope': 'pool', 'elevationLevel': 'nonadmin'}}}
    # The service never gives a password back (recorded), though the spec marks it required in UserAccount.
    assert pool['userAccounts'] == [{'name': 'someone', 'elevationLevel': 'nonadmin'}]
    validate({key: value for key, value in pool.items() if key != 'userAccounts'}, 'BatchPool')
    raw(batch_client, 'POST', '/jobs', {'id': job_id, 'poolInfo': {'poolId': pool_id},
                                       'jobPreparationTask': {'commandLine': 'true'},
                                       'jobReleaseTask': {'commandLine': 'true'}})
    job = raw_json(batch_client, f'/jobs/{job_id}')
    assert job['jobPreparationTask'] == {
        'id': 'jobpreparation', 'commandLine': 'true', 'waitForSuccess': True, 'rerunOnNodeRebootAfterSuccess': True,
        'userIdentity': {'autoUser': {'scope': 'pool', 'elevationLevel': 'nonadmin'}},
        'constraints': {'maxWallClockTime': 'P10675199DT2H48M5.4775807S', 'retentionTime': 'P7D',
                        'maxTaskRetryCount': 0}}
    assert job['jobReleaseTask'] == {'id': 'jobrelease', 'commandLine': 'true', 'maxWallClockTime': 'PT15M',
                                     'retentionTime': 'P7D',
                                     'userIdentity': {'autoUser': {'scope': 'pool', 'elevationLevel': 'nonadmin'}}}
    validate(job, 'BatchJob')
    batch_client.begin_delete_job(job_id)
    batch_client.begin_delete_pool(pool_id)


def test_updates_and_actions_carry_the_headers_the_service_sends(batch_client, pool_and_job):
    """Section 1.2 of the recorded behaviour: which answers name DataServiceId, ETag and Last-Modified."""
    pool_id, job_id = pool_and_job
    endpoint = batch_client._config.endpoint
    batch_client.create_task(job_id, m.BatchTaskCreateOptions(id='acted', command_line='false'))
    wait_for_task(batch_client, job_id, 'acted')
    node_id = wait_for_nodes(batch_client, pool_id)[0].id
    cases = [  # method, path, body, status, DataServiceId (None: absent), has ETag and Last-Modified
        ('PATCH', f'/pools/{pool_id}', {'metadata': []}, 200, f'/pools/{pool_id}', True),
        ('PATCH', f'/jobs/{job_id}', {'priority': 1}, 200, f'/jobs/{job_id}', True),
        ('POST', f'/jobs/{job_id}/tasks/acted/reactivate', None, 204, None, True),
        ('POST', f'/jobs/{job_id}/tasks/acted/terminate', None, 204, f'/jobs/{job_id}/tasks/acted/terminate', True),
        ('POST', f'/pools/{pool_id}/nodes/{node_id}/reboot', {'nodeRebootKind': 'requeue'}, 202,
         f'/pools/{pool_id}/nodes/{node_id}/reboot', False),
        ('POST', f'/jobs/{job_id}/disable', {'disableTasks': 'requeue'}, 202, f'/jobs/{job_id}/disable', True),
        ('POST', f'/jobs/{job_id}/enable', None, 202, f'/jobs/{job_id}/enable', True),
        ('DELETE', f'/jobs/{job_id}/tasks/acted', None, 200, None, False),
    ]
    for method, path, body, status, data_service_id, stamped in cases:
        response = raw(batch_client, method, path, body=body)
        assert response.status_code == status, (path, response.text())
        assert response.headers.get('DataServiceId') == (endpoint + data_service_id if data_service_id else None), path
        assert ('ETag' in response.headers and 'Last-Modified' in response.headers) == stamped, path
