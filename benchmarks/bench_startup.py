"""Benchmark: how long the pytest fixture ``batch_emulator`` takes to be ready, against starting Python.

    .venv/bin/python benchmarks/bench_startup.py [--repeats 7] [--compare-with CHECKOUT]

Each repeat starts an emulator the way the fixture does (``pytest_plugin.start_batch_emulator``: a
``python -m batch_emulator`` with a temporary ``--location`` and request log, ready once it prints that it
listens) and stops it. Baselines, in turns with it in the same run: ``python -c pass`` (the interpreter
alone) and ``python -c "import aiohttp.web"`` (the server library the emulator cannot start without).
Prints the medians and ranges. Target: the fixture ready in <= 0.5 s (median). ``--compare-with CHECKOUT``
starts another checkout's emulator (its own plugin) too, in the same turns (e.g. ``git worktree add /tmp/old
main``, or ``git archive main | tar -x -C /tmp/old``).

On a shared machine the wall-clock times follow the load (printed: the load average before and after); the
CPU time each process spent until it was ready (its threads' time on a CPU when it says it has imported, or
listens, from /proc/PID/task/*/schedstat) moves much less, and is printed beside them. Each time is until the
process says it is ready (the interpreter's exit, or the emulator's stop, is not counted).

The package is byte-compiled first (``compileall``, as ``pip install`` does), so that a checkout run with
PYTHONDONTWRITEBYTECODE=1 is not measured compiling its modules on every start; ``--no-compile`` skips it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from common import PROJECT_DIR, cpu_so_far


def python_seconds(code: str) -> tuple[float, float | None]:
    """(wall, CPU) seconds of ``python -c code`` until it has run ``code`` (and says so, as the emulator does)."""
    started = time.perf_counter()
    with subprocess.Popen([sys.executable, '-c', f'{code}\nprint("done", flush=True)\nimport sys; sys.stdin.read()'],
                          cwd=PROJECT_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as process:
        if process.stdout.readline() != 'done\n':
            raise RuntimeError(f'python -c {code!r} failed')
        ready = time.perf_counter() - started
        cpu = cpu_so_far(process.pid)
        process.stdin.close()
    return ready, cpu


# A user's pytest process, with the checkout's own plugin (imported before ``common``, which puts this checkout on
# sys.path): the fixture's wall time, and the emulator's CPU time read as soon as it is ready.
FIXTURE = """
import sys, time
sys.path.insert(0, sys.argv[1])
from batch_emulator.pytest_plugin import start_batch_emulator
sys.path.append(sys.argv[2])
from common import cpu_so_far
started = time.perf_counter()
with start_batch_emulator() as emulator:
    ready = time.perf_counter() - started
    print(ready, cpu_so_far(emulator.process.pid))
"""


def fixture_seconds(checkout: str) -> tuple[float, float | None]:
    """(wall seconds until the fixture is ready, the emulator's CPU seconds until then)."""
    ready, cpu = subprocess.run([sys.executable, '-c', FIXTURE, checkout, os.path.dirname(os.path.abspath(__file__))],
                                cwd=checkout, capture_output=True, text=True, check=True).stdout.split()
    return float(ready), None if cpu == 'None' else float(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=7)
    parser.add_argument('--no-compile', action='store_true', help='do not byte-compile batch_emulator first')
    parser.add_argument('--compare-with', metavar='CHECKOUT', help="another checkout: its fixture measured too")
    args = parser.parse_args()
    checkouts = {'batch_emulator ready': PROJECT_DIR}
    if args.compare_with:
        checkouts[f'{args.compare_with} ready'] = os.path.abspath(args.compare_with)
    if not args.no_compile:
        for checkout in checkouts.values():
            subprocess.run([sys.executable, '-m', 'compileall', '-q', 'batch_emulator'], cwd=checkout, check=True)
    baselines = {'python -c pass': 'pass', 'import aiohttp.web': 'import aiohttp.web'}  # name: code
    runs: dict[str, list[float]] = {name: [] for name in [*baselines, *checkouts]}
    cpus: dict[str, list[float]] = {name: [] for name in runs}
    load_before = os.getloadavg()
    for _ in range(args.repeats):  # in turns, so that the machine's moods fall on all alike
        for name in runs:
            wall, cpu = python_seconds(baselines[name]) if name in baselines else fixture_seconds(checkouts[name])
            runs[name].append(wall)
            if cpu is not None:
                cpus[name].append(cpu)
    print(f'load average (1, 5, 15 min): before {_load(load_before)}, after {_load(os.getloadavg())} '
          f'({os.cpu_count()} CPUs)')
    for name, seconds in runs.items():
        cpu = (f'; CPU median {statistics.median(cpus[name]):.3f} s (range {min(cpus[name]):.3f}-{max(cpus[name]):.3f})'
               if cpus[name] else '')
        print(f'{name:>24}: median {statistics.median(seconds):.3f} s (range {min(seconds):.3f}-{max(seconds):.3f}, '
              f'{args.repeats} repeats){cpu}')
    ready, floor = statistics.median(runs['batch_emulator ready']), statistics.median(runs['import aiohttp.web'])
    print(f'fixture ready: {ready:.3f} s median (target <= 0.5 s), {ready / floor:.2f}x importing aiohttp.web', end='')
    if cpus['batch_emulator ready']:
        cpu_ratio = statistics.median(cpus['batch_emulator ready']) / statistics.median(cpus['import aiohttp.web'])
        print(f'; CPU until ready {cpu_ratio:.2f}x the CPU of importing aiohttp.web', end='')
    print()


def _load(averages: tuple[float, float, float]) -> str:
    return ' '.join(f'{value:.2f}' for value in averages)


if __name__ == '__main__':
    main()
