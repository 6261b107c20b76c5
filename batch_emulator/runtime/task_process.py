"""The emulator's side of the node agent (``node_agent.py``): starting a task's process and learning of its end.

The agent is a process of its own, started with the ``Launcher``: it makes the task's folder and files, starts the
process, waits for it, kills what it left behind and collects it. What a task costs the emulator's event loop is
then one message out and two in (``started``, ``ended``), on a socket the loop watches; the agent's work runs
beside it, on another core when there is one. Messages queued in one round of the loop go out together.

Every run has a number (``new_run``) from before it is started, so a stop can be sent at once, also while the
start is under way: the agent handles the messages in order, so the stop finds the process it started.
If the agent is lost (it ended by itself or was killed), every start and end still awaited raises ``AgentLost``,
what the agent left running is killed (it comes to the emulator, a subreaper too; off Linux, by its process
group), ``on_lost`` is called (the scheduler reboots the nodes: their tasks run again) and the next start starts
a new agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable

from batch_emulator.runtime import processes
from batch_emulator.runtime.node_agent import frame, unframe

_log = logging.getLogger('batch_emulator.runtime.task_process')
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# -I -S: nothing of the environment or of site-packages; the agent needs the standard library and this package
# (appended to the path: nothing in its folder can stand in for a module of the standard library).
_BOOT = 'import sys; sys.path.append(sys.argv[1]); from batch_emulator.runtime.node_agent import main; ' \
        'main(int(sys.argv[2]))'


class AgentLost(Exception):
    """The node agent is gone: whether the run's process ended, and how, is not known."""


def _retrieved(future: asyncio.Future) -> None:
    """An end nobody awaits any more (its run was given up) is not reported as an exception never retrieved."""
    if not future.cancelled():
        future.exception()


class Launcher:
    """Starts tasks' processes through the node agent, and hears of their ends."""

    def __init__(self, on_lost: Callable[[], None] | None = None) -> None:
        self.on_lost = on_lost
        self._agent: subprocess.Popen | None = None
        self._connection: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._received = bytearray()
        self._unsent = bytearray()
        self._flush_due = self._watching_writes = False
        self._starts: dict[int, asyncio.Future] = {}  # run -> (pid, start time) or why it did not start
        self._ends: dict[int, asyncio.Future] = {}  # run -> its exit code, from its start until its end is told
        self._groups: dict[int, int] = {}  # run -> its process (group) id, while it runs
        self._told: dict[int, Callable[[int, int | None], None]] = {}  # run -> told its process id and start time
        self._next_run = 0
        self._closed = False
        self._start_agent()  # now, so that it is ready (its Python started) when the first task comes

    def _start_agent(self) -> None:
        ours, theirs = socket.socketpair()
        # In a session of its own: no signal meant for the emulator's terminal or group reaches it (it ends when the
        # emulator does). Its stderr is the emulator's (it writes there only what went wrong); never its stdout, whose
        # end a reader of the emulator's output waits for.
        try:
            self._agent = subprocess.Popen(
                [sys.executable, '-I', '-S', '-c', _BOOT, _PACKAGE_PARENT, str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), cwd='/', start_new_session=True, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        self._connection, self._loop = ours, None
        self._received.clear()
        self._unsent.clear()
        self._flush_due = self._watching_writes = False

    def _attach(self) -> None:
        """The event loop watches the agent's socket (from the first start on: the launcher is made before it)."""
        if self._connection is None:
            self._start_agent()
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._loop.add_reader(self._connection, self._readable)

    def agent_pid(self) -> int | None:
        """The agent's process id while it runs (a child of the emulator that is not a task's orphan)."""
        return self._agent.pid if self._agent is not None and self._agent.poll() is None else None

    def new_run(self) -> int:
        self._next_run += 1
        return self._next_run

    async def start(self, run: int, argv: list[str], working_dir: str, env: dict[str, str], stdout_path: str,
                    stderr_path: str, told: Callable[[int, int | None], None] | None = None) -> asyncio.Future | str:
        """The future of the started process's exit code (a negative signal number if a signal killed it, as
        ``subprocess`` reports it: told once the agent has killed what it left running and collected it); or why its
        program could not be started (also appended to stderr.txt). OSError when its folder or files could not be
        made. ``told`` hears the process's id as soon as it runs, and again with its start time
        (``processes.start_time``) once it has run 10 ms."""
        if self._closed:
            raise AgentLost()
        self._attach()
        started = self._starts[run] = self._loop.create_future()
        ended = self._ends[run] = self._loop.create_future()
        ended.add_done_callback(_retrieved)
        if told is not None:
            self._told[run] = told
        self._send(('start', run, argv, working_dir, env, stdout_path, stderr_path))
        try:
            result = await started
        finally:
            self._starts.pop(run, None)
        if isinstance(result, str):
            return result
        return ended

    def stop(self, run: int) -> None:
        """Kills the run's process tree (at once if it is being started: as soon as it exists)."""
        if self._connection is not None and self._loop is not None:
            self._send(('stop', run))

    def stop_node(self, root_dir: str) -> None:
        if self._connection is not None and self._loop is not None:
            self._send(('stop_node', root_dir))

    def close(self) -> None:
        """No process starts any more; every one started, and all they left, is killed before this returns."""
        self._closed = True
        self._stop_agent(lost=False)

    # ----- the conversation --------------------------------------------------------------------

    def _send(self, message: tuple) -> None:
        """Queues a message: the queue goes out once the loop's current round has run (the starts of a dispatch
        pass together), and what the socket does not take goes when it can."""
        self._unsent += frame(message)
        if not self._flush_due and not self._watching_writes:
            self._flush_due = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_due = False
        connection = self._connection
        if connection is None:
            return
        if self._unsent:
            try:
                sent = connection.send(self._unsent)
            except BlockingIOError:
                sent = 0
            except OSError:  # it ended: the reader hears of it
                sent = len(self._unsent)
            del self._unsent[:sent]
        if self._unsent and not self._watching_writes:  # the socket is full: the loop says when it takes more
            self._loop.add_writer(connection, self._flush)
            self._watching_writes = True
        elif not self._unsent and self._watching_writes:
            self._loop.remove_writer(connection)
            self._watching_writes = False

    def _readable(self) -> None:
        try:
            data = self._connection.recv(1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b''
        if not data:
            _log.error('the node agent ended: the nodes reboot and their tasks run again')
            self._stop_agent(lost=True)
            return
        self._received += data
        for kind, run, *details in unframe(self._received):
            if kind == 'ended':
                self._groups.pop(run, None)
                self._told.pop(run, None)
                ended = self._ends.pop(run, None)
                if ended is not None and not ended.done():
                    ended.set_result(details[0])
                continue
            if kind == 'start_time':
                told = self._told.get(run)
                if told is not None and run in self._groups:
                    told(self._groups[run], details[0])
                continue
            started = self._starts.get(run)
            if kind == 'started':
                self._groups[run] = details[0]
                told = self._told.get(run)
                if told is not None:
                    told(details[0], None)
            else:  # it never ran: no end will be told
                self._ends.pop(run, None)
                self._told.pop(run, None)
            if started is None or started.done():  # its start was given up (the emulator is stopping)
                continue
            if kind == 'error':
                started.set_exception(OSError(details[0]))
            else:  # its process id, or why its program could not be started
                started.set_result(details[0])

    def _stop_agent(self, *, lost: bool) -> None:
        """Ends the agent (closing the socket: it kills everything it started on the way out) and fails whatever
        waits for it; when it was ``lost``, what it left is killed here and ``on_lost`` is told."""
        connection, agent, loop = self._connection, self._agent, self._loop
        self._connection, self._agent, self._loop = None, None, None
        groups, self._groups = list(self._groups.values()), {}
        self._told.clear()
        try:
            if connection is not None:
                if loop is not None:
                    loop.remove_reader(connection)
                    if self._watching_writes:
                        loop.remove_writer(connection)
                connection.close()  # unsent starts are dropped: they fail below
            if agent is not None:
                try:
                    agent.wait(10)
                except subprocess.TimeoutExpired:
                    agent.kill()
                    agent.wait()
            # What it left (when it did not end as asked) came to the emulator, a subreaper: killed too.
            left = processes.orphans([])
            if left:
                processes.kill_trees(processes.marked_processes(left, 'AZ_BATCH_NODE_ROOT_DIR', lambda _: True))
            elif lost and processes.untracked_children([]) is None:  # not a subreaper: their groups
                for group in groups:
                    with contextlib.suppress(OSError):
                        os.killpg(group, signal.SIGKILL)
        finally:
            for futures in (self._starts, self._ends):
                for future in futures.values():
                    if not future.done():
                        future.set_exception(AgentLost())
                futures.clear()
        if lost and self.on_lost is not None:
            self.on_lost()
