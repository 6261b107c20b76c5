"""Autoscale on pools, driven by the real azure-batch SDK over HTTP: enable, evaluate, disable as recorded
(recorded-service-behaviour.md section 4, "Autoscale"), and the periodic runs that resize a pool."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import pytest
from azure.batch import models as m
from azure.core.exceptions import HttpResponseError

from tests.conftest import eventually
from tests.hostile import batch_client_for, start_emulator, stop_emulator
from tests.test_emulator import UBUNTU, create_pool, raw, raw_json, validate, wait_for_nodes


def test_enable_evaluate_and_disable_answer_as_recorded(batch_client, unique_id):
    pool_id = unique_id('autoscale')
    create_pool(batch_client, pool_id, nodes=0)
    eventually(lambda: batch_client.get_pool(pool_id).allocation_state == 'steady', message='steady')
    before = raw_json(batch_client, f'/pools/{pool_id}')
    enabled = raw(batch_client, 'POST', f'/pools/{pool_id}/enableautoscale',
                  {'autoScaleFormula': '$TargetDedicatedNodes=2', 'autoScaleEvaluationInterval': 'PT06M00S'})
    assert enabled.status_code == 200 and enabled.headers['ETag'] != before['eTag']
    assert enabled.headers['DataServiceId'].endswith(f'/pools/{pool_id}/enableautoscale')
    pool = raw_json(batch_client, f'/pools/{pool_id}')
    assert (pool['enableAutoScale'], pool['autoScaleFormula'], pool['autoScaleEvaluationInterval']) == (
        True, '$TargetDedicatedNodes=2', 'PT6M')
    assert (pool['targetDedicatedNodes'], pool['allocationState']) == (2, 'resizing')  # evaluated at once
    assert pool['allocationStateTransitionTime'] == pool['lastModified']
    assert 'autoScaleRun' not in pool
    validate(pool, 'BatchPool')
    wait_for_nodes(batch_client, pool_id, count=2)

    run = batch_client.evaluate_pool_auto_scale(pool_id, m.BatchPoolEvaluateAutoScaleOptions(
        auto_scale_formula='$TargetDedicatedNodes=3'))
    assert run.results == '$TargetDedicatedNodes=3;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue'
    assert run.error is None and run.timestamp is not None
    invalid = raw(batch_client, 'POST', f'/pools/{pool_id}/evaluateautoscale',
                  {'autoScaleFormula': '$something_useless'})
    body = invalid.json()
    assert invalid.status_code == 200 and 'ETag' not in invalid.headers and 'DataServiceId' in invalid.headers
    assert body['odata.metadata'].endswith('#Microsoft.Azure.Batch.Protocol.Entities.AutoScaleRun')
    assert body['results'].startswith('$TargetDedicatedNodes=2;')  # the pool as it is
    assert body['error']['code'] == 'AutoScalingFormulaEvaluationError'
    assert body['error']['values'] == [{'name': 'Message',
                                        'value': 'Line 1, Col 1: Undefined symbol: $something_useless'}]
    validate(body, 'AutoScaleRun')
    after = raw_json(batch_client, f'/pools/{pool_id}')
    assert (after['eTag'], after['targetDedicatedNodes']) == (pool['eTag'], 2)  # evaluate changes nothing

    with pytest.raises(HttpResponseError) as too_soon:
        batch_client.enable_pool_auto_scale(pool_id, m.BatchPoolEnableAutoScaleOptions(
            auto_scale_formula='$TargetDedicatedNodes=1'))
    assert too_soon.value.error.code == 'TooManyEnableAutoScaleRequests'

    disabled = raw(batch_client, 'POST', f'/pools/{pool_id}/disableautoscale')
    assert disabled.status_code == 200 and disabled.headers['ETag'] != pool['eTag']
    pool = raw_json(batch_client, f'/pools/{pool_id}')
    assert pool['enableAutoScale'] is False and pool['targetDedicatedNodes'] == 2
    assert 'autoScaleFormula' not in pool and 'autoScaleEvaluationInterval' not in pool
    evaluate_off = raw(batch_client, 'POST', f'/pools/{pool_id}/evaluateautoscale',
                       {'autoScaleFormula': '$TargetDedicatedNodes=1'})
    assert evaluate_off.status_code == 409
    batch_client.begin_delete_pool(pool_id)


@pytest.mark.parametrize(('body', 'status', 'code'), [
    ({'autoScaleFormula': '$TargetDedicatedNodes = = 1'}, 400, 'AutoScalingFormulaSyntaxError'),
    ({'autoScaleFormula': '$TargetDedicatedNodes=1;' * 400}, 400, 'AutoScaleFormulaTooLong'),
    ({'autoScaleFormula': '$TargetDedicatedNodes=1', 'autoScaleEvaluationInterval': 'PT1M'}, 400,
     'InvalidPropertyValue'),
    ({}, 400, 'MissingRequiredProperty'),
])
def test_a_bad_formula_or_interval_is_refused_when_enabling(batch_client, unique_id, body, status, code):
    pool_id = unique_id('badformula')
    create_pool(batch_client, pool_id, nodes=0)
    eventually(lambda: batch_client.get_pool(pool_id).allocation_state == 'steady', message='steady')
    response = raw(batch_client, 'POST', f'/pools/{pool_id}/enableautoscale', body)
    assert (response.status_code, response.json()['code']) == (status, code), response.text()
    assert raw_json(batch_client, f'/pools/{pool_id}')['enableAutoScale'] is False
    batch_client.begin_delete_pool(pool_id)


def test_a_pool_created_with_autoscale_takes_the_formulas_size(batch_client, unique_id):
    pool_id = unique_id('createdscaled')
    batch_client.create_pool(m.BatchPoolCreateOptions(
        id=pool_id, vm_size='standard_d2s_v3', virtual_machine_configuration=UBUNTU, enable_auto_scale=True,
        auto_scale_formula='$TargetDedicatedNodes = 1;', auto_scale_evaluation_interval=datetime.timedelta(minutes=5)))
    pool = batch_client.get_pool(pool_id)
    assert (pool.enable_auto_scale, pool.target_dedicated_nodes) == (True, 1)
    wait_for_nodes(batch_client, pool_id, count=1)
    fixed = raw(batch_client, 'POST', '/pools', {
        'id': unique_id('both'), 'vmSize': 'standard_d2s_v3', 'enableAutoScale': True, 'targetDedicatedNodes': 1,
        'autoScaleFormula': '$TargetDedicatedNodes = 1;',
        'virtualMachineConfiguration': UBUNTU.as_dict()})
    assert (fixed.status_code, fixed.json()['code']) == (400, 'InvalidPropertyValue')
    batch_client.begin_delete_pool(pool_id)


@pytest.fixture(scope='module')
def fast_clock(tmp_path_factory) -> Iterator:
    """An emulator whose clock runs 600 times faster: a 5-minute evaluation interval passes in half a second."""
    process, endpoint = start_emulator(str(tmp_path_factory.mktemp('fastclock')), '--clock-speed', '600')
    try:
        yield batch_client_for(endpoint)
    finally:
        stop_emulator(process)


def test_the_formula_runs_every_interval_and_follows_the_pending_tasks(fast_clock, unique_id):
    """The doc's "pending tasks" pattern: as many nodes as tasks wait or run (at most 3), none when all are done."""
    pool_id, job_id = unique_id('follows'), unique_id('follows')
    fast_clock.create_pool(m.BatchPoolCreateOptions(
        id=pool_id, vm_size='standard_d2s_v3', virtual_machine_configuration=UBUNTU, enable_auto_scale=True,
        auto_scale_evaluation_interval=datetime.timedelta(minutes=5),
        auto_scale_formula='$samples = $PendingTasks.GetSample(1);\n'
                           '$TargetDedicatedNodes = min(3, max($samples));\n'
                           '$NodeDeallocationOption = taskcompletion;'))
    fast_clock.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool_id)))
    fast_clock.create_tasks(job_id, [m.BatchTaskCreateOptions(id=f'wait{i}', command_line='sleep 2')
                                     for i in range(5)])
    eventually(lambda: fast_clock.get_pool(pool_id).target_dedicated_nodes == 3, message='grown to 3 nodes')
    pool = raw_json(fast_clock, f'/pools/{pool_id}')
    assert pool['autoScaleRun']['results'].startswith('$TargetDedicatedNodes=3;')
    assert '$samples=' in pool['autoScaleRun']['results']
    eventually(lambda: fast_clock.get_job_task_counts(job_id).task_counts.completed == 5, timeout=60,
               message='tasks done')
    eventually(lambda: fast_clock.get_pool(pool_id).target_dedicated_nodes == 0, message='shrunk to none')
    eventually(lambda: not list(fast_clock.list_nodes(pool_id)), message='nodes removed')
    fast_clock.begin_delete_job(job_id)
    fast_clock.begin_delete_pool(pool_id)


def test_a_pool_created_with_autoscale_shows_its_first_run_and_can_be_enabled_again_at_once(batch_client, unique_id):
    """Recorded (.NET AutoScale): the create's run is the pool's autoScaleRun, stamped with its creation; an
    enable 11 s later is not throttled (the 30 s spacing is between enables) and leaves that run as it is."""
    pool_id = unique_id('createdrun')
    created = raw(batch_client, 'POST', '/pools', {
        'id': pool_id, 'vmSize': 'standard_d2s_v3', 'virtualMachineConfiguration': UBUNTU.as_dict(),
        'enableAutoScale': True, 'autoScaleFormula': '$TargetDedicated = 0;', 'autoScaleEvaluationInterval': 'PT6M'})
    assert created.status_code == 201
    pool = raw_json(batch_client, f'/pools/{pool_id}')
    assert pool['autoScaleRun'] == {
        'timestamp': pool['creationTime'],
        'results': '$TargetDedicatedNodes=0;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue'}
    eventually(lambda: batch_client.get_pool(pool_id).allocation_state == 'steady', message='steady')
    enabled = raw(batch_client, 'POST', f'/pools/{pool_id}/enableautoscale',
                  {'autoScaleFormula': '$TargetDedicated = 1;', 'autoScaleEvaluationInterval': 'PT7M'})
    assert enabled.status_code == 200, enabled.text()
    after = raw_json(batch_client, f'/pools/{pool_id}')
    assert (after['targetDedicatedNodes'], after['autoScaleFormula']) == (1, '$TargetDedicated = 1;')
    assert after['autoScaleRun'] == pool['autoScaleRun']
    batch_client.begin_delete_pool(pool_id)
