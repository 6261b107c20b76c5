"""Starting a task's process off the event loop, and learning of its end without a thread per process.

What a node does for each task costs the emulator's one event loop nothing but bookkeeping:

- ``start`` runs in a small pool of worker threads (``Launcher``): it makes the task's working
  directory, opens stdout.txt and stderr.txt (appending) and starts the process (``subprocess.Popen``:
  fork and exec release the interpreter's lock, so the loop goes on meanwhile) in a session and
  process group of its own, in the working directory, with the node's environment only;
- ``wait`` learns of the end from a pidfd (Linux 5.3 and later: ``os.pidfd_open``) that the loop
  watches like a socket, instead of asyncio's child watcher, which starts a thread per process. Off
  Linux, or on an older kernel, a worker thread waits instead.

When the process has ended it is still a zombie: its process id cannot be reused yet. ``wait`` calls
``before_reaping`` then (the caller kills what the task left running: its process group and the orphans
that carry its folder), and only then collects the exit status. So a signal meant for the task's group
never reaches a stranger that got the id.

Every process started is known to the ``Launcher`` from the moment it exists (``live``, guarded by a
lock): ``kill_all`` at shutdown finds those whose start the loop has not heard of yet, and a start that
completes after shutdown kills its own process at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from batch_emulator.runtime import processes

START_THREADS = 4  # processes being started at once; the rest wait for a worker (fork and exec take ~1 ms)


class Launcher:
    """The worker threads that start tasks' processes, and every process they started that still runs."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=START_THREADS, thread_name_prefix='task-start')
        self._lock = threading.Lock()
        self._live: dict[int, subprocess.Popen] = {}
        self._in_flight = 0  # starts under way: a child may exist whose id ``live`` does not hold yet
        self._closed = False

    async def start(self, argv: list[str], working_dir: str, env: dict[str, str], stdout_path: str,
                    stderr_path: str) -> tuple[subprocess.Popen, int | None] | str:
        """The started process and its start time (``processes.start_time``), or why its program could not be
        started (also appended to stderr.txt)."""
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, self._start, argv, working_dir, env, stdout_path, stderr_path)

    def _start(self, argv: list[str], working_dir: str, env: dict[str, str], stdout_path: str,
               stderr_path: str) -> tuple[subprocess.Popen, int | None] | str:
        os.makedirs(working_dir, mode=0o700, exist_ok=True)
        with open(stdout_path, 'ab') as stdout, open(stderr_path, 'ab') as stderr:
            with self._lock:
                self._in_flight += 1
            process = None
            try:
                process = subprocess.Popen(argv, cwd=working_dir, env=env, stdin=subprocess.DEVNULL, stdout=stdout,
                                           stderr=stderr, start_new_session=True)  # a group of its own, led by it
            except (FileNotFoundError, PermissionError, NotADirectoryError) as error:
                message = f'{argv[0]}: {error.strerror}'
                stderr.write(f'{message}\n'.encode())
                return message
            finally:
                with self._lock:
                    self._in_flight -= 1
                    if process is not None:
                        self._live[process.pid] = process
                    closed = self._closed
                if closed and process is not None:  # the emulator stopped while this one was being started
                    processes.kill_trees([process.pid], groups=[process.pid])
        return process, processes.start_time(process.pid)  # read while its id is held (it is not reaped yet)

    def starting(self) -> bool:
        """True while a process may exist that ``live`` does not name yet (an orphan reaper must wait)."""
        return self._in_flight > 0

    def live(self) -> list[int]:
        with self._lock:
            return list(self._live)

    def forget(self, pid: int) -> None:
        with self._lock:
            self._live.pop(pid, None)

    async def wait(self, process: subprocess.Popen, before_reaping: Callable[[], None]) -> int:
        """``wait``; the process is forgotten as soon as its exit status is collected."""
        try:
            return await wait(process, before_reaping)
        finally:
            if process.returncode is not None:
                self.forget(process.pid)

    def reap_orphans(self) -> int:
        """Collects orphans that ended: children the workers did not start (never while one is being started)."""
        with self._lock:  # no start begins meanwhile: every child that is a task's main process is in ``live``
            return 0 if self._in_flight else processes.reap(self._live)

    def close(self) -> list[int]:
        """No process starts any more (one under way is killed as soon as it exists); returns those running."""
        with self._lock:
            self._closed = True
            running = list(self._live)
        self._executor.shutdown(wait=False)
        return running


async def wait(process: subprocess.Popen, before_reaping: Callable[[], None]) -> int:
    """Waits for the process to end, calls ``before_reaping`` while it is a zombie, then returns its exit code
    (a negative signal number if a signal killed it, as ``subprocess`` reports it)."""
    loop = asyncio.get_running_loop()
    try:
        pidfd = os.pidfd_open(process.pid)
    except (AttributeError, OSError):  # not Linux, or a kernel without pidfds
        pidfd = None
    if pidfd is None:
        if not hasattr(os, 'waitid'):  # the id may be reused before ``before_reaping``: off Linux only groups
            code = await loop.run_in_executor(None, process.wait)
            before_reaping()
            return code
        await loop.run_in_executor(None, _wait_without_reaping, process.pid)
        return _reap(process, before_reaping)
    ended = loop.create_future()
    loop.add_reader(pidfd, ended.set_result, None)
    try:
        await ended
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
    return _reap(process, before_reaping)


def _wait_without_reaping(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)


def _reap(process: subprocess.Popen, before_reaping: Callable[[], None]) -> int:
    try:
        before_reaping()
    finally:
        try:
            _, status = os.waitpid(process.pid, 0)
            code = os.waitstatus_to_exitcode(status)
        except ChildProcessError:  # collected elsewhere: its status is lost (asyncio reports 255 then too)
            code = 255
        process.returncode = code  # so that subprocess never waits for this id again
    return code
