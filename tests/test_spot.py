"""Spot (low-priority) nodes and their preemption, through the azure-batch SDK and the emulator's control endpoint."""

from __future__ import annotations

import datetime
import http.client
import json
import shlex
from email.utils import formatdate
from urllib.parse import urlsplit

import pytest
from azure.batch import models as m
from azure.core.exceptions import HttpResponseError

from batch_emulator import DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME
from batch_emulator.pytest_plugin import EmulatorControlError, start_batch_emulator
from batch_emulator.wire import auth
from tests.conftest import eventually
from tests.test_emulator import UBUNTU

pytestmark = pytest.mark.e2e


def create_spot_pool(client, pool_id: str, spot: int, dedicated: int = 0) -> None:
    client.create_pool(m.BatchPoolCreateOptions(
        id=pool_id, vm_size='STANDARD_D2S_V3', virtual_machine_configuration=UBUNTU,
        target_dedicated_nodes=dedicated, target_low_priority_nodes=spot))


def idle_nodes(client, pool_id: str, count: int) -> list[m.BatchNode]:
    return eventually(lambda: (nodes := list(client.list_nodes(pool_id))) and len(nodes) == count
                      and all(node.state == 'idle' for node in nodes) and nodes, message=f'{count} idle nodes')


def node_counts(client, pool_id: str) -> m.BatchPoolNodeCounts:
    return next(counts for counts in client.list_pool_node_counts() if counts.pool_id == pool_id)


def gate_command(gate) -> str:
    """A task that runs until the file ``gate`` exists (so it is running while the test acts)."""
    return f"/bin/sh -c {shlex.quote(f'while [ ! -e {gate} ]; do sleep 0.05; done')}"


def control(endpoint: str, method: str, path: str, *, key: str | None = DEFAULT_ACCOUNT_KEY,
            host: str | None = None) -> tuple[int, dict]:
    """A raw request to the emulator's control endpoints, signed with ``key`` (None: unsigned)."""
    parts = urlsplit(endpoint)
    headers = {'ocp-date': formatdate(usegmt=True), 'Content-Length': '0', 'Host': host or parts.netloc}
    if key is not None:
        text = auth.string_to_sign(method, path, headers, DEFAULT_ACCOUNT_NAME)
        headers['Authorization'] = f'SharedKey {DEFAULT_ACCOUNT_NAME}:{auth.sign(key, text)}'
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request(method, path, body=b'', headers=headers)
        response = connection.getresponse()
        body = response.read()
        return response.status, json.loads(body) if body else {}
    finally:
        connection.close()


@pytest.fixture
def spot_pool(batch_emulator_client, unique_id):
    pool_id = unique_id('spot')
    yield pool_id
    try:
        batch_emulator_client.begin_delete_pool(pool_id)
    except HttpResponseError:
        pass


def test_a_pool_of_spot_nodes_reaches_its_target_with_nodes_that_are_not_dedicated(batch_emulator_client, spot_pool):
    client = batch_emulator_client
    create_spot_pool(client, spot_pool, spot=2)
    nodes = idle_nodes(client, spot_pool, 2)
    assert [node.is_dedicated for node in nodes] == [False, False]
    pool = eventually(lambda: (pool := client.get_pool(spot_pool)).allocation_state == 'steady' and pool,
                      message='steady')
    assert (pool.current_low_priority_nodes, pool.current_dedicated_nodes) == (2, 0)
    assert pool.target_low_priority_nodes == 2 and not pool.resize_errors
    counts = node_counts(client, spot_pool)
    assert (counts.low_priority.idle, counts.low_priority.total) == (2, 2)
    assert (counts.dedicated.idle, counts.dedicated.total) == (0, 0)

    # A resize changes each kind on its own; removing a spot node lowers the spot target.
    client.begin_resize_pool(spot_pool, m.BatchPoolResizeOptions(target_dedicated_nodes=1, target_low_priority_nodes=2),
                            polling_interval=0)
    nodes = idle_nodes(client, spot_pool, 3)
    assert sorted(node.is_dedicated for node in nodes) == [False, False, True]
    eventually(lambda: client.get_pool(spot_pool).allocation_state == 'steady', message='steady')
    spot = next(node for node in nodes if not node.is_dedicated)
    client.begin_remove_nodes(spot_pool, m.BatchNodeRemoveOptions(node_ids=[spot.id]), polling_interval=0)
    pool = eventually(lambda: (pool := client.get_pool(spot_pool)).allocation_state == 'steady' and pool,
                      message='steady after removenodes')
    assert (pool.target_low_priority_nodes, pool.target_dedicated_nodes) == (1, 1)
    assert (pool.current_low_priority_nodes, pool.current_dedicated_nodes) == (1, 1)


def test_a_preempted_node_requeues_its_task_which_succeeds_on_another_node(batch_emulator, batch_emulator_client,
                                                                          spot_pool, unique_id, tmp_path):
    client = batch_emulator_client
    create_spot_pool(client, spot_pool, spot=2)
    idle_nodes(client, spot_pool, 2)
    job_id = unique_id('job')
    client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=spot_pool)))
    gate = tmp_path / 'gate'
    client.create_task(job_id, m.BatchTaskCreateOptions(id='work', command_line=gate_command(gate)))
    first = eventually(lambda: (task := client.get_task(job_id, 'work')).state == 'running' and task,
                       message='the task running').node_info.node_id

    answer = batch_emulator.preempt(spot_pool, first)
    assert answer == {'poolId': spot_pool, 'nodeId': first, 'state': 'preempted'}
    again = eventually(lambda: (task := client.get_task(job_id, 'work')).state == 'running'
                       and task.node_info.node_id != first and task, message='the task running on the other node')
    # requeued by the service: the spec's requeueCount counts the requeues a user asked for, retryCount failed runs
    assert (again.execution_info.requeue_count, again.execution_info.retry_count) == (0, 0)
    assert again.execution_info.last_requeue_time is None
    assert client.get_node(spot_pool, first).state == 'preempted'
    counts = node_counts(client, spot_pool)
    assert (counts.low_priority.preempted, counts.low_priority.running, counts.low_priority.total) == (1, 1, 2)
    assert client.get_pool(spot_pool).current_low_priority_nodes == 2  # a preempted node still counts

    gate.touch()
    done = eventually(lambda: (task := client.get_task(job_id, 'work')).state == 'completed' and task,
                      message='the task completed')
    assert done.execution_info.result == 'success' and done.execution_info.exit_code == 0
    assert done.node_info.node_id == again.node_info.node_id
    assert (done.execution_info.requeue_count, done.execution_info.retry_count) == (0, 0)
    with pytest.raises(EmulatorControlError) as refused:  # it is down already
        batch_emulator.preempt(spot_pool, first)
    assert (refused.value.status, refused.value.code) == (409, 'NodeNotPreemptible')
    client.begin_delete_job(job_id)


def test_the_control_endpoint_checks_its_caller_and_names_what_it_cannot_preempt(batch_emulator, batch_emulator_client,
                                                                                spot_pool):
    client = batch_emulator_client
    create_spot_pool(client, spot_pool, spot=0, dedicated=1)
    dedicated = idle_nodes(client, spot_pool, 1)[0]
    path = f'/_emulator/pools/{spot_pool}/nodes/{dedicated.id}/preempt'
    endpoint = batch_emulator.endpoint

    status, body = control(endpoint, 'POST', path, key=None)
    assert status == 403 and body['code'] == 'AuthenticationFailed'
    status, body = control(endpoint, 'POST', path, key='d3Jvbmcga2V5')
    assert status == 403 and body['code'] == 'AuthenticationFailed'
    status, body = control(endpoint, 'POST', path, host='rebound.example:80')
    assert status == 400 and body['code'] == 'InvalidHeaderValue'
    status, body = control(endpoint, 'POST', path)
    assert status == 409 and body['code'] == 'NodeNotSpot' and 'dedicated' in body['message']['value']
    assert client.get_node(spot_pool, dedicated.id).state == 'idle'

    status, body = control(endpoint, 'POST', f'/_emulator/pools/{spot_pool}/nodes/tvmps_nothing_p/preempt')
    assert status == 404 and body['code'] == 'NodeNotFound'
    with pytest.raises(EmulatorControlError) as missing:
        batch_emulator.preempt('no-such-pool', dedicated.id)
    assert (missing.value.status, missing.value.code) == (404, 'PoolNotFound')
    status, body = control(endpoint, 'POST', '/_emulator/pools/x/restart')
    assert status == 404 and body['code'] == 'EmulatorEndpointNotFound'
    assert '/_emulator/pools/{poolId}/nodes/{nodeId}/preempt' in body['message']['value']
    status, body = control(endpoint, 'GET', path)  # the endpoint is a POST
    assert status == 404 and body['code'] == 'EmulatorEndpointNotFound'


def test_a_job_manager_that_refuses_spot_nodes_runs_on_the_dedicated_one(batch_emulator_client, spot_pool, unique_id):
    client = batch_emulator_client
    create_spot_pool(client, spot_pool, spot=1)
    spot = idle_nodes(client, spot_pool, 1)[0]
    client.begin_resize_pool(spot_pool, m.BatchPoolResizeOptions(target_dedicated_nodes=1, target_low_priority_nodes=1),
                            polling_interval=0)
    nodes = idle_nodes(client, spot_pool, 2)
    dedicated = next(node for node in nodes if node.is_dedicated)
    job_id = unique_id('job')
    client.create_job(m.BatchJobCreateOptions(
        id=job_id, pool_info=m.BatchPoolInfo(pool_id=spot_pool), job_manager_task=m.BatchJobManagerTask(
            id='manager', command_line='/bin/true', allow_low_priority_node=False, run_exclusive=False)))
    manager = eventually(lambda: (task := client.get_task(job_id, 'manager')).state == 'completed' and task,
                         message='the job manager completed')
    assert manager.node_info.node_id == dedicated.id != spot.id
    client.begin_delete_job(job_id)


def test_an_autoscale_formula_sees_the_spot_nodes(batch_emulator_client, spot_pool):
    client = batch_emulator_client
    client.create_pool(m.BatchPoolCreateOptions(
        id=spot_pool, vm_size='standard_d2s_v3', virtual_machine_configuration=UBUNTU, enable_auto_scale=True,
        auto_scale_formula='$TargetLowPriorityNodes = 2;',
        auto_scale_evaluation_interval=datetime.timedelta(minutes=5)))
    nodes = idle_nodes(client, spot_pool, 2)
    assert not any(node.is_dedicated for node in nodes)
    run = client.evaluate_pool_auto_scale(spot_pool, m.BatchPoolEvaluateAutoScaleOptions(
        auto_scale_formula='$spot = $CurrentLowPriorityNodes; $dedicated = $CurrentDedicatedNodes; '
                           '$TargetLowPriorityNodes = $spot + 1;'))
    assert run.error is None
    assert run.results == ('$TargetDedicatedNodes=0;$TargetLowPriorityNodes=3;$NodeDeallocationOption=requeue;'
                           '$dedicated=0;$spot=2')


def test_the_spot_quota_and_the_preemption_rate_seen_by_autoscale(tmp_path):
    """An emulator of its own: one spot node allowed, each preempted about 30 times a minute (seeded) and restored
    after a second; its clock 600 times faster, so autoscale samples are taken every quarter second."""
    with start_batch_emulator(tmp_path, '--spot-node-quota', '1', '--spot-preemption-rate', '30', '--fault-seed', '7',
                              '--spot-restore-seconds', '1', '--clock-speed', '600') as emulator:
        client = emulator.client()
        client.create_pool(m.BatchPoolCreateOptions(
            id='beyond', vm_size='standard_d2s_v3', virtual_machine_configuration=UBUNTU, enable_auto_scale=True,
            auto_scale_formula='$TargetLowPriorityNodes = 3;',
            auto_scale_evaluation_interval=datetime.timedelta(minutes=5)))
        pool = eventually(lambda: (pool := client.get_pool('beyond')).allocation_state == 'steady' and pool,
                          message='steady at the quota')
        assert (pool.target_low_priority_nodes, pool.current_low_priority_nodes) == (3, 1)
        assert [error.code for error in pool.resize_errors] == ['AccountLowPriorityCoreQuotaReached']
        node_id = next(iter(client.list_nodes('beyond'))).id
        eventually(lambda: client.get_node('beyond', node_id).state == 'preempted', message='preempted by the rate')
        eventually(lambda: client.get_node('beyond', node_id).state == 'idle', message='restored after preemption')
        assert client.get_pool('beyond').current_low_priority_nodes == 1
        formula = m.BatchPoolEvaluateAutoScaleOptions(
            auto_scale_formula='$seen = max($PreemptedNodeCount.GetSample(100000)); $TargetLowPriorityNodes = 3;')
        eventually(lambda: client.evaluate_pool_auto_scale('beyond', formula).results.endswith(';$seen=1'),
                   message='a sample of $PreemptedNodeCount taken while the node was preempted')
        client.close()


def test_injected_faults_never_fail_the_control_endpoint(tmp_path):
    """--fault-rate 1 fails every Batch request; the emulator's own endpoint still answers as itself."""
    with start_batch_emulator(tmp_path, '--fault-rate', '1', '--fault-seed', '3') as emulator:
        for _ in range(5):
            with pytest.raises(EmulatorControlError) as missing:
                emulator.preempt('no-such-pool', 'tvmps_nothing_p')
            assert (missing.value.status, missing.value.code) == (404, 'PoolNotFound')
