"""How a task's process is started and waited for (``runtime/task_process.py``): a worker thread makes its folder,
opens its output files and starts it; the event loop learns of its end from a pidfd.

What a user sees: the exit code and failureInfo the service gives (0, another code, a signal), stdout.txt and
stderr.txt, a task terminated or timed out mid-run with a child that left its process group, and an emulator
that stops leaving no process behind, also one that was still being started.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator

import pytest
from azure.batch import models as m

from batch_emulator.runtime.node import NodeRunner
from tests.conftest import eventually
from tests.hostile import batch_client_for, processes_running, start_emulator, stop_emulator
from tests.test_emulator import create_pool, wait_for_nodes, wait_for_task


def _marker(unique_id) -> str:
    """Digits only, so that ``sleep MARKER1`` sleeps for weeks and ``pgrep``-like matching finds only this test's."""
    return '7' + str(int(unique_id('sleep').split('-')[1], 16))[-6:]


@pytest.fixture
def marker(unique_id) -> Iterator[str]:
    found = _marker(unique_id)
    yield found
    for pid in processes_running(f'sleep {found}'):  # a failing test leaves nothing running either
        os.kill(pid, signal.SIGKILL)


def _output(client, job_id: str, task_id: str, name: str) -> bytes:
    return b''.join(client.download_task_file(job_id, task_id, name))


def test_exit_codes_output_files_and_failure_info(batch_client, pool_and_job):
    _, job_id = pool_and_job
    commands = {'ok': "/bin/sh -c 'echo to stdout; echo to stderr >&2'",
                'three': "/bin/sh -c 'echo failing >&2; exit 3'",
                'signalled': "/bin/sh -c 'echo before; kill -TERM $$; echo after'",
                'missing': 'no-such-program-for-this-test'}
    batch_client.create_tasks(job_id, [m.BatchTaskCreateOptions(id=task_id, command_line=command)
                                       for task_id, command in commands.items()])
    ok, three, signalled, missing = (wait_for_task(batch_client, job_id, task_id) for task_id in commands)

    assert (ok.execution_info.result, ok.execution_info.exit_code, ok.execution_info.failure_info) == \
        ('success', 0, None)
    assert _output(batch_client, job_id, 'ok', 'stdout.txt') == b'to stdout\n'
    assert _output(batch_client, job_id, 'ok', 'stderr.txt') == b'to stderr\n'

    for failed in (three, signalled):
        assert failed.execution_info.result == 'failure'
        info = failed.execution_info.failure_info
        assert (info.category, info.code) == ('UserError', 'FailureExitCode')  # as the service writes it
        assert {(d.name, d.value) for d in info.details} >= {('AdditionalErrorCode', 'FailureExitCode')}
    assert three.execution_info.exit_code == 3
    assert _output(batch_client, job_id, 'three', 'stderr.txt') == b'failing\n'
    # A shell killed by SIGTERM: the emulator reports the signal as a negative exit code (as Python does).
    assert signalled.execution_info.exit_code == -signal.SIGTERM
    assert _output(batch_client, job_id, 'signalled', 'stdout.txt') == b'before\n'

    assert missing.execution_info.exit_code is None
    assert missing.execution_info.failure_info.code == 'CommandProgramNotFound'
    assert b'no-such-program-for-this-test' in _output(batch_client, job_id, 'missing', 'stderr.txt')


def test_a_task_terminated_mid_run_dies_with_the_child_that_left_its_group(batch_client, pool_and_job, marker):
    _, job_id = pool_and_job
    batch_client.create_task(job_id, m.BatchTaskCreateOptions(
        id='long', command_line=f"/bin/bash -c 'setsid sleep {marker}1 & sleep {marker}2'"))
    eventually(lambda: len(processes_running(f'sleep {marker}')) == 2, message='the task and its child run')
    batch_client.terminate_task(job_id, 'long')
    task = wait_for_task(batch_client, job_id, 'long')
    assert task.execution_info.failure_info.code == 'TaskEnded'
    eventually(lambda: not processes_running(f'sleep {marker}'), timeout=10, message='nothing of the task left')


def test_a_task_past_its_wall_clock_limit_dies_with_its_escaped_child(batch_client, pool_and_job, marker):
    _, job_id = pool_and_job
    batch_client.create_task(job_id, m.BatchTaskCreateOptions(
        id='slow', command_line=f"/bin/bash -c 'setsid sleep {marker}1 & sleep {marker}2'",
        constraints=m.BatchTaskConstraints(max_wall_clock_time='PT1S')))
    task = wait_for_task(batch_client, job_id, 'slow')
    assert task.execution_info.failure_info.code == 'MaxWallClockTimeExpiry'
    assert task.execution_info.exit_code == -signal.SIGKILL
    eventually(lambda: not processes_running(f'sleep {marker}'), timeout=10, message='nothing of the task left')


def test_the_emulator_stopped_while_tasks_start_and_run_leaves_no_process(tmp_path, marker):
    process, endpoint = start_emulator(str(tmp_path))
    try:
        batch = batch_client_for(endpoint)
        create_pool(batch, 'pool', slots=4)
        wait_for_nodes(batch, 'pool')
        batch.create_job(m.BatchJobCreateOptions(id='job', pool_info=m.BatchPoolInfo(pool_id='pool')))
        batch.create_tasks('job', [m.BatchTaskCreateOptions(
            id=f't{index}', command_line=f"/bin/bash -c 'setsid sleep {marker}{index} & sleep {marker}0'")
            for index in range(1, 41)] + [m.BatchTaskCreateOptions(id=f'quick{index}', command_line='true')
                                          for index in range(200)])
        eventually(lambda: len(processes_running(f'sleep {marker}')) >= 4, message='tasks run')
    finally:
        stop_emulator(process)
    assert processes_running(f'sleep {marker}') == []


# ----- the node runner itself: a stop or a shutdown that comes while the process is being started ----------

def _runner(tmp_path) -> tuple[NodeRunner, str]:
    runner = NodeRunner(str(tmp_path / 'bin'), 'account', 'http://127.0.0.1:9')
    root = str(tmp_path / 'node')
    runner.prepare_node(root)
    return runner, root


def _run(runner: NodeRunner, root: str, key: object, command_line: str):
    task_dir = os.path.join(root, 'workitems', 'job', 'job-1', str(key))
    return runner.execute(key, command_line=command_line, task_dir=task_dir,
                          env=runner.environment(root, task_dir, {}, []), resource_files=[])


def test_a_task_stopped_while_its_process_starts_is_killed_once_it_exists(tmp_path, marker):
    async def scenario() -> tuple[bool, tuple]:
        runner, root = _runner(tmp_path)
        try:
            run = asyncio.ensure_future(_run(runner, root, 'task', f'sleep {marker}1'))
            await asyncio.sleep(0)  # the run has handed the start to a worker thread
            stopped = runner.stop('task')
            return stopped, await asyncio.wait_for(run, 30)
        finally:
            await runner.close()
    stopped, (exit_code, problem) = asyncio.run(scenario())
    assert stopped
    assert exit_code == -signal.SIGKILL and problem['code'] == 'FailureExitCode'
    assert processes_running(f'sleep {marker}') == []


def test_a_runner_closed_while_processes_start_leaves_none_running(tmp_path, marker):
    async def scenario() -> None:
        runner, root = _runner(tmp_path)
        runs = [asyncio.ensure_future(_run(runner, root, index, f"/bin/sh -c 'setsid sleep {marker}{index} & "
                                                                  f"sleep {marker}0'"))
                for index in range(1, 9)]
        await asyncio.sleep(0)  # every run has handed its start to a worker; most are still waiting for one
        await runner.close()
        await asyncio.wait(runs, timeout=30)
    asyncio.run(scenario())
    eventually(lambda: not processes_running(f'sleep {marker}'), timeout=10, message='nothing left running')
