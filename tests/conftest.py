"""Shared fixtures: the Batch emulator (a real process, driven over HTTP) and the local stack with Azurite."""

from __future__ import annotations

import getpass
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from azure.batch import BatchClient
from azure.core.credentials import AzureNamedKeyCredential

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, PROJECT_DIR)

from batch_emulator import DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME  # noqa: E402
from batch_emulator.pytest_plugin import BatchEmulator  # noqa: E402

_TEMP_ROOT_PREFIX = 'batch-tutorial-tests-'
_TEMP_ROOT = pytest.StashKey[tuple]()  # (the session's folder, tempfile.tempdir and TMPDIR before)


def pytest_configure(config: pytest.Config) -> None:
    """Every temporary folder of the session goes into one of its own (tempfile and TMPDIR point there).

    The tests' folders, and those of the emulators, Azurite and the tasks they start: at the end,
    pytest_sessionfinish finds any that was not removed, even while other sessions run on this machine.
    """
    root = tempfile.mkdtemp(prefix=_TEMP_ROOT_PREFIX)
    config.stash[_TEMP_ROOT] = (root, tempfile.tempdir, os.environ.get('TMPDIR'))
    tempfile.tempdir = root
    os.environ['TMPDIR'] = root


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Fails the session if a temporary folder or file of it is left (pytest's own tmp_path folders aside)."""
    if _TEMP_ROOT not in session.config.stash:  # this conftest was loaded after pytest_configure
        return
    root, tempdir, tmpdir_variable = session.config.stash[_TEMP_ROOT]
    tempfile.tempdir = tempdir
    if tmpdir_variable is None:
        os.environ.pop('TMPDIR', None)
    else:
        os.environ['TMPDIR'] = tmpdir_variable
    left = sorted(set(os.listdir(root)) - {f'pytest-of-{getpass.getuser()}'})
    shutil.rmtree(root, ignore_errors=True)
    if left:
        reporter = session.config.pluginmanager.get_plugin('terminalreporter')
        message = f'the tests left temporary folders or files behind: {", ".join(left)}'
        if reporter:
            reporter.write_line(f'ERROR: {message}', red=True)
        else:
            print(f'ERROR: {message}', file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def eventually(condition: Callable[[], object], timeout: float = 30.0, interval: float = 0.05,
               message: str = 'condition') -> object:
    """Polls until ``condition()`` is truthy and returns it; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f'{message} not reached within {timeout} s')
        time.sleep(interval)


class RunningEmulator:
    """The project's own pytest plugin's emulator (``batch_emulator``), with a client for any key or account."""

    def __init__(self, emulator: BatchEmulator) -> None:
        self.process = emulator.process
        self.endpoint = emulator.endpoint
        self.data_dir = str(emulator.location)
        self.request_log = str(emulator.request_log)

    def client(self, key: str = DEFAULT_ACCOUNT_KEY, account: str = DEFAULT_ACCOUNT_NAME, **kwargs) -> BatchClient:
        return BatchClient(self.endpoint, AzureNamedKeyCredential(account, key), **kwargs)


@pytest.fixture(scope='session')
def emulator(batch_emulator: BatchEmulator) -> RunningEmulator:
    """``python -m batch_emulator`` on a free port of 127.0.0.1 with quick node start-up: the plugin's fixture
    (``-p batch_emulator.pytest_plugin`` in pyproject.toml's addopts), as users of the plugin get it."""
    return RunningEmulator(batch_emulator)


@pytest.fixture
def batch_client(emulator: RunningEmulator) -> BatchClient:
    return emulator.client()


@pytest.fixture
def pool_and_job(batch_client, unique_id):
    """A pool of one node and a job on it in the session's emulator; both deleted afterwards."""
    from azure.batch import models as m
    from azure.core.exceptions import ResourceNotFoundError

    from tests.test_emulator import create_pool
    pool_id, job_id = unique_id('pool'), unique_id('job')
    create_pool(batch_client, pool_id)
    batch_client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool_id)))
    yield pool_id, job_id
    for delete in (lambda: batch_client.begin_delete_job(job_id), lambda: batch_client.begin_delete_pool(pool_id)):
        try:
            delete()
        except ResourceNotFoundError:
            pass


@pytest.fixture
def unique_id() -> Callable[[str], str]:
    return lambda prefix: f'{prefix}-{uuid.uuid4().hex[:10]}'


@pytest.fixture(scope='session')
def local_stack() -> Iterator[object]:
    """Azurite and the Batch emulator, as ``--local`` starts them (one pair for the session)."""
    from batch_emulator.local import local_services
    with local_services(emulator_arguments=['--node-step-seconds', '0.05']) as services:
        yield services
