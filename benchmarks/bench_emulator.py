"""Benchmark: how fast the Batch emulator dispatches and runs tasks, against a bare asyncio loop.

    .venv/bin/python benchmarks/bench_emulator.py [--tasks 10000] [--slots 4]

Baseline (same run, same machine): a bare asyncio loop starting `true` as a process, N times,
over the same number of slots. Then the emulator (a real `python -m batch_emulator` process,
driven over HTTP by azure-batch) runs N trivial tasks (`true`) on one node with that many
slots — with everything a task costs there: its folder, stdout/stderr files, state changes
and the journal. Prints tasks per second and the ratio to the baseline, the median and 95th
percentile dispatch latency (task added -> running) on an idle slot, and the emulator's
memory per 10,000 completed tasks. Targets: >= 300 tasks/s, median dispatch <= 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import re
import statistics
import subprocess
import sys
import tempfile
import time

from azure.batch import BatchClient
from azure.batch import models as m
from azure.core.credentials import AzureNamedKeyCredential
from common import PROJECT_DIR, rss_mib

from batch_emulator import DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME

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


def parse_time(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text, '%Y-%m-%dT%H:%M:%S.%fZ')


def wait_until(condition, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError('the emulator did not finish in time')
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--tasks', type=int, default=10_000)
    parser.add_argument('--slots', type=int, default=4)
    args = parser.parse_args()

    baseline = asyncio.run(bare_loop(min(args.tasks, 2000), args.slots))

    with tempfile.TemporaryDirectory() as location:
        emulator = subprocess.Popen(
            [sys.executable, '-m', 'batch_emulator', '--port', '0', '--location', location,
             '--node-step-seconds', '0.05'], cwd=PROJECT_DIR, stdout=subprocess.PIPE, text=True)
        try:
            endpoint = re.search(r'(http://127\.0\.0\.1:\d+)', emulator.stdout.readline()).group(1)
            batch = BatchClient(endpoint, AzureNamedKeyCredential(DEFAULT_ACCOUNT_NAME, DEFAULT_ACCOUNT_KEY))
            batch.create_pool(m.BatchPoolCreateOptions(id='bench', vm_size='standard_d2s_v3',
                                                       target_dedicated_nodes=1, task_slots_per_node=args.slots,
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
            memory_before = rss_mib(emulator.pid)
            batch.create_job(m.BatchJobCreateOptions(id='throughput', pool_info=m.BatchPoolInfo(pool_id='bench')))
            batch.create_tasks('throughput', [m.BatchTaskCreateOptions(id=f't{i}', command_line='true')
                                              for i in range(args.tasks)], max_concurrency=4)
            wait_until(lambda: batch.get_job_task_counts('throughput').task_counts.completed == args.tasks)
            memory_after = rss_mib(emulator.pid)
            tasks = list(batch.list_tasks('throughput', select=['executionInfo']))
            first_start = min(parse_time(t.as_dict()['executionInfo']['startTime']) for t in tasks)
            last_end = max(parse_time(t.as_dict()['executionInfo']['endTime']) for t in tasks)
            failed = sum(t.execution_info.result != 'success' for t in tasks)
        finally:
            emulator.terminate()
            emulator.wait(30)

    rate = args.tasks / (last_end - first_start).total_seconds()
    latencies.sort()
    print(f'bare asyncio loop:   {baseline:7.0f} processes/s over {args.slots} slots (baseline)')
    print(f'emulator:            {rate:7.0f} tasks/s over {args.slots} slots = {rate / baseline:.2f}x the baseline '
          f'({args.tasks} tasks, {failed} failed)')
    print(f'dispatch latency:    median {statistics.median(latencies):.1f} ms, '
          f'p95 {latencies[int(len(latencies) * 0.95) - 1]:.1f} ms (task added -> running, idle slot, 50 tasks)')
    print(f'emulator memory:     {memory_before:.0f} MiB before, {memory_after:.0f} MiB after -> '
          f'{(memory_after - memory_before) * 10_000 / args.tasks:.0f} MiB per 10,000 completed tasks')


if __name__ == '__main__':
    main()
