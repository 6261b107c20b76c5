"""Budgets on every evaluation, and background loops that cannot die (issue 17, cases 1, 2, 12, 15).

- An autoscale formula is evaluated within budgets (doubleVec length, steps, time, results size): over one
  it fails as the service reports any formula it cannot evaluate, AutoScalingFormulaEvaluationError
  inside the 200 AutoScaleRun; evaluateautoscale and the periodic runs evaluate off the event loop.
- A timeinterval beyond a .NET TimeSpan and a target beyond the spec's int32 are evaluation errors, so a
  create with such a formula stores a pool whose run shows the error (it used to answer 500, keep the
  pool and stop every pool's periodic autoscale for good).
- A $filter may make a bounded number of comparisons per list request; over it: 400
  InvalidQueryParameterValue naming $filter.
- Every background loop (autoscale, job schedules, dispatch, reaper, journal flush) logs a failing pass
  and goes on: each test injects an exception into one loop of an emulator run in this process and shows
  the loop still does its work afterwards.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import threading
from collections.abc import Callable, Iterator
from urllib.parse import quote

import psutil
import pytest
from azure.batch import BatchClient
from azure.batch import models as m
from azure.core.credentials import AzureNamedKeyCredential

from batch_emulator import DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME, autoscale
from batch_emulator.app import create_app
from batch_emulator.autoscale.formula import EVALUATION_ERROR, AutoScaleContext, evaluate
from batch_emulator.common.errors import BatchServiceError
from batch_emulator.contract.odata import compile_filter
from batch_emulator.wire.server import SCHEDULER, STATE, set_base_url
from tests.conftest import eventually
from tests.hostile import send, ten_fold_formula
from tests.test_emulator import API, UBUNTU, raw, raw_json

NOW = datetime.datetime(2026, 2, 2, 10, 0, 0, tzinfo=datetime.timezone.utc)


def error_detail(result) -> str:
    assert result.error is not None, result.results[:200]
    assert result.error.code == EVALUATION_ERROR
    return result.error.detail


# ----- autoscale: the formula language's budgets ------------------------------------------------------------

def test_the_ten_fold_formula_fails_on_the_vector_budget_and_leaves_the_pool_as_it_is():
    result = evaluate(ten_fold_formula(), AutoScaleContext(now=NOW, target_dedicated_nodes=2))

    assert 'would make a doubleVec of 100000 values' in error_detail(result)
    assert result.results == '$TargetDedicatedNodes=2;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue'
    assert result.target_dedicated_nodes == 2


def test_a_formula_over_the_step_budget_fails_and_a_days_samples_still_evaluate():
    day = [(NOW - datetime.timedelta(seconds=5 * i), float(i % 7)) for i in range(18_000)]  # the most kept
    context = AutoScaleContext(now=NOW, samples={'$PendingTasks': day, '$CPUPercent': day})
    usual = evaluate('$busy = avg($CPUPercent.GetSample(TimeInterval_Day)) > 50;\n'
                     '$tasks = max($PendingTasks.GetSample(TimeInterval_Day));\n'
                     '$TargetDedicatedNodes = $busy ? 4 : min(10, $tasks);', context)
    assert usual.error is None and usual.target_dedicated_nodes == 6

    ten_thousand = '$a=floor(' + ','.join(['1'] * 10) + ');' + ''.join(
        f'{name}=floor(' + ','.join([before] * 10) + ');' for before, name in (('$a', '$b'), ('$b', '$c'), ('$c', '$d'))
    )  # $d holds 10,000 values
    repeated = ten_thousand + ''.join(f'$x{i} = sum($d * 2 + 1);' for i in range(200))
    assert 'steps to evaluate' in error_detail(evaluate(repeated, AutoScaleContext(now=NOW)))


def test_a_results_string_over_its_budget_fails_instead_of_being_kept():
    hour = [(NOW - datetime.timedelta(seconds=i), 123.456789 + i) for i in range(3_600)]
    result = evaluate('$v = $CPUPercent.GetSample(TimeInterval_Hour); $w = $v; $x = $v;',
                      AutoScaleContext(now=NOW, samples={'$CPUPercent': hour}))

    assert 'results would be longer than 65536 characters' in error_detail(result)
    assert len(result.results) < 200


def test_a_timeinterval_beyond_a_timespan_is_an_evaluation_error():
    result = evaluate('$x=TimeInterval_Year*1e300;', AutoScaleContext(now=NOW))

    assert error_detail(result) == 'Line 1, Col 21: TimeSpan overflowed because the duration is too long.'


@pytest.mark.parametrize('formula', ['$TargetDedicatedNodes=1e300;', '$TargetLowPriorityNodes=2147483648;'])
def test_a_target_beyond_int32_is_an_evaluation_error_and_int32_max_is_not(formula):
    result = evaluate(formula, AutoScaleContext(now=NOW, target_dedicated_nodes=1))

    assert 'is out of range' in error_detail(result)
    assert (result.target_dedicated_nodes, result.target_low_priority_nodes) == (1, 0)
    largest = evaluate('$TargetDedicatedNodes=2147483647;', AutoScaleContext(now=NOW))
    assert largest.error is None and largest.target_dedicated_nodes == 2 ** 31 - 1


def test_case_12_over_http_leaves_the_pool_at_its_target(batch_client, unique_id):
    pool_id = unique_id('int32')
    formula = '$TargetDedicatedNodes=1e300;'
    _autoscale_pool(batch_client, pool_id, formula)
    run = raw(batch_client, 'POST', f'/pools/{pool_id}/evaluateautoscale', {'autoScaleFormula': formula})
    assert run.status_code == 200
    assert run.json()['error']['code'] == EVALUATION_ERROR
    assert raw_json(batch_client, f'/pools/{pool_id}')['targetDedicatedNodes'] == 0
    batch_client.begin_delete_pool(pool_id)


# ----- $filter ------------------------------------------------------------------------------------------------

def _tasks(count: int) -> list[dict]:
    return [{'id': f'task{i}', 'state': 'active', 'executionInfo': {'retryCount': 0}} for i in range(count)]


def test_a_filter_over_its_comparison_budget_is_refused_and_a_chain_of_equalities_is_not():
    hostile = ' and '.join(f"id ne 'n{i:03d}'" for i in range(530))  # 9 KB, every comparison true
    predicate = compile_filter(hostile)
    with pytest.raises(BatchServiceError) as refused:
        [item for item in _tasks(10_000) if predicate(item)]
    assert (refused.value.status, refused.value.code) == (400, 'InvalidQueryParameterValue')
    assert refused.value.values['QueryParameterName'] == '$filter'
    assert 'comparisons' in refused.value.values['Reason']

    # 400 equalities on one property joined by 'or' are one look-up per item: answered, and right.
    wanted = ' or '.join(f"id eq 'task{i}'" for i in range(0, 4_000, 10))
    predicate = compile_filter(f"({wanted}) and executionInfo/retryCount eq 0 and not (state eq 'completed')")
    assert [item['id'] for item in _tasks(10_000) if predicate(item)] == [f'task{i}' for i in range(0, 4_000, 10)]


def test_the_filter_budget_answers_400_over_http(batch_client, unique_id):
    pool_id, job_id = unique_id('nofilter'), unique_id('nofilter')
    batch_client.create_pool(m.BatchPoolCreateOptions(id=pool_id, vm_size='standard_d2s_v3', target_dedicated_nodes=0,
                                                      virtual_machine_configuration=UBUNTU))
    batch_client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool_id)))
    for start in range(0, 1_200, 100):
        batch_client.create_tasks(job_id, [m.BatchTaskCreateOptions(id=f't{i}', command_line='true')
                                           for i in range(start, start + 100)])
    hostile = quote(' and '.join(f"id ne 'n{i}'" for i in range(250)), safe='')
    refused = raw(batch_client, 'GET', f'/jobs/{job_id}/tasks', query=f'{API}&$filter={hostile}')
    assert refused.status_code == 400, refused.text()
    assert refused.json()['code'] == 'InvalidQueryParameterValue'
    assert {'key': 'QueryParameterName', 'value': '$filter'} in refused.json()['values']
    fine = quote(' or '.join(f"id eq 't{i}'" for i in range(0, 1_200, 5)), safe='')
    listed = raw(batch_client, 'GET', f'/jobs/{job_id}/tasks', query=f'{API}&$filter={fine}&$select=id')
    assert listed.status_code == 200, listed.text()
    assert len(listed.json()['value']) == 240
    batch_client.begin_delete_job(job_id)
    batch_client.begin_delete_pool(pool_id)


# ----- an emulator in this process: evaluation off the loop, loops that survive ---------------------------

class InProcess:
    """The emulator's app served from a thread of this process, so a test can reach into its loops."""

    def __init__(self, data_dir: str, *, persist: bool = False) -> None:
        self.app = create_app(data_dir=data_dir, persist=persist, node_step_seconds=0.05)
        self.state, self.scheduler = self.app[STATE], self.app[SCHEDULER]
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner = None

    def start(self) -> BatchClient:
        from aiohttp import web

        async def serve() -> str:
            self.runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
            await self.runner.setup()
            site = web.TCPSite(self.runner, '127.0.0.1', 0)
            await site.start()
            endpoint = f'http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}'
            set_base_url(self.app, endpoint)
            return endpoint
        self.thread.start()
        endpoint = asyncio.run_coroutine_threadsafe(serve(), self.loop).result(30)
        return BatchClient(endpoint, AzureNamedKeyCredential(DEFAULT_ACCOUNT_NAME, DEFAULT_ACCOUNT_KEY))

    def stop(self) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()


@pytest.fixture
def in_process(tmp_path) -> Iterator[Callable[..., InProcess]]:
    started: list[InProcess] = []

    def make(**settings) -> InProcess:
        started.append(InProcess(str(tmp_path / f'emulator{len(started)}'), **settings))
        return started[-1]
    yield make
    for emulator in started:
        emulator.stop()


def fails_once(function: Callable, calls: list) -> Callable:
    """``function``, except that its first call raises (and every call is counted in ``calls``)."""
    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError('injected failure')
        return function(*args, **kwargs)
    return wrapper


def _autoscale_pool(client: BatchClient, pool_id: str, formula: str) -> None:
    client.create_pool(m.BatchPoolCreateOptions(
        id=pool_id, vm_size='standard_d2s_v3', virtual_machine_configuration=UBUNTU, enable_auto_scale=True,
        auto_scale_formula=formula, auto_scale_evaluation_interval=datetime.timedelta(minutes=5)))


def test_evaluateautoscale_runs_off_the_loop_while_other_requests_are_answered(in_process, monkeypatch):
    emulator = in_process()
    gate, entered, real = threading.Event(), threading.Event(), autoscale.evaluate

    def gated(formula, context):
        if 'gated' in str(getattr(formula, 'text', formula)):
            entered.set()
            gate.wait(60)  # held until the test has seen another request answered
        return real(formula, context)
    monkeypatch.setattr(autoscale, 'evaluate', gated)
    client = emulator.start()
    endpoint = client._config.endpoint
    _autoscale_pool(client, 'offloop', '$TargetDedicatedNodes=0;')
    answers: list = []
    evaluation = threading.Thread(target=lambda: answers.append(raw(
        client, 'POST', '/pools/offloop/evaluateautoscale', {'autoScaleFormula': '$gated=1;'})))
    evaluation.start()
    try:
        assert entered.wait(30), 'the evaluation did not start'
        listed = send(endpoint, 'GET', f'/pools?{API}', timeout=10)  # answered meanwhile
        assert [pool['id'] for pool in listed.json()['value']] == ['offloop']
        assert not answers
    finally:
        gate.set()
        evaluation.join(60)
    assert answers[0].status_code == 200 and answers[0].json()['results'].endswith(';$gated=1')


def test_a_create_with_an_overflowing_formula_stores_its_error_and_the_periodic_runs_go_on(in_process):
    emulator = in_process()
    emulator.state.clock_speed = 600.0  # a 5-minute interval passes in half a second
    client = emulator.start()
    _autoscale_pool(client, 'overflow', '$x=TimeInterval_Year*1e300;')
    _autoscale_pool(client, 'healthy', '$TargetDedicatedNodes=0; $n=$CurrentDedicatedNodes;')

    run = raw_json(client, '/pools/overflow')['autoScaleRun']  # the create's run, kept with its error
    assert run['error']['code'] == EVALUATION_ERROR
    assert run['error']['values'] == [{'name': 'Message', 'value': 'Line 1, Col 21: TimeSpan overflowed because '
                                                                   'the duration is too long.'}]
    first = eventually(lambda: raw_json(client, '/pools/healthy').get('autoScaleRun'), message='a healthy run')
    eventually(lambda: raw_json(client, '/pools/healthy')['autoScaleRun']['timestamp'] != first['timestamp'],
               message='the next periodic run')


def test_a_create_whose_first_run_fails_unforeseen_answers_500_and_stores_nothing(in_process, monkeypatch):
    emulator = in_process(persist=True)

    def broken(formula, context):
        raise RuntimeError('a failure no one foresaw')
    monkeypatch.setattr(autoscale, 'evaluate', broken)
    client = emulator.start()
    body = {'id': 'halfmade', 'vmSize': 'standard_d2s_v3', 'virtualMachineConfiguration': UBUNTU.as_dict(),
            'enableAutoScale': True, 'autoScaleFormula': '$TargetDedicatedNodes=1;',
            'autoScaleEvaluationInterval': 'PT5M'}

    assert raw(client, 'POST', '/pools', body).status_code == 500
    assert raw(client, 'GET', '/pools/halfmade').status_code == 404
    marker = {'id': 'marker', 'vmSize': 'standard_d2s_v3', 'virtualMachineConfiguration': UBUNTU.as_dict()}
    assert raw(client, 'POST', '/pools', marker).status_code == 201  # acknowledged: the journal is written
    with open(emulator.state.journal.path, encoding='utf-8') as journal:
        written = journal.read()
    assert '"marker"' in written and 'halfmade' not in written
    monkeypatch.undo()
    assert raw(client, 'POST', '/pools', body).status_code == 201  # the id was never taken


def test_the_autoscale_loop_survives_a_failing_pass(in_process, caplog):
    emulator = in_process()
    emulator.state.clock_speed = 600.0
    calls: list = []
    emulator.state.record_samples = fails_once(emulator.state.record_samples, calls)
    client = emulator.start()
    _autoscale_pool(client, 'survivor', '$TargetDedicatedNodes=0;')
    created = raw_json(client, '/pools/survivor')['autoScaleRun']['timestamp']  # the create's own run

    eventually(lambda: raw_json(client, '/pools/survivor')['autoScaleRun']['timestamp'] != created,
               message='a periodic run')
    assert len(calls) > 1
    assert 'recording autoscale samples failed; it goes on' in caplog.text


def test_the_job_schedule_loop_survives_a_failing_pass(in_process, caplog):
    emulator = in_process()
    emulator.state.schedule_clock = 60.0  # PT1M passes in a second
    calls: list = []
    emulator.state.serve_job_schedules = fails_once(emulator.state.serve_job_schedules, calls)
    client = emulator.start()
    client.create_pool(m.BatchPoolCreateOptions(id='sched', vm_size='standard_d2s_v3', target_dedicated_nodes=0,
                                                virtual_machine_configuration=UBUNTU))
    client.create_job_schedule(m.BatchJobScheduleCreateOptions(
        id='every', schedule=m.BatchJobScheduleConfiguration(recurrence_interval=datetime.timedelta(minutes=1)),
        job_specification=m.BatchJobSpecification(pool_info=m.BatchPoolInfo(pool_id='sched'))))
    eventually(lambda: calls, message='the injected failure')
    assert raw(client, 'POST', '/jobs/every:job-1/terminate').status_code == 202

    eventually(lambda: any(job.id == 'every:job-2' for job in client.list_jobs()), message='the next job')
    assert 'serving job schedules failed; it goes on' in caplog.text


def test_the_dispatch_loop_survives_a_failing_pass(in_process, caplog):
    emulator = in_process()
    calls: list = []
    emulator.scheduler.dispatch = fails_once(emulator.scheduler.dispatch, calls)
    client = emulator.start()
    client.create_pool(m.BatchPoolCreateOptions(id='dispatch', vm_size='standard_d2s_v3', target_dedicated_nodes=1,
                                                virtual_machine_configuration=UBUNTU))
    client.create_job(m.BatchJobCreateOptions(id='work', pool_info=m.BatchPoolInfo(pool_id='dispatch')))
    client.create_task('work', m.BatchTaskCreateOptions(id='first', command_line='true'))
    eventually(lambda: calls, message='the injected failure')
    client.create_task('work', m.BatchTaskCreateOptions(id='second', command_line='true'))

    eventually(lambda: client.get_task('work', 'second').state == 'completed', message='a task run after it')
    assert 'dispatching tasks failed; it goes on' in caplog.text


def test_the_reaper_loop_survives_a_failing_pass(in_process, caplog):
    emulator = in_process()
    calls: list = []
    emulator.scheduler.runner.reap = fails_once(emulator.scheduler.runner.reap, calls)
    emulator.start()

    eventually(lambda: len(calls) >= 2, message='a second reaping pass')
    assert 'reaping orphaned processes failed; it goes on' in caplog.text


def test_the_journal_loop_survives_a_failing_flush(in_process, caplog):
    emulator = in_process(persist=True)
    calls: list = []
    emulator.state.journal.flush = fails_once(emulator.state.journal.flush, calls)
    client = emulator.start()
    eventually(lambda: calls, message='the injected failure')
    client.create_pool(m.BatchPoolCreateOptions(id='journaled', vm_size='standard_d2s_v3', target_dedicated_nodes=1,
                                                virtual_machine_configuration=UBUNTU))
    client.create_job(m.BatchJobCreateOptions(id='kept', pool_info=m.BatchPoolInfo(pool_id='journaled')))
    client.create_task('kept', m.BatchTaskCreateOptions(id='done', command_line='true'))
    eventually(lambda: client.get_task('kept', 'done').state == 'completed', message='the task completed')

    def completion_journaled() -> bool:  # written by the loop: no request acknowledged this change
        with open(emulator.state.journal.path, encoding='utf-8') as journal:
            records = [json.loads(line) for line in journal]
        return any(record.get('task', {}).get('id') == 'done' and record['task']['state'] == 'completed'
                   for record in records)
    eventually(completion_journaled, message="the task's completion written to state.jsonl")
    assert 'flushing the journal failed; it goes on' in caplog.text


def test_a_failure_that_repeats_is_logged_once_a_minute_not_every_pass(caplog):
    from batch_emulator.common import loops
    caplog.set_level(logging.ERROR, logger='batch_emulator.common.loops')

    def broken() -> None:
        raise OSError('No space left on device')
    results = [loops.survive('a test loop', broken, 'fallback') for _ in range(1_000)]

    assert results == ['fallback'] * 1_000
    assert [record.getMessage() for record in caplog.records] == ['a test loop failed; it goes on']


def test_an_emulator_inside_another_program_leaves_that_programs_children_alone(tmp_path):
    """Served in a test's own process, the emulator stops only its tasks: the program's other children live on."""
    import subprocess

    others_child = subprocess.Popen(['sleep', '600'])
    emulator = InProcess(str(tmp_path / 'emulator'))
    try:
        client = emulator.start()
        client.create_pool(m.BatchPoolCreateOptions(
            id='pool', vm_size='standard_d2s_v3', virtual_machine_configuration=UBUNTU, target_dedicated_nodes=1))
        client.create_job(m.BatchJobCreateOptions(id='job', pool_info=m.BatchPoolInfo(pool_id='pool')))
        client.create_task('job', m.BatchTaskCreateOptions(id='leaves', command_line="/bin/sh -c 'setsid sleep 601 &'"))
        eventually(lambda: client.get_task('job', 'leaves').state == 'completed', message='the task ends')
    finally:
        emulator.stop()
    try:
        assert others_child.poll() is None, 'the emulator killed a child of the program it runs in'
        leftovers = [p for p in psutil.process_iter(['cmdline']) if p.info['cmdline'] == ['sleep', '601']]
        assert not leftovers, 'the orphan its task left outlived the emulator'
    finally:
        others_child.kill()
        others_child.wait()
