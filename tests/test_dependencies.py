"""Task dependencies, exit conditions and job priority, driven by the real azure-batch SDK over HTTP."""

from __future__ import annotations

import pytest
from azure.batch import models as m

from tests.conftest import eventually
from tests.test_emulator import create_pool, raw, raw_json, wait_for_nodes, wait_for_task


@pytest.fixture
def dependency_job(batch_client, unique_id):
    """A one-node pool and a job that uses task dependencies and acts on task failures."""
    pool_id, job_id = unique_id('deps'), unique_id('deps')
    create_pool(batch_client, pool_id)
    batch_client.create_job(m.BatchJobCreateOptions(
        id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool_id), uses_task_dependencies=True,
        task_failure_mode='performexitoptionsjobaction'))
    wait_for_nodes(batch_client, pool_id)
    yield pool_id, job_id
    batch_client.begin_delete_job(job_id)
    batch_client.begin_delete_pool(pool_id)


def _state(client, job_id: str, task_id: str) -> str:
    return client.get_task(job_id, task_id).state


def test_a_dependent_task_waits_for_its_parents_and_ranges(batch_client, dependency_job):
    _, job_id = dependency_job
    batch_client.create_tasks(job_id, [
        m.BatchTaskCreateOptions(id='merge', command_line='true', depends_on=m.BatchTaskDependencies(
            task_ids=['prepare'], task_id_ranges=[m.BatchTaskIdRange(start=1, end=3)])),
        m.BatchTaskCreateOptions(id='prepare', command_line='sleep 1'),
        *[m.BatchTaskCreateOptions(id=str(number), command_line='true') for number in (1, 2, 3)]])
    merge = wait_for_task(batch_client, job_id, 'merge')
    parents = [batch_client.get_task(job_id, task_id) for task_id in ('prepare', '1', '2', '3')]
    assert all(parent.state == 'completed' for parent in parents)
    latest_parent_end = max(parent.execution_info.end_time for parent in parents)
    assert merge.execution_info.start_time >= latest_parent_end  # it ran only after every parent
    assert raw_json(batch_client, f'/jobs/{job_id}/tasks/merge')['dependsOn'] == {
        'taskIds': ['prepare'], 'taskIdRanges': [{'start': 1, 'end': 3}]}


def test_a_range_waits_for_ids_no_task_has_yet_and_leading_zeros_do_not_count(batch_client, dependency_job):
    # The spec: a range "start 9 and end 12 represents Tasks '9', '10', '11' and '12'"; Microsoft's article:
    # "tasks with string identifiers 4, 04 and 004 will all be within the range ... treated as task 4".
    _, job_id = dependency_job
    batch_client.create_task(job_id, m.BatchTaskCreateOptions(id='merge', command_line='true', depends_on=(
        m.BatchTaskDependencies(task_id_ranges=[m.BatchTaskIdRange(start=1, end=3)]))))
    batch_client.create_tasks(job_id, [m.BatchTaskCreateOptions(id=task_id, command_line='true')
                                       for task_id in ('1', '02', 'x2', '2b')])
    for task_id in ('1', '02', 'x2', '2b'):
        wait_for_task(batch_client, job_id, task_id)
    # One node, one slot, first come first served: a later task that has run shows that merge was not queued.
    batch_client.create_task(job_id, m.BatchTaskCreateOptions(id='later', command_line='true'))
    wait_for_task(batch_client, job_id, 'later')
    assert _state(batch_client, job_id, 'merge') == 'active'  # task 3 does not exist yet: it is waited for
    batch_client.create_task(job_id, m.BatchTaskCreateOptions(id='3', command_line='true'))
    merge = wait_for_task(batch_client, job_id, 'merge')
    assert merge.execution_info.start_time >= batch_client.get_task(job_id, '3').execution_info.end_time


def test_a_failed_parent_blocks_unless_its_exit_conditions_satisfy(batch_client, dependency_job):
    _, job_id = dependency_job
    none = m.ExitOptions(job_action='none')
    batch_client.create_tasks(job_id, [
        m.BatchTaskCreateOptions(id='fails', command_line="/bin/sh -c 'exit 3'",
                                 exit_conditions=m.ExitConditions(default=none)),
        m.BatchTaskCreateOptions(id='fails-ok', command_line="/bin/sh -c 'exit 4'", exit_conditions=m.ExitConditions(
            exit_codes=[m.ExitCodeMapping(code=4, exit_options=m.ExitOptions(job_action='none',
                                                                               dependency_action='satisfy'))])),
        m.BatchTaskCreateOptions(id='blocked', command_line='true',
                                 depends_on=m.BatchTaskDependencies(task_ids=['fails'])),
        m.BatchTaskCreateOptions(id='satisfied', command_line='true',
                                 depends_on=m.BatchTaskDependencies(task_ids=['fails-ok']))])
    assert wait_for_task(batch_client, job_id, 'satisfied').execution_info.result == 'success'
    assert batch_client.get_task(job_id, 'fails').execution_info.result == 'failure'
    assert _state(batch_client, job_id, 'blocked') == 'active'  # and stays so: nothing else will release it
    assert batch_client.get_job(job_id).state == 'active'  # the job action was none
    raw_json(batch_client, f'/jobs/{job_id}/tasks/blocked')  # still there, still active
    assert batch_client.get_job_task_counts(job_id).task_counts.active == 1


def test_exit_conditions_terminate_or_disable_the_job(batch_client, dependency_job, unique_id):
    pool_id, job_id = dependency_job
    batch_client.create_task(job_id, m.BatchTaskCreateOptions(
        id='ends-the-job', command_line="/bin/sh -c 'exit 7'", exit_conditions=m.ExitConditions(
            exit_code_ranges=[m.ExitCodeRangeMapping(start=5, end=9, exit_options=m.ExitOptions(
                job_action='terminate'))])))
    job = eventually(lambda: (j := batch_client.get_job(job_id)).state == 'completed' and j, message='terminated')
    assert job.execution_info.termination_reason == 'TaskFailed'

    other = unique_id('disables')
    batch_client.create_job(m.BatchJobCreateOptions(id=other, pool_info=m.BatchPoolInfo(pool_id=pool_id),
                                                    task_failure_mode='performexitoptionsjobaction'))
    batch_client.create_task(other, m.BatchTaskCreateOptions(
        id='disables', command_line="/bin/sh -c 'exit 1'",
        exit_conditions=m.ExitConditions(default=m.ExitOptions(job_action='disable'))))
    eventually(lambda: batch_client.get_job(other).state == 'disabled', message='disabled')
    batch_client.begin_delete_job(other)


@pytest.mark.parametrize(('job', 'task', 'code'), [
    ({}, {'dependsOn': {'taskIds': ['a']}}, 'TaskDependenciesNotSpecifiedOnJob'),
    ({'usesTaskDependencies': True}, {'dependsOn': {'taskIds': ['a' * 1000] * 65}}, 'TaskDependencyListTooLong'),
    ({'usesTaskDependencies': True}, {'dependsOn': {'taskIdRanges': [{'start': 5, 'end': 2}]}},
     'InvalidPropertyValue'),
    ({}, {'exitConditions': {'default': {'jobAction': 'terminate'}}}, 'InvalidPropertyValue'),
])
def test_the_services_errors_for_dependencies_and_exit_conditions(batch_client, pool_and_job, unique_id, job, task,
                                                                   code):
    pool_id, _ = pool_and_job
    job_id = unique_id('refuses')
    assert raw(batch_client, 'POST', '/jobs', {'id': job_id, 'poolInfo': {'poolId': pool_id}, **job}).status_code == 201
    response = raw(batch_client, 'POST', f'/jobs/{job_id}/tasks', {'id': 't', 'commandLine': 'true', **task})
    assert response.status_code in (400, 409) and response.json()['code'] == code, response.text()
    batch_client.begin_delete_job(job_id)


def test_a_higher_priority_job_runs_first(batch_client, unique_id):
    pool_id, low, high = unique_id('priority'), unique_id('low'), unique_id('high')
    create_pool(batch_client, pool_id)
    node = wait_for_nodes(batch_client, pool_id)[0]
    batch_client.disable_node_scheduling(pool_id, node.id, m.BatchNodeDisableSchedulingOptions(
        node_disable_scheduling_option='requeue'))  # both jobs queue up before anything runs
    batch_client.create_job(m.BatchJobCreateOptions(id=low, pool_info=m.BatchPoolInfo(pool_id=pool_id), priority=0))
    batch_client.create_job(m.BatchJobCreateOptions(id=high, pool_info=m.BatchPoolInfo(pool_id=pool_id),
                                                    priority=500))
    batch_client.create_tasks(low, [m.BatchTaskCreateOptions(id=f'low{i}', command_line='true') for i in range(3)])
    batch_client.create_tasks(high, [m.BatchTaskCreateOptions(id=f'high{i}', command_line='true') for i in range(3)])
    batch_client.enable_node_scheduling(pool_id, node.id)
    tasks = [wait_for_task(batch_client, job, f'{prefix}{i}')
             for job, prefix in ((low, 'low'), (high, 'high')) for i in range(3)]
    last_high = max(t.execution_info.start_time for t in tasks if t.id.startswith('high'))
    first_low = min(t.execution_info.start_time for t in tasks if t.id.startswith('low'))
    assert last_high <= first_low
    for job in (low, high):
        batch_client.begin_delete_job(job)
    batch_client.begin_delete_pool(pool_id)


def test_a_higher_priority_job_preempts_a_job_that_allows_it(batch_client, unique_id):
    pool_id, low, high = unique_id('preempt'), unique_id('low'), unique_id('high')
    create_pool(batch_client, pool_id)
    wait_for_nodes(batch_client, pool_id)
    batch_client.create_job(m.BatchJobCreateOptions(id=low, pool_info=m.BatchPoolInfo(pool_id=pool_id), priority=-10,
                                                    allow_task_preemption=True))
    batch_client.create_task(low, m.BatchTaskCreateOptions(id='long', command_line='sleep 60'))
    eventually(lambda: _state(batch_client, low, 'long') == 'running', message='the low job runs')
    first_start = batch_client.get_task(low, 'long').execution_info.start_time
    batch_client.create_job(m.BatchJobCreateOptions(id=high, pool_info=m.BatchPoolInfo(pool_id=pool_id),
                                                    priority=100))
    batch_client.create_task(high, m.BatchTaskCreateOptions(id='urgent', command_line='true'))
    assert wait_for_task(batch_client, high, 'urgent').execution_info.result == 'success'
    preempted = batch_client.get_task(low, 'long')
    # put back in the queue by the service: neither a retry nor a requeue a user asked for (the spec's requeueCount)
    assert (preempted.execution_info.retry_count, preempted.execution_info.requeue_count) == (0, 0)
    eventually(lambda: (task := batch_client.get_task(low, 'long')).state == 'running'
               and task.execution_info.start_time > first_start, message='the preempted task runs again, anew')
    for job in (low, high):
        batch_client.begin_delete_job(job)
    batch_client.begin_delete_pool(pool_id)
