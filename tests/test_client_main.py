"""The client's configuration checks and main(): transcript, clean-up and exit codes, failure by failure."""

from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import subprocess
import sys
from urllib.parse import parse_qs, urlparse

import pytest
from azure.batch import models as batchmodels
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
)

import python_tutorial_client as client
from tests.conftest import PROJECT_DIR

KEY = 'a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5'  # base64, not a real key
GOOD_ENVIRONMENT = {
    'AZURE_BATCH_ACCOUNT': 'mybatch', 'AZURE_BATCH_ACCESS_KEY': KEY,
    'AZURE_BATCH_ENDPOINT': 'https://mybatch.eastus.batch.azure.com',
    'AZURE_STORAGE_ACCOUNT': 'mystorage', 'AZURE_STORAGE_KEY': KEY,
}


def settings_for(argv: list[str], environ: dict[str, str]) -> client.Settings:
    return client.load_settings(client.parse_arguments(argv), environ)


def configuration_error(argv: list[str], environ: dict[str, str]) -> str:
    with pytest.raises(client.TutorialError) as raised:
        settings_for(argv, environ)
    return str(raised.value)


# ----- configuration ------------------------------------------------------------------------

def test_no_configuration_names_every_missing_setting_in_one_line_and_exits_2(mocker, capsys):
    mocker.patch.dict(os.environ, {}, clear=True)
    assert client.run_from_command_line([]) == 2
    captured = capsys.readouterr()
    assert captured.out == ''
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    for name in ('_BATCH_ACCOUNT_NAME', 'AZURE_BATCH_ACCOUNT', 'AZURE_BATCH_ENDPOINT', '_STORAGE_ACCOUNT_NAME',
                 'AZURE_STORAGE_ACCOUNT'):
        assert name in lines[0]
    assert lines[0].startswith('Error: configuration is incomplete: Batch account name is missing')
    # It ends with how to run the tutorial without an account.
    assert lines[0].endswith('to run the tutorial without an Azure account, use --local: '
                             'python python_tutorial_client.py --local (or ./run.sh local)')
    assert 'Traceback' not in captured.err


@pytest.mark.parametrize(('argv', 'message'), [
    (['--input', 'no/such/file.txt'], 'input file no/such/file.txt does not exist'),
    (['--numwords', '0'], '--numwords must be 1 or more (got 0)'),
    (['--input', 'no/such/file.txt', '--numwords', '0'],
     '--numwords must be 1 or more (got 0); input file no/such/file.txt does not exist'),
])
def test_an_input_problem_says_what_is_wrong_with_what_and_is_not_called_configuration(mocker, capsys, argv,
                                                                                        message):
    mocker.patch.dict(os.environ, GOOD_ENVIRONMENT, clear=True)
    assert client.run_from_command_line(argv) == 2
    assert capsys.readouterr().err == f'Error: {message}\n'


def test_a_malformed_account_setting_is_not_told_to_run_locally():
    message = configuration_error([], GOOD_ENVIRONMENT | {'AZURE_BATCH_ACCOUNT': 'Bad_Name'})
    assert message == ('configuration is incomplete: Batch account name is malformed ("Bad_Name") '
                       '(set _BATCH_ACCOUNT_NAME or export AZURE_BATCH_ACCOUNT)')


def test_environment_overrides_constants_and_flags_override_both(mocker):
    mocker.patch.object(client, '_BATCH_ACCOUNT_NAME', 'fromconstant')
    settings = settings_for(['--pool-id', 'FlagPool', '--node-count', '3', '--vm-size', 'STANDARD_D4S_V5'],
                            GOOD_ENVIRONMENT)
    assert settings.batch_account_name == 'mybatch'
    assert (settings.pool_id, settings.node_count, settings.vm_size) == ('FlagPool', 3, 'STANDARD_D4S_V5')
    assert settings.job_id == 'PythonTutorialJob'
    assert settings.blob_endpoint == 'https://mystorage.blob.core.windows.net'
    assert settings.auth == 'key'
    assert settings.output_dir == os.path.realpath(os.path.expanduser('~'))
    assert [os.path.basename(p) for p in settings.input_files] == ['taskdata1.txt', 'taskdata2.txt',
                                                                   'taskdata3.txt']


def test_constants_at_the_top_of_the_file_are_used_without_environment(mocker):
    for name, value in (('_BATCH_ACCOUNT_NAME', 'constbatch'), ('_BATCH_ACCOUNT_KEY', KEY),
                        ('_BATCH_ACCOUNT_URL', 'constbatch.westus.batch.azure.com'),
                        ('_STORAGE_ACCOUNT_NAME', 'conststorage'), ('_STORAGE_ACCOUNT_KEY', KEY)):
        mocker.patch.object(client, name, value)
    settings = settings_for([], {})
    assert settings.batch_account_url == 'https://constbatch.westus.batch.azure.com'
    assert settings.storage_account_name == 'conststorage'


def test_a_connection_string_gives_the_storage_account_and_endpoint():
    environ = dict(GOOD_ENVIRONMENT)
    del environ['AZURE_STORAGE_ACCOUNT'], environ['AZURE_STORAGE_KEY']
    environ['AZURE_STORAGE_CONNECTION_STRING'] = (
        f'DefaultEndpointsProtocol=https;AccountName=connstorage;AccountKey={KEY};EndpointSuffix=core.chinacloudapi.cn')
    settings = settings_for([], environ)
    assert (settings.storage_account_name, settings.storage_account_key) == ('connstorage', KEY)
    assert settings.blob_endpoint == 'https://connstorage.blob.core.chinacloudapi.cn'


def test_azure_china_uses_the_china_blob_endpoint():
    settings = settings_for(['--cloud', 'china'], GOOD_ENVIRONMENT)
    assert (settings.cloud, settings.blob_endpoint) == ('china', 'https://mystorage.blob.core.chinacloudapi.cn')
    assert settings_for([], GOOD_ENVIRONMENT | {'AZURE_CLOUD': 'AzureChinaCloud'}).cloud == 'china'


def test_without_keys_microsoft_entra_id_is_used():
    environ = {k: v for k, v in GOOD_ENVIRONMENT.items() if 'KEY' not in k}
    assert settings_for([], environ).auth == 'entra'


@pytest.mark.parametrize('auth', ['key', 'entra'])
def test_the_batch_client_is_built_with_the_retry_policy_that_repeats_lost_posts(mocker, auth):
    environ = GOOD_ENVIRONMENT if auth == 'key' else {k: v for k, v in GOOD_ENVIRONMENT.items() if 'KEY' not in k}
    mocker.patch('azure.identity.DefaultAzureCredential')
    mocker.patch.object(client, 'BlobServiceClient')
    batch_class = mocker.patch.object(client, 'BatchClient')
    client.create_service_clients(settings_for([], environ))
    assert isinstance(batch_class.call_args.kwargs['retry_policy'], client._RetryLostPostsToo)


def test_entra_clients_use_the_clouds_authority_scope_and_a_user_delegation_key(mocker):
    environ = {k: v for k, v in GOOD_ENVIRONMENT.items() if 'KEY' not in k}
    settings = settings_for(['--cloud', 'china'], environ)
    credential_class = mocker.patch('azure.identity.DefaultAzureCredential')
    blob_class = mocker.patch.object(client, 'BlobServiceClient')
    batch_class = mocker.patch.object(client, 'BatchClient')

    blob_service, batch, sas_credential = client.create_service_clients(settings)

    assert credential_class.call_args.kwargs['authority'] == 'login.chinacloudapi.cn'
    assert batch_class.call_args.kwargs['credential_scopes'] == ['https://batch.chinacloudapi.cn/.default']
    blob_class.assert_called_once_with('https://mystorage.blob.core.chinacloudapi.cn',
                                       credential=credential_class.return_value)
    assert sas_credential is blob_class.return_value.get_user_delegation_key.return_value


@pytest.mark.parametrize(('argv', 'fragment'), [
    (['--numwords', '0'], '--numwords must be 1 or more (got 0)'),
    (['--numwords', '-4'], '--numwords must be 1 or more (got -4)'),
    (['--node-count', '0'], '--node-count must be 1 or more'),
    (['--pool-id', 'my pool!'], 'pool id "my pool!" is not valid'),
    (['--job-id', 'j' * 65], 'job id'),
    (['--vm-size', 'STANDARD D2'], 'VM size "STANDARD D2" is not valid'),
    (['--timeout', '0'], '--timeout must be a positive number of minutes'),
    (['--input', 'no/such/file.txt'], 'input file no/such/file.txt does not exist'),
])
def test_bad_flags_are_refused_before_anything_is_created(argv, fragment):
    assert fragment in configuration_error(argv, GOOD_ENVIRONMENT)


@pytest.mark.parametrize(('content', 'fragment'), [
    (b'', 'is empty'),
    (b'\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR', 'is binary, not text'),
    ('caf\xe9 au lait'.encode('latin-1'), 'is not UTF-8 text'),
])
def test_input_files_the_task_cannot_analyse_are_refused(tmp_path, content, fragment):
    path = tmp_path / 'input.txt'
    path.write_bytes(content)
    assert fragment in configuration_error(['--input', str(path)], GOOD_ENVIRONMENT)


def test_a_folder_with_no_files_is_refused(tmp_path):
    assert 'has no files' in configuration_error(['--input', str(tmp_path)], GOOD_ENVIRONMENT)


def test_folders_expand_to_their_files_and_same_names_are_refused(tmp_path):
    (tmp_path / 'a').mkdir()
    (tmp_path / 'b').mkdir()
    for folder in ('a', 'b'):
        (tmp_path / folder / 'same.txt').write_text('text', encoding='utf-8')
    (tmp_path / 'a' / 'other.txt').write_text('text', encoding='utf-8')
    settings = settings_for(['--input', str(tmp_path / 'a')], GOOD_ENVIRONMENT)
    assert [os.path.basename(p) for p in settings.input_files] == ['other.txt', 'same.txt']
    assert 'have the same name' in configuration_error(['--input', str(tmp_path / 'a'), str(tmp_path / 'b')],
                                                       GOOD_ENVIRONMENT)


def test_a_malformed_key_is_reported_without_echoing_it():
    message = configuration_error([], GOOD_ENVIRONMENT | {'AZURE_BATCH_ACCESS_KEY': 'not base64 at all!'})
    assert 'Batch account key is not a base64 key' in message
    assert 'not base64 at all!' not in message


def test_a_configuration_error_creates_nothing(mocker, capsys):
    mocker.patch.dict(os.environ, GOOD_ENVIRONMENT, clear=True)
    create_clients = mocker.patch.object(client, 'create_service_clients')
    assert client.run_from_command_line(['--numwords', '0']) == 2
    create_clients.assert_not_called()


# ----- main(): steps 1-9 -----------------------------------------------------------------------

def tutorial_settings(tmp_path, **changes) -> client.Settings:
    settings = settings_for(['--yes', '--output-dir', str(tmp_path / 'out')], GOOD_ENVIRONMENT)
    for name, value in changes.items():
        setattr(settings, name, value)
    return settings


def working_services(mocker):
    blob_service = mocker.MagicMock(name='BlobServiceClient')
    blob_service.account_name = 'mystorage'
    blob_service.get_blob_client.side_effect = lambda container, blob: mocker.MagicMock(
        url=f'https://mystorage.blob.core.windows.net/{container}/{blob}')
    container = blob_service.get_container_client.return_value
    container.list_blobs.return_value = [argparse.Namespace(name=f'taskdata{i}_OUTPUT.txt') for i in (1, 2, 3)]
    container.download_blob.return_value.readinto.side_effect = lambda file: file.write(b'output')

    batch = mocker.MagicMock(name='BatchClient')
    batch.list_supported_images.return_value = [batchmodels.BatchSupportedImage(
        node_agent_sku_id='batch.node.ubuntu 24.04', os_type='linux', verification_type='verified',
        image_reference=batchmodels.BatchVmImageReference(publisher='canonical', offer='ubuntu-24_04-lts',
                                                          sku='server'))]
    batch.get_job_task_counts.return_value = batchmodels.BatchTaskCountsResult(
        task_counts=batchmodels.BatchTaskCounts(active=0, running=0, completed=3, succeeded=3, failed=0))
    batch.list_tasks.return_value = []
    return blob_service, batch


def test_a_successful_run_prints_the_tutorials_transcript(mocker, tmp_path, capsys):
    blob_service, batch = working_services(mocker)
    assert client.main(tutorial_settings(tmp_path), blob_service, batch, KEY) == 0
    out = capsys.readouterr().out
    expected_order = ['Sample start: ', 'Uploading file ', 'to container [application]...',
                      'Creating pool [PythonTutorialPool]...', 'Creating job [PythonTutorialJob]...',
                      'Adding 3 tasks to job [PythonTutorialJob]...',
                      "Monitoring all tasks for 'Completed' state, timeout in 0:20:00...",
                      "  Success! All tasks reached the 'Completed' state within the specified timeout period.",
                      'Downloading all files from container [output]...', '  Download complete!',
                      'Deleting containers...', 'Sample end: ', 'Elapsed time: ', 'Delete job? [Y/n] yes',
                      'Delete pool? [Y/n] yes']
    positions = [out.index(fragment) for fragment in expected_order]
    assert positions == sorted(positions)
    assert [c.args[0] for c in blob_service.create_container.call_args_list] == ['application', 'input', 'output']
    assert [c.args[0] for c in blob_service.delete_container.call_args_list] == ['application', 'input', 'output']
    batch.begin_delete_job.assert_called_once_with('PythonTutorialJob')
    batch.begin_delete_pool.assert_called_once_with('PythonTutorialPool')
    assert sorted(os.listdir(tmp_path / 'out')) == ['taskdata1_OUTPUT.txt', 'taskdata2_OUTPUT.txt',
                                                    'taskdata3_OUTPUT.txt']
    assert leftover_lines(out) == []


def test_existing_containers_are_reused_and_kept(mocker, tmp_path, capsys):
    """Containers that existed before the run may hold someone's data: they are used, never deleted."""
    blob_service, batch = working_services(mocker)
    blob_service.create_container.side_effect = lambda name: (_ for _ in ()).throw(
        ResourceExistsError('ContainerAlreadyExists')) if name == 'input' else None
    assert client.main(tutorial_settings(tmp_path), blob_service, batch, KEY) == 0
    assert [c.args[0] for c in blob_service.delete_container.call_args_list] == ['application', 'output']
    assert 'Kept container [input]: it existed before this run.' in capsys.readouterr().out


def service_error(message='The server failed', status=500, code=None):
    error = HttpResponseError(message=message)
    error.status_code = status
    if code:
        error.model = batchmodels.BatchError(code=code)
    return error


# Which call fails -> (exit code, text shown, job deleted?, pool asked about?, output container kept?)
FAILURES = {
    'create_container': (('blob', 'create_container'), service_error('AuthenticationFailed', 403), False, False),
    'upload': (('blob', 'get_blob_client'), ServiceRequestError('Connection refused'), False, False),
    'list_supported_images': (('batch', 'list_supported_images'), service_error('InvalidAuthenticationInfo', 403),
                              False, False),
    'create_pool': (('batch', 'create_pool'), service_error('The value provided for vmSize is invalid', 400),
                    False, False),
    'create_job': (('batch', 'create_job'), service_error('PoolNotFound', 404), False, True),
    'create_tasks': (('batch', 'create_tasks'), service_error('JobNotFound', 404), True, True),
    'get_job_task_counts': (('batch', 'get_job_task_counts'), ServiceRequestError('Connection reset'), True, True),
    'list_blobs': (('container', 'list_blobs'), service_error('ContainerNotFound', 404), True, True),
}


@pytest.mark.parametrize('failing_call', FAILURES)
def test_a_failing_call_is_reported_cleaned_up_and_exits_1(mocker, tmp_path, capsys, failing_call):
    blob_service, batch = working_services(mocker)
    (owner, method), error, job_created, pool_created = FAILURES[failing_call]
    target = {'blob': blob_service, 'batch': batch,
              'container': blob_service.get_container_client.return_value}[owner]
    getattr(target, method).side_effect = error

    assert client.main(tutorial_settings(tmp_path), blob_service, batch, KEY) == 1

    captured = capsys.readouterr()
    errors = captured.err.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith('Error: '), captured.err
    assert 'Traceback' not in captured.out + captured.err
    deleted = [c.args[0] for c in blob_service.delete_container.call_args_list]
    created = [c.args[0] for c in blob_service.create_container.call_args_list] if failing_call != \
        'create_container' else []
    # Step 8: what was created is deleted, except results that were never downloaded.
    assert deleted == [name for name in created if name != 'output']
    if created:
        assert 'Kept container [output]' in captured.out
    # Step 9: only what this run created (or reused) is offered for deletion.
    assert batch.begin_delete_job.called == job_created
    assert batch.begin_delete_pool.called == pool_created
    assert ('Delete pool?' in captured.out) == pool_created


def test_failed_tasks_make_the_run_exit_1_after_downloading(mocker, tmp_path, capsys):
    blob_service, batch = working_services(mocker)
    batch.list_tasks.side_effect = lambda job_id, filter, select: [] if filter.startswith('state') else [
        batchmodels.BatchTask(id='topNtask1', execution_info=batchmodels.BatchTaskExecutionInfo(exit_code=1))]
    batch.get_task_file_properties.return_value = argparse.Namespace(content_length=6)
    batch.download_task_file.return_value = iter([b'boom!\n'])
    assert client.main(tutorial_settings(tmp_path), blob_service, batch, KEY) == 1
    out = capsys.readouterr().out
    assert 'Task [topNtask1] failed with exit code 1.' in out and 'boom!' in out
    assert 'Download complete!' in out


def test_a_job_that_already_exists_is_not_offered_for_deletion(mocker, tmp_path, capsys):
    blob_service, batch = working_services(mocker)
    error = ResourceExistsError(message='JobExists')
    error.model = batchmodels.BatchError(code='JobExists')
    batch.create_job.side_effect = error
    assert client.main(tutorial_settings(tmp_path), blob_service, batch, KEY) == 1
    captured = capsys.readouterr()
    assert 'job [PythonTutorialJob] already exists' in captured.err
    assert 'Delete job?' not in captured.out
    batch.begin_delete_job.assert_not_called()


def test_a_blob_that_is_not_a_result_stays_in_the_kept_container_and_the_run_exits_1(mocker, tmp_path, capsys):
    blob_service, batch = working_services(mocker)
    container = blob_service.get_container_client.return_value
    container.list_blobs.return_value += [argparse.Namespace(name=name) for name in ('.bashrc', 'notes.txt')]

    assert client.main(tutorial_settings(tmp_path), blob_service, batch, KEY) == 1

    assert sorted(os.listdir(tmp_path / 'out')) == ['taskdata1_OUTPUT.txt', 'taskdata2_OUTPUT.txt',
                                                    'taskdata3_OUTPUT.txt']
    assert [c.args[0] for c in blob_service.delete_container.call_args_list] == ['application', 'input']
    assert leftover_lines(capsys.readouterr().out) == expected_leftovers('kept output')


# ----- Ctrl-C, once or twice, anywhere: the exact list of what is left, and how to delete it -------

AZ_STORAGE = ' --account-name mystorage'
AZ_BATCH = ' --account-name mybatch --account-endpoint https://mybatch.eastus.batch.azure.com'
# What may be left -> (its line, the command that deletes it)
LEFT = {
    **{name: (f'Container [{name}] is left.', f'  az storage container delete --name {name}' + AZ_STORAGE)
       for name in ('application', 'input', 'output')},
    'kept output': ('Kept container [output]: it may hold blobs that were not downloaded.',
                    '  az storage container delete --name output' + AZ_STORAGE),
    **{f'{name} for the job': (f'Kept container [{name}]: the unfinished tasks of job [PythonTutorialJob] {needs}.',
                               f'  az storage container delete --name {name}' + AZ_STORAGE)
       for name, needs in (('application', 'need the task script in it (their nodes download it from there)'),
                           ('input', 'download their input files from it'),
                           ('output', 'upload their results to it'))},
    'job completed': ('Job [PythonTutorialJob] is left: all its tasks completed.',
                      '  az batch job delete --job-id PythonTutorialJob --yes' + AZ_BATCH),
    'job running': ('Job [PythonTutorialJob] is left: its unfinished tasks keep running on pool [PythonTutorialPool]; '
                    'one that starts after TIME cannot download its input file (the link to it expires then).',
                    '  az batch job delete --job-id PythonTutorialJob --yes' + AZ_BATCH),
    'job waiting': ('Job [PythonTutorialJob] is left: its unfinished tasks wait for pool [PythonTutorialPool], '
                    'which is deleted.', '  az batch job delete --job-id PythonTutorialJob --yes' + AZ_BATCH),
    'pool': ('Pool [PythonTutorialPool] is left running: its nodes are billed until you delete it.',
             '  az batch pool delete --pool-id PythonTutorialPool --yes' + AZ_BATCH),
    'pool refused': ('Could not check whether pool [PythonTutorialPool] exists: the service refused the key '
                     '(AuthenticationFailed). If it does, its nodes are billed until you delete it.',
                     '  az batch pool delete --pool-id PythonTutorialPool --yes' + AZ_BATCH + '  # if it exists'),
    'pool unreachable': ('Could not check whether pool [PythonTutorialPool] exists: cannot reach the service: '
                         'Connection refused. If it does, its nodes are billed until you delete it.',
                         '  az batch pool delete --pool-id PythonTutorialPool --yes' + AZ_BATCH + '  # if it exists'),
}


def leftover_lines(out: str) -> list[str]:
    """The summary's lines: what is left, then the commands (after their heading)."""
    lines = re.sub(r'\d{4}-\d\d-\d\d \d\d:\d\d UTC', 'TIME', out).splitlines()
    listed = [line for line in lines if re.match(r'(Kept container|Container|Job|Pool) \[|Could not check', line)]
    commands = lines[lines.index('To delete what is left (Azure CLI):') + 1:] if listed else []
    return listed + commands


def expected_leftovers(*names: str) -> list[str]:
    return [LEFT[name][0] for name in names] + [LEFT[name][1] for name in names]


def ctrl_c_in(owner: str, method: str):
    """Ctrl-C during a call to the blob service or the Batch client."""
    def install(blob_service, batch):
        getattr({'blob': blob_service, 'batch': batch}[owner], method).side_effect = KeyboardInterrupt
    return install


def ctrl_c_in_create_pool(created: bool | Exception):
    """Ctrl-C while create_pool waits for its answer; the service did (or did not) create the pool.

    An exception instead: what looking the pool up afterwards raises (the client cannot tell).
    """
    def install(blob_service, batch):
        def create_pool(pool):
            if isinstance(created, Exception):
                batch.get_pool.side_effect = created
            elif created:
                batch.get_pool.return_value = batchmodels.BatchPool(id=pool.id, metadata=pool.metadata)
            else:
                batch.get_pool.side_effect = ResourceNotFoundError('PoolNotFound')
            raise KeyboardInterrupt
        batch.create_pool.side_effect = create_pool
    return install


def no_ctrl_c(blob_service, batch):
    pass


def main_interrupted(*args) -> int:
    """main(), which must end with its own exit code: a Ctrl-C escaping it would skip the summary."""
    try:
        return client.main(*args)
    except KeyboardInterrupt:
        pytest.fail('KeyboardInterrupt escaped main()')


# Where Ctrl-C comes -> (the call that raises it, answers typed at the prompts (a Ctrl-C too), what is left)
INTERRUPTS = {
    # The job is kept with unfinished tasks on a kept pool: the containers they need are kept too.
    'while-the-tasks-run': (ctrl_c_in('batch', 'get_job_task_counts'), ['n', 'n'],
                            ['application for the job', 'input for the job', 'output for the job', 'job running',
                             'pool']),
    'twice-while-the-tasks-run-then-at-delete-job': (
        ctrl_c_in('batch', 'get_job_task_counts'), [KeyboardInterrupt],
        ['application for the job', 'input for the job', 'output for the job', 'job running', 'pool']),
    # Once the job (or its pool) is deleted, no task needs the containers: they go, except results.
    'while-the-tasks-run-then-the-job-is-deleted': (ctrl_c_in('batch', 'get_job_task_counts'), ['y', 'n'],
                                                    ['kept output', 'pool']),
    'while-the-tasks-run-then-the-pool-is-deleted': (ctrl_c_in('batch', 'get_job_task_counts'), ['n', 'y'],
                                                     ['kept output', 'job waiting']),
    'at-delete-job-after-a-complete-run': (no_ctrl_c, [KeyboardInterrupt], ['job completed', 'pool']),
    'at-delete-pool': (no_ctrl_c, ['y', KeyboardInterrupt], ['pool']),
    'while-deleting-the-containers': (ctrl_c_in('blob', 'delete_container'), [],
                                      ['application', 'input', 'output', 'job completed', 'pool']),
    'while-deleting-the-job': (ctrl_c_in('batch', 'begin_delete_job'), ['y'], ['job completed', 'pool']),
    'while-deleting-the-pool': (ctrl_c_in('batch', 'begin_delete_pool'), ['y', 'y'], ['pool']),
    'while-creating-the-pool-which-the-service-created': (ctrl_c_in_create_pool(created=True), ['n'],
                                                           ['kept output', 'pool']),
    'while-creating-the-pool-which-was-not-created': (ctrl_c_in_create_pool(created=False), [],
                                                                  ['kept output']),
    # Whether the pool exists cannot be found out: said so, with why; it is not offered for deletion.
    'while-creating-the-pool-then-the-key-is-refused': (
        ctrl_c_in_create_pool(created=service_error('Server failed to authenticate the request.', 403,
                                                    'AuthenticationFailed')), [], ['kept output', 'pool refused']),
    'while-creating-the-pool-then-the-service-is-unreachable': (
        ctrl_c_in_create_pool(created=ServiceRequestError('Connection refused')), [],
        ['kept output', 'pool unreachable']),
}


@pytest.mark.parametrize('where', INTERRUPTS)
def test_ctrl_c_anywhere_ends_with_what_is_left_and_the_commands_that_delete_it(mocker, tmp_path, capsys, where):
    install_ctrl_c, answers, left = INTERRUPTS[where]
    blob_service, batch = working_services(mocker)
    install_ctrl_c(blob_service, batch)
    mocker.patch.object(client.sys, 'stdin').isatty.return_value = True  # the prompts read the terminal
    typed = mocker.patch('builtins.input', side_effect=answers)

    assert main_interrupted(tutorial_settings(tmp_path, assume_yes=False), blob_service, batch, KEY) == 130

    out = capsys.readouterr().out
    assert leftover_lines(out) == expected_leftovers(*left)
    assert out.endswith(expected_leftovers(*left)[-1] + '\n')
    assert typed.call_count == len(answers)  # no prompt after a Ctrl-C at a prompt, no "Press ENTER"
    assert KEY not in out and 'sig=' not in out


def test_a_job_left_running_says_until_when_its_tasks_can_download_their_inputs(mocker, tmp_path, capsys):
    """The input files' links (SAS) live 2 hours: a task that starts later fails, and the summary says when."""
    install_ctrl_c, answers, _ = INTERRUPTS['while-the-tasks-run']
    blob_service, batch = working_services(mocker)
    install_ctrl_c(blob_service, batch)
    mocker.patch.object(client.sys, 'stdin').isatty.return_value = True
    mocker.patch('builtins.input', side_effect=answers)
    before = datetime.datetime.now(datetime.timezone.utc)
    main_interrupted(tutorial_settings(tmp_path, assume_yes=False), blob_service, batch, KEY)
    after = datetime.datetime.now(datetime.timezone.utc)

    printed = re.search(r'one that starts after (\d{4}-\d\d-\d\d \d\d:\d\d) UTC cannot download',
                        capsys.readouterr().out).group(1)
    printed_time = datetime.datetime.strptime(printed, '%Y-%m-%d %H:%M').replace(tzinfo=datetime.timezone.utc)
    job_id, tasks = batch.create_tasks.call_args.args[:2]
    links_expire = [parse_qs(urlparse(task.resource_files[0].http_url).query)['se'][0] for task in tasks]
    latest_expiry = max(datetime.datetime.strptime(se, '%Y-%m-%dT%H:%M:%SZ').replace(tzinfo=datetime.timezone.utc)
                        for se in links_expire)
    assert latest_expiry <= printed_time <= latest_expiry + datetime.timedelta(minutes=1)
    assert before + datetime.timedelta(hours=2) <= printed_time <= after + datetime.timedelta(hours=2, minutes=1)


@pytest.mark.parametrize(('where', 'gone'), [
    ('at-delete-job-after-a-complete-run', 'job [PythonTutorialJob], pool [PythonTutorialPool]'),
    ('while-the-tasks-run', 'container [application], container [input], container [output], '
                            'job [PythonTutorialJob], pool [PythonTutorialPool]'),
])
def test_a_local_run_says_once_that_what_it_leaves_goes_with_the_local_services(mocker, tmp_path, capsys, where,
                                                                                   gone):
    install_ctrl_c, answers, _ = INTERRUPTS[where]
    blob_service, batch = working_services(mocker)
    install_ctrl_c(blob_service, batch)
    mocker.patch.object(client.sys, 'stdin').isatty.return_value = True
    mocker.patch('builtins.input', side_effect=answers)

    assert main_interrupted(tutorial_settings(tmp_path, assume_yes=False, local=True), blob_service, batch,
                            KEY) == 130

    out = capsys.readouterr().out
    assert out.endswith(f'\nThe local services stop now, and with them go: {gone}.\n')
    assert leftover_lines(out) == []  # nothing "is left", "kept" or "running"; no az commands
    assert 'billed' not in out and 'az ' not in out and 'Kept' not in out


def test_a_timeout_downloads_the_results_of_the_tasks_that_completed(mocker, tmp_path, capsys):
    """The timeout comes with 2 of 3 tasks completed: their results are downloaded, the rest told, exit 1."""
    blob_service, batch = working_services(mocker)
    batch.get_job_task_counts.return_value = batchmodels.BatchTaskCountsResult(
        task_counts=batchmodels.BatchTaskCounts(active=0, running=1, completed=2, succeeded=2, failed=0))
    container = blob_service.get_container_client.return_value
    container.list_blobs.return_value = [argparse.Namespace(name=f'taskdata{i}_OUTPUT.txt') for i in (1, 2)]
    clock = mocker.patch.object(client, 'time')
    clock.monotonic.side_effect = [0.0] + [60.0 * minute for minute in range(1, 30)]  # a minute per poll

    assert client.main(tutorial_settings(tmp_path), blob_service, batch, KEY) == 1

    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        "Error: Tasks did not reach 'Completed' state within timeout period of 0:20:00: 1 of 3 did not complete "
        '(give them more time with --timeout MINUTES; now 20). Downloading the results of the 2 that did.']
    assert 'Success!' not in captured.out
    assert sorted(os.listdir(tmp_path / 'out')) == ['taskdata1_OUTPUT.txt', 'taskdata2_OUTPUT.txt']
    assert '  Download complete!' in captured.out
    # Everything present was downloaded: the containers go; the job and the pool are offered for deletion.
    assert [c.args[0] for c in blob_service.delete_container.call_args_list] == ['application', 'input', 'output']
    batch.begin_delete_job.assert_called_once_with('PythonTutorialJob')


def test_the_commands_use_the_signed_in_identity_and_name_the_cloud(tmp_path, capsys):
    settings = tutorial_settings(tmp_path, auth='entra', cloud='china')
    client.print_leftovers(settings, client.Leftovers(containers=['output'], pool='made'))
    assert capsys.readouterr().out.splitlines()[-3:] == [
        'To delete what is left (Azure CLI, after "az cloud set --name AzureChinaCloud"):',
        '  az storage container delete --name output --account-name mystorage --auth-mode login',
        '  az batch pool delete --pool-id PythonTutorialPool --yes' + AZ_BATCH]


# ----- --local --------------------------------------------------------------------------------

@pytest.mark.parametrize(('missing', 'fragment'), [('node', 'Node.js 20 or later is needed'),
                                                   ('azurite', 'Azurite is not installed: run "npm ci"')])
def test_local_without_node_or_azurite_is_one_line_naming_the_install_command(mocker, capsys, missing, fragment):
    from batch_emulator import local
    mocker.patch.dict(os.environ, {}, clear=True)
    if missing == 'node':
        mocker.patch.object(local.shutil, 'which', return_value=None)
    else:
        mocker.patch.object(local, 'AZURITE_BIN', '/nonexistent/azurite-blob')
    popen = mocker.patch.object(local.subprocess, 'Popen')
    assert client.run_from_command_line(['--local', '--yes']) == 1
    captured = capsys.readouterr()
    assert len(captured.err.strip().splitlines()) == 1 and fragment in captured.err
    popen.assert_not_called()


def test_local_runs_refuse_entra_id(mocker, capsys):
    from batch_emulator import local
    popen = mocker.patch.object(local.subprocess, 'Popen')
    assert client.run_from_command_line(['--local', '--auth', 'entra']) == 2
    assert '--auth entra cannot be used with --local' in capsys.readouterr().err
    popen.assert_not_called()


def test_local_validates_flags_before_starting_anything(mocker, capsys):
    from batch_emulator import local
    popen = mocker.patch.object(local.subprocess, 'Popen')
    assert client.run_from_command_line(['--local', '--numwords', '-1']) == 2
    assert '--numwords must be 1 or more' in capsys.readouterr().err
    popen.assert_not_called()


@pytest.mark.parametrize('with_venv', [True, False], ids=['a-project-venv-exists', 'no-venv-yet'])
def test_a_python_without_the_packages_is_one_line_naming_what_to_run(tmp_path, with_venv):
    """``python3 python_tutorial_client.py --local`` with a Python that lacks the packages (a fresh, empty venv).

    With the project's .venv set up, the line gives the command that runs the tutorial with it; before,
    the command that installs it (./run.sh local). Nothing else, no traceback, exit code 1.
    """
    empty_python = tmp_path / 'empty-venv' / 'bin' / 'python'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(empty_python.parent.parent)], check=True)
    project = PROJECT_DIR
    if not with_venv:  # the two scripts alone, as in a fresh clone before ./run.sh
        project = tmp_path / 'clone'
        project.mkdir()
        for name in ('python_tutorial_client.py', 'tutorial_settings.py'):
            shutil.copy(os.path.join(PROJECT_DIR, name), project / name)
    assert os.path.exists(os.path.join(project, '.venv', 'bin', 'python')) == with_venv
    result = subprocess.run([str(empty_python), 'python_tutorial_client.py', '--local'], cwd=project,
                            capture_output=True, text=True, timeout=60, env={'PATH': os.environ['PATH']})
    assert result.returncode == 1
    assert result.stdout == ''
    problem = f'Error: this Python ({empty_python}) has no module azure, which the tutorial needs; '
    assert result.stderr.splitlines() == [problem + (
        "the project's .venv has it: .venv/bin/python python_tutorial_client.py --local" if with_venv else
        "./run.sh local installs the tutorial's packages in .venv and runs it locally "
        '(or install them into this Python: pip install -r requirements.txt)')]


def test_local_without_the_emulators_packages_is_one_line_naming_what_to_run(mocker, capsys, monkeypatch):
    """The client's packages are there but not the emulator's (aiohttp, lark: pip install of only azure-*)."""
    monkeypatch.chdir(PROJECT_DIR)
    mocker.patch.dict(sys.modules, {'batch_emulator.local': None})  # importing it raises ModuleNotFoundError
    mocker.patch.object(client.tutorial_settings.sys, 'prefix', '/usr')  # a Python other than the project's .venv
    assert client.run_from_command_line(['--local', '--yes']) == 1
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        'Error: this Python (' + sys.executable + ') has no module batch_emulator.local, which the tutorial needs; '
        "the project's .venv has it: .venv/bin/python python_tutorial_client.py --local"]
