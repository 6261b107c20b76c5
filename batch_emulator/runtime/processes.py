"""Finding and stopping every process a node started, however it tried to get away.

A task's command runs in a process group of its own, so ``sleep 3001 &`` dies with
the group. ``setsid sleep 3002 &`` leaves the group (and the session), and once its
parent exits it is re-parented, so the group alone cannot find it. Two things can:

- the node agent that starts the tasks (``node_agent.py``) is a *child subreaper* (Linux
  ``PR_SET_CHILD_SUBREAPER``): every orphan a task leaves becomes a child of the agent instead of
  init, so the survivors of the tasks are always below its own children. The emulator is one too:
  if the agent is lost, its tasks come to the emulator, which kills them;
- every process of a task inherits the variables the node set for it:
  ``AZ_BATCH_TASK_DIR`` names the task (unique per job and task on a node) and
  ``AZ_BATCH_NODE_ROOT_DIR`` names the node. A survivor is recognised by them.

The agent, and an emulator that is a process of its own (``python -m batch_emulator``,
``claim_every_child``), take every child they did not start for a task's orphan, even one that
cleared its environment. An emulator served inside another program (a test's own process) takes
only children that carry a node's ``AZ_BATCH_NODE_ROOT_DIR``: the program's own children (another
emulator, Azurite) are not its to reap or kill.

When the emulator is killed (``kill -9``), the agent sees it go and kills every task. After both
were killed, the tasks' processes went to init: a restart from ``--location`` scans every process
for the node folders of that location, and kills recorded process groups only if the process still
has the start time that was recorded (a reused process id is never touched).

Processes are stopped (SIGSTOP) before they are killed, so a process that forks
in a loop cannot outrun the search. Off Linux, only process groups are used.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable

_PR_SET_CHILD_SUBREAPER = 36
_log = logging.getLogger('batch_emulator.runtime.processes')
_subreaper = False
_every_child_is_ours = False


def become_subreaper() -> bool:
    """Makes orphaned descendants children of this process (Linux); True when it worked."""
    global _subreaper
    if sys.platform.startswith('linux') and not _subreaper:
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            _subreaper = libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    return _subreaper


def claim_every_child() -> None:
    """This process is the emulator and nothing else: every child it did not start is a task's orphan."""
    global _every_child_is_ours
    _every_child_is_ours = True


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or None."""
    try:
        with open(f'/proc/{pid}/stat', 'rb') as file:
            fields = file.read().rsplit(b')', 1)[1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def _status(pid: int) -> str | None:
    try:
        with open(f'/proc/{pid}/stat', 'rb') as file:
            return file.read().rsplit(b')', 1)[1].split()[0].decode()
    except (OSError, IndexError):
        return None


def children(pid: int | str) -> list[int]:
    """The direct children of a process (all its threads'), from /proc."""
    found = []
    try:
        threads = os.listdir(f'/proc/{pid}/task')
    except OSError:
        return found
    for thread in threads:
        with contextlib.suppress(OSError, ValueError):
            found.extend(_listed_children(f'/proc/{pid}/task/{thread}/children'))
    return found


def _listed_children(path: str) -> list[int]:
    """The process ids a ``/proc/PID/task/TID/children`` file lists."""
    with open(path, 'rb') as file:
        return [int(child) for child in file.read().split()]


def _descendants(roots: Iterable[int]) -> set[int]:
    found: set[int] = set()
    pending = list(roots)
    while pending:
        pid = pending.pop()
        if pid in found or pid <= 1:
            continue
        found.add(pid)
        pending.extend(children(pid))
    return found


def environment_variable(pid: int, name: str) -> str | None:
    """A variable of a running process's environment as it started (None: unreadable or unset)."""
    try:
        with open(f'/proc/{pid}/environ', 'rb') as file:
            data = file.read(1 << 20)
    except OSError:
        return None
    prefix = name.encode() + b'='
    for entry in data.split(b'\0'):
        if entry.startswith(prefix):
            return entry[len(prefix):].decode('utf-8', 'surrogateescape')
    return None


def kill_trees(roots: Iterable[int], groups: Iterable[int] = ()) -> int:
    """Stops, then kills, the given processes, everything below them and the given process groups."""
    roots, groups = set(roots), set(groups)
    for group in groups:
        with contextlib.suppress(OSError):
            os.killpg(group, signal.SIGSTOP)
            roots.add(group)
    stopped: set[int] = set()
    for _ in range(10):  # a new round only while stopping found more (a forking loop)
        new = _descendants(roots | stopped) - stopped
        if not new:
            break
        for pid in new:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGSTOP)
        stopped |= new
    for group in groups:
        with contextlib.suppress(OSError):
            os.killpg(group, signal.SIGKILL)
    for pid in stopped:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return len(stopped)


def marked_processes(candidates: Iterable[int], name: str, matches: Callable[[str], bool]) -> list[int]:
    """The candidates whose environment has variable ``name`` with a value that ``matches``."""
    found = []
    for pid in candidates:
        value = environment_variable(pid, name)
        if value is not None and matches(value):
            found.append(pid)
    return found


def all_processes() -> list[int]:
    return [int(entry) for entry in os.listdir('/proc') if entry.isdigit()] if os.path.isdir('/proc') else []


def _leader_children() -> list[int]:
    """The children of this process's first thread: where Linux puts every orphan a subreaper receives.

    An orphan goes to the first live thread of the subreaper (``find_new_reaper``, then ``find_alive_thread``
    from the head of the thread list, which is the group leader), whichever thread started its ancestor; so
    one file is read, not one per thread. Every thread's when the leader cannot be read (it has ended).
    """
    try:
        return _listed_children(f'/proc/self/task/{os.getpid()}/children')
    except (OSError, ValueError):
        return children('self')


def untracked_children(tracked: Iterable[int]) -> list[int] | None:
    """This process's children other than ``tracked``, whatever they are (None: not a subreaper, so what a task
    leaves behind goes to init and is not among them).

    As subreaper, every process a task started that outlived the task's main process is among them or below one
    of them: when a process ends, its children go to the nearest living subreaper above it, and a task's
    processes have none above them but this one (a subreaper of their own is below it, and goes to it in turn).
    """
    if not _subreaper:
        return None
    tracked = set(tracked)
    return [pid for pid in _leader_children() if pid not in tracked]


def orphans(tracked: Iterable[int]) -> list[int]:
    """This emulator's children that it did not start itself: what its tasks left behind (as subreaper)."""
    untracked = untracked_children(tracked)
    if not untracked:
        return []
    if _every_child_is_ours:
        return untracked
    return [pid for pid in untracked if environment_variable(pid, 'AZ_BATCH_NODE_ROOT_DIR') is not None]


def reap(tracked: Iterable[int]) -> int:
    """Collects the exit status of orphans that ended (zombies), other than the processes asyncio waits for."""
    reaped = 0
    for pid in orphans(tracked):
        if _status(pid) == 'Z':
            with contextlib.suppress(ChildProcessError, OSError):
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    reaped += 1
    return reaped


def stop_survivors(nodes_dir: str, recorded: Iterable[tuple[int, int | None]] = ()) -> int:
    """After a restart: kills what an earlier emulator on this location left running.

    ``recorded`` holds (process group, start time) pairs from the journal; a group is
    killed only if its leader still has that start time *and* carries the node marker
    (``AZ_BATCH_NODE_ROOT_DIR`` in ``nodes_dir``): a reused process id, or a group the
    file names that this location never started, is never touched. Every other process
    whose node folder lies in ``nodes_dir`` is found by its environment.
    """
    nodes_dir = os.path.realpath(nodes_dir) + os.sep

    def on_this_location(value: str) -> bool:
        return os.path.realpath(value).startswith(nodes_dir)

    mine = os.getpid()
    groups = [group for group, started in recorded
              if started is not None and group > 1 and group != mine and start_time(group) == started
              and marked_processes([group], 'AZ_BATCH_NODE_ROOT_DIR', on_this_location)]
    marked = marked_processes((pid for pid in all_processes() if pid != mine), 'AZ_BATCH_NODE_ROOT_DIR',
                              on_this_location)
    killed = kill_trees(marked, groups)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_status(pid) not in (None, 'Z') for pid in marked + groups):
        time.sleep(0.02)  # SIGKILL is asynchronous: a task must not run twice, so wait until they are gone
    if killed:
        _log.warning('stopped %d processes left running by an earlier emulator on this location', killed)
    return killed
