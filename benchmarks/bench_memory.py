"""Benchmark: memory figures that the tests do not assert (a threshold there would fail on a busy machine).

    .venv/bin/python benchmarks/bench_memory.py [--repeats 3]

1. count_words on text whose words are apart only by U+3000 (no ASCII whitespace), in pieces of 64 KB:
   the peak of Python allocations (tracemalloc) for 2.3 MB and for 9.4 MB of such text. Target: <= 2 MiB,
   the same for both sizes (the text is never held whole). tests/test_task.py checks the counts.
2. The emulator serving a 200 MB task file (a task's stdout.txt): the growth of its resident memory while
   the download is held after its first piece, and its peak growth over the whole download (sampled every
   50 ms). Target: <= 50 MiB (the file is streamed, not loaded). tests/test_security.py checks the bytes
   and that the emulator answers other requests meanwhile.

The task's own peak RSS on a 150 MB file (and its workers') is bench_task.py's.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc

from azure.batch import BatchClient
from azure.batch import models as m
from azure.core.credentials import AzureNamedKeyCredential
from common import PROJECT_DIR, PeakRss, rss_mib

import python_tutorial_task as task
from batch_emulator import DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME


def count_words_peak_mib(pieces: int) -> float:
    piece = ('word\u3000' * 8 + 'other\u3000').encode() * 1000
    tracemalloc.start()
    try:
        counts = task.count_words(piece for _ in range(pieces))
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert counts['word'] == 8 * 1000 * pieces
    return peak_bytes / 1024 / 1024


def download_growth_mib() -> tuple[float, float]:
    """(RSS growth after the first piece, peak RSS growth over the whole download) of the emulator, MiB."""
    with tempfile.TemporaryDirectory(prefix='bench-memory-') as location:
        emulator = subprocess.Popen([sys.executable, '-m', 'batch_emulator', '--port', '0', '--location', location,
                                     '--node-step-seconds', '0.05'], cwd=PROJECT_DIR, stdout=subprocess.PIPE,
                                    text=True, start_new_session=True)
        try:
            endpoint = re.search(r'(http://127\.0\.0\.1:\d+)', emulator.stdout.readline()).group(1)
            batch = BatchClient(endpoint, AzureNamedKeyCredential(DEFAULT_ACCOUNT_NAME, DEFAULT_ACCOUNT_KEY))
            batch.create_pool(m.BatchPoolCreateOptions(
                id='pool', vm_size='standard_d2s_v3', target_dedicated_nodes=1,
                virtual_machine_configuration=m.VirtualMachineConfiguration(
                    image_reference=m.BatchVmImageReference(publisher='canonical', offer='ubuntu-24_04-lts',
                                                            sku='server'),
                    node_agent_sku_id='batch.node.ubuntu 24.04')))
            batch.create_job(m.BatchJobCreateOptions(id='job', pool_info=m.BatchPoolInfo(pool_id='pool')))
            batch.create_task('job', m.BatchTaskCreateOptions(
                id='huge', command_line="/bin/sh -c 'head -c 200000000 /dev/zero; printf END'"))
            deadline = time.monotonic() + 120
            while batch.get_task('job', 'huge').state != 'completed':
                assert time.monotonic() < deadline, 'the task did not complete'
                time.sleep(0.1)
            before = rss_mib(emulator.pid)
            with PeakRss({'emulator': emulator.pid}) as peak:
                download = iter(batch.download_task_file('job', 'huge', 'stdout.txt'))
                next(download)
                time.sleep(0.5)  # a benchmark: let the emulator read ahead as far as it would
                held = rss_mib(emulator.pid) - before
                size = sum(len(piece) for piece in download)
            assert size > 199_000_000
            return held, peak.peaks['emulator'] - before
        finally:
            emulator.terminate()
            emulator.wait(30)
            emulator.stdout.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--repeats', type=int, default=3)
    args = parser.parse_args()
    os.chdir(PROJECT_DIR)
    small = [count_words_peak_mib(36) for _ in range(args.repeats)]
    large = [count_words_peak_mib(144) for _ in range(args.repeats)]
    print(f'count_words, U+3000 text, peak Python allocations: 2.3 MB {statistics.median(small):.2f} MiB, '
          f'9.4 MB {statistics.median(large):.2f} MiB (runs: {", ".join(f"{v:.2f}" for v in small + large)}); '
          'target <= 2 MiB for both')
    runs = [download_growth_mib() for _ in range(args.repeats)]
    print(f'emulator serving a 200 MB file: RSS growth held after the first piece '
          f'{statistics.median(r[0] for r in runs):.1f} MiB, peak growth over the download '
          f'{statistics.median(r[1] for r in runs):.1f} MiB '
          f'(runs: {", ".join(f"{held:.1f}/{peak:.1f}" for held, peak in runs)}); target <= 50 MiB')


if __name__ == '__main__':
    main()
