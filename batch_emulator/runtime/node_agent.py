"""The node agent: a process of its own that starts the processes of the nodes' tasks, waits for them and stops
them, so that the emulator's event loop only keeps the books.

A real node has an agent that does this; here one agent serves every emulated node. The emulator starts it
(``task_process.Launcher``) and talks to it over a socket pair: length-prefixed pickles, in order, each way.

The emulator asks:
- ``('start', run, argv, working_dir, env, stdout_path, stderr_path)``: the working directory is made, stdout.txt
  and stderr.txt are opened for appending, and the program is found on the environment's PATH and started there
  (``os.posix_spawn``: no copy of this process, no Python in the child) in a session and process group of its own,
  with only that environment, stdin from /dev/null and every signal's default action (none ignored or blocked);
  a link, FIFO or socket a task left in the place of stdout.txt or stderr.txt is replaced by a file;
- ``('stop', run)``: the run's process, everything below it and its group are stopped and killed (nothing, if its
  end was already collected: an id is never signalled after it could have been reused);
- ``('stop_node', root_dir)``: what runs of a node's earlier life (the orphans that carry its folder) dies;
- and when the emulator closes its end of the socket (it stops) or goes away: every process started and every
  orphan dies, then the agent ends. Nothing a task started outlives the emulator.

The agent answers ``('started', run, pid)``, ``('start_time', run, start_time)`` (once the process has run
10 ms), ``('failed', run, message)`` (the program could not be started: the message, also appended to
stderr.txt), ``('error', run, message)`` (the folder or the files could not be made) and ``('ended', run,
exit_code)``.

On Linux the agent is a *child subreaper*: whatever a task leaves running comes to it when its parent ends.
When a task's main process has ended, and while it is still a zombie (its id and its group's cannot belong to
another process yet), the agent kills what the task left: its process group and the orphans that carry its folder
(``AZ_BATCH_TASK_DIR``); only then is its exit status collected and reported. Orphans that end are collected as
they end. See ``processes.py`` for how a survivor is found.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pickle
import selectors
import signal
import socket
import stat
import sys
import time
import traceback
from collections.abc import Callable

from batch_emulator.runtime import processes

_HEADER = 4  # bytes of a message's length, big-endian
STAMP_AFTER = 0.01  # seconds a process runs before its start time is read and told (``Agent.stamp``)
# Every signal a task can be given starts with its default action, none blocked: nothing the emulator ignores (Python
# ignores SIGPIPE and SIGXFSZ; nohup, SIGHUP; a shell's `&`, SIGINT) is ignored by a task.
_DEFAULT_SIGNALS = frozenset(signal.valid_signals()) - {signal.SIGKILL, signal.SIGSTOP}


def frame(message: tuple) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return len(data).to_bytes(_HEADER, 'big') + data


def unframe(buffer: bytearray) -> list[tuple]:
    """The whole messages at the start of ``buffer`` (removed from it); a part of one stays."""
    messages, start = [], 0
    while len(buffer) - start >= _HEADER:
        size = int.from_bytes(buffer[start:start + _HEADER], 'big')
        if len(buffer) - start - _HEADER < size:
            break
        messages.append(pickle.loads(buffer[start + _HEADER:start + _HEADER + size]))
        start += _HEADER + size
    del buffer[:start]
    return messages


def open_output(path: str) -> int:
    """stdout.txt or stderr.txt, for appending: a link, FIFO or socket a task put in its place is removed first (it
    would lead the task's output elsewhere, or block the agent and with it every node). The folder is the node's,
    made by the agent: only the file itself can have been replaced (``files.open_within`` walks a whole path)."""
    try:
        return _open_file(path)
    except OSError as error:
        if error.errno not in (errno.ELOOP, errno.ENXIO, errno.EINVAL):  # a link; a FIFO or socket; not a file
            raise
    os.unlink(path)  # a folder is not removed: the open below fails then
    return _open_file(path)


def _open_file(path: str) -> int:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK,
                         0o666)
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise OSError(errno.EINVAL, 'not a regular file', path)
    os.set_blocking(descriptor, True)
    return descriptor


def make_folders(working_dir: str, node_root: str | None) -> None:
    """The task's folder and its working directory in it (two mkdir calls for a new task; makedirs for the rest),
    never the node's own folder: a node that went away (its folder removed) is not made again."""
    try:
        os.mkdir(os.path.dirname(working_dir), 0o777)
        os.mkdir(working_dir, 0o700)
    except FileExistsError:
        os.makedirs(working_dir, mode=0o700, exist_ok=True)
    except FileNotFoundError:  # the job's folder is new too
        if node_root is not None and not os.path.isdir(node_root):
            raise
        os.makedirs(working_dir, mode=0o700)


def find_program(name: str, path: str | None) -> str:
    """The file ``name`` names, searched on ``path`` (the task's PATH) unless it has a slash, as ``subprocess``
    searches it; FileNotFoundError or PermissionError (found, but not executable) as ``subprocess`` raises them."""
    if os.sep in name:
        return name
    denied = None
    for folder in (path if path is not None else os.defpath).split(os.pathsep):
        candidate = os.path.join(folder, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
        if denied is None and os.path.exists(candidate):  # subprocess reports the first such one (EACCES)
            denied = candidate
    if denied is not None:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), denied)
    raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), name)


class Agent:
    def __init__(self, connection: socket.socket) -> None:
        self.connection = connection
        self.runs: dict[int, tuple[int, str]] = {}  # process id -> (run, task folder), until its end is collected
        self.pids: dict[int, int] = {}  # run -> process id
        self.unstamped: dict[int, float] = {}  # process id -> when it started, until its start time is read
        self.replies: list[bytes] = []

    def serve(self) -> None:
        selector = selectors.DefaultSelector()
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_write, False)
        signal.set_wakeup_fd(wake_write)  # SIGCHLD: a child ended
        signal.signal(signal.SIGCHLD, lambda *_: None)
        selector.register(self.connection, selectors.EVENT_READ)
        selector.register(wake_read, selectors.EVENT_READ)
        received = bytearray()
        try:
            while True:
                for key, _ in selector.select(timeout=self.until_stamping()):
                    if key.fileobj is self.connection:
                        data = self.connection.recv(1 << 16)
                        if not data:
                            return  # the emulator closed its end (it stops), or went away
                        received += data
                        for message in unframe(received):
                            self.surviving(self.handle, message)
                    else:
                        with contextlib.suppress(BlockingIOError):
                            os.read(wake_read, 4096)
                self.surviving(self.collect, None)
                self.surviving(self.stamp, None)
                if self.replies:
                    self.connection.sendall(b''.join(self.replies))
                    self.replies.clear()
        except OSError:  # the emulator went away while this was read or written
            return
        finally:
            self.stop_everything()

    def reply(self, *message: object) -> None:
        self.replies.append(frame(message))

    def surviving(self, work: Callable[..., None], message: tuple | None) -> None:
        """Handles a message (or collects ended children); what fails is told on stderr, and to the emulator if a
        start waits for it, and the agent goes on."""
        try:
            work() if message is None else work(message)
        except Exception as error:  # noqa: BLE001 - whatever it was, the other runs go on
            traceback.print_exc()
            if message is not None and message[0] == 'start':
                self.reply('error', message[1], f'The node agent could not start the task: {error}')

    def handle(self, message: tuple) -> None:
        kind = message[0]
        if kind == 'start':
            self.start(*message[1:])
        elif kind == 'stop':
            pid = self.pids.get(message[1])
            if pid is not None:  # not collected yet: the id is still this process's
                processes.kill_trees([pid], groups=[pid])
        elif kind == 'stop_node':
            processes.kill_trees(processes.marked_processes(processes.orphans(self.runs), 'AZ_BATCH_NODE_ROOT_DIR',
                                                            lambda found: found == message[1]))

    def start(self, run: int, argv: list[str], working_dir: str, env: dict[str, str], stdout_path: str,
              stderr_path: str) -> None:
        descriptors = []
        try:
            make_folders(working_dir, env.get('AZ_BATCH_NODE_ROOT_DIR'))  # a task's (a container's: made already)
            for path in (stdout_path, stderr_path):
                descriptors.append(open_output(path))
        except OSError as error:
            for descriptor in descriptors:
                os.close(descriptor)
            self.reply('error', run, f'The task\'s folder or files cannot be made: {error}')
            return
        stdout, stderr = descriptors
        try:
            os.chdir(working_dir)  # the child starts here (a relative program name is found from here too)
            program = find_program(argv[0], env.get('PATH'))
            pid = os.posix_spawn(program, argv, env, setsid=True, setsigdef=_DEFAULT_SIGNALS, setsigmask=(),
                                 file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                                               (os.POSIX_SPAWN_DUP2, stdout, 1), (os.POSIX_SPAWN_DUP2, stderr, 2)])
        except OSError as error:
            message = f'{argv[0]}: {error.strerror}'
            with contextlib.suppress(OSError):
                os.write(stderr, f'{message}\n'.encode())
            self.reply('failed', run, message)
            return
        finally:
            os.chdir('/')
            os.close(stdout)
            os.close(stderr)
        self.runs[pid] = (run, env.get('AZ_BATCH_TASK_DIR', ''))
        self.pids[run] = pid
        self.unstamped[pid] = time.monotonic()
        self.reply('started', run, pid)

    def until_stamping(self) -> float:
        """Seconds until the oldest process whose start time is not read yet is ``STAMP_AFTER`` old (1 at most)."""
        for started in self.unstamped.values():
            return max(0.0, min(1.0, started + STAMP_AFTER - time.monotonic()))
        return 1.0

    def stamp(self) -> None:
        """The start time of each process that has run ``STAMP_AFTER`` (read while its id is held: it is not
        collected yet): a restart checks it before it kills the process's group. Most tasks have ended by then,
        and a start time read just after the start costs as much as the start itself (the process is busy with
        exec or exit)."""
        now = time.monotonic()
        for pid, started in list(self.unstamped.items()):
            if now - started < STAMP_AFTER:
                break
            del self.unstamped[pid]
            self.reply('start_time', self.runs[pid][0], processes.start_time(pid))

    def collect(self) -> None:
        """Every child that ended: a task's main process (what it left is killed first, then it is reported), or an
        orphan."""
        if not hasattr(os, 'waitid'):  # macOS: collected first, so only its group is killed, and at once
            self.collect_without_waitid()
            return
        while True:
            try:
                ended = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if ended is None or ended.si_pid == 0:
                return
            pid = ended.si_pid
            run = self.forget(pid)
            if run is not None:
                self.stop_leftovers(pid, run[1])
            try:
                code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
            except ChildProcessError:
                code = 255
            if run is not None:
                self.reply('ended', run[0], code)

    def forget(self, pid: int) -> tuple[int, str] | None:
        """(run, task folder) of a task's process whose end is being collected, no longer tracked; None: an orphan."""
        run = self.runs.pop(pid, None)
        if run is not None:
            del self.pids[run[0]]
            self.unstamped.pop(pid, None)
        return run

    def collect_without_waitid(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            run = self.forget(pid)
            if run is not None:
                with contextlib.suppress(OSError):
                    os.killpg(pid, signal.SIGKILL)
                self.reply('ended', run[0], os.waitstatus_to_exitcode(status))

    def stop_leftovers(self, group: int, task_dir: str) -> None:
        """While the task's main process is a zombie: its group and the orphans that carry its folder. Whatever
        it left running has come to this subreaper before its end was told, so without an orphan nothing is left
        (every member of its group descends from it, in a session of its own): then nothing is searched."""
        untracked = processes.untracked_children(self.runs)  # every child is a task's (``claim_every_child``)
        left = [pid for pid in untracked or () if pid != group]
        if untracked is not None and not left:
            return
        processes.kill_trees(processes.marked_processes(left, 'AZ_BATCH_TASK_DIR', lambda found: found == task_dir)
                             if task_dir else [], groups=[group])

    def stop_everything(self) -> None:
        """Every process started and every orphan dies and is collected (a few seconds at most)."""
        pids = list(self.runs)
        processes.kill_trees(pids + processes.orphans(pids), groups=pids)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                time.sleep(0.01)  # SIGKILL is asynchronous: the last ones are still ending


def main(descriptor: int) -> None:
    connection = socket.socket(fileno=descriptor)
    os.set_inheritable(descriptor, False)  # no task inherits it
    processes.become_subreaper()
    processes.claim_every_child()  # every child of this process is a task's
    os.chdir('/')
    try:
        Agent(connection).serve()
    finally:
        connection.close()


if __name__ == '__main__':
    main(int(sys.argv[1]))
