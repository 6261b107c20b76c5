"""Start Azurite and the Batch emulator for a local run, and stop both afterwards.

``python python_tutorial_client.py --local`` and the end-to-end tests use
``local_services()``: it starts Azurite's blob service (from this project's
node_modules, pinned in package.json) and the emulator, each on a free port of
127.0.0.1, and hands back the endpoints and well-known credentials. Both are
stopped when the block ends, also on errors and Ctrl-C. Extra emulator options
can be given in BATCH_EMULATOR_OPTIONS (for example "--fault-rate 0.05").
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator

from batch_emulator.wire.server import DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AZURITE_BIN = os.path.join(PROJECT_DIR, 'node_modules', '.bin', 'azurite-blob')

# Azurite's published development account (the same for every Azurite install).
AZURITE_ACCOUNT_NAME = 'devstoreaccount1'
AZURITE_ACCOUNT_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='

_START_TIMEOUT_SECONDS = 60


class LocalServicesError(Exception):
    """Azurite or the emulator could not be started; the message says what to do."""


@dataclasses.dataclass
class LocalServices:
    blob_endpoint: str
    batch_endpoint: str
    data_dir: str
    request_log: str

    def environment(self) -> dict[str, str]:
        """The variables the tutorial's client (and any azure-batch/azure-storage code) reads."""
        return {
            'AZURE_BATCH_ENDPOINT': self.batch_endpoint,
            'AZURE_BATCH_ACCOUNT': DEFAULT_ACCOUNT_NAME,
            'AZURE_BATCH_ACCESS_KEY': DEFAULT_ACCOUNT_KEY,
            'AZURE_STORAGE_ACCOUNT': AZURITE_ACCOUNT_NAME,
            'AZURE_STORAGE_KEY': AZURITE_ACCOUNT_KEY,
            'AZURE_STORAGE_CONNECTION_STRING': _connection_string(self.blob_endpoint),
            'AZURE_CLOUD': 'AzureCloud',
            'BATCH_EMULATOR_PORTAL_URL': self.batch_endpoint + '/',
        }


def _connection_string(blob_endpoint: str) -> str:
    return (f'DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT_NAME};AccountKey={AZURITE_ACCOUNT_KEY};'
            f'BlobEndpoint={blob_endpoint};')


def placeholder_environment() -> dict[str, str]:
    """Local credentials with placeholder endpoints: lets a --local run validate its flags before starting."""
    return LocalServices(blob_endpoint=f'http://127.0.0.1:1/{AZURITE_ACCOUNT_NAME}', batch_endpoint='http://127.0.0.1:1',
                         data_dir='', request_log='').environment()


class _Service:
    """A child process whose stdout is read until a ready line, then drained in the background."""

    def __init__(self, name: str, command: list[str], ready: re.Pattern[str], log_path: str) -> None:
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, 'w', encoding='utf-8')  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self._log, stdin=subprocess.DEVNULL,
                                        text=True, cwd=PROJECT_DIR, start_new_session=True)
        self._ready = ready
        self._match: re.Match[str] | None = None
        self._found = threading.Event()
        threading.Thread(target=self._read, name=f'{name}-stdout', daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._log.write(line)
            self._log.flush()
            if self._match is None:
                self._match = self._ready.search(line)
                if self._match:
                    self._found.set()
        self._found.set()  # the process ended

    def wait_ready(self) -> re.Match[str]:
        if not self._found.wait(_START_TIMEOUT_SECONDS) or self._match is None:
            with open(self.log_path, encoding='utf-8', errors='replace') as log:
                tail = ' | '.join(log.read().strip().splitlines()[-3:])
            raise LocalServicesError(f'{self.name} did not start (exit code {self.process.poll()}): '
                                     f'{tail or "no output"}')
        return self._match

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def _check_node_and_azurite() -> None:
    if shutil.which('node') is None:
        raise LocalServicesError('Node.js 20 or later is needed to run Azurite: install it (Debian/Ubuntu: '
                                 '"sudo apt-get install nodejs npm"), then run "npm ci" in ' + PROJECT_DIR)
    if not os.path.exists(AZURITE_BIN):
        raise LocalServicesError(f'Azurite is not installed: run "npm ci" in {PROJECT_DIR}')


def start_azurite(location: str, log_path: str, binary: str = AZURITE_BIN) -> _Service:
    """Azurite's blob service on a free loopback port, keeping its data in ``location`` (``wait_ready`` gives its
    address)."""
    return _Service('Azurite', [binary, '--blobHost', '127.0.0.1', '--blobPort', '0', '--disableTelemetry',
                                '--skipApiVersionCheck', '--silent', '--location', location],
                    re.compile(r'successfully listens on (http://127\.0\.0\.1:\d+)'), log_path)


@contextlib.contextmanager
def local_services(*, verbose: bool = False, keep_dir: str | None = None,
                   emulator_arguments: list[str] | None = None) -> Iterator[LocalServices]:
    """Starts Azurite and the Batch emulator on free loopback ports; stops both on exit."""
    _check_node_and_azurite()
    data_dir = keep_dir or tempfile.mkdtemp(prefix='batch-tutorial-local-')
    os.makedirs(os.path.join(data_dir, 'azurite'), exist_ok=True)
    request_log = os.path.join(data_dir, 'batch-requests.jsonl')
    services: list[_Service] = []
    try:
        azurite = start_azurite(os.path.join(data_dir, 'azurite'), os.path.join(data_dir, 'azurite.log'))
        services.append(azurite)
        blob_endpoint = azurite.wait_ready().group(1) + '/' + AZURITE_ACCOUNT_NAME
        connection_string = _connection_string(blob_endpoint)
        emulator = _Service(
            'The Batch emulator',
            [sys.executable, '-m', 'batch_emulator', '--port', '0', '--location', os.path.join(data_dir, 'batch'),
             '--request-log', request_log, '--parent-pid', str(os.getpid()),
             '--storage-connection-string', connection_string]
            + (['--verbose'] if verbose else []) + (emulator_arguments or [])
            + shlex.split(os.environ.get('BATCH_EMULATOR_OPTIONS', '')),
            re.compile(r'listening on (http://127\.0\.0\.1:\d+)'), os.path.join(data_dir, 'batch-emulator.log'))
        services.append(emulator)
        batch_endpoint = emulator.wait_ready().group(1)
        yield LocalServices(blob_endpoint=blob_endpoint, batch_endpoint=batch_endpoint, data_dir=data_dir,
                            request_log=request_log)
    finally:
        for service in reversed(services):
            service.stop()
        if keep_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)
