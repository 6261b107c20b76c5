"""Unmodified azure-batch SDKs of older eras run a tutorial-shaped flow against the emulator, each at its api-version.

`./run.sh test` (and so CI) installs each era's SDK, with the msrest of its time, in its own venv under
.cache (SDK_ERAS in run.sh; a client under test, not a dependency of the project), once.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess

import pytest
from azure.storage.blob import BlobSasPermissions, BlobServiceClient, generate_blob_sas

from batch_emulator import DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME
from batch_emulator.wire.server import redact_secrets
from tests.conftest import PROJECT_DIR

pytestmark = pytest.mark.emulator

# (azure-batch release, its api-version, is ResourceFile's URL blobSource in it)
ERAS = [('4.1.3', '2018-03-01.6.1', True), ('10.0.0', '2020-09-01.12.0', False), ('12.0.0', '2022-01-01.15.0', False),
        ('14.2.0', '2024-02-01.19.0', False)]
CLIENT = os.path.join(PROJECT_DIR, 'tests', 'sdk_era_client.py')


@pytest.fixture(scope='module')
def input_blob(local_stack):
    """A blob in Azurite and its read SAS URL: what the tutorial gives its tasks as resource files."""
    environment = local_stack.environment()
    service = BlobServiceClient.from_connection_string(environment['AZURE_STORAGE_CONNECTION_STRING'])
    container = service.create_container(f'era-input-{os.getpid()}')
    try:
        container.upload_blob('input.txt', b'the input of an old client\n')
        sas = generate_blob_sas(environment['AZURE_STORAGE_ACCOUNT'], container.container_name, 'input.txt',
                                account_key=environment['AZURE_STORAGE_KEY'], permission=BlobSasPermissions(read=True),
                                expiry=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1))
        yield f'{container.url}/input.txt?{sas}'
    finally:
        container.delete_container()


@pytest.mark.parametrize(('release', 'api_version', 'blob_source'), ERAS, ids=[era[0] for era in ERAS])
def test_an_old_sdk_runs_pools_jobs_tasks_and_files(local_stack, input_blob, unique_id, release, api_version,
                                                    blob_source):
    python = os.path.join(PROJECT_DIR, '.cache', f'azure-batch-{release}', 'bin', 'python')
    if not os.path.exists(python):
        pytest.fail(f'azure-batch {release} is needed in .cache/azure-batch-{release}: run the tests with '
                    './run.sh test (it installs each era once)')
    result = subprocess.run([python, CLIENT, local_stack.batch_endpoint, DEFAULT_ACCOUNT_NAME, DEFAULT_ACCOUNT_KEY,
                             input_blob, unique_id('era')], capture_output=True, text=True, timeout=300,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, redact_secrets(result.stderr[-3000:])  # no SAS signature in the test's output
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen['api_version'] == api_version
    assert 'canonical:ubuntu-24_04-lts:server|batch.node.ubuntu 24.04' in seen['images']
    # The pool's resource file reads back under the name this version has, with the URL it was given.
    name = 'blob_source' if blob_source else 'http_url'
    read_back = seen['pool_resource_file'][name] == input_blob  # compared apart: no SAS signature in the output
    assert read_back, f'the resource file URL did not read back as {name}'
    assert seen['pool_resource_file']['file_path'] == 'input.txt'
    assert seen['added'] == [['task1', 'success'], ['task2', 'success']]
    assert seen['tasks'] == [['task1', 'completed', 0], ['task2', 'completed', 0]]
    assert {'stdout.txt', 'stderr.txt'} <= set(seen['files'])
    assert seen['stdout'] == 'the input of an old client\ntask1\n'
    assert seen['pool_deleting'] in ('deleting', 'gone')
