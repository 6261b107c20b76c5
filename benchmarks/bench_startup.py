"""Benchmark: how long the pytest fixture ``batch_emulator`` takes to be ready, against starting Python.

    .venv/bin/python benchmarks/bench_startup.py [--repeats 7]

Each repeat starts an emulator the way the fixture does (``pytest_plugin.start_batch_emulator``: a
``python -m batch_emulator`` with a temporary ``--location`` and request log, ready once it prints that it
listens) and stops it. Baselines, in turns with it in the same run: ``python -c pass`` (the interpreter
alone) and ``python -c "import aiohttp.web"`` (the server library the emulator cannot start without).
Prints the medians and ranges. Target: the fixture ready in <= 0.5 s (median).

The package is byte-compiled first (``compileall``, as ``pip install`` does), so that a checkout run with
PYTHONDONTWRITEBYTECODE=1 is not measured compiling its modules on every start; ``--no-compile`` skips it.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from common import PROJECT_DIR

from batch_emulator.pytest_plugin import start_batch_emulator


def python_seconds(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, '-c', code], cwd=PROJECT_DIR, check=True)
    return time.perf_counter() - started


def fixture_seconds() -> float:
    started = time.perf_counter()
    with start_batch_emulator():
        ready = time.perf_counter() - started
    return ready


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=7)
    parser.add_argument('--no-compile', action='store_true', help='do not byte-compile batch_emulator first')
    args = parser.parse_args()
    if not args.no_compile:
        subprocess.run([sys.executable, '-m', 'compileall', '-q', 'batch_emulator'], cwd=PROJECT_DIR, check=True)
    runs: dict[str, list[float]] = {'python -c pass': [], 'import aiohttp.web': [], 'batch_emulator ready': []}
    for _ in range(args.repeats):  # in turns, so that the machine's moods fall on all alike
        runs['python -c pass'].append(python_seconds('pass'))
        runs['import aiohttp.web'].append(python_seconds('import aiohttp.web'))
        runs['batch_emulator ready'].append(fixture_seconds())
    for name, seconds in runs.items():
        print(f'{name:>22}: median {statistics.median(seconds):.3f} s (range {min(seconds):.3f}-{max(seconds):.3f}, '
              f'{args.repeats} repeats)')
    ready, floor = statistics.median(runs['batch_emulator ready']), statistics.median(runs['import aiohttp.web'])
    print(f'fixture ready: {ready:.3f} s median (target <= 0.5 s), {ready / floor:.2f}x importing aiohttp.web')


if __name__ == '__main__':
    main()
