"""Benchmark: how fast the Batch emulator dispatches and runs tasks, against a bare asyncio loop.

    .venv/bin/python benchmarks/bench_emulator.py [--tasks 10000] [--slots 4]

The node folders lie in the temporary folder (TMPDIR, /tmp by default); the benchmark first prints what a mkdir
and a new file cost there, since each task makes two of each (``TMPDIR=/var/tmp`` measures another place).

Baseline (same run, same machine): a bare asyncio loop starting `true` as a process, N times,
over the same number of slots; and the same loop starting each process as a node starts a task (its
own folder as working directory, stdout/stderr files, its own session and environment), the floor of
anything that does what a node does. Then the emulator (a real `python -m batch_emulator` process,
driven over HTTP by azure-batch) runs N trivial tasks (`true`) on one node with that many
slots — with everything a task costs there: its folder, stdout/stderr files, state changes
and the journal. Prints tasks per second and the ratio to the baseline, the median and 95th
percentile dispatch latency (task added -> running) on an idle slot, the CPU time the emulator's
process and its node agent's spend per task (against the two loops' own), the time to list every
task (whole bodies, as the service writes them), the time to add 3,000 tasks with azure-batch's
``create_tasks`` (``addtaskcollection``, 100 a request, to a job whose pool has no nodes; the median of five;
with 4 threads as the tutorial calls it, where the client's models are the limit, and as called without
``max_concurrency``, one request after another; and the 4 threads' requests with their bodies written beforehand,
which leaves out azure-batch's models; and, as a baseline, the same create_tasks calls against a server that
answers at once, ``instant_answers.py``: the client's own time), and the emulator's memory per 10,000 completed
tasks.
Targets: >= 300 tasks/s, median dispatch <= 20 ms.

    .venv/bin/python benchmarks/bench_emulator.py --tasks 5000 --compare-with /tmp/old --rounds 3

measures another checkout's emulator in turns with this one (e.g. the one before the spec-driven
wire layer: `git worktree add /tmp/old 776a5fb`) and prints both.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

from azure.batch import BatchClient
from azure.batch import models as m
from azure.batch._utils.model_base import _deserialize  # what list_tasks turns each page into models with
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.rest import HttpRequest
from common import PROJECT_DIR, cpu_seconds, node_agent_cpu_seconds, rss_mib

from batch_emulator import DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME

ADD_TURNS = 5  # the tasks are added this many times (to new jobs) in each measurement
UBUNTU = m.VirtualMachineConfiguration(
    image_reference=m.BatchVmImageReference(publisher='canonical', offer='ubuntu-24_04-lts', sku='server'),
    node_agent_sku_id='batch.node.ubuntu 24.04')


async def bare_loop(count: int, slots: int) -> float:
    """Processes per second of a bare asyncio loop: the ceiling for any emulator."""
    semaphore = asyncio.Semaphore(slots)

    async def one() -> None:
        async with semaphore:
            process = await asyncio.create_subprocess_exec('true')
            await process.wait()
    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    return count / (time.perf_counter() - started)


async def task_loop(count: int, slots: int) -> float:
    """The same loop, each process started as a node starts a task: in a folder of its own made for it (its
    working directory), stdout and stderr appended to files there, a session and process group of its own
    and an environment of its own. The floor for an emulator that does what a node does."""
    semaphore = asyncio.Semaphore(slots)
    environment = {'PATH': os.environ.get('PATH', '/usr/bin:/bin'), 'LANG': 'C.UTF-8'}

    async def one(index: int) -> None:
        async with semaphore:
            task_dir = os.path.join(root, 'workitems', 'job', 'job-1', f'task{index}')
            working_dir = os.path.join(task_dir, 'wd')
            os.makedirs(working_dir, mode=0o700, exist_ok=True)
            with open(os.path.join(task_dir, 'stdout.txt'), 'ab') as stdout, \
                    open(os.path.join(task_dir, 'stderr.txt'), 'ab') as stderr:
                process = await asyncio.create_subprocess_exec(
                    'true', cwd=working_dir, env=environment, stdin=asyncio.subprocess.DEVNULL, stdout=stdout,
                    stderr=stderr, start_new_session=True)
            await process.wait()
    with tempfile.TemporaryDirectory() as root:
        started = time.perf_counter()
        await asyncio.gather(*(one(index) for index in range(count)))
        return count / (time.perf_counter() - started)



def folder_costs() -> tuple[float, float]:
    """Microseconds of CPU a mkdir and a new file cost in the temporary folder (TMPDIR), where the node folders
    of this benchmark lie: every task makes two of each, so a slow file system shows in the floor and in the
    emulator alike (on the project's machine /tmp costs 355 µs a mkdir, /var/tmp on the same disk 18 µs)."""
    with tempfile.TemporaryDirectory() as folder:
        started = time.process_time()
        for index in range(200):
            os.mkdir(os.path.join(folder, str(index)))
        mkdir = (time.process_time() - started) / 200 * 1e6
        started = time.process_time()
        for index in range(200):
            os.close(os.open(os.path.join(folder, str(index), 'stdout.txt'), os.O_WRONLY | os.O_CREAT, 0o600))
        return mkdir, (time.process_time() - started) / 200 * 1e6


def parse_time(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text, '%Y-%m-%dT%H:%M:%S.%fZ')


def wait_until(condition, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError('the emulator did not finish in time')
        time.sleep(0.05)


def add_written(batch: BatchClient, url: str, count: int) -> float:
    """Seconds to add ``count`` tasks as create_tasks sends them (100 a request, 4 threads), bodies written first."""
    bodies = [json.dumps({'value': [{'id': f'r{i}', 'commandLine': 'true'}
                                    for i in range(start, min(start + 100, count))]}) for start in range(0, count, 100)]

    def send(body: str) -> None:
        response = batch.send_request(HttpRequest('POST', url, content=body, headers={
            'Content-Type': 'application/json; odata=minimalmetadata; charset=utf-8'}))
        assert response.status_code == 200 and '"clienterror"' not in response.text(), response.text()[:300]

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(send, bodies))
    return time.perf_counter() - started


def client_floor(add_tasks: int) -> tuple[float, float]:
    """Seconds ``create_tasks`` takes (median of ADD_TURNS; 4 threads, and one request at a time) against a server
    that answers at once (``instant_answers.py``): the client's own time, the least any emulator can give it."""
    server = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), 'instant_answers.py')],
                              stdout=subprocess.PIPE, text=True)
    try:
        batch = BatchClient(server.stdout.readline().strip(),
                            AzureNamedKeyCredential(DEFAULT_ACCOUNT_NAME, DEFAULT_ACCOUNT_KEY))
        times: dict[int, list[float]] = {4: [], 0: []}
        for threads, turn in [(threads, turn) for threads in times for turn in range(ADD_TURNS)]:
            adding = [m.BatchTaskCreateOptions(id=f'a{i}', command_line='true') for i in range(add_tasks)]
            added = time.perf_counter()
            batch.create_tasks(f'floor{turn}', adding, max_concurrency=threads)
            times[threads].append(time.perf_counter() - added)
    finally:
        server.terminate()
        server.wait(30)
    return statistics.median(times[4]), statistics.median(times[0])


def measure(project_dir: str, tasks: int, slots: int, add_tasks: int = 3000) -> dict:
    """One emulator (from ``project_dir``): dispatch latency, throughput, memory and the time to list every task."""
    with tempfile.TemporaryDirectory() as location:
        emulator = subprocess.Popen(
            [sys.executable, '-m', 'batch_emulator', '--port', '0', '--location', location,
             '--node-step-seconds', '0.05'], cwd=project_dir, stdout=subprocess.PIPE, text=True)
        try:
            endpoint = re.search(r'(http://127\.0\.0\.1:\d+)', emulator.stdout.readline()).group(1)
            batch = BatchClient(endpoint, AzureNamedKeyCredential(DEFAULT_ACCOUNT_NAME, DEFAULT_ACCOUNT_KEY))
            batch.create_pool(m.BatchPoolCreateOptions(id='bench', vm_size='standard_d2s_v3',
                                                       target_dedicated_nodes=1, task_slots_per_node=slots,
                                                       virtual_machine_configuration=UBUNTU))
            wait_until(lambda: [n.state for n in batch.list_nodes('bench')] == ['idle'])

            # Dispatch latency: one task at a time on an idle slot (service-side timestamps).
            batch.create_job(m.BatchJobCreateOptions(id='latency', pool_info=m.BatchPoolInfo(pool_id='bench')))
            latencies = []
            for index in range(50):
                batch.create_task('latency', m.BatchTaskCreateOptions(id=f'l{index}', command_line='true'))
                wait_until(lambda index=index: batch.get_task('latency', f'l{index}').state == 'completed')
                task = batch.get_task('latency', f'l{index}')
                started = parse_time(task.execution_info.as_dict()['startTime'])
                latencies.append((started - parse_time(task.as_dict()['creationTime'])).total_seconds() * 1000)

            # Throughput and memory: N trivial tasks over the node's slots.
            memory_before, cpu_before = rss_mib(emulator.pid), cpu_seconds(emulator.pid)
            agent_before = node_agent_cpu_seconds(emulator.pid)
            batch.create_job(m.BatchJobCreateOptions(id='throughput', pool_info=m.BatchPoolInfo(pool_id='bench')))
            batch.create_tasks('throughput', [m.BatchTaskCreateOptions(id=f't{i}', command_line='true')
                                              for i in range(tasks)], max_concurrency=4)
            wait_until(lambda: batch.get_job_task_counts('throughput').task_counts.completed == tasks)
            memory_after, cpu_after = rss_mib(emulator.pid), cpu_seconds(emulator.pid)
            agent_cpu = node_agent_cpu_seconds(emulator.pid) - agent_before
            listed = time.perf_counter()
            every_task = list(batch.list_tasks('throughput'))  # whole bodies, as the service writes them
            list_seconds = time.perf_counter() - listed
            # The same pages over the same signed pipeline, only decoded as JSON: what the emulator costs, without
            # azure-batch turning each task into its model classes (most of the time above).
            listed = time.perf_counter()
            link, pages = f'{endpoint}/jobs/throughput/tasks?api-version=2025-06-01', []
            while link:
                pages.append(batch.send_request(HttpRequest('GET', link)).json())
                link = pages[-1].get('odata.nextLink')
            raw_list_seconds = time.perf_counter() - listed
            assert sum(len(page['value']) for page in pages) == tasks
            # azure-batch's own part: its models built from those pages, already in memory (no HTTP, no emulator).
            modelled = time.perf_counter()
            for page in pages:
                list(_deserialize(list[m.BatchTask], page['value']))
            model_seconds = time.perf_counter() - modelled
            selected = list(batch.list_tasks('throughput', select=['executionInfo']))
            first_start = min(parse_time(t.as_dict()['executionInfo']['startTime']) for t in selected)
            last_end = max(parse_time(t.as_dict()['executionInfo']['endTime']) for t in selected)
            failed = sum(t.execution_info.result != 'success' for t in every_task)

            # addtaskcollection: tasks that wait (their pool has no nodes), so that nothing else runs meanwhile.
            batch.create_pool(m.BatchPoolCreateOptions(id='empty', vm_size='standard_d2s_v3', target_dedicated_nodes=0,
                                                       virtual_machine_configuration=UBUNTU))
            empty_pool = m.BatchPoolInfo(pool_id='empty')
            # Five times each, to new jobs (the median time; the CPU over all five, which /proc counts in 10 ms steps).
            times, serial_times, raw_times, add_cpu = [], [], [], cpu_seconds(emulator.pid)
            for turn in range(ADD_TURNS):
                batch.create_job(m.BatchJobCreateOptions(id=f'adding{turn}', pool_info=empty_pool))
                adding = [m.BatchTaskCreateOptions(id=f'a{i}', command_line='true') for i in range(add_tasks)]
                added = time.perf_counter()
                batch.create_tasks(f'adding{turn}', adding, max_concurrency=4)
                times.append(time.perf_counter() - added)
            add_cpu = cpu_seconds(emulator.pid) - add_cpu
            # As create_tasks adds them when called without max_concurrency: each request waits for the one before,
            # so the emulator's time adds to the client's.
            for turn in range(ADD_TURNS):
                batch.create_job(m.BatchJobCreateOptions(id=f'serial{turn}', pool_info=empty_pool))
                adding = [m.BatchTaskCreateOptions(id=f'a{i}', command_line='true') for i in range(add_tasks)]
                added = time.perf_counter()
                batch.create_tasks(f'serial{turn}', adding)
                serial_times.append(time.perf_counter() - added)
            # The same requests with their bodies written beforehand (as azure-batch writes them): the time the
            # emulator takes, without the client's models (above, the client's one thread is the limit).
            for turn in range(ADD_TURNS):
                batch.create_job(m.BatchJobCreateOptions(id=f'written{turn}', pool_info=empty_pool))
                raw_times.append(add_written(
                    batch, f'{endpoint}/jobs/written{turn}/addtaskcollection?api-version=2025-06-01', add_tasks))
            add_seconds, raw_add_seconds = statistics.median(times), statistics.median(raw_times)
        finally:
            emulator.terminate()
            emulator.wait(30)
    latencies.sort()
    return {'rate': tasks / (last_end - first_start).total_seconds(), 'failed': failed,
            'median': statistics.median(latencies), 'p95': latencies[int(len(latencies) * 0.95) - 1],
            'memory': (memory_after - memory_before) * 10_000 / tasks, 'memory_before': memory_before,
            'memory_after': memory_after, 'list_seconds': list_seconds, 'add_seconds': add_seconds,
            'raw_list_seconds': raw_list_seconds, 'model_seconds': model_seconds, 'raw_add_seconds': raw_add_seconds,
            'serial_add_seconds': statistics.median(serial_times),
            'cpu_ms': (cpu_after - cpu_before) * 1000 / tasks, 'agent_cpu_ms': agent_cpu * 1000 / tasks,
            'add_cpu_ms': add_cpu * 1000 / (add_tasks * ADD_TURNS)}


def _range(values: list[float]) -> str:
    """'low-high', with as many decimals as the size of the values needs (0.071-0.078 s, 1.68-1.89 s, 1247-1343/s)."""
    digits = 3 if max(values) < 1 else 2 if max(values) < 100 else 0
    return f'{min(values):.{digits}f}-{max(values):.{digits}f}'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--tasks', type=int, default=10_000)
    parser.add_argument('--slots', type=int, default=4)
    parser.add_argument('--add-tasks', type=int, default=3000, help='tasks added with create_tasks (timed)')
    parser.add_argument('--compare-with', metavar='CHECKOUT',
                        help='another checkout of this project (e.g. `git worktree add /tmp/old 776a5fb`): its '
                             'emulator is measured in turns with this one and both are printed')
    parser.add_argument('--rounds', type=int, default=3, help='turns each with --compare-with (medians printed)')
    args = parser.parse_args()

    loop_tasks = min(args.tasks, 2000)
    started = time.process_time()
    baseline = asyncio.run(bare_loop(loop_tasks, args.slots))
    bare_cpu_ms, started = (time.process_time() - started) * 1000 / loop_tasks, time.process_time()
    floor = asyncio.run(task_loop(loop_tasks, args.slots))
    floor_cpu_ms = (time.process_time() - started) * 1000 / loop_tasks
    mkdir, create = folder_costs()
    add_floor, serial_add_floor = client_floor(args.add_tasks)
    print(f'node folders in {tempfile.gettempdir()} (TMPDIR): a mkdir {mkdir:.0f} µs, a new file {create:.0f} µs of '
          f'CPU; each task makes two of each')
    print(f'bare asyncio loop:   {baseline:7.0f} processes/s over {args.slots} slots (baseline)')
    print(f'  started as tasks:  {floor:7.0f} processes/s (folder, files, session: a node\'s floor; '
          f'{floor / baseline:.2f}x the bare loop)')
    print(f'create_tasks, {args.add_tasks} tasks, against a server that answers at once: {add_floor:.3f} s with 4 '
          f'threads, {serial_add_floor:.3f} s one request at a time (the client\'s floor for adding)')
    if not args.compare_with:
        result = measure(PROJECT_DIR, args.tasks, args.slots, args.add_tasks)
        print(f"emulator:            {result['rate']:7.0f} tasks/s over {args.slots} slots = "
              f"{result['rate'] / baseline:.2f}x the baseline, {result['rate'] / floor:.2f}x the task floor "
              f"({args.tasks} tasks, {result['failed']} failed)")
        cpu_ms = result['cpu_ms']
        print(f"CPU per task:        emulator {cpu_ms:.2f} ms (its own process: adding, dispatching, keeping the "
              f"books, polled) and its node agent {result['agent_cpu_ms']:.2f} ms (starting, waiting, collecting); "
              f"the task floor's loop {floor_cpu_ms:.2f} ms ({floor_cpu_ms / cpu_ms:.2f}x the emulator's), "
              f"the bare loop {bare_cpu_ms:.2f} ms ({bare_cpu_ms / cpu_ms:.2f}x)")
        print(f"dispatch latency:    median {result['median']:.1f} ms, p95 {result['p95']:.1f} ms "
              f'(task added -> running, idle slot, 50 tasks)')
        print(f"list every task:     {result['list_seconds']:.2f} s for {args.tasks} tasks (whole bodies, pages "
              f"of 1000, azure-batch's list_tasks); the same pages fetched and decoded as JSON: "
              f"{result['raw_list_seconds']:.2f} s; azure-batch building its models from them in memory: "
              f"{result['model_seconds']:.2f} s")
        print(f"add tasks:           {result['add_seconds']:.2f} s for {args.add_tasks} tasks (create_tasks, "
              f"addtaskcollection of 100, 4 threads); the emulator's CPU: {result['add_cpu_ms']:.3f} ms per task; "
              f"the same requests with their bodies written beforehand: {result['raw_add_seconds']:.3f} s; "
              f"create_tasks without max_concurrency (one request at a time): {result['serial_add_seconds']:.2f} s; "
              f"{result['add_seconds'] / add_floor:.2f}x and {result['serial_add_seconds'] / serial_add_floor:.2f}x "
              f"the client's floor")
        print(f"emulator memory:     {result['memory_before']:.0f} MiB before, {result['memory_after']:.0f} MiB "
              f"after -> {result['memory']:.0f} MiB per 10,000 completed tasks")
        return
    runs: dict[str, list[dict]] = {'this checkout': [], args.compare_with: []}
    for _ in range(args.rounds):  # in turns, so that the machine's moods fall on both alike
        for name, directory in (('this checkout', PROJECT_DIR), (args.compare_with, args.compare_with)):
            runs[name].append(measure(directory, args.tasks, args.slots, args.add_tasks))
    keys = ('rate', 'median', 'list_seconds', 'raw_list_seconds', 'model_seconds', 'add_seconds', 'add_cpu_ms',
            'raw_add_seconds', 'serial_add_seconds', 'cpu_ms', 'agent_cpu_ms')
    medians = {name: {key: statistics.median(run[key] for run in results) for key in keys}
               for name, results in runs.items()}
    for name, values in medians.items():
        spread = {key: _range([run[key] for run in runs[name]]) for key in keys}
        print(f"{name:>20}: {values['rate']:6.0f} tasks/s ({values['rate'] / baseline:.2f}x the baseline, "
              f"{values['rate'] / floor:.2f}x the task floor; "
              f"{spread['rate']}), dispatch median {values['median']:.1f} ms, list every task "
              f"{values['list_seconds']:.2f} s ({spread['list_seconds']}; pages as JSON only "
              f"{values['raw_list_seconds']:.2f} s, {spread['raw_list_seconds']}; azure-batch's models from them "
              f"{values['model_seconds']:.2f} s, {spread['model_seconds']}), add {args.add_tasks} tasks "
              f"{values['add_seconds']:.2f} s ({spread['add_seconds']}; emulator CPU {values['add_cpu_ms']:.3f} ms a "
              f"task, {spread['add_cpu_ms']}; bodies written beforehand {values['raw_add_seconds']:.3f} s, "
              f"{spread['raw_add_seconds']}; one request at a time {values['serial_add_seconds']:.3f} s, "
              f"{spread['serial_add_seconds']}), CPU running {values['cpu_ms']:.2f} ms per task "
              f"({spread['cpu_ms']}) and its node agent's {values['agent_cpu_ms']:.2f} ms ({spread['agent_cpu_ms']}) "
              f"(medians of {args.rounds}, range)")
    this, other = medians['this checkout'], medians[args.compare_with]
    print(f"this checkout vs the other: throughput {this['rate'] / other['rate']:.2f}x, "
          f"listing {this['list_seconds'] / other['list_seconds']:.2f}x the time (pages as JSON only: "
          f"{this['raw_list_seconds'] / other['raw_list_seconds']:.2f}x), "
          f"adding {this['add_seconds'] / other['add_seconds']:.2f}x the time (the emulator's CPU: "
          f"{this['add_cpu_ms'] / other['add_cpu_ms']:.2f}x; bodies written beforehand: "
          f"{this['raw_add_seconds'] / other['raw_add_seconds']:.2f}x the time; one request at a time: "
          f"{this['serial_add_seconds'] / other['serial_add_seconds']:.2f}x the time; against the client's floor "
          f"{this['add_seconds'] / add_floor:.2f}x and {other['add_seconds'] / add_floor:.2f}x with 4 threads, "
          f"{this['serial_add_seconds'] / serial_add_floor:.2f}x and "
          f"{other['serial_add_seconds'] / serial_add_floor:.2f}x one at a time), "
          f"CPU per task run {this['cpu_ms'] / other['cpu_ms']:.2f}x")


if __name__ == '__main__':
    main()
