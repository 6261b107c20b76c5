"""Helpers shared by the benchmarks: running a command while measuring its time and peak memory."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, PROJECT_DIR)

# Runs a Python script and reports the peak resident memory of that interpreter (VmHWM, which, unlike
# getrusage, does not count pages of the process it was started from) and the largest ru_maxrss among the
# processes it started and waited for (a task's workers; 0 when it starts none).
PEAK_WRAPPER = (
    'import re, resource, runpy, sys\n'
    'script = sys.argv[1]\n'
    'sys.argv = sys.argv[1:]\n'
    'try:\n'
    '    runpy.run_path(script, run_name="__main__")\n'
    'finally:\n'
    '    status = open("/proc/self/status").read()\n'
    '    print("peak_kib", re.search(r"VmHWM:\\s+(\\d+)", status).group(1), file=sys.stderr)\n'
    '    print("children_kib", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n')


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used (user + system, not its children's): steadier than wall time on a busy
    machine."""
    with open(f'/proc/{pid}/stat') as stat:
        fields = stat.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def node_agent_cpu_seconds(emulator_pid: int) -> float:
    """CPU time of the emulator's node agent (its child that starts the tasks' processes; 0 for an emulator that
    has none, such as one before the agent)."""
    for children in glob.glob(f'/proc/{emulator_pid}/task/*/children'):
        for child in Path(children).read_text().split():
            try:
                if b'node_agent' in Path(f'/proc/{child}/cmdline').read_bytes():
                    return cpu_seconds(int(child))
            except OSError:
                continue
    return 0.0


def cpu_so_far(pid: int) -> float | None:
    """Seconds a running process's threads have spent on a CPU so far (None where /proc has no schedstat)."""
    try:
        return sum(int(Path(path).read_text().split()[0]) for path in glob.glob(f'/proc/{pid}/task/*/schedstat')) / 1e9
    except (OSError, ValueError, IndexError):
        return None


def run_python_measured(script: str, arguments: list[str], cwd: str) -> tuple[float, float, str]:
    """(seconds, peak MiB, stdout) of ``python script arguments``."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, '-c', PEAK_WRAPPER, script, *arguments], cwd=cwd, capture_output=True,
                            text=True, check=True)
    seconds = time.perf_counter() - started
    peak_kib = int(result.stderr.rsplit('peak_kib', 1)[1].split()[0])
    return seconds, peak_kib / 1024, result.stdout


class PeakRss:
    """Samples the resident memory of some processes every 50 ms; keeps each one's peak (MiB)."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.peaks = dict.fromkeys(pids, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            for name, pid in self.pids.items():
                try:
                    with open(f'/proc/{pid}/status') as status:
                        for line in status:
                            if line.startswith('VmRSS:'):
                                self.peaks[name] = max(self.peaks[name], int(line.split()[1]) / 1024)
                except OSError:
                    pass
            self._stop.wait(0.05)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()


def rss_mib(pid: int) -> float:
    with open(f'/proc/{pid}/status') as status:
        for line in status:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    return 0.0
