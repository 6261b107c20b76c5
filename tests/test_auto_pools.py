"""Auto pools (``poolInfo.autoPoolSpecification``), driven by the real azure-batch SDK over HTTP.

The service creates the pool with the job (lifetime ``job``) or with a schedule's first job (lifetime
``jobschedule``: one pool for all its jobs), names it with an upper-case GUID (recorded [P:jobs]), after
``autoPoolIdPrefix`` and an underscore, and deletes it when the job, or the schedule, completes or is
deleted, unless ``keepAlive`` (the spec's BatchAutoPoolSpecification, BatchPoolLifetimeOption).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator

import pytest
from azure.batch import BatchClient
from azure.batch import models as m
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from tests.conftest import eventually
from tests.hostile import batch_client_for, start_emulator, stop_emulator
from tests.test_emulator import raw, raw_json, validate, wait_for_task

pytestmark = pytest.mark.emulator

GUID = r'[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}'
VM_CONFIGURATION = {'imageReference': {'publisher': 'canonical', 'offer': 'ubuntu-24_04-lts', 'sku': 'server'},
                    'nodeAgentSKUId': 'batch.node.ubuntu 24.04'}


def _auto_pool(lifetime: str = 'job', nodes: int = 1, **extra) -> dict:
    return {'poolLifetimeOption': lifetime, **extra,
            'pool': {'vmSize': 'STANDARD_D2S_V3', 'virtualMachineConfiguration': VM_CONFIGURATION,
                     'targetDedicatedNodes': nodes}}


def _create_job(client: BatchClient, job_id: str, auto_pool: dict, **extra) -> dict:
    response = raw(client, 'POST', '/jobs', {'id': job_id, 'poolInfo': {'autoPoolSpecification': auto_pool}, **extra})
    assert response.status_code == 201, response.text()
    return raw_json(client, f'/jobs/{job_id}')


def _pool_state(client: BatchClient, pool_id: str) -> str | None:
    """The pool's state, or None once it is gone."""
    try:
        return client.get_pool(pool_id).state
    except ResourceNotFoundError:
        return None


def _gone(client: BatchClient, pool_id: str) -> None:
    eventually(lambda: _pool_state(client, pool_id) is None, message=f'pool {pool_id} deleted')


def _terminate(client: BatchClient, path: str) -> None:
    """POST {path}/terminate (the SDK's begin_* would go on polling in a thread of its own)."""
    response = raw(client, 'POST', f'{path}/terminate', {})
    assert response.status_code == 202, response.text()


def _delete(client: BatchClient, path: str) -> None:
    response = raw(client, 'DELETE', path)
    assert response.status_code == 202, response.text()


def _task(client: BatchClient, job_id: str, task_id: str, command_line: str) -> None:
    client.create_task(job_id, m.BatchTaskCreateOptions(id=task_id, command_line=command_line))


# ----- jobs with a pool of their own ----------------------------------------------------------------

def test_a_job_runs_its_task_on_its_auto_pool_named_by_a_guid_and_deleting_the_job_deletes_it(batch_client,
                                                                                             unique_id):
    job_id = unique_id('autojob')
    job = _create_job(batch_client, job_id, _auto_pool())
    pool_id = job['executionInfo']['poolId']
    assert re.fullmatch(GUID, pool_id), pool_id  # recorded: an upper-case GUID [P:jobs]
    assert 'poolId' not in job['poolInfo']  # the spec: poolInfo keeps what was sent
    assert set(job['executionInfo']) == {'startTime', 'poolId'}
    assert pool_id in {pool.id for pool in batch_client.list_pools()}  # an ordinary pool
    pool = batch_client.get_pool(pool_id)
    assert (pool.vm_size.lower(), pool.target_dedicated_nodes) == ('standard_d2s_v3', 1)

    _task(batch_client, job_id, 'where', '/bin/sh -c "echo $AZ_BATCH_POOL_ID"')
    task = wait_for_task(batch_client, job_id, 'where')
    assert (task.execution_info.exit_code, task.node_info.pool_id) == (0, pool_id)
    output = b''.join(batch_client.download_task_file(job_id, 'where', 'stdout.txt')).decode()
    assert output.strip() == pool_id

    _delete(batch_client, f'/jobs/{job_id}')
    _gone(batch_client, pool_id)
    eventually(lambda: job_id not in {j.id for j in batch_client.list_jobs()}, message='job deleted')


def test_get_of_the_job_shows_the_recorded_defaults_of_the_auto_pool_specification(batch_client, unique_id):
    job_id = unique_id('autojob')
    job = _create_job(batch_client, job_id, _auto_pool(nodes=0))
    try:
        validate(job, 'BatchJob')
        spec = job['poolInfo']['autoPoolSpecification']
        assert list(spec) == ['poolLifetimeOption', 'keepAlive', 'pool']  # recorded [P:jobs]
        assert (spec['poolLifetimeOption'], spec['keepAlive']) == ('job', False)
        assert list(spec['pool'])[:9] == ['vmSize', 'taskSlotsPerNode', 'taskSchedulingPolicy', 'resizeTimeout',
                                          'targetDedicatedNodes', 'targetLowPriorityNodes', 'enableAutoScale',
                                          'enableInterNodeCommunication', 'virtualMachineConfiguration']
        assert (spec['pool']['taskSlotsPerNode'], spec['pool']['resizeTimeout'],
                spec['pool']['enableAutoScale']) == (1, 'PT15M', False)
        sdk_job = batch_client.get_job(job_id)
        assert sdk_job.pool_info.auto_pool_specification.pool.vm_size == 'STANDARD_D2S_V3'
        assert sdk_job.execution_info.pool_id == job['executionInfo']['poolId']
    finally:
        _delete(batch_client, f'/jobs/{job_id}')


def test_the_prefix_names_the_pool_and_it_goes_when_all_tasks_complete_the_job(batch_client, unique_id):
    job_id = unique_id('autojob')
    job = _create_job(batch_client, job_id, _auto_pool(autoPoolIdPrefix='render'), onAllTasksComplete='terminatejob')
    pool_id = job['executionInfo']['poolId']
    assert re.fullmatch(f'render_{GUID}', pool_id), pool_id
    _task(batch_client, job_id, 'one', '/bin/true')
    wait_for_task(batch_client, job_id, 'one')
    eventually(lambda: batch_client.get_job(job_id).state == 'completed', message='job completed')
    _gone(batch_client, pool_id)
    assert batch_client.get_job(job_id).execution_info.pool_id == pool_id  # the job still names it
    _delete(batch_client, f'/jobs/{job_id}')


def test_keep_alive_keeps_the_pool_after_the_job_is_terminated(batch_client, unique_id):
    job_id = unique_id('autojob')
    job = _create_job(batch_client, job_id, _auto_pool(nodes=0, keepAlive=True))
    pool_id = job['executionInfo']['poolId']
    try:
        _terminate(batch_client, f'/jobs/{job_id}')
        eventually(lambda: batch_client.get_job(job_id).state == 'completed', message='job completed')
        assert _pool_state(batch_client, pool_id) == 'active'  # deleted when the job completes, if not kept
        _delete(batch_client, f'/jobs/{job_id}')
        eventually(lambda: job_id not in {j.id for j in batch_client.list_jobs()}, message='job deleted')
        assert _pool_state(batch_client, pool_id) == 'active'
    finally:
        _delete(batch_client, f'/pools/{pool_id}')  # kept alive: it is the user's to delete
    _gone(batch_client, pool_id)


def _job_auto_pool(auto_pool: dict) -> dict:
    return {'poolInfo': {'autoPoolSpecification': auto_pool}}


def _without(auto_pool: dict, key: str) -> dict:
    return {**auto_pool, 'pool': {k: v for k, v in auto_pool['pool'].items() if k != key}}


@pytest.mark.parametrize(('pool_info', 'code', 'property_name'), [
    ({'autoPoolSpecification': _without(_auto_pool(), 'vmSize')}, 'MissingRequiredProperty', 'vmSize'),
    ({'autoPoolSpecification': _without(_auto_pool(), 'virtualMachineConfiguration')}, 'MissingRequiredProperty',
     'virtualMachineConfiguration'),
    ({'autoPoolSpecification': {k: v for k, v in _auto_pool().items() if k != 'poolLifetimeOption'}},
     'MissingRequiredProperty', 'poolLifetimeOption'),
    ({'autoPoolSpecification': {'poolLifetimeOption': 'job'}}, 'MissingRequiredProperty', 'pool'),
    ({'autoPoolSpecification': {**_auto_pool(), 'pool': {**_auto_pool()['pool'], 'vmSize': 'STANDARD_A1'}}},
     'InvalidPropertyValue', 'vmSize'),
    ({'autoPoolSpecification': _auto_pool(lifetime='sometimes')}, 'InvalidPropertyValue', 'poolLifetimeOption'),
    ({'autoPoolSpecification': _auto_pool(lifetime='jobschedule')}, 'InvalidPropertyValue', 'poolLifetimeOption'),
    ({'autoPoolSpecification': _auto_pool(autoPoolIdPrefix='x' * 21)}, 'InvalidPropertyValue', 'autoPoolIdPrefix'),
    ({'autoPoolSpecification': _auto_pool(autoPoolIdPrefix='no:colons')}, 'InvalidPropertyValue', 'autoPoolIdPrefix'),
    ({'poolId': 'somepool', 'autoPoolSpecification': _auto_pool()}, 'InvalidPropertyValue', 'poolInfo'),
], ids=['no-vmSize', 'no-vm-configuration', 'no-lifetime', 'no-pool', 'retired-vmSize', 'unknown-lifetime',
        'jobschedule-on-a-job', 'long-prefix', 'bad-prefix', 'both-pool-id-and-auto-pool'])
def test_bad_auto_pool_specifications_are_refused_and_create_no_pool(batch_client, unique_id, pool_info, code,
                                                                    property_name):
    before = {pool.id for pool in batch_client.list_pools()}
    response = raw(batch_client, 'POST', '/jobs', {'id': unique_id('badjob'), 'poolInfo': pool_info})
    assert response.status_code == 400, response.text()
    error = response.json()
    assert error['code'] == code
    assert {v['key']: v['value'] for v in error['values']}['PropertyName'] == property_name
    assert {pool.id for pool in batch_client.list_pools()} <= before


def test_a_schedule_is_checked_without_creating_a_pool_and_its_pool_comes_with_its_first_job(batch_client,
                                                                                          unique_id):
    before = {pool.id for pool in batch_client.list_pools()}
    bad = raw(batch_client, 'POST', '/jobschedules', {
        'id': unique_id('schedule'), 'schedule': {'recurrenceInterval': 'P1D'},
        'jobSpecification': _job_auto_pool(_without(_auto_pool('jobschedule'), 'vmSize'))})
    assert (bad.status_code, bad.json()['code']) == (400, 'MissingRequiredProperty'), bad.text()
    schedule_id = unique_id('schedule')
    later = raw(batch_client, 'POST', '/jobschedules', {
        'id': schedule_id, 'schedule': {'doNotRunUntil': '2999-01-01T00:00:00Z'},
        'jobSpecification': _job_auto_pool(_auto_pool('jobschedule', nodes=0))})
    assert later.status_code == 201, later.text()
    try:
        assert {pool.id for pool in batch_client.list_pools()} <= before  # no job yet, so no pool
    finally:
        _delete(batch_client, f'/jobschedules/{schedule_id}')


# ----- job schedules (their clock 60 times faster: PT1M lasts a second) ----------------------------------

@pytest.fixture(scope='module')
def fast() -> Iterator[BatchClient]:
    with tempfile.TemporaryDirectory(prefix='auto-pool-tests-') as location:
        process, endpoint = start_emulator(location, env={**os.environ, 'BATCH_EMULATOR_SCHEDULE_CLOCK': '60'})
        try:
            yield batch_client_for(endpoint)
        finally:
            stop_emulator(process)


def _schedule(client: BatchClient, schedule_id: str, auto_pool: dict) -> None:
    response = raw(client, 'POST', '/jobschedules', {'id': schedule_id, 'schedule': {'recurrenceInterval': 'PT1M'},
                                                     'jobSpecification': _job_auto_pool(auto_pool)})
    assert response.status_code == 201, response.text()


def _pool_of(client: BatchClient, job_id: str) -> str:
    return eventually(lambda: _job_pool(client, job_id), message=f'job {job_id}')


def _job_pool(client: BatchClient, job_id: str) -> str | None:
    try:
        return client.get_job(job_id).execution_info.pool_id
    except ResourceNotFoundError:
        return None


def test_lifetime_jobschedule_shares_one_pool_across_the_jobs_and_deletes_it_with_the_schedule(fast, unique_id):
    schedule_id = unique_id('shared')
    _schedule(fast, schedule_id, _auto_pool('jobschedule', autoPoolIdPrefix='nightly'))
    first = _pool_of(fast, f'{schedule_id}:job-1')  # recorded: the first job exists at once
    assert re.fullmatch(f'nightly_{GUID}', first), first
    _task(fast, f'{schedule_id}:job-1', 'one', '/bin/sh -c "echo $AZ_BATCH_POOL_ID"')
    assert wait_for_task(fast, f'{schedule_id}:job-1', 'one').node_info.pool_id == first
    _terminate(fast, f'/jobs/{schedule_id}:job-1')
    assert _pool_of(fast, f'{schedule_id}:job-2') == first  # the next slot's job runs on the same pool
    assert _pool_state(fast, first) == 'active'  # the first job's end is not the pool's
    assert [p.id for p in fast.list_pools()].count(first) == 1 and len(list(fast.list_pools())) == 1

    _terminate(fast, f'/jobschedules/{schedule_id}')
    _gone(fast, first)  # once the schedule completes (and its job has ended)
    assert fast.get_job_schedule(schedule_id).state == 'completed'


def test_lifetime_job_in_a_schedule_gives_each_job_its_own_pool_and_deleting_the_schedule_ends_them(fast,
                                                                                                   unique_id):
    schedule_id = unique_id('each')
    _schedule(fast, schedule_id, _auto_pool('job', nodes=0))
    first = _pool_of(fast, f'{schedule_id}:job-1')
    _terminate(fast, f'/jobs/{schedule_id}:job-1')
    _gone(fast, first)  # the job's lifetime is over
    second = _pool_of(fast, f'{schedule_id}:job-2')
    assert second != first and re.fullmatch(GUID, second)
    _delete(fast, f'/jobschedules/{schedule_id}')
    _gone(fast, second)
    eventually(lambda: schedule_id not in {s.id for s in fast.list_job_schedules()}, message='schedule deleted')


def test_deleting_a_schedule_deletes_its_shared_pool_unless_kept_alive(fast, unique_id):
    deleted, kept = unique_id('gone'), unique_id('kept')
    _schedule(fast, deleted, _auto_pool('jobschedule', nodes=0))
    _schedule(fast, kept, _auto_pool('jobschedule', nodes=0, keepAlive=True))
    deleted_pool, kept_pool = _pool_of(fast, f'{deleted}:job-1'), _pool_of(fast, f'{kept}:job-1')
    _delete(fast, f'/jobschedules/{deleted}')
    _delete(fast, f'/jobschedules/{kept}')
    _gone(fast, deleted_pool)
    eventually(lambda: kept not in {s.id for s in fast.list_job_schedules()}, message='schedule deleted')
    assert _pool_state(fast, kept_pool) == 'active'


# ----- a restart from --location ------------------------------------------------------------------------

def test_a_restart_keeps_the_link_between_a_job_a_schedule_and_their_auto_pools(tmp_path):
    location = str(tmp_path / 'auto-pool-restart')
    process, endpoint = start_emulator(location)
    try:
        client = batch_client_for(endpoint)
        job_pool = _create_job(client, 'restarted', _auto_pool(nodes=0))['executionInfo']['poolId']
        _schedule(client, 'restarted-schedule', _auto_pool('jobschedule', nodes=0))
        schedule_pool = _pool_of(client, 'restarted-schedule:job-1')
    finally:
        stop_emulator(process)
    process, endpoint = start_emulator(location)
    try:
        client = batch_client_for(endpoint)
        assert client.get_job('restarted').execution_info.pool_id == job_pool
        assert {job_pool, schedule_pool} <= {pool.id for pool in client.list_pools()}
        _delete(client, '/jobs/restarted')
        _gone(client, job_pool)  # the job still owns its pool
        _terminate(client, '/jobschedules/restarted-schedule')
        _gone(client, schedule_pool)  # and the schedule its own
    finally:
        stop_emulator(process)


def test_a_job_being_deleted_when_the_emulator_stops_does_not_leave_its_auto_pool_behind(tmp_path):
    location = str(tmp_path / 'auto-pool-restart')
    process, endpoint = start_emulator(location, '--node-step-seconds', '30')  # deletion stays under way
    try:
        client = batch_client_for(endpoint)
        pool_id = _create_job(client, 'going', _auto_pool(nodes=0))['executionInfo']['poolId']
        _delete(client, '/jobs/going')
        assert client.get_job('going').state == 'deleting'
    finally:
        stop_emulator(process)
    process, endpoint = start_emulator(location)
    try:
        client = batch_client_for(endpoint)
        with pytest.raises(HttpResponseError):
            client.get_job('going')
        assert _pool_state(client, pool_id) is None
    finally:
        stop_emulator(process)
