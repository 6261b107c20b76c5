"""Job schedules, driven by the real azure-batch SDK over HTTP: every operation, the jobs created on time.

The recorded behaviour (recorded-service-behaviour.md §2.3, §4 "Job schedule") is checked on the
session's real-time emulator with the recorded intervals (P1D, PT5H). The timing tests run on an
emulator whose schedule clock goes 60 times faster (BATCH_EMULATOR_SCHEDULE_CLOCK=60): a
recurrenceInterval of PT1M (the service's minimum) lasts one second there.
"""

from __future__ import annotations

import datetime
import os
import tempfile
from collections.abc import Iterator

import pytest
from azure.batch import BatchClient
from azure.batch import models as m
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from batch_emulator import DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME
from batch_emulator.service.models import parse_iso
from tests.conftest import eventually
from tests.hostile import start_emulator, stop_emulator
from tests.test_emulator import create_pool, raw, raw_json, validate

pytestmark = pytest.mark.emulator

CLOCK = 60  # the fast emulator's schedule clock: PT1M lasts a second
SECOND = datetime.timedelta(seconds=1)


def _client(endpoint: str) -> BatchClient:
    return BatchClient(endpoint, AzureNamedKeyCredential(DEFAULT_ACCOUNT_NAME, DEFAULT_ACCOUNT_KEY))


@pytest.fixture(scope='module')
def fast() -> Iterator[BatchClient]:
    """An emulator of its own whose schedule clock runs 60 times faster."""
    with tempfile.TemporaryDirectory(prefix='schedule-tests-') as location:
        process, endpoint = start_emulator(location, env={**os.environ, 'BATCH_EMULATOR_SCHEDULE_CLOCK': str(CLOCK)})
        try:
            yield _client(endpoint)
        finally:
            stop_emulator(process)


def _when(text: str) -> datetime.datetime:
    return parse_iso(text)  # Python 3.10's fromisoformat reads neither Z nor 5 fraction digits


def _schedule_body(schedule_id: str, schedule: dict, **job_specification) -> dict:
    return {'id': schedule_id, 'schedule': schedule,
            'jobSpecification': {'poolInfo': {'poolId': 'schedules-pool'}, **job_specification}}


def _create(client: BatchClient, body: dict) -> dict:
    response = raw(client, 'POST', '/jobschedules', body)
    assert response.status_code == 201, response.text()
    return raw_json(client, f"/jobschedules/{body['id']}")


def _terminate_job(client: BatchClient, job_id: str) -> None:
    """POST .../terminate (the SDK's begin_terminate_job would go on polling in a thread of its own)."""
    response = raw(client, 'POST', f'/jobs/{job_id}/terminate')
    assert response.status_code == 202, response.text()


def _job_ids(client: BatchClient, schedule_id: str) -> list[str]:
    return sorted(job.id for job in client.list_jobs_from_schedule(schedule_id))


# ----- the recorded behaviour, in real time ------------------------------------------------------------

def test_create_get_list_exists_and_the_first_job_at_once(batch_client, emulator, unique_id):
    schedule_id = unique_id('schedule')
    response = raw(batch_client, 'POST', '/jobschedules', _schedule_body(
        schedule_id, {'startWindow': 'PT01H00M00S', 'recurrenceInterval': 'P1D'}, displayName='nightly',
        constraints={'maxTaskRetryCount': 2}, onAllTasksComplete='terminatejob'))
    assert response.status_code == 201
    assert response.headers['Location'] == response.headers['DataServiceId'] == \
        f'{emulator.endpoint}/jobschedules/{schedule_id}'
    assert response.headers['ETag'] and response.headers['Last-Modified']

    body = raw_json(batch_client, f'/jobschedules/{schedule_id}')
    validate(body, 'BatchJobSchedule')
    assert list(body) == ['odata.metadata', 'id', 'url', 'eTag', 'lastModified', 'creationTime', 'state',
                          'stateTransitionTime', 'schedule', 'jobSpecification', 'executionInfo']
    assert body['odata.metadata'].endswith('$metadata#jobschedules/@Element')
    assert body['lastModified'] == body['creationTime'] == body['stateTransitionTime'] and body['state'] == 'active'
    assert body['schedule'] == {'startWindow': 'PT1H', 'recurrenceInterval': 'P1D'}
    assert body['jobSpecification'] == {
        'displayName': 'nightly', 'priority': 0, 'maxParallelTasks': -1, 'allowTaskPreemption': False,
        'usesTaskDependencies': False, 'onAllTasksComplete': 'terminatejob', 'onTaskFailure': 'noaction',
        'constraints': {'maxWallClockTime': 'P10675199DT2H48M5.4775807S', 'maxTaskRetryCount': 2},
        'poolInfo': {'poolId': 'schedules-pool'}}
    job_id = f'{schedule_id}:job-1'
    assert _when(body['executionInfo']['nextRunTime']) == _when(body['creationTime']) + datetime.timedelta(days=1)
    assert body['executionInfo']['recentJob'] == {'url': f'{emulator.endpoint}/jobs/{job_id}', 'id': job_id}
    assert list(body['executionInfo']['recentJob']) == ['url', 'id']  # the service's order (recorded)

    schedule = batch_client.get_job_schedule(schedule_id)
    assert schedule.schedule.recurrence_interval == datetime.timedelta(days=1)
    assert schedule.execution_info.recent_job.id == job_id
    assert batch_client.job_schedule_exists(schedule_id) is True
    with pytest.raises(ResourceNotFoundError):  # the SDK's answer to a 404 HEAD
        batch_client.job_schedule_exists(unique_id('nothing'))
    head = raw(batch_client, 'HEAD', f'/jobschedules/{schedule_id}')
    assert head.status_code == 200 and head.headers['ETag'] == body['eTag'] and 'DataServiceId' not in head.headers
    listed = raw_json(batch_client, '/jobschedules')
    validate(listed, 'BatchJobScheduleListResult')
    assert schedule_id in [item['id'] for item in listed['value']]
    assert [s.id for s in batch_client.list_job_schedules(filter=f"id eq '{schedule_id}'")] == [schedule_id]

    jobs = raw_json(batch_client, f'/jobschedules/{schedule_id}/jobs')
    validate(jobs, 'BatchJobListResult')
    assert [job['id'] for job in jobs['value']] == [job_id]
    job = batch_client.get_job(job_id)  # the job a user can reach like any other, with the spec's values
    assert (job.display_name, job.all_tasks_complete_mode, job.constraints.max_task_retry_count, job.state) == \
        ('nightly', 'terminatejob', 2, 'active')
    batch_client.begin_delete_job_schedule(schedule_id)


def test_patch_put_disable_enable_terminate_and_delete_as_recorded(batch_client, emulator, unique_id):
    schedule_id = unique_id('schedule')
    path = f'/jobschedules/{schedule_id}'
    created = _create(batch_client, _schedule_body(schedule_id, {'startWindow': 'PT1H', 'recurrenceInterval': 'P1D'},
                                                   onAllTasksComplete='terminatejob',
                                                   constraints={'maxTaskRetryCount': 2}))
    creation = _when(created['creationTime'])

    disabled = raw(batch_client, 'POST', f'{path}/disable')
    assert disabled.status_code == 204 and disabled.headers['DataServiceId'] == f'{emulator.endpoint}{path}/disable'
    assert disabled.headers['ETag'] != created['eTag']
    body = raw_json(batch_client, path)
    assert (body['state'], body['previousState'], body['eTag']) == ('disabled', 'active', disabled.headers['ETag'])
    enabled = raw(batch_client, 'POST', f'{path}/enable')
    assert enabled.status_code == 204 and enabled.headers['DataServiceId'] == f'{emulator.endpoint}{path}/enable'
    assert (raw_json(batch_client, path)['state'], raw_json(batch_client, path)['previousState']) == \
        ('active', 'disabled')

    replaced = raw(batch_client, 'PUT', path, {'schedule': {'recurrenceInterval': 'PT10H00M00S'},
                                               'jobSpecification': {'poolInfo': {'poolId': 'schedules-pool'}}})
    assert replaced.status_code == 200 and replaced.headers['DataServiceId'] == f'{emulator.endpoint}{path}'
    body = raw_json(batch_client, path)
    assert body['schedule'] == {'recurrenceInterval': 'PT10H'}  # startWindow gone: PUT replaces
    assert body['jobSpecification']['onAllTasksComplete'] == 'noaction'
    assert body['jobSpecification']['constraints']['maxTaskRetryCount'] == 0
    assert _when(body['executionInfo']['nextRunTime']) == creation + datetime.timedelta(hours=10)

    batch_client.update_job_schedule(schedule_id, m.BatchJobScheduleUpdateOptions(
        schedule=m.BatchJobScheduleConfiguration(recurrence_interval=datetime.timedelta(hours=5))))
    patched = raw(batch_client, 'PATCH', path, {'schedule': {'recurrenceInterval': 'PT05H00M00S'}})
    assert patched.status_code == 200 and patched.headers['ETag']
    body = raw_json(batch_client, path)
    assert body['schedule']['recurrenceInterval'] == 'PT5H' and body['eTag'] == patched.headers['ETag']
    assert body['jobSpecification']['poolInfo'] == {'poolId': 'schedules-pool'}  # PATCH keeps what it does not send
    next_run = body['executionInfo']['nextRunTime']
    assert _when(next_run) == creation + datetime.timedelta(hours=5)

    terminated = raw(batch_client, 'POST', f'{path}/terminate')
    assert terminated.status_code == 202 and terminated.headers['DataServiceId'] == \
        f'{emulator.endpoint}{path}/terminate'
    body = raw_json(batch_client, path)
    validate(body, 'BatchJobSchedule')
    assert (body['state'], body['previousState']) == ('completed', 'active')
    assert body['executionInfo'] == {'recentJob': {'url': f'{emulator.endpoint}/jobs/{schedule_id}:job-1',
                                                   'id': f'{schedule_id}:job-1'},
                                     'endTime': body['stateTransitionTime']}
    job = eventually(lambda: (job := batch_client.get_job(f'{schedule_id}:job-1')).state == 'completed' and job,
                     message='the active job terminated with its schedule')
    assert job.execution_info.termination_reason == 'UserTerminate'
    with pytest.raises(HttpResponseError) as completed:
        batch_client.disable_job_schedule(schedule_id)
    assert completed.value.status_code == 409 and completed.value.error.code == 'JobScheduleCompleted'

    deleted = raw(batch_client, 'DELETE', path)
    assert deleted.status_code == 202 and 'ETag' not in deleted.headers and 'DataServiceId' not in deleted.headers
    deleting = raw_json(batch_client, path)
    assert (deleting['state'], deleting['previousState'], deleting['eTag']) == ('deleting', 'completed', body['eTag'])
    assert deleting['executionInfo']['nextRunTime'] == next_run and 'endTime' not in deleting['executionInfo']
    gone = eventually(lambda: (r := raw(batch_client, 'GET', path)).status_code == 404 and r,
                      message='the deleted schedule gone')
    assert gone.json()['code'] == 'JobScheduleNotFound'
    assert 'values' not in gone.json()
    with pytest.raises(ResourceNotFoundError):
        batch_client.get_job(f'{schedule_id}:job-1')  # its jobs went with it


def test_errors_are_the_services(batch_client, unique_id):
    schedule_id = unique_id('schedule')
    batch_client.create_job_schedule(m.BatchJobScheduleCreateOptions(
        id=schedule_id, schedule=m.BatchJobScheduleConfiguration(recurrence_interval=datetime.timedelta(days=1)),
        job_specification=m.BatchJobSpecification(pool_info=m.BatchPoolInfo(pool_id='schedules-pool'))))
    with pytest.raises(ResourceExistsError) as exists:
        batch_client.create_job_schedule(m.BatchJobScheduleCreateOptions(
            id=schedule_id.upper(), schedule=m.BatchJobScheduleConfiguration(),  # ids are case-insensitive
            job_specification=m.BatchJobSpecification(pool_info=m.BatchPoolInfo(pool_id='schedules-pool'))))
    assert exists.value.status_code == 409 and exists.value.error.code == 'JobScheduleExists'

    missing = unique_id('missing')
    for call in (lambda: batch_client.get_job_schedule(missing), lambda: batch_client.disable_job_schedule(missing),
                 lambda: batch_client.enable_job_schedule(missing),
                 lambda: list(batch_client.list_jobs_from_schedule(missing)),
                 lambda: batch_client.update_job_schedule(missing, m.BatchJobScheduleUpdateOptions(metadata=[]))):
        with pytest.raises(ResourceNotFoundError) as not_found:
            call()
        assert not_found.value.error.code == 'JobScheduleNotFound'
    for method in ('POST', 'DELETE'):
        response = raw(batch_client, method, f'/jobschedules/{missing}' + ('/terminate' if method == 'POST' else ''))
        assert (response.status_code, response.json()['code']) == (404, 'JobScheduleNotFound')

    for schedule, name in (({'recurrenceInterval': 'PT30S'}, 'recurrenceInterval'),
                           ({'startWindow': 'PT59S'}, 'startWindow'),
                           ({'recurrenceInterval': 'soon'}, 'recurrenceInterval'),
                           ({'doNotRunUntil': 'tomorrow'}, 'doNotRunUntil')):
        response = raw(batch_client, 'POST', '/jobschedules', _schedule_body(unique_id('bad'), schedule))
        assert (response.status_code, response.json()['code']) == (400, 'InvalidPropertyValue'), schedule
        assert {'key': 'PropertyName', 'value': name} in response.json()['values']
    patched = raw(batch_client, 'PATCH', f'/jobschedules/{schedule_id}', {'schedule': {'recurrenceInterval': 'PT1S'}})
    assert (patched.status_code, patched.json()['code']) == (400, 'InvalidPropertyValue')
    for body, name in (({'id': unique_id('bad'), 'schedule': {}}, 'jobSpecification'),
                       ({'id': unique_id('bad'), 'schedule': {}, 'jobSpecification': {}}, 'poolInfo'),
                       ({'id': unique_id('bad'), 'jobSpecification': {'poolInfo': {'poolId': 'p'}}}, 'schedule')):
        response = raw(batch_client, 'POST', '/jobschedules', body)
        assert (response.status_code, response.json()['code']) == (400, 'MissingRequiredProperty')
        assert response.json()['values'] == [{'key': 'PropertyName', 'value': name}]
    put = raw(batch_client, 'PUT', f'/jobschedules/{schedule_id}', {'schedule': {}})
    assert (put.status_code, put.json()['code']) == (400, 'MissingRequiredProperty')
    assert raw_json(batch_client, f'/jobschedules/{schedule_id}')['schedule'] == {'recurrenceInterval': 'P1D'}
    batch_client.begin_delete_job_schedule(schedule_id)


# ----- on time: the fast clock ------------------------------------------------------------------------------

def test_a_do_not_run_after_in_the_year_1_is_accepted_and_stops_no_other_schedule(fast, unique_id):
    # The spec: the schedule "will move to the completed state as soon as this deadline is past and there is
    # no active Job" -- so a deadline long past is a schedule that completes at once, not a 500.
    past, alive = unique_id('year-one'), unique_id('alive')
    body = _create(fast, _schedule_body(past, {'doNotRunAfter': '0001-01-01T00:00:00Z'}))
    assert body['schedule'] == {'doNotRunAfter': '0001-01-01T00:00:00Z'}
    assert body['state'] == 'completed' and 'recentJob' not in body['executionInfo']
    assert _job_ids(fast, past) == []
    # The schedules' loop goes on: a recurring schedule anchored in the year 1 gets its job, and the next.
    _create(fast, _schedule_body(alive, {'doNotRunUntil': '0001-01-01T00:00:00Z', 'recurrenceInterval': 'PT1M'}))
    assert _job_ids(fast, alive) == [f'{alive}:job-1']
    _terminate_job(fast, f'{alive}:job-1')
    eventually(lambda: f'{alive}:job-2' in _job_ids(fast, alive), message='the next job of another schedule')
    for schedule_id in (past, alive):
        fast.begin_delete_job_schedule(schedule_id)


def test_active_jobs_and_schedules_stop_at_the_accounts_quota(unique_id):
    with tempfile.TemporaryDirectory(prefix='schedule-quota-') as location:
        process, endpoint = start_emulator(location, '--active-job-quota', '3')
        try:
            client = _client(endpoint)
            spec = m.BatchJobSpecification(pool_info=m.BatchPoolInfo(pool_id='quota-pool'))
            client.create_job(m.BatchJobCreateOptions(id='first', pool_info=m.BatchPoolInfo(pool_id='quota-pool')))
            client.create_job_schedule(m.BatchJobScheduleCreateOptions(  # the schedule and its job: 3 in all
                id='nightly', schedule=m.BatchJobScheduleConfiguration(recurrence_interval=datetime.timedelta(days=1)),
                job_specification=spec))
            assert _job_ids(client, 'nightly') == ['nightly:job-1']
            for path, body in (('/jobs', {'id': 'second', 'poolInfo': {'poolId': 'quota-pool'}}),
                               ('/jobschedules', _schedule_body('weekly', {'recurrenceInterval': 'P7D'}))):
                response = raw(client, 'POST', path, body)
                assert (response.status_code, response.json()['code']) == (409, 'ActiveJobAndScheduleQuotaReached')
                assert response.json()['message']['value'].startswith(
                    'Active job and schedule quota for the account has been reached.')
            with pytest.raises(HttpResponseError) as refused:
                client.create_job(m.BatchJobCreateOptions(id='second', pool_info=m.BatchPoolInfo(pool_id='p')))
            assert refused.value.error.code == 'ActiveJobAndScheduleQuotaReached'
            with pytest.raises(ResourceNotFoundError):  # nothing was kept of a refused create
                client.get_job('second')
            with pytest.raises(ResourceNotFoundError):
                client.job_schedule_exists('weekly')
            _terminate_job(client, 'first')  # completed jobs do not count
            eventually(lambda: client.get_job('first').state == 'completed', message='the first job completed')
            client.create_job(m.BatchJobCreateOptions(id='second', pool_info=m.BatchPoolInfo(pool_id='quota-pool')))
            assert raw(client, 'POST', '/jobs', {'id': 'third', 'poolInfo': {'poolId': 'p'}}).status_code == 409
        finally:
            stop_emulator(process)


def test_the_next_job_comes_at_the_next_run_time_and_never_while_one_is_active(fast, unique_id):
    schedule_id = unique_id('recurring')
    body = _create(fast, _schedule_body(schedule_id, {'recurrenceInterval': 'PT1M'}))
    start = _when(body['creationTime'])
    assert _when(body['executionInfo']['nextRunTime']) == start + SECOND  # PT1M at 60 times the speed
    # job-1 is still active at the second slot: that run is lost, nextRunTime moves on, no second job.
    eventually(lambda: fast.get_job_schedule(schedule_id).execution_info.next_run_time >= start + 2 * SECOND,
               message='the missed run given up')
    assert _job_ids(fast, schedule_id) == [f'{schedule_id}:job-1']

    _terminate_job(fast, f'{schedule_id}:job-1')
    second = eventually(lambda: f'{schedule_id}:job-2' in _job_ids(fast, schedule_id)
                        and fast.get_job(f'{schedule_id}:job-2'), message='the second job')
    assert second.creation_time >= start + 2 * SECOND  # not before its run time
    schedule = fast.get_job_schedule(schedule_id)
    assert schedule.execution_info.recent_job.id == f'{schedule_id}:job-2'
    assert schedule.execution_info.next_run_time > second.creation_time
    fast.begin_delete_job_schedule(schedule_id)


def test_do_not_run_after_completes_the_schedule_once_its_job_has(fast, unique_id):
    schedule_id = unique_id('deadline')
    deadline = datetime.datetime.now(datetime.timezone.utc) + SECOND
    _create(fast, _schedule_body(schedule_id, {'recurrenceInterval': 'PT1M', 'doNotRunAfter': deadline.isoformat()}))
    assert _job_ids(fast, schedule_id) == [f'{schedule_id}:job-1']
    _terminate_job(fast, f'{schedule_id}:job-1')  # the next run would be due after the deadline
    schedule = eventually(lambda: (s := fast.get_job_schedule(schedule_id)).state == 'completed' and s,
                          message='the schedule completed after doNotRunAfter')
    assert schedule.execution_info.end_time >= deadline - datetime.timedelta(milliseconds=1)
    assert schedule.execution_info.next_run_time is None
    assert _job_ids(fast, schedule_id) == [f'{schedule_id}:job-1']
    fast.begin_delete_job_schedule(schedule_id)


def test_do_not_run_until_delays_the_one_job_and_a_missed_start_window_loses_it(fast, unique_id):
    later = unique_id('later')
    until = datetime.datetime.now(datetime.timezone.utc) + SECOND
    body = _create(fast, _schedule_body(later, {'doNotRunUntil': until.isoformat()}))
    assert _job_ids(fast, later) == [] and 'recentJob' not in body['executionInfo']
    assert abs(_when(body['executionInfo']['nextRunTime']) - until) < datetime.timedelta(milliseconds=1)
    job = eventually(lambda: _job_ids(fast, later) and fast.get_job(f'{later}:job-1'), message='the delayed job')
    assert job.creation_time >= until - datetime.timedelta(milliseconds=1)
    assert fast.get_job_schedule(later).execution_info.next_run_time is None  # it does not recur
    _terminate_job(fast, job.id)  # a schedule that does not recur completes with its one job
    eventually(lambda: fast.get_job_schedule(later).state == 'completed', message='the one-job schedule completed')

    missed = unique_id('missed')  # due 5 s ago, with a start window of PT1M (a second here): that chance is gone
    gone_by = datetime.datetime.now(datetime.timezone.utc) - 5 * SECOND
    body = _create(fast, _schedule_body(missed, {'doNotRunUntil': gone_by.isoformat(), 'startWindow': 'PT1M'}))
    assert body['state'] == 'completed' and 'recentJob' not in body['executionInfo']
    assert _job_ids(fast, missed) == []
    for schedule_id in (later, missed):
        fast.begin_delete_job_schedule(schedule_id)


def test_disable_stops_new_jobs_and_enable_lets_the_due_one_come(fast, unique_id):
    schedule_id = unique_id('paused')
    start = _when(_create(fast, _schedule_body(schedule_id, {'recurrenceInterval': 'PT1M'}))['creationTime'])
    fast.disable_job_schedule(schedule_id)
    _terminate_job(fast, f'{schedule_id}:job-1')
    eventually(lambda: fast.get_job_schedule(schedule_id).execution_info.next_run_time >= start + 3 * SECOND,
               message='two runs passed while disabled')
    assert fast.get_job_schedule(schedule_id).state == 'disabled'
    assert _job_ids(fast, schedule_id) == [f'{schedule_id}:job-1']
    fast.enable_job_schedule(schedule_id)
    eventually(lambda: f'{schedule_id}:job-2' in _job_ids(fast, schedule_id), message='the due job after enable')
    fast.begin_delete_job_schedule(schedule_id)


def test_the_job_specifications_terminatejob_completes_a_job_and_its_schedule(fast, unique_id):
    pool_id, schedule_id = unique_id('pool'), unique_id('autocomplete')
    create_pool(fast, pool_id)
    fast.create_job_schedule(m.BatchJobScheduleCreateOptions(
        id=schedule_id, schedule=m.BatchJobScheduleConfiguration(),
        job_specification=m.BatchJobSpecification(pool_info=m.BatchPoolInfo(pool_id=pool_id),
                                                  all_tasks_complete_mode='terminatejob')))
    job_id = f'{schedule_id}:job-1'
    fast.create_task(job_id, m.BatchTaskCreateOptions(id='work', command_line='/bin/sh -c "echo $AZ_BATCH_JOB_ID"'))
    job = eventually(lambda: (job := fast.get_job(job_id)).state == 'completed' and job, message='job completed')
    assert job.execution_info.termination_reason == 'AllTasksComplete'
    assert b''.join(fast.download_task_file(job_id, 'work', 'stdout.txt')).decode().strip() == job_id
    schedule = eventually(lambda: (s := fast.get_job_schedule(schedule_id)).state == 'completed' and s,
                          message='the schedule completed with its job')
    assert schedule.execution_info.end_time >= job.execution_info.end_time
    fast.begin_delete_job_schedule(schedule_id)
    fast.begin_delete_pool(pool_id)


def test_schedules_survive_a_restart_and_keep_creating_jobs(tmp_path):
    location = str(tmp_path / 'schedule-restart')
    environment = {**os.environ, 'BATCH_EMULATOR_SCHEDULE_CLOCK': str(CLOCK)}
    process, endpoint = start_emulator(location, env=environment)
    try:
        client = _client(endpoint)
        before = _create(client, _schedule_body('kept', {'recurrenceInterval': 'PT1M'}, displayName='kept'))
        client.create_job_schedule(m.BatchJobScheduleCreateOptions(
            id='dropped', schedule=m.BatchJobScheduleConfiguration(),
            job_specification=m.BatchJobSpecification(pool_info=m.BatchPoolInfo(pool_id='p'))))
        client.begin_delete_job_schedule('dropped')
    finally:
        stop_emulator(process)
    process, endpoint = start_emulator(location, env=environment)
    try:
        client = _client(endpoint)
        after = raw_json(client, '/jobschedules/kept')
        assert {key: after[key] for key in ('eTag', 'creationTime', 'state', 'schedule', 'jobSpecification')} == \
            {key: before[key] for key in ('eTag', 'creationTime', 'state', 'schedule', 'jobSpecification')}
        assert after['executionInfo']['recentJob'] == {**before['executionInfo']['recentJob'],
                                                       'url': f'{endpoint}/jobs/kept:job-1'}
        with pytest.raises(ResourceNotFoundError):
            client.job_schedule_exists('dropped')
        assert _job_ids(client, 'kept') == ['kept:job-1']
        _terminate_job(client, 'kept:job-1')  # the restored schedule goes on serving its runs
        eventually(lambda: 'kept:job-2' in _job_ids(client, 'kept'), message='the next job after the restart')
    finally:
        stop_emulator(process)
