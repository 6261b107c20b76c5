"""How a task's process is started and waited for: the node agent (``runtime/node_agent.py``, a process of its
own) makes its folder, opens its output files, starts it and tells the emulator (``runtime/task_process.py``)
of its end.

What a user sees: the exit code and failureInfo the service gives (0, another code, a signal), stdout.txt and
stderr.txt, a program found on the task's PATH as subprocess finds it, a process that starts with nothing of the
emulator's (no file it has open, no signal it ignores), a task terminated or timed out mid-run with a child that
left its process group, an emulator that stops leaving no process behind (also one that was still being started,
and one that was killed), and a node agent that is lost: its tasks run again.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator

import pytest
from azure.batch import models as m

from batch_emulator.runtime.node import NodeLost, NodeRunner
from batch_emulator.runtime.node_agent import find_program
from tests.conftest import eventually
from tests.hostile import batch_client_for, node_agent_of, processes_running, start_emulator, stop_emulator
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


def test_a_task_starts_with_no_file_and_no_ignored_signal_of_the_emulator(batch_client, pool_and_job):
    """Its shell's open files are stdin (/dev/null), stdout.txt and stderr.txt, nothing the emulator or the agent
    holds (the folder the shell reads to list them is closed once listed); SIGPIPE is not ignored (Python ignores
    it in its own process), so `yes | head` ends `yes` by the signal."""
    _, job_id = pool_and_job
    batch_client.create_task(job_id, m.BatchTaskCreateOptions(
        id='fresh', command_line="/bin/bash -c 'yes | head -n 1 > /dev/null; echo ${PIPESTATUS[0]}; "
                                 "for open in /proc/$$/fd/*; do [ -e $open ] && readlink $open; done; exit 0'"))
    task = wait_for_task(batch_client, job_id, 'fresh')
    assert task.execution_info.exit_code == 0
    lines = _output(batch_client, job_id, 'fresh', 'stdout.txt').decode().splitlines()
    assert lines[0] == str(128 + signal.SIGPIPE)
    root = task.node_info.task_root_directory
    assert [os.path.basename(line) for line in lines[1:]] == ['null', 'stdout.txt', 'stderr.txt'], lines
    assert lines[1] == os.devnull and all(root in line for line in lines[2:])


@pytest.mark.parametrize('path_entries', [
    ['missing'],  # found nowhere
    ['plain'],  # found, but not executable
    ['folder'],  # a folder of that name
    ['plain', 'executable'],  # a later one that is executable
    ['folder', 'executable'],
    ['executable', 'plain'],
])
def test_a_program_is_found_on_the_tasks_path_as_subprocess_finds_it(tmp_path, path_entries):
    """The agent starts programs without subprocess (``os.posix_spawn``): it must find the same file, and refuse
    with the same error, as ``subprocess.Popen`` with the same PATH."""
    folders = []
    for index, kind in enumerate(path_entries):
        folder = tmp_path / f'{index}-{kind}'
        folder.mkdir()
        folders.append(str(folder))
        if kind == 'plain':
            (folder / 'prog').write_text('#!/bin/sh\necho plain\n')
        elif kind == 'executable':
            (folder / 'prog').write_text(f'#!/bin/sh\necho {index}\n')
            (folder / 'prog').chmod(0o755)
        elif kind == 'folder':
            (folder / 'prog').mkdir()
    path = os.pathsep.join(folders)
    try:
        expected = subprocess.run(['prog'], env={'PATH': path}, capture_output=True, text=True).stdout.strip()
    except OSError as error:
        expected = type(error)
    try:
        found = find_program('prog', path)
    except OSError as error:
        assert type(error) is expected
    else:
        assert subprocess.run([found], capture_output=True, text=True).stdout.strip() == expected


def test_a_lost_node_agent_leaves_nothing_running_and_its_nodes_reboot(tmp_path, marker):
    """As the service reboots an unhealthy node: the start task runs again, the task is retried (not counted) and
    nothing of its first run is left."""
    boots = tmp_path / 'boots'
    process, endpoint = start_emulator(str(tmp_path / 'location'))
    try:
        batch = batch_client_for(endpoint)
        create_pool(batch, 'pool', start_task=m.BatchStartTask(command_line=f"/bin/sh -c 'echo boot >> {boots}'",
                                                               wait_for_success=True))
        wait_for_nodes(batch, 'pool')
        batch.create_job(m.BatchJobCreateOptions(id='job', pool_info=m.BatchPoolInfo(pool_id='pool')))
        batch.create_task('job', m.BatchTaskCreateOptions(
            id='long', command_line=f"/bin/bash -c 'setsid sleep {marker}1 & sleep {marker}2'"))
        first_run = eventually(lambda: len(found := processes_running(f'sleep {marker}')) == 2 and set(found),
                               message='the task and its child run')
        os.kill(node_agent_of(process.pid), signal.SIGKILL)
        second_run = eventually(lambda: len(found := set(processes_running(f'sleep {marker}'))) == 2
                                and not found & first_run and found, message='the task runs again, alone')
        assert boots.read_text() == 'boot\nboot\n'  # the node rebooted before the task ran again
        task = batch.get_task('job', 'long')
        assert task.state == 'running'
        assert (task.execution_info.retry_count, task.execution_info.requeue_count) == (0, 0)
        batch.terminate_task('job', 'long')
        eventually(lambda: not processes_running(f'sleep {marker}'), timeout=10, message='nothing of it left')
        assert not first_run & second_run
    finally:
        stop_emulator(process)


def test_an_output_file_a_task_replaced_by_a_link_or_a_fifo_is_a_file_again(batch_client, pool_and_job, tmp_path):
    """A first run leaves a link to a file elsewhere in place of stdout.txt and a FIFO in place of stderr.txt: its
    retry writes to new files (a FIFO nobody reads would block the node agent, and with it every node)."""
    _, job_id = pool_and_job
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.write_text('untouched\n')
    command = (f"/bin/sh -c 'if [ -e ../planted ]; then echo second; echo to stderr >&2; exit 0; fi; touch ../planted; "
               f"ln -sf {elsewhere} ../stdout.txt; rm ../stderr.txt; mkfifo ../stderr.txt; exit 1'")
    batch_client.create_task(job_id, m.BatchTaskCreateOptions(
        id='plants', command_line=command, constraints=m.BatchTaskConstraints(max_task_retry_count=1)))
    task = wait_for_task(batch_client, job_id, 'plants')
    assert (task.execution_info.result, task.execution_info.retry_count) == ('success', 1)
    assert _output(batch_client, job_id, 'plants', 'stdout.txt') == b'second\n'
    assert _output(batch_client, job_id, 'plants', 'stderr.txt') == b'to stderr\n'
    assert elsewhere.read_text() == 'untouched\n'


def test_a_program_the_kernel_cannot_run_fails_its_task_and_says_why(tmp_path):
    """No shebang, not a binary: the start fails (ENOEXEC) and the task fails with the reason, not left running."""
    async def scenario() -> tuple:
        runner, root = _runner(tmp_path)
        working_dir = os.path.join(root, 'workitems', 'job', 'job-1', 'garbled', 'wd')
        os.makedirs(working_dir)
        with open(os.path.join(working_dir, 'garbled'), 'wb') as file:
            file.write(b'\x00\x01\x02 not a program')
        os.chmod(os.path.join(working_dir, 'garbled'), 0o755)
        try:
            return await asyncio.wait_for(_run(runner, root, 'garbled', './garbled'), 30)
        finally:
            await runner.close()
    exit_code, problem = asyncio.run(scenario())
    assert exit_code is None and problem['code'] == 'CommandProgramNotFound'
    assert problem['details'] == [{'name': 'Message', 'value': './garbled: Exec format error'}]


def test_no_signal_the_emulator_ignores_is_ignored_by_a_task(tmp_path):
    """An emulator started under nohup ignores SIGHUP (Python itself ignores SIGPIPE and SIGXFSZ): its tasks start
    with every signal's default action, none blocked."""
    async def scenario() -> tuple:
        runner, root = _runner(tmp_path)  # its node agent inherits what this process ignores
        try:
            return root, await _run(runner, root, 'masks', "grep -E '^Sig(Ign|Blk)' /proc/self/status")
        finally:
            await runner.close()
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        root, (exit_code, problem) = asyncio.run(scenario())
    finally:
        signal.signal(signal.SIGHUP, previous)
    assert (exit_code, problem) == (0, None)
    with open(os.path.join(root, 'workitems', 'job', 'job-1', 'masks', 'stdout.txt'), encoding='ascii') as file:
        masks = {name: int(value, 16) for name, value in (line.split(':') for line in file.read().splitlines())}
    # 32 and 33 are glibc's own (thread cancellation, set*id): no program can use them, and glibc's posix_spawn
    # leaves them ignored in every child it starts.
    ignored = {number for number in range(1, 65) if masks['SigIgn'] >> (number - 1) & 1} - {32, 33}
    assert ignored == set() and masks['SigBlk'] == 0


def test_an_emulator_killed_takes_what_its_tasks_run_with_it(tmp_path, marker):
    """Killed (SIGKILL), the emulator can do nothing; its node agent sees it go and stops every task."""
    process, endpoint = start_emulator(str(tmp_path))
    try:
        batch = batch_client_for(endpoint)
        create_pool(batch, 'pool')
        wait_for_nodes(batch, 'pool')
        batch.create_job(m.BatchJobCreateOptions(id='job', pool_info=m.BatchPoolInfo(pool_id='pool')))
        batch.create_task('job', m.BatchTaskCreateOptions(
            id='long', command_line=f"/bin/bash -c 'setsid sleep {marker}1 & sleep {marker}2'"))
        eventually(lambda: len(processes_running(f'sleep {marker}')) == 2, message='the task and its child run')
        agent = node_agent_of(process.pid)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(15)
        process.stdout.close()
    eventually(lambda: not processes_running(f'sleep {marker}'), timeout=10, message='nothing of the task left')
    eventually(lambda: not os.path.exists(f'/proc/{agent}') or _state(agent) == 'Z', timeout=10,
               message='the agent ended')


def _state(pid: int) -> str | None:
    try:
        with open(f'/proc/{pid}/stat', encoding='utf-8') as file:
            return file.read().rsplit(')', 1)[1].split()[0]
    except OSError:
        return None


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


def test_a_task_whose_node_goes_away_while_it_starts_is_lost_with_its_node(tmp_path, marker):
    """The node dies (its folder removed) after the start was asked for and before the agent made the task's
    folder: the run ends as its node's loss (the scheduler requeues the task), not as an error that left the task
    running for ever."""
    async def scenario() -> None:
        runner, root = _runner(tmp_path)
        try:
            run = asyncio.ensure_future(_run(runner, root, 'task', f'sleep {marker}1'))
            await asyncio.sleep(0)  # the start is asked for; the agent has not had it yet
            assert runner.lose('task')
            shutil.rmtree(root)
            with pytest.raises(NodeLost):
                await asyncio.wait_for(run, 30)
        finally:
            await runner.close()
    asyncio.run(scenario())
    assert processes_running(f'sleep {marker}') == []
    assert not os.path.exists(tmp_path / 'node')  # the node's folder was not made again


def test_a_task_whose_folder_cannot_be_made_fails_and_says_why(tmp_path, marker):
    async def scenario() -> tuple:
        runner, root = _runner(tmp_path)
        try:
            with open(os.path.join(root, 'workitems', 'job'), 'w'):  # a file where the job's folder goes
                pass
            return await asyncio.wait_for(_run(runner, root, 'task', f'sleep {marker}1'), 30)
        finally:
            await runner.close()
    exit_code, problem = asyncio.run(scenario())
    assert exit_code is None
    assert (problem['category'], problem['code']) == ('usererror', 'CommandLaunchFailed')
    assert 'Not a directory' in problem['details'][0]['value']
    assert processes_running(f'sleep {marker}') == []
