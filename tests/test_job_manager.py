"""Job manager tasks, driven with the real azure-batch SDK: the manager is a task of its job, runs first, adds
the job's tasks through the API with the token the service gives it (AZ_BATCH_AUTHENTICATION_TOKEN), and ends
the job as killJobOnCompletion, onAllTasksComplete and its retries say."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from azure.batch import models as m
from azure.core.exceptions import ResourceNotFoundError

from tests.conftest import eventually
from tests.test_emulator import create_pool, raw, wait_for_nodes

pytestmark = pytest.mark.emulator

# The job manager's program: the azure-batch SDK (the nodes' python3 is the emulator's interpreter), signed with
# the token of its task, as a job manager does on Azure. azure-core's own bearer-token policy refuses plain http
# (the emulator's endpoint), so the token goes in by a policy of the script's own.
MANAGER = r'''
import json, os, sys, time
from azure.batch import BatchClient, models as m
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError
from azure.core.pipeline.policies import SansIOHTTPPolicy

token = os.environ['AZ_BATCH_AUTHENTICATION_TOKEN']

class JobToken:
    def get_token(self, *scopes, **kwargs):
        return AccessToken(token, int(time.time()) + 3600)

class Bearer(SansIOHTTPPolicy):
    def on_request(self, request):
        request.http_request.headers['Authorization'] = 'Bearer ' + token

client = BatchClient(os.environ['AZ_BATCH_ACCOUNT_URL'], JobToken(), authentication_policy=Bearer())
job_id = os.environ['AZ_BATCH_JOB_ID']
with open(os.environ['TOKEN_FILE'], 'w') as kept:
    kept.write(token)
workers = [m.BatchTaskCreateOptions(id=f'worker-{i}', command_line=os.environ['WORKER_COMMAND'])
           for i in range(int(os.environ['WORKERS']))]
added = client.create_task_collection(job_id, m.BatchTaskGroup(task_values=workers)).result_values
assert all(result.status == 'success' for result in added), added
try:
    client.get_pool(os.environ['AZ_BATCH_POOL_ID'])
    outside = None
except HttpResponseError as error:
    outside = [error.status_code, error.error.code]
wanted = os.environ.get('WAIT_FOR')  # the workers' state the manager waits for before it ends
deadline = time.monotonic() + 120
while wanted and time.monotonic() < deadline:
    if all(task.state == wanted for task in client.list_tasks(job_id) if task.id.startswith('worker-')):
        break
    time.sleep(0.1)
else:
    if wanted:
        sys.exit('the workers did not reach ' + wanted)
print(json.dumps({'job': job_id, 'task': os.environ['AZ_BATCH_TASK_ID'], 'outside': outside}))
'''


@pytest.fixture
def make_pool(batch_client, unique_id):
    """Pools (and the jobs on them) of the session's emulator, deleted afterwards."""
    made: list[tuple[str, list[str]]] = []

    def make(nodes: int = 1, slots: int = 1) -> tuple[str, list[str]]:
        pool_id = unique_id('jmpool')
        create_pool(batch_client, pool_id, nodes=nodes, slots=slots)
        made.append((pool_id, jobs := []))
        return pool_id, jobs
    yield make
    for pool_id, jobs in made:
        for job_id in jobs:
            try:
                batch_client.begin_delete_job(job_id)
            except ResourceNotFoundError:
                pass
        batch_client.begin_delete_pool(pool_id)


def _manager(tmp_path, workers: int, command: str, wait_for: str | None = None, **options) -> m.BatchJobManagerTask:
    script = tmp_path / 'manager.py'
    script.write_text(MANAGER)
    settings = {'WORKERS': str(workers), 'WORKER_COMMAND': command, 'TOKEN_FILE': str(tmp_path / 'token')}
    if wait_for:
        settings['WAIT_FOR'] = wait_for
    # authenticationTokenSettings is in the spec but not in azure-batch 15's model: sent as the raw property.
    manager = m.BatchJobManagerTask(id='manager', command_line=f'python3 {script}',
                                    environment_settings=[m.EnvironmentSetting(name=name, value=value)
                                                          for name, value in settings.items()])
    # authenticationTokenSettings is in the spec but not in azure-batch 15's model: sent as the raw property.
    manager['authenticationTokenSettings'] = {'access': ['job']}
    for name, value in options.items():
        setattr(manager, name, value)
    return manager


def _create_job(client, pool: tuple[str, list[str]], job_id: str, manager: m.BatchJobManagerTask, **options) -> None:
    pool[1].append(job_id)
    client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool[0]),
                                              job_manager_task=manager, **options))


def _completed_job(client, job_id: str) -> m.BatchJob:
    return eventually(lambda: (job := client.get_job(job_id)).state == 'completed' and job, timeout=60,
                      message=f'job {job_id} completed')


def _output(client, job_id: str, task_id: str) -> dict:
    return json.loads(b''.join(client.download_task_file(job_id, task_id, 'stdout.txt')))


def test_a_job_manager_adds_ten_tasks_that_all_run_and_its_completion_ends_the_job(emulator, batch_client, make_pool,
                                                                                     unique_id, tmp_path):
    pool = make_pool(nodes=2)
    job_id = unique_id('jmjob')
    _create_job(batch_client, pool, job_id, _manager(tmp_path, 10, "/bin/sh -c 'echo $AZ_BATCH_TASK_ID'",
                                                      wait_for='completed'))
    shown = batch_client.get_job(job_id).job_manager_task  # as sent, with the service's defaults
    assert (shown.id, shown.kill_job_on_completion, shown.run_exclusive, shown.allow_low_priority_node,
            shown.required_slots) == ('manager', True, True, True, 1)
    job = _completed_job(batch_client, job_id)
    assert job.execution_info.termination_reason == 'JMComplete'
    tasks = {task.id: task for task in batch_client.list_tasks(job_id)}
    assert sorted(tasks) == ['manager'] + sorted(f'worker-{i}' for i in range(10))
    assert all(task.state == 'completed' and task.execution_info.result == 'success' for task in tasks.values())
    outputs = [b''.join(batch_client.download_task_file(job_id, f'worker-{i}', 'stdout.txt')) for i in range(10)]
    assert outputs == [f'worker-{i}\n'.encode() for i in range(10)]
    counts = batch_client.get_job_task_counts(job_id).task_counts
    assert (counts.completed, counts.succeeded, counts.failed, counts.active, counts.running) == (11, 11, 0, 0, 0)
    # runExclusive (the default): no worker ran on the manager's node while it ran, though they ran meanwhile.
    manager_node = tasks['manager'].node_info.node_id
    assert all(task.node_info.node_id != manager_node for task in tasks.values() if task.id != 'manager')
    # The token: the job's operations only, and only while its task runs.
    output = _output(batch_client, job_id, 'manager')
    assert (output['job'], output['task'], output['outside']) == (job_id, 'manager', [403, 'AuthorizationFailure'])
    request = urllib.request.Request(f'{emulator.endpoint}/jobs/{job_id}?api-version=2025-06-01',
                                     headers={'Authorization': f"Bearer {(tmp_path / 'token').read_text()}"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)  # noqa: S310 - the emulator on 127.0.0.1
    assert refused.value.code == 403 and json.loads(refused.value.read())['code'] == 'AuthenticationFailed'


def test_kill_job_on_completion_ends_the_tasks_still_running(batch_client, make_pool, unique_id, tmp_path):
    pool = make_pool(nodes=2)
    job_id = unique_id('jmjob')
    _create_job(batch_client, pool, job_id, _manager(tmp_path, 1, '/bin/sleep 600', wait_for='running'))
    job = _completed_job(batch_client, job_id)
    assert job.execution_info.termination_reason == 'JMComplete'
    manager, worker = batch_client.get_task(job_id, 'manager'), batch_client.get_task(job_id, 'worker-0')
    assert manager.execution_info.result == 'success' and manager.execution_info.exit_code == 0
    assert worker.state == 'completed' and worker.execution_info.result == 'failure'
    assert worker.execution_info.failure_info.code == 'TaskEnded'


def test_without_kill_job_on_completion_the_job_ends_when_all_its_tasks_complete(batch_client, make_pool, unique_id,
                                                                                  tmp_path):
    pool = make_pool(nodes=2)
    job_id = unique_id('jmjob')
    # The manager adds three tasks and ends at once; the job goes on until they have run.
    _create_job(batch_client, pool, job_id, _manager(tmp_path, 3, "/bin/sh -c 'echo done'",
                                                      kill_job_on_completion=False),
                all_tasks_complete_mode='terminatejob')
    eventually(lambda: batch_client.get_task(job_id, 'manager').state == 'completed', timeout=60,
               message='the manager completed')
    job = _completed_job(batch_client, job_id)
    assert job.execution_info.termination_reason == 'AllTasksComplete'
    workers = [task for task in batch_client.list_tasks(job_id) if task.id != 'manager']
    assert len(workers) == 3 and all(task.execution_info.result == 'success' for task in workers)


def test_a_failing_job_manager_is_retried_then_ends_its_job(batch_client, make_pool, unique_id):
    pool = make_pool()
    job_id = unique_id('jmjob')
    manager = m.BatchJobManagerTask(id='manager', command_line="/bin/sh -c 'exit 3'",
                                    constraints=m.BatchTaskConstraints(max_task_retry_count=2))
    _create_job(batch_client, pool, job_id, manager)
    job = _completed_job(batch_client, job_id)
    assert job.execution_info.termination_reason == 'JMComplete'
    task = batch_client.get_task(job_id, 'manager')
    assert (task.execution_info.result, task.execution_info.exit_code, task.execution_info.retry_count) == \
        ('failure', 3, 2)
    assert task.constraints.max_task_retry_count == 2
    counts = batch_client.get_job_task_counts(job_id).task_counts
    assert (counts.completed, counts.failed) == (1, 1)


@pytest.mark.parametrize('exclusive', [True, False])
def test_run_exclusive_keeps_other_tasks_off_the_job_managers_node(batch_client, make_pool, unique_id, tmp_path,
                                                                    exclusive):
    """One node of two slots. Exclusive: the task the manager adds waits until the manager has ended. Not
    exclusive: it runs beside the manager, which waits for it to complete."""
    pool = make_pool(nodes=1, slots=2)
    wait_for_nodes(batch_client, pool[0])
    job_id = unique_id('jmjob')
    _create_job(batch_client, pool, job_id, _manager(tmp_path, 1, "/bin/sh -c 'echo beside'",
                                                      wait_for=None if exclusive else 'completed',
                                                      run_exclusive=exclusive, kill_job_on_completion=False),
                all_tasks_complete_mode='terminatejob')
    _completed_job(batch_client, job_id)
    manager, worker = batch_client.get_task(job_id, 'manager'), batch_client.get_task(job_id, 'worker-0')
    assert manager.node_info.node_id == worker.node_info.node_id
    assert (worker.execution_info.start_time >= manager.execution_info.end_time) is exclusive
    assert worker.execution_info.result == manager.execution_info.result == 'success'


def test_the_job_manager_starts_before_the_jobs_other_tasks(batch_client, make_pool, unique_id):
    """One node of two slots, one busy with another job's task: the exclusive job manager waits for the node to
    empty, and the task added to its job meanwhile waits for the manager, though a slot is free."""
    pool = make_pool(nodes=1, slots=2)
    blocker_job = unique_id('jmother')
    pool[1].append(blocker_job)
    batch_client.create_job(m.BatchJobCreateOptions(id=blocker_job, pool_info=m.BatchPoolInfo(pool_id=pool[0])))
    batch_client.create_task(blocker_job, m.BatchTaskCreateOptions(id='blocker', command_line='/bin/sleep 600'))
    eventually(lambda: batch_client.get_task(blocker_job, 'blocker').state == 'running', message='blocker running')
    job_id = unique_id('jmjob')
    manager = m.BatchJobManagerTask(id='manager', command_line="/bin/sh -c 'echo first'",
                                    kill_job_on_completion=False)
    _create_job(batch_client, pool, job_id, manager, all_tasks_complete_mode='terminatejob')
    batch_client.create_task(job_id, m.BatchTaskCreateOptions(id='added', command_line="/bin/sh -c 'echo next'"))
    assert batch_client.get_task(job_id, 'added').state == 'active'
    batch_client.terminate_task(blocker_job, 'blocker')
    _completed_job(batch_client, job_id)
    manager, added = batch_client.get_task(job_id, 'manager'), batch_client.get_task(job_id, 'added')
    assert manager.execution_info.end_time <= added.execution_info.start_time


@pytest.mark.parametrize(('manager', 'code', 'property_name'), [
    ({'id': 'manager', 'commandLine': '/bin/true', 'requiredSlots': 2}, 'InvalidPropertyValue', 'requiredSlots'),
    ({'id': 'a manager', 'commandLine': '/bin/true'}, 'InvalidPropertyValue', 'id'),
    ({'commandLine': '/bin/true'}, 'MissingRequiredProperty', 'id'),
])
def test_a_bad_job_manager_is_refused_naming_the_property_and_nothing_is_stored(batch_client, make_pool, unique_id,
                                                                               manager, code, property_name):
    pool = make_pool()  # one slot per node
    job_id = unique_id('jmjob')
    response = raw(batch_client, 'POST', '/jobs', {'id': job_id, 'poolInfo': {'poolId': pool[0]},
                                                   'jobManagerTask': manager})
    assert (response.status_code, response.json()['code']) == (400, code), response.text()
    assert {'key': 'PropertyName', 'value': property_name} in response.json()['values']
    assert raw(batch_client, 'GET', f'/jobs/{job_id}').status_code == 404


def test_a_job_schedules_jobs_run_their_job_manager(batch_client, make_pool, unique_id):
    pool = make_pool()
    schedule_id = unique_id('jmschedule')
    manager = m.BatchJobManagerTask(id='manager', command_line="/bin/sh -c 'echo $AZ_BATCH_JOB_ID'")
    batch_client.create_job_schedule(m.BatchJobScheduleCreateOptions(
        id=schedule_id, schedule=m.BatchJobScheduleConfiguration(),
        job_specification=m.BatchJobSpecification(pool_info=m.BatchPoolInfo(pool_id=pool[0]),
                                                  job_manager_task=manager)))
    try:
        job_id = eventually(lambda: batch_client.get_job_schedule(schedule_id).execution_info.recent_job,
                            message='the schedule made its job').id
        job = _completed_job(batch_client, job_id)
        assert job.execution_info.termination_reason == 'JMComplete'
        assert job.job_manager_task.kill_job_on_completion is True
        assert b''.join(batch_client.download_task_file(job_id, 'manager', 'stdout.txt')) == f'{job_id}\n'.encode()
    finally:
        batch_client.begin_delete_job_schedule(schedule_id)
