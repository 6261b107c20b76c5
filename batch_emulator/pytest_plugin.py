"""A pytest plugin: a local Azure Batch emulator for your own tests, the way Azurite serves Storage in CI.

Installing this package (``pip install .``) registers it (entry point ``pytest11``); every test then
can ask for these fixtures:

``batch_emulator`` (session scope)
    ``python -m batch_emulator`` running on a free port of 127.0.0.1 with a temporary ``--location``,
    stopped at the end of the session together with every process it started. It has ``endpoint``,
    ``account_name``, ``account_key``, ``credential`` (an ``AzureNamedKeyCredential``), ``environment``
    (the ``AZURE_BATCH_*`` variables), ``location`` (the nodes' folders), ``request_log`` (one JSON line
    per request it answered; ``requests()`` reads them), ``client()``, an ``azure.batch.BatchClient``, and
    ``preempt(pool_id, node_id)``, which has Azure take a Spot node back (README, "Spot nodes and preemption").
``batch_emulator_client`` (function scope)
    ``batch_emulator.client()``, closed after the test.
``batch_emulator_environment`` (function scope)
    sets ``AZURE_BATCH_ENDPOINT``, ``AZURE_BATCH_ACCOUNT`` and ``AZURE_BATCH_ACCESS_KEY`` for the test
    (for code that reads them) and gives them back as a dict.

The emulator is shared by the tests of a session (give pools and jobs unique ids); under pytest-xdist
each worker has one of its own. Settings, on the command line or in the ini file:

    --batch-emulator-node-step-seconds S   batch_emulator_node_step_seconds   seconds per node state (0.05)
    --batch-emulator-args "ARGS"           batch_emulator_args                more options of the emulator,
                                                                              e.g. "--dedicated-node-quota 4"
                                           batch_emulator_startup_timeout     seconds to wait for it (30)

``start_batch_emulator()`` does the same as a context manager, for a test (or a script) that needs an
emulator of its own, say with ``--fault-rate``; ``launch_batch_emulator()`` starts one that runs until its
``stop()``, for a test that stops, kills or restarts it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import queue
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest
from azure.core.credentials import AzureNamedKeyCredential

from batch_emulator.common.account import DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME

if TYPE_CHECKING:
    from azure.batch import BatchClient

PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)
READY = re.compile(r'Azure Batch emulator listening on (http://\S+)')
# Options the plugin sets itself: the fixture's endpoint, account and folders must be the emulator's.
RESERVED_OPTIONS = ('--host', '--allow-remote', '--port', '--location', '--account-name', '--account-key',
                    '--request-log', '--parent-pid', '--operations', '--node-step-seconds')
DEFAULT_NODE_STEP_SECONDS = 0.05
DEFAULT_STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


class EmulatorControlError(Exception):
    """An emulator control endpoint refused: the HTTP status, the error code and its message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f'{status} {code}: {message}')
        self.status, self.code, self.message = status, code, message


@dataclasses.dataclass(frozen=True)
class BatchEmulator:
    """A running ``python -m batch_emulator``: where it listens and how to sign requests for it."""

    endpoint: str
    account_name: str
    account_key: str
    location: Path
    request_log: Path
    process: subprocess.Popen = dataclasses.field(repr=False)
    _reader: threading.Thread | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def credential(self) -> AzureNamedKeyCredential:
        return AzureNamedKeyCredential(self.account_name, self.account_key)

    @property
    def environment(self) -> dict[str, str]:
        """The variables azure-batch programs (and the Azure CLI as AZURE_BATCH_*) read."""
        return {'AZURE_BATCH_ENDPOINT': self.endpoint, 'AZURE_BATCH_ACCOUNT': self.account_name,
                'AZURE_BATCH_ACCESS_KEY': self.account_key}

    def client(self, **kwargs: Any) -> BatchClient:
        """An ``azure.batch.BatchClient`` for this emulator; ``kwargs`` go to its constructor."""
        from azure.batch import BatchClient
        return BatchClient(self.endpoint, self.credential, **kwargs)

    def stop(self) -> None:
        """SIGTERM: the emulator stops every task process it started and exits (SIGKILL if it does not)."""
        _stop_process(self.process, self._reader)

    def preempt(self, pool_id: str, node_id: str) -> dict[str, Any]:
        """Azure takes a Spot node back: ``POST /_emulator/pools/{pool_id}/nodes/{node_id}/preempt``, signed with
        SharedKey. Its running tasks are requeued; the node is ``preempted`` until restored. Returns the answer
        (``{"poolId", "nodeId", "state"}``); raises ``EmulatorControlError`` (status, code, message) otherwise."""
        return self.control('POST', f'/pools/{quote(pool_id, safe="")}/nodes/{quote(node_id, safe="")}/preempt')

    def control(self, method: str, path: str) -> dict[str, Any]:
        """One of the emulator's own endpoints (``/_emulator`` + ``path``), signed with SharedKey."""
        from batch_emulator.wire import auth
        raw_path = '/_emulator' + path
        # Every header urllib would add is set here, so that it is signed: a POST's body gets a Content-Type.
        headers = {'ocp-date': formatdate(usegmt=True), 'Content-Length': '0', 'Content-Type': 'application/json'}
        text = auth.string_to_sign(method, raw_path, headers, self.account_name)
        headers['Authorization'] = f'SharedKey {self.account_name}:{auth.sign(self.account_key, text)}'
        request = urllib.request.Request(self.endpoint + raw_path, data=b'' if method == 'POST' else None,
                                         method=method, headers=headers)
        try:
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1: never a proxy
            with opener.open(request, timeout=30) as response:
                return json.loads(response.read() or b'{}')
        except urllib.error.HTTPError as error:
            try:
                body = json.loads(error.read() or b'{}')
            except ValueError:
                body = {}
            message = body.get('message')
            text = message.get('value', '') if isinstance(message, dict) else str(message or '')
            raise EmulatorControlError(error.code, str(body.get('code', '')), text.split('\n')[0]) from None

    def requests(self) -> list[dict[str, Any]]:
        """The requests the emulator answered so far, oldest first, as its ``--request-log`` wrote them."""
        if not self.request_log.exists():
            return []
        with self.request_log.open(encoding='utf-8') as log:
            return [json.loads(line) for line in log if line.strip()]


@contextlib.contextmanager
def start_batch_emulator(folder: str | os.PathLike[str] | None = None, *arguments: str,
                         node_step_seconds: float = DEFAULT_NODE_STEP_SECONDS,
                         startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
                         location: str | os.PathLike[str] | None = None,
                         environment: dict[str, str] | None = None) -> Iterator[BatchEmulator]:
    """Runs an emulator on a free port of 127.0.0.1 until the ``with`` block ends, then stops it and its tasks.

    ``folder`` keeps its ``location/`` (the nodes' folders and the journal, unless ``location`` names another
    folder: an emulator started again on the same location finds the account as it was), ``requests.jsonl``
    and ``emulator.log`` (its stderr); without one a temporary folder is used and removed afterwards.
    ``arguments`` are more options of ``python -m batch_emulator`` (not those in ``RESERVED_OPTIONS``);
    ``environment`` is the emulator's environment (default: this process's).
    """
    own_folder = folder is None
    base = Path(tempfile.mkdtemp(prefix='batch-emulator-') if own_folder else folder)
    try:
        emulator = launch_batch_emulator(base, *arguments, node_step_seconds=node_step_seconds,
                                         startup_timeout=startup_timeout, location=location, environment=environment)
        try:
            yield emulator
        finally:
            emulator.stop()
    finally:
        if own_folder:
            shutil.rmtree(base, ignore_errors=True)


def check_arguments(arguments: tuple[str, ...] | list[str]) -> None:
    for argument in arguments:
        name = argument.split('=', 1)[0]
        if name in RESERVED_OPTIONS:
            raise ValueError(f'{name} is set by the batch_emulator fixture itself; leave it out of the extra arguments')
        # The emulator takes no abbreviations (allow_abbrev=False); say which reserved option one would stand for.
        meant = [option for option in RESERVED_OPTIONS if name.startswith('--') and len(name) > 2
                 and option.startswith(name)]
        if meant:
            raise ValueError(f'{name} is an abbreviation of {" or ".join(meant)}, which the batch_emulator fixture '
                             'sets itself; the emulator takes no abbreviations')


def launch_batch_emulator(folder: str | os.PathLike[str], *arguments: str,
                          node_step_seconds: float = DEFAULT_NODE_STEP_SECONDS,
                          startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
                          location: str | os.PathLike[str] | None = None,
                          environment: dict[str, str] | None = None) -> BatchEmulator:
    """``start_batch_emulator`` without the ``with``: the emulator runs until its ``stop()`` (or until this
    process ends: it watches its parent). For tests that stop, kill or restart an emulator themselves."""
    check_arguments(arguments)
    base = Path(folder)
    base.mkdir(mode=0o700, parents=True, exist_ok=True)  # it may be the location: keeps secrets and task files
    location = Path(location) if location is not None else base / 'location'
    request_log, stderr_path = base / 'requests.jsonl', base / 'emulator.log'
    command = [sys.executable, '-m', 'batch_emulator', '--host', '127.0.0.1', '--port', '0',
               '--location', str(location), '--request-log', str(request_log),
               '--account-name', DEFAULT_ACCOUNT_NAME, '--account-key', DEFAULT_ACCOUNT_KEY,
               '--node-step-seconds', str(node_step_seconds), '--parent-pid', str(os.getpid()), *arguments]
    # The same batch_emulator as this plugin, even from a source checkout that is not installed.
    environment = dict(os.environ if environment is None else environment)
    environment['PYTHONPATH'] = os.pathsep.join(filter(None, [PACKAGE_PARENT, environment.get('PYTHONPATH')]))
    with stderr_path.open('w', encoding='utf-8') as stderr:
        process = subprocess.Popen(command, cwd=base, env=environment, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=stderr, text=True)
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_read_lines, args=(process, lines), daemon=True,
                              name=f'batch-emulator-{process.pid}-stdout')
    reader.start()
    try:
        endpoint = _wait_until_listening(process, lines, startup_timeout, stderr_path)
    except BaseException:
        _stop_process(process, reader)
        raise
    return BatchEmulator(endpoint, DEFAULT_ACCOUNT_NAME, DEFAULT_ACCOUNT_KEY, location, request_log, process, reader)


def _stop_process(process: subprocess.Popen, reader: threading.Thread | None) -> None:
    _stop(process)
    if reader is not None:
        reader.join(STOP_TIMEOUT)  # EOF once the emulator (and anything holding its stdout) is gone
    process.stdout.close()


def _read_lines(process: subprocess.Popen, lines: queue.Queue[str | None]) -> None:
    # Reads stdout to its end, so the emulator never blocks on a full pipe.
    with contextlib.suppress(ValueError, OSError):  # closed under it after a stop that timed out
        for line in process.stdout:
            lines.put(line)
    lines.put(None)


def _wait_until_listening(process: subprocess.Popen, lines: queue.Queue[str | None], timeout: float,
                          stderr_path: Path) -> str:
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            break
        if line is None:
            process.wait(STOP_TIMEOUT)
            raise RuntimeError(f'the Batch emulator exited with code {process.returncode} before it listened: '
                               f'{_tail(stderr_path)}')
        if match := READY.search(line):
            return match.group(1)
    raise RuntimeError(f'the Batch emulator did not listen within {timeout:g} s: {_tail(stderr_path)}')


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(encoding='utf-8', errors='replace').strip()
    except OSError:
        text = ''
    return '\n'.join(text.splitlines()[-lines:]) or '(nothing on stderr)'


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM: the emulator stops every task process it started, then exits; SIGKILL if it does not."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)


@dataclasses.dataclass(frozen=True)
class Settings:
    arguments: list[str]
    node_step_seconds: float
    startup_timeout: float


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup('batch-emulator', 'local Azure Batch emulator (fixture batch_emulator)')
    group.addoption('--batch-emulator-node-step-seconds', metavar='S', default=None,
                    help='seconds each node state (creating, starting) lasts in the batch_emulator fixture '
                         f'(default: ini batch_emulator_node_step_seconds, or {DEFAULT_NODE_STEP_SECONDS})')
    group.addoption('--batch-emulator-args', metavar='ARGS', default=None,
                    help='more options of python -m batch_emulator for the batch_emulator fixture, as one '
                         'string (e.g. "--dedicated-node-quota 4"); replaces ini batch_emulator_args')
    parser.addini('batch_emulator_node_step_seconds', default=str(DEFAULT_NODE_STEP_SECONDS),
                  help='seconds each node state lasts in the batch_emulator fixture')
    parser.addini('batch_emulator_args', type='args', default=[],
                  help='more options of python -m batch_emulator for the batch_emulator fixture')
    parser.addini('batch_emulator_startup_timeout', default=str(DEFAULT_STARTUP_TIMEOUT),
                  help='seconds the batch_emulator fixture waits for the emulator to listen')


def pytest_configure(config: pytest.Config) -> None:
    settings(config)  # bad settings: one clear line before any test runs


def settings(config: pytest.Config) -> Settings:
    command_line_arguments = config.getoption('--batch-emulator-args')
    arguments = (shlex.split(command_line_arguments) if command_line_arguments is not None
                 else list(config.getini('batch_emulator_args')))
    try:
        check_arguments(arguments)
    except ValueError as error:
        raise pytest.UsageError(f'batch-emulator: {error}') from None
    node_step = config.getoption('--batch-emulator-node-step-seconds')
    return Settings(arguments,
                    _positive(node_step if node_step is not None else config.getini('batch_emulator_node_step_seconds'),
                              'node step seconds'),
                    _positive(config.getini('batch_emulator_startup_timeout'), 'batch_emulator_startup_timeout'))


def _positive(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise pytest.UsageError(f'batch-emulator: {name} must be a positive number of seconds, not {text!r}')
    return value


@pytest.fixture(scope='session')
def batch_emulator(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BatchEmulator]:
    """A local Azure Batch emulator on a free port of 127.0.0.1, for the whole session (one per xdist worker)."""
    chosen = settings(request.config)
    with start_batch_emulator(tmp_path_factory.mktemp('batch-emulator'), *chosen.arguments,
                              node_step_seconds=chosen.node_step_seconds,
                              startup_timeout=chosen.startup_timeout) as emulator:
        yield emulator


@pytest.fixture
def batch_emulator_client(batch_emulator: BatchEmulator) -> Iterator[BatchClient]:
    """An ``azure.batch.BatchClient`` signed for the session's emulator."""
    client = batch_emulator.client()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def batch_emulator_environment(batch_emulator: BatchEmulator, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Sets AZURE_BATCH_ENDPOINT, AZURE_BATCH_ACCOUNT and AZURE_BATCH_ACCESS_KEY for the test."""
    for name, value in batch_emulator.environment.items():
        monkeypatch.setenv(name, value)
    return batch_emulator.environment
