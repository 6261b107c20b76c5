"""The Azure CLI, unmodified, drives the emulator: the commands the Azure docs teach, end to end.

`./run.sh test` (and so CI) installs azure-cli 2.91.0 in its own virtual environment under .cache
and points BATCH_TUTORIAL_AZ at it; set it yourself to use another `az`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from batch_emulator import DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME
from tests.conftest import PROJECT_DIR, eventually

pytestmark = pytest.mark.emulator


def _az_command() -> str:
    configured = os.environ.get('BATCH_TUTORIAL_AZ')
    if configured:
        return configured if os.path.isabs(configured) else os.path.join(PROJECT_DIR, configured)
    found = shutil.which('az')
    if found is None:
        pytest.fail('the Azure CLI is needed: run the tests with ./run.sh test (it installs azure-cli 2.91.0 in '
                    '.cache) or set BATCH_TUTORIAL_AZ to an az executable')
    return found


@pytest.fixture(scope='module')
def az(emulator, tmp_path_factory):
    """Runs `az ...` against the emulator (the az CLI's own variables), returning its parsed JSON output."""
    command = _az_command()
    environment = dict(os.environ, AZURE_CONFIG_DIR=str(tmp_path_factory.mktemp('azure-config')),
                       AZURE_CORE_COLLECT_TELEMETRY='false', AZURE_CORE_NO_COLOR='true',
                       AZURE_BATCH_ENDPOINT=emulator.endpoint, AZURE_BATCH_ACCOUNT=DEFAULT_ACCOUNT_NAME,
                       AZURE_BATCH_ACCESS_KEY=DEFAULT_ACCOUNT_KEY)

    def run(*arguments: str) -> object:
        result = subprocess.run([command, *arguments, '--output', 'json'], env=environment, capture_output=True,
                                text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert result.returncode == 0, f'az {" ".join(arguments)} failed: {result.stderr.strip()[-2000:]}'
        return json.loads(result.stdout) if result.stdout.strip() else None
    return run


def test_the_azure_cli_runs_a_pool_a_job_and_a_task(az, unique_id, tmp_path):
    pool_id, job_id = unique_id('azpool'), unique_id('azjob')
    images = az('batch', 'pool', 'supported-images', 'list')
    assert {'publisher': 'canonical', 'offer': 'ubuntu-24_04-lts', 'sku': 'server', 'version': 'latest'} in [
        image['imageReference'] for image in images]
    # The command the Azure docs teach: the CLI sends "targetDedicatedNodes": "1", a JSON string.
    az('batch', 'pool', 'create', '--id', pool_id, '--vm-size', 'Standard_D2s_v5', '--image',
       'canonical:ubuntu-24_04-lts:server', '--node-agent-sku-id', 'batch.node.ubuntu 24.04',
       '--target-dedicated-nodes', '1')
    pool = az('batch', 'pool', 'show', '--pool-id', pool_id)
    assert (pool['id'], pool['targetDedicatedNodes'], pool['vmSize']) == (pool_id, 1, 'standard_d2s_v5')
    assert pool_id in [listed['id'] for listed in az('batch', 'pool', 'list')]
    az('batch', 'job', 'create', '--id', job_id, '--pool-id', pool_id)
    az('batch', 'task', 'create', '--job-id', job_id, '--task-id', 'hello',
       '--command-line', "/bin/sh -c 'echo hello from the az CLI'")
    task = eventually(lambda: (shown := az('batch', 'task', 'show', '--job-id', job_id, '--task-id', 'hello'))
                      ['state'] == 'completed' and shown, timeout=60, message='the task completed')
    assert task['executionInfo']['exitCode'] == 0 and task['executionInfo']['result'] == 'success'
    destination = tmp_path / 'stdout.txt'
    az('batch', 'task', 'file', 'download', '--job-id', job_id, '--task-id', 'hello', '--file-path', 'stdout.txt',
       '--destination', str(destination))
    assert destination.read_text() == 'hello from the az CLI\n'
    assert [listed['id'] for listed in az('batch', 'task', 'list', '--job-id', job_id)] == ['hello']
    eventually(lambda: az('batch', 'pool', 'show', '--pool-id', pool_id)['allocationState'] == 'steady',
               message='the pool steady')
    az('batch', 'pool', 'resize', '--pool-id', pool_id, '--target-dedicated-nodes', '2')
    eventually(lambda: az('batch', 'pool', 'show', '--pool-id', pool_id)['currentDedicatedNodes'] == 2,
               timeout=60, message='two nodes')
    az('batch', 'job', 'delete', '--job-id', job_id, '--yes')
    az('batch', 'pool', 'delete', '--pool-id', pool_id, '--yes')
    eventually(lambda: pool_id not in [listed['id'] for listed in az('batch', 'pool', 'list')], timeout=60,
               message='the pool gone')


def test_the_azure_cli_creates_a_job_with_a_job_manager_task(az, unique_id, tmp_path):
    pool_id, job_id = unique_id('azpool'), unique_id('azjob')
    az('batch', 'pool', 'create', '--id', pool_id, '--vm-size', 'Standard_D2s_v5', '--image',
       'canonical:ubuntu-24_04-lts:server', '--node-agent-sku-id', 'batch.node.ubuntu 24.04',
       '--target-dedicated-nodes', '1')
    try:
        az('batch', 'job', 'create', '--id', job_id, '--pool-id', pool_id, '--job-manager-task-id', 'manager',
           '--job-manager-task-command-line', "/bin/sh -c 'echo $GREETING from the manager'",
           '--job-manager-task-environment-settings', 'GREETING=hello')
        # As sent, with the service's defaults for what was not.
        assert az('batch', 'job', 'show', '--job-id', job_id)['jobManagerTask'] == {
            'id': 'manager', 'commandLine': "/bin/sh -c 'echo $GREETING from the manager'",
            'environmentSettings': [{'name': 'GREETING', 'value': 'hello'}], 'requiredSlots': 1,
            'killJobOnCompletion': True, 'userIdentity': {'autoUser': {'scope': 'pool', 'elevationLevel': 'nonadmin'}},
            'runExclusive': True, 'allowLowPriorityNode': True}
        job = eventually(lambda: (shown := az('batch', 'job', 'show', '--job-id', job_id))['state'] == 'completed'
                         and shown, timeout=60, message='the job completed')
        assert job['executionInfo']['terminateReason'] == 'JMComplete'
        assert [task['id'] for task in az('batch', 'task', 'list', '--job-id', job_id)] == ['manager']
        destination = tmp_path / 'stdout.txt'
        az('batch', 'task', 'file', 'download', '--job-id', job_id, '--task-id', 'manager', '--file-path',
           'stdout.txt', '--destination', str(destination))
        assert destination.read_text() == 'hello from the manager\n'
    finally:
        az('batch', 'job', 'delete', '--job-id', job_id, '--yes')
        az('batch', 'pool', 'delete', '--pool-id', pool_id, '--yes')
