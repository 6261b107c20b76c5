"""Benchmark: costs that grow linearly -- task dependencies over large ranges, and thousands of job schedules.

    .venv/bin/python benchmarks/bench_linear.py [--tasks 3000] [--schedules 100,600,2000]
    .venv/bin/python benchmarks/bench_linear.py --only bookkeeping --compare-with /tmp/old --bookkeeping 300,1000

Dependencies (issue 17 case 3): a job with ``usesTaskDependencies``; N parents ``0`` .. ``N-1`` that run
``true`` on one node of 8 slots are added, then N dependent tasks (most while the parents still run). In the
"unbounded" run each dependent names the range [0, 2147483647] (it waits for good: most ids of the range never
exist); in the "satisfied" run each names [0, N-1] (all are released at the last parent's end and run). A probe
asks for the job's task counts every 20 ms (from a process of its own) from before the first parent is added
until every task that can run has completed, and keeps the latency of each answer. Baseline in the same
invocation: the same 2N tasks without dependencies. Prints the probe's p50 / p99 / worst latency of each run and
the worst against the baseline's. Goal: no answer > 100 ms. "Bookkeeping alone" runs the same adds and parent
ends in one process without HTTP or task processes, at two sizes: the mean cost per add and per end stays flat.

Job schedules (issue 17 case 6, issue 19): schedules (``recurrenceInterval`` P1D, each creating its first job at
once) are created up to each count given; at each count: the median time of the last 50 creates, then the
median and worst of 50 GETs of a schedule while nothing is due, and the emulator's CPU use over 3 idle seconds.
Prints each, and the ratio at the largest count against the smallest. Goals: create <= 20 ms at 2,000, idle
costs flat. "Schedules alone" does the creates and the loop's passes in one process without HTTP, so that the
emulator's own cost shows apart from the machine's load. The emulator runs with ``--active-job-quota 10000``
(2,000 schedules and their jobs are 4,000 active jobs and schedules, beyond the default quota of 300).

``--compare-with CHECKOUT`` runs the same against another checkout's emulator too (e.g. ``git worktree add
/tmp/old main``); an old one without ``--active-job-quota`` is started without it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import multiprocessing
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

from azure.batch import BatchClient
from azure.batch import models as m
from azure.core.credentials import AzureNamedKeyCredential
from common import PROJECT_DIR, cpu_seconds

from batch_emulator import DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME

UBUNTU = m.VirtualMachineConfiguration(
    image_reference=m.BatchVmImageReference(publisher='canonical', offer='ubuntu-24_04-lts', sku='server'),
    node_agent_sku_id='batch.node.ubuntu 24.04')
WHOLE_INT32 = 2147483647
DAY = datetime.timedelta(days=1)


@contextlib.contextmanager
def emulator(project_dir: str) -> Iterator[tuple[BatchClient, int]]:
    """A ``python -m batch_emulator`` of ``project_dir`` in a temporary folder: its client and process id."""
    with tempfile.TemporaryDirectory() as location:
        command = [sys.executable, '-m', 'batch_emulator', '--port', '0', '--location', location,
                   '--node-step-seconds', '0.05']
        helped = subprocess.run([*command[:3], '--help'], cwd=project_dir, capture_output=True, text=True).stdout
        if '--active-job-quota' in helped:
            command += ['--active-job-quota', '10000']
        process = subprocess.Popen(command, cwd=project_dir, stdout=subprocess.PIPE, text=True)
        try:
            endpoint = re.search(r'(http://127\.0\.0\.1:\d+)', process.stdout.readline()).group(1)
            client = BatchClient(endpoint, AzureNamedKeyCredential(DEFAULT_ACCOUNT_NAME, DEFAULT_ACCOUNT_KEY))
            try:
                yield client, process.pid
            finally:
                client.close()
        finally:
            process.terminate()
            process.wait(30)
            process.stdout.close()


def wait_until(condition, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError('not finished in time')
        time.sleep(0.05)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


# ----- dependencies ---------------------------------------------------------------------------------------------

def probe(endpoint: str, job_id: str, expected: int, results) -> None:
    """In a process of its own (so that the client adding tasks never holds up its clock): asks for the job's task
    counts every 20 ms until ``expected`` tasks have completed; sends back each answer's latency (ms)."""
    client = BatchClient(endpoint, AzureNamedKeyCredential(DEFAULT_ACCOUNT_NAME, DEFAULT_ACCOUNT_KEY))
    latencies: list[float] = []
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        started = time.perf_counter()
        completed = client.get_job_task_counts(job_id).task_counts.completed
        latencies.append((time.perf_counter() - started) * 1000)
        if completed >= expected:
            break
        time.sleep(0.02)
    results.put(latencies)


def dependency_run(client: BatchClient, endpoint: str, job_id: str, count: int, end: int | None) -> list[float]:
    """Adds ``count`` parents, then as many dependents (range [0, end]; None: no dependencies); the probe's
    latencies (ms) until every task that can run has completed."""
    client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id='bench'),
                                              uses_task_dependencies=end is not None))
    depends = (m.BatchTaskDependencies(task_id_ranges=[m.BatchTaskIdRange(start=0, end=end)])
               if end is not None else None)
    runnable = count if end is None or end < count else 0
    context = multiprocessing.get_context('spawn')
    results = context.Queue()
    prober = context.Process(target=probe, args=(endpoint, job_id, count + runnable, results))
    prober.start()
    try:
        client.create_tasks(job_id, [m.BatchTaskCreateOptions(id=str(i), command_line='true') for i in range(count)],
                            max_concurrency=2)
        client.create_tasks(job_id, [m.BatchTaskCreateOptions(id=f'd{i}', command_line='true', depends_on=depends)
                                     for i in range(count)], max_concurrency=2)
        latencies = results.get(timeout=900)
    finally:
        prober.join(30)
    counts = client.get_job_task_counts(job_id).task_counts
    assert counts.completed == count + runnable and counts.active == count - runnable, counts
    return latencies


def dependencies(project_dir: str, count: int) -> dict[str, list[float]]:
    with emulator(project_dir) as (client, _):
        client.create_pool(m.BatchPoolCreateOptions(id='bench', vm_size='standard_d2s_v3', target_dedicated_nodes=1,
                                                    task_slots_per_node=8, virtual_machine_configuration=UBUNTU))
        wait_until(lambda: [n.state for n in client.list_nodes('bench')] == ['idle'])
        endpoint = client._config.endpoint
        return {'baseline (no dependencies)': dependency_run(client, endpoint, 'plain', count, None),
                'unbounded [0, 2147483647]': dependency_run(client, endpoint, 'unbounded', count, WHOLE_INT32),
                f'satisfied [0, {count - 1}]': dependency_run(client, endpoint, 'satisfied', count, count - 1)}


BOOKKEEPING = r"""
import asyncio, json, sys, tempfile, time
from batch_emulator.service.state import BatchState

async def main(count: int, end: int) -> dict:
    with tempfile.TemporaryDirectory() as nodes:
        state = BatchState('bench', 'http://127.0.0.1:1', nodes)
        state.create_pool({'id': 'p', 'vmSize': 'standard_d2s_v3', 'virtualMachineConfiguration': {
            'imageReference': {'publisher': 'canonical', 'offer': 'ubuntu-24_04-lts', 'sku': 'server'},
            'nodeAgentSKUId': 'batch.node.ubuntu 24.04'}})
        state.create_job({'id': 'j', 'poolInfo': {'poolId': 'p'}, 'usesTaskDependencies': True})
        job, adds, ends = state.jobs['j'], [], []
        for prefix, depends in (('', None), ('d', {'taskIdRanges': [{'start': 0, 'end': end}]})):
            for first in range(0, count, 100):
                bodies = [{'id': f'{prefix}{i}', 'commandLine': 'true', **({'dependsOn': depends} if depends else {})}
                          for i in range(first, min(count, first + 100))]
                started = time.perf_counter()
                state.add_task_collection('j', bodies)
                adds.append(time.perf_counter() - started)
        for i in range(count):  # each parent runs and ends: what the scheduler reports, without the process
            task = job.tasks[str(i)]
            started = time.perf_counter()
            state.set_task_state(task, 'running')
            state.task_finished(task, 0, None)
            ends.append(time.perf_counter() - started)
        return {'add': sum(adds) / len(adds) * 1000, 'add_worst': max(adds) * 1000, 'end': sum(ends) / count * 1000,
                'end_worst': max(ends) * 1000, 'waiting': len(job.waiting)}

print(json.dumps(asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))))
"""


def bookkeeping(project_dir: str, count: int, end: int) -> dict:
    """The dependency bookkeeping alone (no HTTP, no processes), in a process importing ``project_dir``'s emulator:
    the mean and slowest add of 100 tasks and parent end (ms), and how many tasks still wait."""
    result = subprocess.run([sys.executable, '-c', BOOKKEEPING, str(count), str(end)], cwd=project_dir, check=True,
                            capture_output=True, text=True, env={**os.environ, 'PYTHONPATH': project_dir},
                            timeout=3600)
    return json.loads(result.stdout)


def print_bookkeeping(name: str, counts: list[int]) -> None:
    print(f'dependency bookkeeping alone ({name}): N parents, N dependents on a range, then the parents end one by one')
    for end_name in ('[0, 2147483647]', '[0, N-1]'):
        rows = []
        for count in counts:
            row = bookkeeping(name if name != 'this checkout' else PROJECT_DIR, count,
                              WHOLE_INT32 if end_name.endswith('2147483647]') else count - 1)
            rows.append(row)
            print(f"  N={count:5d} {end_name:16s} add of 100: mean {row['add']:8.2f} ms, worst {row['add_worst']:8.1f} "
                  f"ms; parent end: mean {row['end']:8.3f} ms, worst {row['end_worst']:8.1f} ms; still waiting: "
                  f"{row['waiting']}")
        print(f"  {end_name}: N x{counts[-1] / counts[0]:.0f} -> mean add x{rows[-1]['add'] / rows[0]['add']:.1f}, "
              f"mean parent end x{rows[-1]['end'] / rows[0]['end']:.1f} (x1: each costs what it touches)")


# ----- job schedules --------------------------------------------------------------------------------------------

def schedules(project_dir: str, counts: list[int]) -> list[dict]:
    rows = []
    with emulator(project_dir) as (client, pid):
        created = 0
        for count in counts:
            creates = []
            while created < count:
                started = time.perf_counter()
                client.create_job_schedule(m.BatchJobScheduleCreateOptions(
                    id=f's{created}', schedule=m.BatchJobScheduleConfiguration(recurrence_interval=DAY),
                    job_specification=m.BatchJobSpecification(pool_info=m.BatchPoolInfo(pool_id='bench'))))
                creates.append((time.perf_counter() - started) * 1000)
                created += 1
            time.sleep(1)  # let whatever the creates set off settle
            gets = []
            for index in range(50):
                started = time.perf_counter()
                client.get_job_schedule(f's{index * count // 50}')
                gets.append((time.perf_counter() - started) * 1000)
            before = cpu_seconds(pid)
            time.sleep(3)
            idle_cpu = (cpu_seconds(pid) - before) / 3 * 100
            rows.append({'count': count, 'create': statistics.median(creates[-50:]), 'get': statistics.median(gets),
                         'get_worst': max(gets), 'idle_cpu': idle_cpu})
    return rows


SCHEDULES_ALONE = r"""
import asyncio, json, statistics, sys, tempfile, time
from batch_emulator.service.state import BatchState

async def main(counts: list[int]) -> list[dict]:
    with tempfile.TemporaryDirectory() as nodes:
        state = BatchState('bench', 'http://127.0.0.1:1', nodes)
        state.active_job_quota = 10000  # an older emulator has no quota: the attribute does nothing there
        creates, rows = [], []
        for count in counts:
            while len(creates) < count:
                started = time.perf_counter()
                state.create_job_schedule({'id': f's{len(creates)}', 'schedule': {'recurrenceInterval': 'P1D'},
                                           'jobSpecification': {'poolInfo': {'poolId': 'bench'}}})
                state.serve_job_schedules()  # what the loop does after each create
                creates.append(time.perf_counter() - started)
            started = time.perf_counter()
            for _ in range(20):
                state.serve_job_schedules()  # nothing is due: an idle pass
            rows.append({'count': count, 'create': statistics.median(creates[-50:]) * 1000,
                         'idle_pass': (time.perf_counter() - started) / 20 * 1000})
        return rows

print(json.dumps(asyncio.run(main([int(count) for count in sys.argv[1].split(',')]))))
"""


def schedules_alone(project_dir: str, counts: str) -> None:
    """Creates and idle passes of the schedules' loop in one process importing ``project_dir``'s emulator (no HTTP,
    no journal): what they cost the emulator itself, whatever the machine's load does to requests."""
    result = subprocess.run([sys.executable, '-c', SCHEDULES_ALONE, counts], cwd=project_dir, check=True,
                            capture_output=True, text=True, env={**os.environ, 'PYTHONPATH': project_dir},
                            timeout=3600)
    rows = json.loads(result.stdout)
    print(f'job schedules alone ({project_dir}): a create and the pass of the loop after it; an idle pass')
    for row in rows:
        print(f"  {row['count']:5d} schedules: create + its pass {row['create']:8.3f} ms (median of the last 50), "
              f"idle pass {row['idle_pass']:8.3f} ms")
    print(f"  {rows[-1]['count']} vs {rows[0]['count']}: create {rows[-1]['create'] / rows[0]['create']:.2f}x, "
          f"idle pass {rows[-1]['idle_pass'] / rows[0]['idle_pass']:.2f}x")


def print_schedules(name: str, rows: list[dict]) -> None:
    print(f'job schedules ({name}):')
    for row in rows:
        print(f"  {row['count']:5d} schedules: create {row['create']:6.1f} ms (median of the last 50), idle GET "
              f"{row['get']:5.1f} ms median / {row['get_worst']:5.1f} ms worst, idle CPU {row['idle_cpu']:4.1f}%")
    first, last = rows[0], rows[-1]
    print(f"  {last['count']} vs {first['count']}: create {last['create'] / first['create']:.2f}x, idle GET "
          f"{last['get'] / first['get']:.2f}x, idle CPU {last['idle_cpu']:.1f}% vs {first['idle_cpu']:.1f}% "
          f"({last['count'] / first['count']:.0f}x the schedules)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--tasks', type=int, default=3000, help='parents, and as many dependents (default 3000)')
    parser.add_argument('--schedules', default='100,600,2000', help='counts of job schedules to measure at')
    parser.add_argument('--only', choices=('dependencies', 'bookkeeping', 'schedules', 'schedules-alone'))
    parser.add_argument('--bookkeeping', default='300,3000', help='counts N of the bookkeeping-alone runs')
    parser.add_argument('--compare-with', metavar='CHECKOUT', help="another checkout: its emulator measured too")
    args = parser.parse_args()
    checkouts = [('this checkout', PROJECT_DIR)] + ([(args.compare_with, args.compare_with)]
                                                    if args.compare_with else [])
    for name, directory in checkouts:
        if args.only in (None, 'bookkeeping'):
            print_bookkeeping(name, [int(count) for count in args.bookkeeping.split(',')])
        if args.only in (None, 'dependencies'):
            runs = dependencies(directory, args.tasks)
            print(f'dependencies ({name}): {args.tasks} parents, then {args.tasks} dependents; the task counts '
                  'asked every 20 ms:')
            for label, latencies in runs.items():
                print(f'  {label:28s} p50 {percentile(latencies, 0.5):6.1f} ms, p99 {percentile(latencies, 0.99):7.1f} '
                      f'ms, worst {max(latencies):8.1f} ms ({len(latencies)} answers)')
            baseline = max(next(iter(runs.values())))
            worst = max(max(latencies) for latencies in list(runs.values())[1:])
            print(f'  worst with dependencies {worst:.1f} ms = {worst / baseline:.2f}x the baseline\'s worst '
                  f'({baseline:.1f} ms); goal: none > 100 ms')
        if args.only in (None, 'schedules-alone'):
            schedules_alone(directory, args.schedules)
        if args.only in (None, 'schedules'):
            print_schedules(name, schedules(directory, [int(count) for count in args.schedules.split(',')]))


if __name__ == '__main__':
    main()
