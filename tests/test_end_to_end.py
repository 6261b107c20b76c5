"""End to end: the tutorial's client against Azurite and the Batch emulator (real processes, real HTTP)."""

from __future__ import annotations

import collections
import os
import re
import socket
import string
import subprocess
import sys

import psutil
import pytest
from azure.batch import BatchClient
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import ResourceNotFoundError

import python_tutorial_client as client
from tests.conftest import PROJECT_DIR, eventually

pytestmark = pytest.mark.e2e

DATA_FILES = [os.path.join(PROJECT_DIR, 'data', f'taskdata{i}.txt') for i in (1, 2, 3)]


def original_top_three(path: str) -> list[tuple[str, int]]:
    """The 2016 tutorial's algorithm (BOM dropped), as the reference for the outputs."""
    with open(path, encoding='utf-8-sig') as file:
        words = [word.strip(string.punctuation) for word in file.read().split()]
    return collections.Counter(words).most_common(3)


def top_words_in_output(path: str) -> list[tuple[str, int]]:
    with open(path, encoding='utf-8') as file:
        lines = file.read().splitlines()
    assert lines[:2] == ['Word\tCount', '-' * 30]
    rows = lines[2:lines.index('-' * 30, 2)]
    return [(word, int(count)) for word, count in (row.split(':\t') for row in rows)]


def port_is_open(url: str) -> bool:
    host, port = re.match(r'http://([\d.]+):(\d+)', url).groups()
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((host, int(port))) == 0


def test_the_readme_command_runs_the_whole_tutorial_locally(tmp_path):
    """python python_tutorial_client.py --local --yes: three outputs whose top three match the data files."""
    output_dir = tmp_path / 'results'
    environ = {key: value for key, value in os.environ.items() if not key.startswith('AZURE_')}
    result = subprocess.run([sys.executable, 'python_tutorial_client.py', '--local', '--yes',
                             '--output-dir', str(output_dir)], cwd=PROJECT_DIR, capture_output=True, text=True,
                            timeout=300, env=environ, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout + result.stderr
    for path in DATA_FILES:
        output = output_dir / os.path.basename(path).replace('.txt', '_OUTPUT.txt')
        assert top_words_in_output(str(output)) == original_top_three(path)
        assert 'Job:  PythonTutorialJob' in output.read_text(encoding='utf-8')
    out = result.stdout
    assert "Monitoring all tasks for 'Completed' state, timeout in 0:20:00..." in out
    assert "  Success! All tasks reached the 'Completed' state within the specified timeout period." in out
    assert out.count('  Downloaded blob [taskdata') == 3
    # Both services were stopped: nothing is left listening.
    endpoints = re.search(r'Azurite at (\S+)/devstoreaccount1, Batch emulator at (\S+)', out).groups()
    assert not any(port_is_open(url) for url in endpoints)
    assert 'sig=' not in out + result.stderr


@pytest.fixture
def local_settings(local_stack, tmp_path, unique_id):
    environ = local_stack.environment()
    args = client.parse_arguments(['--yes', '--output-dir', str(tmp_path / 'out'), '--pool-id', unique_id('pool'),
                                   '--job-id', unique_id('job')])
    settings = client.load_settings(args, environ)
    blob_service, batch, sas_key = client.create_service_clients(settings)
    return settings, blob_service, batch, sas_key


def nothing_left(batch: BatchClient, settings: client.Settings) -> None:
    """The job and pool are gone (deletion finishes), and so is every process they ran."""
    def gone(get, entity_id):
        try:
            get(entity_id)
            return False
        except ResourceNotFoundError:
            return True
    eventually(lambda: gone(batch.get_job, settings.job_id) and gone(batch.get_pool, settings.pool_id),
               message='job and pool deleted')
    eventually(lambda: not processes_of_pool(settings.pool_id), message=f'no process of pool {settings.pool_id} left')


def processes_of_pool(pool_id: str) -> list[str]:
    """Every process on this machine started for a node of the pool (Batch gives each AZ_BATCH_POOL_ID).

    Found by their environment, not their parent: a task's process that left its process group is found too.
    """
    found = []
    for process in psutil.process_iter(['pid', 'cmdline']):
        try:
            if process.environ().get('AZ_BATCH_POOL_ID') == pool_id:
                found.append(f'{process.info["pid"]}: {" ".join(process.info["cmdline"] or [])}')
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return found


def test_a_start_task_that_fails_ends_the_run_with_its_stderr(local_settings, mocker, capsys):
    settings, blob_service, batch, sas_key = local_settings
    mocker.patch.object(client, 'start_task_commands',
                        return_value=['echo "E: Unable to locate package python3-pip" >&2', 'exit 100'])

    assert client.main(settings, blob_service, batch, sas_key) == 1

    captured = capsys.readouterr()
    assert 'the StartTask failed on node' in captured.err and '(exit code 100)' in captured.err
    assert 'E: Unable to locate package python3-pip' in captured.err
    assert 'Delete job? [Y/n] yes' in captured.out and 'Delete pool? [Y/n] yes' in captured.out
    nothing_left(batch, settings)


def test_a_task_that_fails_is_reported_with_exit_code_and_stderr(local_settings, mocker, tmp_path, capsys):
    settings, blob_service, batch, sas_key = local_settings
    failing_script = tmp_path / 'app' / 'python_tutorial_task.py'
    failing_script.parent.mkdir()
    failing_script.write_text('import sys\nprint("cannot parse this input", file=sys.stderr)\nsys.exit(2)\n')
    mocker.patch.object(client, '_TASK_SCRIPT_PATH', str(failing_script))

    assert client.main(settings, blob_service, batch, sas_key) == 1

    out = capsys.readouterr().out
    assert out.count('failed with exit code 2') == 3
    assert 'cannot parse this input' in out
    nothing_left(batch, settings)


def test_a_reused_pool_runs_this_runs_task_script(local_settings, mocker, tmp_path, capsys):
    """Run 1 keeps its pool; run 2 reuses it with a changed script, which its tasks must run (not a stale copy)."""
    settings, blob_service, batch, sas_key = local_settings
    settings.assume_yes = False
    old_script = tmp_path / 'old' / 'python_tutorial_task.py'
    old_script.parent.mkdir()
    old_script.write_text('import sys\nprint("stale script", file=sys.stderr)\nsys.exit(9)\n')
    mocker.patch.object(client, '_TASK_SCRIPT_PATH', str(old_script))
    answers = {'Delete job?': 'yes', 'Delete pool?': 'no'}
    mocker.patch.object(client, 'query_yes_no', side_effect=lambda question, **kwargs: answers[question])
    assert client.main(settings, blob_service, batch, sas_key) == 1  # the old script fails on purpose
    assert 'Pool [' in capsys.readouterr().out
    eventually(lambda: _job_gone(batch, settings.job_id), message='first job deleted')

    mocker.patch.object(client, '_TASK_SCRIPT_PATH', os.path.join(PROJECT_DIR, 'python_tutorial_task.py'))
    answers['Delete pool?'] = 'yes'
    assert client.main(settings, blob_service, batch, sas_key) == 0
    out = capsys.readouterr().out
    assert f'Pool [{settings.pool_id}] already exists: reusing it' in out
    for path in DATA_FILES:
        output = os.path.join(settings.output_dir, os.path.basename(path).replace('.txt', '_OUTPUT.txt'))
        assert top_words_in_output(output) == original_top_three(path)
    nothing_left(batch, settings)


def _job_gone(batch: BatchClient, job_id: str) -> bool:
    try:
        batch.get_job(job_id)
        return False
    except ResourceNotFoundError:
        return True


def test_a_wrong_key_is_one_clear_line_and_creates_nothing(local_stack, tmp_path, capsys):
    environ = local_stack.environment() | {'AZURE_BATCH_ACCESS_KEY': 'd3Jvbmcga2V5IGZvciB0aGUgdGVzdA=='}
    settings = client.load_settings(client.parse_arguments(['--yes', '--output-dir', str(tmp_path)]), environ)
    blob_service, batch, sas_key = client.create_service_clients(settings)
    assert client.main(settings, blob_service, batch, sas_key) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith('Error: the service answered 403 AuthenticationFailed: Server failed to '
                                   'authenticate the request.')
    assert len(captured.err.strip().splitlines()) == 1
    assert 'Traceback' not in captured.out + captured.err
    assert 'd3Jvbmcga2V5' not in captured.out + captured.err
    real_batch = BatchClient(local_stack.batch_endpoint, AzureNamedKeyCredential(
        local_stack.environment()['AZURE_BATCH_ACCOUNT'], local_stack.environment()['AZURE_BATCH_ACCESS_KEY']))
    assert settings.pool_id not in [p.id for p in real_batch.list_pools()]


def test_emulated_tasks_download_resource_files_and_upload_output_files(local_stack, unique_id):
    """Resource files (a blob SAS URL and a container SAS URL) in, output files out, per upload condition."""
    import datetime

    from azure.batch import models as m
    from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas

    environ = local_stack.environment()
    blob_service = BlobServiceClient.from_connection_string(environ['AZURE_STORAGE_CONNECTION_STRING'])
    container = unique_id('files')
    blob_service.create_container(container)
    blob_service.get_blob_client(container, 'in/one.txt').upload_blob(b'one')
    blob_service.get_blob_client(container, 'in/two.txt').upload_blob(b'two')
    sas = generate_container_sas(blob_service.account_name, container, account_key=environ['AZURE_STORAGE_KEY'],
                                 permission=ContainerSasPermissions(read=True, list=True, write=True, create=True),
                                 expiry=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1))
    container_url = f'{blob_service.url}{container}?{sas}'
    batch = BatchClient(local_stack.batch_endpoint, AzureNamedKeyCredential(environ['AZURE_BATCH_ACCOUNT'],
                                                                            environ['AZURE_BATCH_ACCESS_KEY']))
    pool_id, job_id = unique_id('pool'), unique_id('job')
    batch.create_pool(m.BatchPoolCreateOptions(
        id=pool_id, vm_size='standard_d2s_v3', target_dedicated_nodes=1,
        virtual_machine_configuration=m.VirtualMachineConfiguration(
            image_reference=m.BatchVmImageReference(publisher='canonical', offer='ubuntu-24_04-lts', sku='server'),
            node_agent_sku_id='batch.node.ubuntu 24.04')))
    batch.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool_id)))

    def output(pattern, path, condition):
        return m.OutputFile(file_pattern=pattern, upload_options=m.OutputFileUploadConfiguration(
            upload_condition=condition), destination=m.OutputFileDestination(
            container=m.OutputFileBlobContainerDestination(container_url=container_url, path=path)))
    batch.create_task(job_id, m.BatchTaskCreateOptions(
        id='copy', command_line="/bin/bash -c 'cat inputs/in/one.txt inputs/in/two.txt > joined.txt'",
        resource_files=[m.ResourceFile(storage_container_url=container_url, blob_prefix='in/', file_path='inputs')],
        output_files=[output('joined.txt', 'results/joined.txt', 'tasksuccess'),
                      output('../std*.txt', 'logs/copy', 'taskcompletion'),
                      output('joined.txt', 'only-on-failure.txt', 'taskfailure')]))
    task = eventually(lambda: (t := batch.get_task(job_id, 'copy')).state == 'completed' and t, message='task')
    assert task.execution_info.result == 'success', task.execution_info.failure_info
    names = sorted(b.name for b in blob_service.get_container_client(container).list_blobs())
    assert names == ['in/one.txt', 'in/two.txt', 'logs/copy/stderr.txt', 'logs/copy/stdout.txt',
                     'results/joined.txt']
    assert blob_service.get_blob_client(container, 'results/joined.txt').download_blob().readall() == b'onetwo'
    batch.begin_delete_pool(pool_id)
    blob_service.delete_container(container)


def test_a_wrong_batch_key_is_one_line_and_mentions_no_pool_or_job(local_stack, tmp_path):
    """The Batch service refuses the key at the first Batch call (the image lookup): no pool was ever requested.

    The client is run as a user runs it, on Azure settings (here: the local services'), and everything it
    prints is checked: nothing says a pool or a job is left, billed or to be deleted.
    """
    environ = {key: value for key, value in os.environ.items() if not key.startswith(('AZURE_', 'BATCH_'))}
    environ |= local_stack.environment() | {'AZURE_BATCH_ACCESS_KEY': 'd3Jvbmcga2V5IGZvciB0aGUgdGVzdA=='}
    result = subprocess.run([sys.executable, 'python_tutorial_client.py', '--yes', '--output-dir', str(tmp_path)],
                            cwd=PROJECT_DIR, capture_output=True, text=True, timeout=120, env=environ,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 1, result.stdout + result.stderr
    errors = result.stderr.splitlines()
    assert len(errors) == 1 and errors[0].startswith(
        'Error: the service answered 403 AuthenticationFailed: Server failed to authenticate the request.'), errors
    # All it prints: the start, the uploads (in parallel: any order), the containers deleted, the end.
    out = [line for line in result.stdout.splitlines() if line]
    assert out[0].startswith('Sample start: ')
    assert sorted(out[1:5]) == sorted(f'Uploading file {path} to container [{container}]...' for container, path in
                                      [('application', os.path.join(PROJECT_DIR, 'python_tutorial_task.py'))]
                                      + [('input', path) for path in DATA_FILES])
    assert out[5] == 'Deleting containers...'
    assert out[6].startswith('Sample end: ') and out[7].startswith('Elapsed time: ') and len(out) == 8, out
    for word in ('pool', 'Pool', 'job', 'Job', 'billed', 'az ', 'Delete', 'Traceback'):
        assert word not in result.stdout + result.stderr
    assert 'd3Jvbmcga2V5' not in result.stdout + result.stderr


def test_after_ctrl_c_a_job_left_with_its_pool_still_runs_its_tasks_to_success(local_settings, mocker, tmp_path,
                                                                                 capsys):
    """Ctrl-C while the tasks wait; job and pool kept: the containers the tasks need stay, and the tasks succeed.

    The pool's StartTask waits for a gate file, so no task can have run before the clean-up.
    """
    settings, blob_service, batch, sas_key = local_settings
    settings.assume_yes = False
    gate = tmp_path / 'gate'
    mocker.patch.object(client, 'start_task_commands', return_value=[
        f'while [ ! -e {gate} ]; do sleep 0.05; done', *client.start_task_commands()])
    mocker.patch.object(batch, 'get_job_task_counts', side_effect=KeyboardInterrupt)  # Ctrl-C in the wait
    mocker.patch.object(client, 'query_yes_no', return_value='no')
    try:
        assert client.main(settings, blob_service, batch, sas_key) == 130
        out = capsys.readouterr().out
        assert f'Job [{settings.job_id}] is left: its unfinished tasks keep running on pool [{settings.pool_id}]' in out
        for name in ('application', 'input', 'output'):
            assert f'Kept container [{name}]: the unfinished tasks of job [{settings.job_id}]' in out

        gate.touch()
        tasks = eventually(lambda: (ts := list(batch.list_tasks(settings.job_id))) and all(
            t.state == 'completed' for t in ts) and ts, timeout=120, message='all tasks completed')
        assert [(t.id, t.execution_info.result, t.execution_info.failure_info) for t in tasks] == [
            (f'topNtask{i}', 'success', None) for i in range(3)]
        results = sorted(b.name for b in blob_service.get_container_client('output').list_blobs())
        assert results == ['taskdata1_OUTPUT.txt', 'taskdata2_OUTPUT.txt', 'taskdata3_OUTPUT.txt']
    finally:
        gate.touch()
        batch.begin_delete_job(settings.job_id)
        batch.begin_delete_pool(settings.pool_id)
        for name in ('application', 'input', 'output'):
            blob_service.delete_container(name)
    nothing_left(batch, settings)
