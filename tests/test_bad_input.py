"""Bad input and lost services against the real local services: one clear line, a non-zero exit, nothing left behind."""

from __future__ import annotations

import os
import signal
import threading

import pytest
from azure.batch import BatchClient
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient

import python_tutorial_client as client
from batch_emulator.local import local_services
from tests.conftest import eventually

pytestmark = pytest.mark.e2e


def run(settings: client.Settings) -> int:
    blob_service, batch, sas_key = client.create_service_clients(settings)
    return client.main(settings, blob_service, batch, sas_key)


def containers(environment: dict[str, str]) -> list[str]:
    service = BlobServiceClient.from_connection_string(environment['AZURE_STORAGE_CONNECTION_STRING'])
    return [c.name for c in service.list_containers()]


def test_a_vm_size_the_service_rejects_is_one_line_and_leaves_nothing(local_stack, tmp_path, unique_id, capsys):
    environment = local_stack.environment()
    pool_id = unique_id('pool')
    settings = client.load_settings(client.parse_arguments(
        ['--yes', '--vm-size', 'STANDARD_A1', '--pool-id', pool_id, '--output-dir', str(tmp_path)]), environment)
    assert run(settings) == 1
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [captured.err.strip()]
    assert 'InvalidPropertyValue' in captured.err and 'PropertyName=vmSize' in captured.err
    assert 'STANDARD_A1 is not supported' in captured.err
    batch = BatchClient(local_stack.batch_endpoint, AzureNamedKeyCredential(
        environment['AZURE_BATCH_ACCOUNT'], environment['AZURE_BATCH_ACCESS_KEY']))
    assert pool_id not in [p.id for p in batch.list_pools()]
    assert 'Delete pool?' not in captured.out
    assert not {'application', 'input', 'output'} & set(containers(environment))


def test_a_wrong_batch_endpoint_is_one_line(local_stack, tmp_path, capsys):
    environment = local_stack.environment() | {'AZURE_BATCH_ENDPOINT': 'http://127.0.0.1:9'}  # nothing listens
    settings = client.load_settings(client.parse_arguments(['--yes', '--output-dir', str(tmp_path)]), environment)
    assert run(settings) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith('Error: cannot reach the service: ')
    assert len(captured.err.strip().splitlines()) == 1
    assert not {'application', 'input', 'output'} & set(containers(environment))


def test_the_emulator_going_away_mid_run_is_reported_and_what_its_tasks_need_is_kept(tmp_path, mocker, capsys):
    with local_services(emulator_arguments=['--node-step-seconds', '0.05']) as services:
        gate = tmp_path / 'never'
        script = tmp_path / 'app' / 'python_tutorial_task.py'
        script.parent.mkdir()
        script.write_text('import os, time\n'
                          f'while not os.path.exists({str(gate)!r}):\n    time.sleep(0.05)\n')
        mocker.patch.object(client, '_TASK_SCRIPT_PATH', str(script))
        environment = services.environment()
        settings = client.load_settings(client.parse_arguments(['--yes', '--output-dir', str(tmp_path)]), environment)
        results: list[int] = []
        runner = threading.Thread(target=lambda: results.append(run(settings)))
        runner.start()
        batch = BatchClient(services.batch_endpoint, AzureNamedKeyCredential(
            environment['AZURE_BATCH_ACCOUNT'], environment['AZURE_BATCH_ACCESS_KEY']))
        eventually(lambda: _running_tasks(batch, settings.job_id) > 0, message='a task running')
        emulator_pid = next(int(entry) for entry in os.listdir('/proc') if entry.isdigit()
                            and '-m batch_emulator' in _command(entry) and services.data_dir in _command(entry))
        os.kill(emulator_pid, signal.SIGKILL)
        runner.join(120)
        gate.touch()
        captured = capsys.readouterr()
        assert results == [1]
        assert 'Error: cannot reach the service' in captured.err
        assert 'Could not delete job' in captured.out and 'Could not delete pool' in captured.out  # told
        # The job and pool could not be deleted, so their unfinished tasks may still run when the service is
        # back: the containers they read and write are kept, and the user is told why (not lost in silence).
        assert {'application', 'input', 'output'} <= set(containers(environment))
        assert f'Kept container [input]: the unfinished tasks of job [{settings.job_id}]' in captured.out


def _running_tasks(batch: BatchClient, job_id: str) -> int:
    try:
        return batch.get_job_task_counts(job_id).task_counts.running
    except ResourceNotFoundError:
        return 0  # the client has not created the job yet


def _command(pid: str) -> str:
    try:
        with open(f'/proc/{pid}/cmdline', 'rb') as file:
            return file.read().replace(b'\0', b' ').decode(errors='replace')
    except OSError:
        return ''
