"""Shared fixtures: the Batch emulator (a real process, driven over HTTP) and the local stack with Azurite."""

from __future__ import annotations

import os
import re
import subprocess
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
    def __init__(self, process: subprocess.Popen, endpoint: str, data_dir: str, request_log: str) -> None:
        self.process = process
        self.endpoint = endpoint
        self.data_dir = data_dir
        self.request_log = request_log

    def client(self, key: str = DEFAULT_ACCOUNT_KEY, account: str = DEFAULT_ACCOUNT_NAME, **kwargs) -> BatchClient:
        return BatchClient(self.endpoint, AzureNamedKeyCredential(account, key), **kwargs)


@pytest.fixture(scope='session')
def emulator() -> Iterator[RunningEmulator]:
    """``python -m batch_emulator`` on a free port of 127.0.0.1, with quick node start-up."""
    data_dir = tempfile.mkdtemp(prefix='emulator-tests-')
    request_log = os.path.join(data_dir, 'requests.jsonl')
    process = subprocess.Popen(
        [sys.executable, '-m', 'batch_emulator', '--port', '0', '--location', data_dir, '--request-log', request_log,
         '--node-step-seconds', '0.05'],
        cwd=PROJECT_DIR, stdout=subprocess.PIPE, text=True)
    first_line = process.stdout.readline()
    match = re.search(r'listening on (http://127\.0\.0\.1:\d+)', first_line)
    assert match, f'the emulator did not start: {first_line!r}'
    try:
        yield RunningEmulator(process, match.group(1), data_dir, request_log)
    finally:
        process.terminate()
        process.wait(15)
        process.stdout.close()


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
