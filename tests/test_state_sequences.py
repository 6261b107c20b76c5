"""State sequences as the real service goes through them (recorded-service-behaviour.md section 4):
which states follow an action, which timestamps move, and which changes leave the ETag alone."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import eventually
from tests.hostile import batch_client_for, start_emulator, stop_emulator
from tests.test_emulator import _pool, create_pool, raw, raw_json, wait_for_nodes, wait_for_task


@pytest.fixture(scope='module')
def slow_batch(tmp_path_factory) -> Iterator:
    """An emulator whose nodes take 1 s per step, so a resize is still under way when the next request comes."""
    process, endpoint = start_emulator(str(tmp_path_factory.mktemp('slow')), '--node-step-seconds', '1')
    try:
        yield batch_client_for(endpoint)
    finally:
        stop_emulator(process)


def test_a_pool_is_created_resized_stopped_and_deleted_as_recorded(slow_batch, unique_id):
    pool_id = unique_id('sequence')
    created = raw(slow_batch, 'POST', '/pools', _pool(pool_id))
    pool = raw_json(slow_batch, f'/pools/{pool_id}')
    assert (pool['state'], pool['allocationState']) == ('active', 'resizing')
    assert pool['stateTransitionTime'] == pool['creationTime']
    assert pool['eTag'] == created.headers['ETag']
    steady = eventually(lambda: (body := raw_json(slow_batch, f'/pools/{pool_id}'))['allocationState'] == 'steady'
                        and body, message='steady')
    assert steady['eTag'] == pool['eTag']  # allocation-state changes touch neither ETag nor lastModified
    assert steady['allocationStateTransitionTime'] > pool['allocationStateTransitionTime']

    resized = raw(slow_batch, 'POST', f'/pools/{pool_id}/resize', {'targetDedicatedNodes': 2})
    assert resized.status_code == 202 and resized.headers['ETag'] != pool['eTag']
    resizing = raw_json(slow_batch, f'/pools/{pool_id}')
    assert (resizing['allocationState'], resizing['targetDedicatedNodes']) == ('resizing', 2)
    assert resizing['allocationStateTransitionTime'] == resizing['lastModified']
    stopped = raw(slow_batch, 'POST', f'/pools/{pool_id}/stopresize')
    assert stopped.status_code == 202
    assert (stopped.headers['ETag'], stopped.headers['Last-Modified']) == (
        resized.headers['ETag'], resized.headers['Last-Modified'])  # the pool itself is not changed
    stopping = raw_json(slow_batch, f'/pools/{pool_id}')
    assert (stopping['allocationState'], stopping['targetDedicatedNodes']) == ('stopping', 2)
    eventually(lambda: raw_json(slow_batch, f'/pools/{pool_id}')['allocationState'] == 'steady', message='steady')

    deleted = raw(slow_batch, 'DELETE', f'/pools/{pool_id}')
    assert deleted.status_code == 202
    deleting = raw_json(slow_batch, f'/pools/{pool_id}')
    assert deleting['state'] == 'deleting' and deleting['eTag'] != stopping['eTag']
    assert deleting['stateTransitionTime'] == deleting['lastModified']
    eventually(lambda: raw(slow_batch, 'GET', f'/pools/{pool_id}').status_code == 404, message='gone')


def test_a_job_is_disabled_enabled_terminated_and_deleted_as_recorded(batch_client, pool_and_job):
    _, job_id = pool_and_job
    active = raw_json(batch_client, f'/jobs/{job_id}')
    assert active['stateTransitionTime'] == active['lastModified'] == active['executionInfo']['startTime']
    disabled = raw(batch_client, 'POST', f'/jobs/{job_id}/disable', {'disableTasks': 'requeue'})
    assert disabled.status_code == 202 and disabled.headers['ETag'] != active['eTag']
    job = raw_json(batch_client, f'/jobs/{job_id}')
    assert (job['state'], job['previousState']) == ('disabled', 'active')
    assert job['previousStateTransitionTime'] == active['stateTransitionTime']
    assert raw(batch_client, 'POST', f'/jobs/{job_id}/enable').status_code == 202
    job = raw_json(batch_client, f'/jobs/{job_id}')
    assert (job['state'], job['previousState']) == ('active', 'disabled')

    terminated = raw(batch_client, 'POST', f'/jobs/{job_id}/terminate', {'terminateReason': 'UserTerminate'})
    assert terminated.status_code == 202
    job = eventually(lambda: (body := raw_json(batch_client, f'/jobs/{job_id}'))['state'] == 'completed' and body,
                     message='completed')
    assert job['previousState'] == 'active'  # not "terminating"
    assert job['executionInfo']['terminateReason'] == 'UserTerminate'
    assert job['executionInfo']['endTime'] == job['stateTransitionTime']
    assert job['eTag'] == terminated.headers['ETag']  # terminating -> completed leaves the ETag alone

    assert raw(batch_client, 'DELETE', f'/jobs/{job_id}').status_code == 202
    deleting = raw_json(batch_client, f'/jobs/{job_id}')
    assert (deleting['state'], deleting['previousState']) == ('deleting', 'completed')
    assert (deleting['eTag'], deleting['lastModified']) == (job['eTag'], job['lastModified'])


def test_a_task_keeps_its_etag_while_it_runs_and_reactivates_clean(batch_client, pool_and_job):
    pool_id, job_id = pool_and_job
    created = raw(batch_client, 'POST', f'/jobs/{job_id}/tasks', {'id': 'runs', 'commandLine': 'true'})
    wait_for_task(batch_client, job_id, 'runs')
    task = raw_json(batch_client, f'/jobs/{job_id}/tasks/runs')
    assert (task['previousState'], task['eTag']) == ('running', created.headers['ETag'])
    assert task['creationTime'] == task['lastModified']

    raw(batch_client, 'POST', f'/jobs/{job_id}/disable', {'disableTasks': 'requeue'})  # so the next one waits
    raw(batch_client, 'POST', f'/jobs/{job_id}/tasks', {'id': 'never-runs', 'commandLine': 'true'})
    assert raw(batch_client, 'POST', f'/jobs/{job_id}/tasks/never-runs/terminate').status_code == 204
    ended = raw_json(batch_client, f'/jobs/{job_id}/tasks/never-runs')
    assert (ended['state'], ended['previousState'], ended['executionInfo']['result']) == ('completed', 'active',
                                                                                           'failure')
    assert raw(batch_client, 'POST', f'/jobs/{job_id}/tasks/never-runs/reactivate').status_code == 204
    again = raw_json(batch_client, f'/jobs/{job_id}/tasks/never-runs')
    assert (again['state'], again['previousState']) == ('active', 'completed')
    assert again['executionInfo'] == {'retryCount': 0, 'requeueCount': 0}


def test_a_rebooted_node_goes_through_rebooting_and_starting_to_idle(slow_batch, unique_id):
    pool_id = unique_id('reboot')
    create_pool(slow_batch, pool_id)
    node = wait_for_nodes(slow_batch, pool_id)[0]
    first = raw_json(slow_batch, f'/pools/{pool_id}/nodes/{node.id}')
    rebooted = raw(slow_batch, 'POST', f'/pools/{pool_id}/nodes/{node.id}/reboot')
    assert rebooted.status_code == 202 and 'ETag' not in rebooted.headers
    seen = [raw_json(slow_batch, f'/pools/{pool_id}/nodes/{node.id}')['state']]

    def idle_again() -> dict | None:
        body = raw_json(slow_batch, f'/pools/{pool_id}/nodes/{node.id}')
        if body['state'] != seen[-1]:
            seen.append(body['state'])
            if body['state'] == 'starting':
                assert body['lastBootTime'] == first['lastBootTime']  # not yet booted again
        return body if body['state'] == 'idle' else None

    node_after = eventually(idle_again, message='idle again')
    assert seen == ['rebooting', 'starting', 'idle']
    assert node_after['lastBootTime'] > first['lastBootTime']
    slow_batch.begin_delete_pool(pool_id)
