"""Unit tests of the client's step functions with pytest-mock: the SDK arguments that matter."""

from __future__ import annotations

import argparse
import datetime
import os
import re
import shlex
import urllib.parse

import pytest
from azure.batch import BatchClient
from azure.batch import models as batchmodels
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.storage.blob import ContainerSasPermissions

import python_tutorial_client as client

STORAGE_KEY = 'a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5'  # base64, not a real key


def batch_error(status: int, code: str, message: str = 'message', exception=HttpResponseError):
    error = exception(message=f'{code}: {message}')
    error.status_code = status
    error.model = batchmodels.BatchError(code=code, message=batchmodels.BatchErrorMessage(value=message))
    return error


def sas_query(url_or_token: str) -> dict[str, str]:
    query = url_or_token.split('?', 1)[-1]
    return {key: values[0] for key, values in urllib.parse.parse_qs(query).items()}


def fake_blob_service(mocker, account_name: str = 'storacct'):
    service = mocker.MagicMock(name='BlobServiceClient')
    service.account_name = account_name
    service.get_blob_client.side_effect = lambda container, blob: mocker.MagicMock(
        url=f'https://{account_name}.blob.core.windows.net/{container}/{blob}')
    return service


# ----- query_yes_no ------------------------------------------------------------------------

@pytest.mark.parametrize(('answers', 'expected'), [
    (['y'], 'yes'), (['n'], 'no'), ([''], 'yes'), (['maybe', 'NO'], 'no'), (['Yes'], 'yes')])
def test_query_yes_no_reads_scripted_answers(answers, expected, capsys):
    replies = iter(answers)
    assert client.query_yes_no('Delete job?', input_function=lambda prompt: next(replies),
                               interactive=True) == expected
    if len(answers) > 1:
        assert "Please respond with 'yes' or 'no'" in capsys.readouterr().out


def test_query_yes_no_with_yes_flag_does_not_ask(capsys):
    def never(prompt):
        raise AssertionError('asked')
    assert client.query_yes_no('Delete pool?', assume_yes=True, input_function=never) == 'yes'
    assert capsys.readouterr().out == 'Delete pool? [Y/n] yes (--yes)\n'


def test_query_yes_no_never_blocks_without_a_terminal(capsys):
    def never(prompt):
        raise AssertionError('asked')
    assert client.query_yes_no('Delete pool?', input_function=never, interactive=False) == 'yes'
    assert 'standard input is not a terminal' in capsys.readouterr().out


def test_query_yes_no_takes_the_default_on_end_of_input():
    def closed(prompt):
        raise EOFError
    assert client.query_yes_no('Delete job?', default='no', input_function=closed, interactive=True) == 'no'


# ----- print_batch_exception, wrap_commands_in_shell ----------------------------------------

def test_print_batch_exception_shows_code_message_and_values_on_one_line(capsys):
    error = batch_error(400, 'InvalidPropertyValue', 'The value provided for one of the properties is invalid.'
                                                     '\nRequestId:0000\nTime:2026-01-01T00:00:00Z')
    error.model.error_values = [batchmodels.BatchErrorDetail(key='PropertyName', value='vmSize'),
                                batchmodels.BatchErrorDetail(key='PropertyValue', value='STANDARD_A1')]
    client.print_batch_exception(error)
    assert capsys.readouterr().err == (
        'Error: the service answered 400 InvalidPropertyValue: The value provided for one of the properties is '
        'invalid. (PropertyName=vmSize, PropertyValue=STANDARD_A1)\n')


def test_print_batch_exception_never_prints_a_sas_signature(capsys):
    error = HttpResponseError(message='GET https://a.blob.core.windows.net/c/b?sv=1&sig=SECRETSIG%3D&sp=r failed')
    client.print_batch_exception(error)
    err = capsys.readouterr().err
    assert 'SECRETSIG' not in err and 'sig=REDACTED' in err


def test_wrap_commands_in_shell_runs_bash_with_set_e():
    command = client.wrap_commands_in_shell('linux', ['echo "$AZ_BATCH_NODE_ID"', "echo it's"])
    argv = shlex.split(command)
    assert argv[:2] == ['/bin/bash', '-c']
    assert argv[2] == 'set -e; set -o pipefail; echo "$AZ_BATCH_NODE_ID"; echo it\'s; wait'


# ----- Storage: upload_file_to_container, get_container_sas_token -------------------------

def test_upload_file_to_container_returns_a_read_only_two_hour_sas(mocker, tmp_path, capsys):
    path = tmp_path / 'taskdata1.txt'
    path.write_text('words', encoding='utf-8')
    service = fake_blob_service(mocker)
    before = datetime.datetime.now(datetime.timezone.utc)

    resource_file = client.upload_file_to_container(service, 'input', str(path), STORAGE_KEY)

    service.get_blob_client.assert_called_once_with('input', 'taskdata1.txt')
    assert resource_file.file_path == 'taskdata1.txt'
    assert resource_file.http_url.startswith('https://storacct.blob.core.windows.net/input/taskdata1.txt?')
    query = sas_query(resource_file.http_url)
    assert query['sp'] == 'r'
    expiry = datetime.datetime.fromisoformat(query['se'].replace('Z', '+00:00'))
    assert datetime.timedelta(hours=2) - datetime.timedelta(seconds=5) <= expiry - before <= datetime.timedelta(
        hours=2, seconds=5)
    assert f'Uploading file {path} to container [input]...' in capsys.readouterr().out


def test_get_container_sas_token_grants_write_and_create_only():
    service = argparse.Namespace(account_name='storacct')
    token = client.get_container_sas_token(service, 'output', ContainerSasPermissions(write=True, create=True),
                                           STORAGE_KEY)
    query = sas_query(token)
    assert query['sp'] == 'cw'
    assert query['sr'] == 'c'


def test_a_user_delegation_key_signs_sas_with_entra_id():
    from azure.storage.blob import UserDelegationKey
    key = UserDelegationKey()
    key.signed_oid, key.signed_tid = 'oid', 'tid'
    key.signed_start, key.signed_expiry = '2026-01-01T00:00:00Z', '2026-01-01T02:00:00Z'
    key.signed_service, key.signed_version, key.value = 'b', '2025-01-05', STORAGE_KEY
    token = client.get_container_sas_token(argparse.Namespace(account_name='storacct'), 'output',
                                           ContainerSasPermissions(write=True), key)
    assert sas_query(token)['skoid'] == 'oid'


# ----- Batch: images, pool, job, tasks -----------------------------------------------------

def supported_image(sku: str, end_of_life: datetime.datetime | None = None, os_type: str = 'linux',
                    offer: str = 'ubuntu-24_04-lts', agent: str = 'batch.node.ubuntu 24.04'):
    return batchmodels.BatchSupportedImage(
        node_agent_sku_id=agent, os_type=os_type, verification_type='verified', batch_support_end_of_life=end_of_life,
        image_reference=batchmodels.BatchVmImageReference(publisher='canonical', offer=offer, sku=sku))


def test_get_vm_config_for_distro_picks_the_supported_image_and_its_agent(mocker):
    batch = mocker.MagicMock()
    batch.list_supported_images.return_value = [supported_image('server-gen1'), supported_image('server')]
    config = client.get_vm_config_for_distro(batch, 'canonical', 'ubuntu-24_04-lts', 'server')
    batch.list_supported_images.assert_called_once_with(filter="verificationType eq 'verified'")
    assert config.node_agent_sku_id == 'batch.node.ubuntu 24.04'
    assert (config.image_reference.offer, config.image_reference.sku) == ('ubuntu-24_04-lts', 'server')


def test_get_vm_config_for_distro_refuses_an_image_past_its_end_of_life(mocker):
    batch = mocker.MagicMock()
    past = datetime.datetime(2025, 4, 30, tzinfo=datetime.timezone.utc)
    batch.list_supported_images.return_value = [supported_image('server', end_of_life=past)]
    with pytest.raises(client.TutorialError, match='supports no current image canonical/ubuntu-24_04-lts/server'):
        client.get_vm_config_for_distro(batch, 'canonical', 'ubuntu-24_04-lts', 'server')


def start_task_script(start_task) -> str:
    return shlex.split(start_task.command_line)[2]


def test_create_pool_start_task_prepares_nodes_idempotently_as_pool_admin(mocker):
    batch = mocker.MagicMock()
    batch.list_supported_images.return_value = [supported_image('server')]
    script = batchmodels.ResourceFile(http_url='https://x/application/python_tutorial_task.py?sig=s',
                                      file_path='python_tutorial_task.py')
    mocker.patch.object(client, '_run_id', 'run1')

    assert client.create_pool(batch, 'PythonTutorialPool', [script], 'STANDARD_D2S_V3', 2) is False

    pool = batch.create_pool.call_args.args[0]
    assert (pool.id, pool.vm_size, pool.target_dedicated_nodes) == ('PythonTutorialPool', 'STANDARD_D2S_V3', 2)
    assert [(item.name, item.value) for item in pool.metadata] == [('python-tutorial-run', 'run1')]
    assert pool.virtual_machine_configuration.node_agent_sku_id == 'batch.node.ubuntu 24.04'
    start_task = pool.start_task
    assert start_task.wait_for_success is True
    assert start_task.max_task_retry_count == 2  # a failed attempt (a mirror down) is run again by the service
    assert start_task.resource_files == [script]
    assert start_task.user_identity.auto_user.scope == 'pool'
    assert start_task.user_identity.auto_user.elevation_level == 'admin'
    commands = start_task_script(start_task)
    assert commands == 'set -e; set -o pipefail; ' + '; '.join(client.start_task_commands()) + '; wait'
    assert 'DPkg::Lock::Timeout=' in commands and 'Acquire::Retries=' in commands


FAKE_TOOLS = {
    # python3: "import azure.storage.blob" works once pip has installed it into $PYTHONPATH.
    'python3': """#!/bin/sh
echo "python3 $*" >> "$CALLS"
case "$*" in
  *"import azure.storage.blob"*) [ -d "$PYTHONPATH/azure" ] ;;
  *"pip install"*) [ "${EXTERNALLY_MANAGED:-}" = "" ] || case "$*" in *--target*) ;; *) exit 1 ;; esac
                   mkdir -p "$PYTHONPATH/azure" ;;
esac
""",
    'apt-get': '#!/bin/sh\necho "apt-get $*" >> "$CALLS"\n',
}


def run_start_task(tmp_path, node) -> list[str]:
    """Runs the StartTask's command line with bash on a fake node: apt-get and python3 only log their calls."""
    import subprocess
    tools = tmp_path / 'tools'
    tools.mkdir(exist_ok=True)
    for name, text in FAKE_TOOLS.items():
        (tools / name).write_text(text)
        (tools / name).chmod(0o755)
    calls = tmp_path / 'calls.txt'
    calls.write_text('')
    command = client.wrap_commands_in_shell('linux', client.start_task_commands())
    environment = {'PATH': f'{tools}:/usr/bin:/bin', 'CALLS': str(calls), 'EXTERNALLY_MANAGED': '1',
                   'AZ_BATCH_TASK_WORKING_DIR': str(node / 'wd'), 'AZ_BATCH_NODE_SHARED_DIR': str(node / 'shared')}
    subprocess.run(shlex.split(command), env=environment, check=True, timeout=30)
    return calls.read_text().splitlines()


def test_the_start_task_installs_once_pep_668_safe_and_can_run_again(tmp_path):
    """A fresh node installs pip and the dependency (--target: PEP 668 allows it); a reboot installs nothing."""
    node = tmp_path / 'node'
    (node / 'wd').mkdir(parents=True)
    (node / 'shared').mkdir()
    (node / 'wd' / 'python_tutorial_task.py').write_text('print("task")\n')  # the StartTask's resource file

    first = run_start_task(tmp_path, node)
    assert [call.split()[0] for call in first] == ['python3', 'apt-get', 'apt-get', 'python3']
    assert 'install -y python3-pip' in first[2]
    assert f'--target {node}/shared/python-packages azure-storage-blob==' in first[3]
    assert (node / 'shared' / 'python_tutorial_task.py').read_text() == 'print("task")\n'

    (node / 'wd' / 'python_tutorial_task.py').write_text('print("this run")\n')
    again = run_start_task(tmp_path, node)  # the node reboots: the StartTask runs again
    assert [call.split()[0] for call in again] == ['python3']  # only the import check
    assert (node / 'shared' / 'python_tutorial_task.py').read_text() == 'print("this run")\n'


def test_create_pool_reuses_an_existing_pool_and_refreshes_its_start_task(mocker, capsys):
    batch = mocker.MagicMock()
    batch.list_supported_images.return_value = [supported_image('server')]
    batch.create_pool.side_effect = batch_error(409, 'PoolExists', exception=ResourceExistsError)
    batch.get_pool.return_value = batchmodels.BatchPool(id='PythonTutorialPool', state='active',
                                                        vm_size='standard_d2s_v3', current_dedicated_nodes=1,
                                                        target_dedicated_nodes=1)

    assert client.create_pool(batch, 'PythonTutorialPool', [], 'STANDARD_D2S_V3', 1) is True

    assert 'already exists: reusing it' in capsys.readouterr().out
    pool_id, update = batch.update_pool.call_args.args
    assert pool_id == 'PythonTutorialPool'
    assert update.start_task.wait_for_success is True


@pytest.mark.parametrize(('code', 'kind'), [('PoolBeingDeleted', 'pool'), ('JobBeingDeleted', 'job')])
def test_a_pool_or_job_that_is_being_deleted_is_refused_with_what_to_do(mocker, code, kind):
    batch = mocker.MagicMock()
    batch.list_supported_images.return_value = [supported_image('server')]
    getattr(batch, f'create_{kind}').side_effect = batch_error(409, code, exception=ResourceExistsError)
    with pytest.raises(client.TutorialError, match=rf'{kind} \[x\] is being deleted; .* --{kind}-id'):
        if kind == 'pool':
            client.create_pool(batch, 'x', [], 'STANDARD_D2S_V3', 1)
        else:
            client.create_job(batch, 'x', 'pool')
    batch.update_pool.assert_not_called()


def test_another_conflict_is_not_taken_for_an_existing_pool(mocker):
    batch = mocker.MagicMock()
    batch.list_supported_images.return_value = [supported_image('server')]
    batch.create_pool.side_effect = batch_error(409, 'PoolQuotaReached', exception=ResourceExistsError)
    with pytest.raises(ResourceExistsError, match='PoolQuotaReached'):
        client.create_pool(batch, 'p', [], 'STANDARD_D2S_V3', 1)
    batch.get_pool.assert_not_called()


def test_already_exists_after_a_lost_answer_is_recognised_by_the_run_id(mocker, capsys):
    """The SDK repeated a create whose answer was lost and the repeat finds the pool (the job): this run's own."""
    mocker.patch.object(client, '_run_id', 'run7')
    batch = mocker.MagicMock()
    batch.list_supported_images.return_value = [supported_image('server')]
    mine = [batchmodels.BatchMetadataItem(name='python-tutorial-run', value='run7')]
    batch.create_pool.side_effect = batch_error(409, 'PoolExists', exception=ResourceExistsError)
    batch.get_pool.return_value = batchmodels.BatchPool(id='p', state='active', metadata=mine)
    batch.create_job.side_effect = batch_error(409, 'JobExists', exception=ResourceExistsError)
    batch.get_job.return_value = batchmodels.BatchJob(id='j', metadata=mine)

    assert client.create_pool(batch, 'p', [], 'STANDARD_D2S_V3', 1) is False  # created, not reused
    client.create_job(batch, 'j', 'p')

    batch.update_pool.assert_not_called()
    assert 'reusing' not in capsys.readouterr().out


def lost_answer_response(request):
    """What requests raises when the connection drops before the answer: azure-core's ServiceResponseError."""
    import http.client

    import requests
    from urllib3.exceptions import ProtocolError
    raise requests.exceptions.ConnectionError(ProtocolError('Connection aborted.', http.client.RemoteDisconnected()))


def created_response(request):
    import io

    import requests
    from urllib3.response import HTTPResponse
    response = requests.Response()
    response.status_code, response.request, response.url = 201, request, request.url
    response.headers['Content-Length'] = '0'
    response.raw = HTTPResponse(body=io.BytesIO(b''), status=201, preload_content=False)
    return response


@pytest.mark.parametrize('retry_policy', ['the client\'s', "azure-core's default"])
def test_the_batch_client_repeats_a_post_whose_answer_was_lost(mocker, retry_policy):
    """create_service_clients configures the retry policy once: a POST whose connection dropped is sent again."""
    from azure.core.exceptions import ServiceResponseError
    settings = argparse.Namespace(auth='key', blob_endpoint='https://acct.blob.core.windows.net',
                                  storage_account_name='acct', storage_account_key=STORAGE_KEY,
                                  batch_account_url='https://acct.region.batch.azure.com',
                                  batch_account_name='acct', batch_account_key=STORAGE_KEY)
    if retry_policy != 'the client\'s':
        mocker.patch.object(client, '_RetryLostPostsToo', client.RetryPolicy)
    _, batch, _ = client.create_service_clients(settings)
    answers = iter([lost_answer_response, created_response])
    sent = mocker.patch('requests.Session.send', side_effect=lambda request, **kwargs: next(answers)(request))
    job = batchmodels.BatchJobCreateOptions(id='j', pool_info=batchmodels.BatchPoolInfo(pool_id='p'))

    if retry_policy == 'the client\'s':
        batch.create_job(job)
        assert [c.args[0].method for c in sent.call_args_list] == ['POST', 'POST']
    else:
        with pytest.raises(ServiceResponseError):
            batch.create_job(job)
        assert sent.call_count == 1


def test_create_job_associates_the_pool(mocker):
    batch = mocker.MagicMock()
    client.create_job(batch, 'PythonTutorialJob', 'PythonTutorialPool')
    job = batch.create_job.call_args.args[0]
    assert (job.id, job.pool_info.pool_id, job.job_preparation_task) == ('PythonTutorialJob', 'PythonTutorialPool',
                                                                         None)


def test_create_job_on_a_reused_pool_refreshes_the_script_with_a_preparation_task(mocker):
    batch = mocker.MagicMock()
    script = batchmodels.ResourceFile(http_url='https://x/s.py?sig=s', file_path='python_tutorial_task.py')
    client.create_job(batch, 'job', 'pool', script)
    preparation = batch.create_job.call_args.args[0].job_preparation_task
    assert preparation.resource_files == [script]
    assert preparation.wait_for_success is True
    assert '"$AZ_BATCH_NODE_SHARED_DIR/"' in start_task_script(preparation)


def test_create_job_that_exists_says_how_to_go_on(mocker):
    batch = mocker.MagicMock()
    batch.create_job.side_effect = batch_error(409, 'JobExists', exception=ResourceExistsError)
    with pytest.raises(client.TutorialError, match=r'job \[PythonTutorialJob\] already exists.*--job-id'):
        client.create_job(batch, 'PythonTutorialJob', 'pool')


def test_add_tasks_builds_one_shell_wrapped_task_per_input_file(mocker, capsys):
    batch = mocker.MagicMock()
    inputs = [batchmodels.ResourceFile(http_url=f'https://x/input/f{i}.txt?sig=s', file_path=f'f{i}.txt')
              for i in range(3)]
    count = client.add_tasks(batch, 'job', inputs, 'output', 'sv=2025&sp=cw&sig=abc%3D', numwords=5,
                             storage_account_name='storacct', blob_endpoint='https://storacct.blob.core.chinacloudapi.cn')
    assert count == 3
    assert 'Adding 3 tasks to job [job]...' in capsys.readouterr().out
    job_id, tasks = batch.create_tasks.call_args.args
    assert job_id == 'job' and batch.create_tasks.call_args.kwargs['max_concurrency'] > 1
    tasks = tasks[::-1]  # create_tasks takes them from the end (see the next test)
    assert [t.id for t in tasks] == ['topNtask0', 'topNtask1', 'topNtask2']
    assert tasks[1].resource_files == [inputs[1]]
    script = shlex.split(tasks[1].command_line)[2]
    argv = shlex.split(script.split('; ')[2])
    assert argv[1:3] == ['python3', '$AZ_BATCH_NODE_SHARED_DIR/python_tutorial_task.py']
    options = dict(zip(argv[3::2], argv[4::2], strict=True))
    assert options == {'--filepath': 'f1.txt', '--numwords': '5', '--storageaccount': 'storacct',
                       '--storagecontainer': 'output', '--sastoken': 'sv=2025&sp=cw&sig=abc%3D',
                       '--blobendpoint': 'https://storacct.blob.core.chinacloudapi.cn'}


def real_create_tasks(mocker):
    """A real BatchClient whose create_tasks runs as in the SDK, with only the HTTP call replaced."""
    batch = BatchClient('https://acct.region.batch.azure.com', AzureNamedKeyCredential('acct', STORAGE_KEY))
    requests = []

    def create_task_collection(job_id, task_collection, **kwargs):
        requests.append([int(t.id.removeprefix('topNtask')) for t in task_collection.task_values])
        return batchmodels.BatchCreateTaskCollectionResult(result_values=[
            batchmodels.BatchTaskCreateResult(status='success', task_id=t.id) for t in task_collection.task_values])
    mocker.patch.object(batch, 'create_task_collection', side_effect=create_task_collection)
    return batch, requests


def test_add_tasks_sends_10000_tasks_in_chunks_of_100(mocker):
    batch, requests = real_create_tasks(mocker)
    inputs = [batchmodels.ResourceFile(http_url=f'https://x/{i}', file_path=f'{i}.txt') for i in range(10_000)]

    assert client.add_tasks(batch, 'job', inputs, 'output', 'sig', numwords=3, storage_account_name='a',
                            blob_endpoint='https://a') == 10_000
    sizes = [len(chunk) for chunk in requests]
    assert sum(sizes) == 10_000 and max(sizes) == 100


def test_tasks_are_added_in_the_order_of_the_input_files(mocker):
    """topNtask0 first: each request holds consecutive tasks in order, the first request topNtask0 to 99."""
    batch, requests = real_create_tasks(mocker)
    inputs = [batchmodels.ResourceFile(http_url=f'https://x/{i}', file_path=f'{i}.txt') for i in range(250)]
    client.add_tasks(batch, 'job', inputs, 'output', 'sig', numwords=3, storage_account_name='a',
                     blob_endpoint='https://a')
    assert sorted(requests) == [list(range(0, 100)), list(range(100, 200)), list(range(200, 250))]


def test_tasks_the_service_refused_are_reported_in_one_line(mocker, capsys):
    batch = mocker.MagicMock()
    refused = batchmodels.BatchTaskCreateResult(status='clienterror', task_id='topNtask0',
                                                error=batchmodels.BatchError(code='InvalidPropertyValue'))
    batch.create_tasks.side_effect = batchmodels.CreateTasksError([], [refused], [])
    with pytest.raises(batchmodels.CreateTasksError) as raised:
        client.add_tasks(batch, 'job', [batchmodels.ResourceFile(http_url='u', file_path='f')], 'output', 's',
                         numwords=3, storage_account_name='a', blob_endpoint='https://a')
    client.print_batch_exception(raised.value)
    assert capsys.readouterr().err == 'Error: 1 task(s) could not be added: topNtask0: InvalidPropertyValue\n'


# ----- monitoring ----------------------------------------------------------------------------

class FakeClock:
    """Stands in for the client's ``time`` module: sleeping moves the clock on at once."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(mocker) -> FakeClock:
    fake = FakeClock()
    mocker.patch.object(client, 'time', fake)
    return fake


def counts(active=0, running=0, completed=0, failed=0):
    return batchmodels.BatchTaskCountsResult(task_counts=batchmodels.BatchTaskCounts(
        active=active, running=running, completed=completed, succeeded=completed - failed, failed=failed))


def monitored_batch(mocker, count_sequence, incomplete_lists=((),)):
    batch = mocker.MagicMock()
    batch.get_job_task_counts.side_effect = count_sequence
    batch.list_tasks.side_effect = [list(items) for items in incomplete_lists]
    batch.get_pool.return_value = batchmodels.BatchPool(id='pool', allocation_state='resizing')
    batch.list_nodes.return_value = []
    return batch


def test_wait_for_tasks_polls_task_counts_until_all_completed(mocker, clock, capsys):
    batch = monitored_batch(mocker, [counts(active=3), counts(running=2, active=1), counts(completed=3)])
    assert client.wait_for_tasks_to_complete(batch, 'job', 'pool', 3, datetime.timedelta(minutes=20)) is True
    out = capsys.readouterr().out
    assert out == ("Monitoring all tasks for 'Completed' state, timeout in 0:20:00......\n"  # the tutorial's dots
                   '  [3 of 3 completed, 0 running, 0 failed; 0:00:02, 90.0 tasks/min]\n')
    assert batch.get_job_task_counts.call_count == 3
    batch.list_tasks.assert_called_once_with('job', filter="state ne 'completed'", select=['id'])
    assert clock.sleeps == [1, 1]


def test_without_a_terminal_progress_is_dots_and_a_line_at_most_every_tenth(mocker, clock, capsys):
    """200 tasks completing one per poll: a dot per poll, 10 progress lines, no line longer than 100 characters."""
    sequence = [counts(completed=done, running=min(4, 200 - done), active=max(0, 196 - done), failed=done // 50)
                for done in range(201)]
    batch = monitored_batch(mocker, sequence)
    assert client.wait_for_tasks_to_complete(batch, 'job', 'pool', 200, datetime.timedelta(minutes=20)) is True
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("Monitoring all tasks for 'Completed' state, timeout in 0:20:00....")
    assert re.sub(r'\[[^]]*]', '', out.split('0:20:00...', 1)[1]).count('.') == 201  # one dot per poll
    progress = [line for line in lines if line.startswith('  [')]
    assert [line.split(' of ')[0] for line in progress] == [f'  [{n}' for n in range(20, 201, 20)]
    assert progress[-1].startswith('  [200 of 200 completed, 0 running, 4 failed; 0:03:20, ')
    assert max(len(line) for line in lines) <= 100


def test_on_a_terminal_progress_is_one_line_updated_in_place(mocker, clock, capsys):
    mocker.patch.object(client.sys.stdout, 'isatty', return_value=True)
    batch = monitored_batch(mocker, [counts(active=3), counts(running=2, active=1, completed=0),
                                     counts(running=1, completed=2, failed=1), counts(completed=3, failed=1)])
    assert client.wait_for_tasks_to_complete(batch, 'job', 'pool', 3, datetime.timedelta(minutes=20)) is True
    out = capsys.readouterr().out
    assert '.' not in out.split('...', 1)[1].replace('tasks/min', '').replace('.0', '')  # no dots
    screen = out.split('\n')
    assert screen[0] == "Monitoring all tasks for 'Completed' state, timeout in 0:20:00..."
    updates = screen[1].split('\r')
    assert len(updates) == 4 and screen[2:] == ['']
    assert updates[2] == '  [2 of 3 completed, 1 running, 1 failed; 0:00:02, 60.0 tasks/min]'
    assert updates[3].rstrip() == '  [3 of 3 completed, 0 running, 1 failed; 0:00:03, 60.0 tasks/min]'
    assert all(len(update) >= len(updates[i]) for i, update in enumerate(updates[1:]))  # covers the one before


def test_wait_for_tasks_does_not_trust_lagging_counts(mocker, clock):
    lagging = [batchmodels.BatchTask(id='topNtask2')]
    batch = monitored_batch(mocker, [counts(completed=3), counts(completed=3)], incomplete_lists=[lagging, []])
    assert client.wait_for_tasks_to_complete(batch, 'job', 'pool', 3, datetime.timedelta(minutes=1)) is True
    assert batch.list_tasks.call_count == 2


def test_wait_for_tasks_requests_per_poll_do_not_grow_with_the_number_of_tasks(mocker, clock):
    for task_count in (3, 10_000):
        batch = monitored_batch(mocker, [counts(running=1, active=task_count - 1)] * 5
                                + [counts(completed=task_count)])
        client.wait_for_tasks_to_complete(batch, 'job', 'pool', task_count, datetime.timedelta(minutes=1))
        assert batch.get_job_task_counts.call_count == 6
        assert batch.list_tasks.call_count == 1
        assert batch.get_pool.call_count == 0  # tasks are running: the pool is fine


def test_a_timeout_says_how_many_did_not_complete_and_how_to_give_more_time(mocker, clock, capsys):
    batch = monitored_batch(mocker, [counts(running=1, completed=2)] * 100)
    assert client.wait_for_tasks_to_complete(batch, 'job', 'pool', 3, datetime.timedelta(seconds=5)) is False
    assert batch.get_job_task_counts.call_count == 5
    assert capsys.readouterr().err == (
        "Error: Tasks did not reach 'Completed' state within timeout period of 0:00:05: 1 of 3 did not complete "
        '(give them more time with --timeout MINUTES; now 0.0833333). Downloading the results of the 2 that did.\n')


def test_wait_for_tasks_stops_early_with_the_start_task_stderr(mocker, clock):
    batch = monitored_batch(mocker, [counts(active=3)] * 10)
    batch.list_nodes.return_value = [batchmodels.BatchNode(
        id='tvm-1', state='starttaskfailed', start_task_info=batchmodels.BatchStartTaskInfo(exit_code=100))]
    batch.get_node_file_properties.return_value = argparse.Namespace(content_length=30)
    batch.download_node_file.return_value = iter([b'E: Unable to locate package\n'])
    with pytest.raises(client.TutorialError) as raised:
        client.wait_for_tasks_to_complete(batch, 'job', 'pool', 3, datetime.timedelta(minutes=20))
    assert 'StartTask failed on node [tvm-1] (exit code 100)' in str(raised.value)
    assert 'E: Unable to locate package' in str(raised.value)
    batch.download_node_file.assert_called_once_with('pool', 'tvm-1', 'startup/stderr.txt', ocp_range='bytes=0-29')
    assert clock.now < 5


def test_wait_for_tasks_stops_early_on_resize_errors(mocker, clock):
    batch = monitored_batch(mocker, [counts(active=3)] * 10)
    batch.get_pool.return_value = batchmodels.BatchPool(
        id='pool', allocation_state='steady',
        resize_errors=[batchmodels.ResizeError(code='AccountCoreQuotaReached', message='Quota reached')])
    with pytest.raises(client.TutorialError, match='could not allocate its nodes: AccountCoreQuotaReached'):
        client.wait_for_tasks_to_complete(batch, 'job', 'pool', 3, datetime.timedelta(minutes=20))


def test_report_failed_tasks_shows_exit_code_and_stderr_tail(mocker, capsys):
    batch = mocker.MagicMock()
    failure = batchmodels.BatchTaskFailureInfo(category='usererror', message='failure exit code')
    batch.list_tasks.return_value = [batchmodels.BatchTask(
        id='topNtask1', execution_info=batchmodels.BatchTaskExecutionInfo(exit_code=2, failure_info=failure))]
    batch.get_task_file_properties.return_value = argparse.Namespace(content_length=5000)
    batch.download_task_file.return_value = iter([b'Traceback...\nValueError: boom\n'])
    assert client.report_failed_tasks(batch, 'job') == 1
    out = capsys.readouterr().out
    assert 'Task [topNtask1] failed with exit code 2 (failure exit code).' in out
    assert 'ValueError: boom' in out
    batch.list_tasks.assert_called_once_with('job', filter="executionInfo/result eq 'failure'",
                                             select=['id', 'executionInfo'])
    batch.download_task_file.assert_called_once_with('job', 'topNtask1', 'stderr.txt', ocp_range='bytes=3000-4999')


# ----- download ------------------------------------------------------------------------------

def output_container(mocker, blob_names):
    """A blob service whose output container holds ``blob_names``; each blob's content is its own name."""
    service = mocker.MagicMock()
    container = service.get_container_client.return_value
    container.list_blobs.return_value = [argparse.Namespace(name=name) for name in blob_names]
    container.download_blob.side_effect = lambda name: mocker.MagicMock(
        readinto=lambda file: file.write(name.encode()))
    return service, container


HOSTILE_BLOBS = ['.bashrc', '../x', '.ssh/authorized_keys', 'sub/dir.txt', 'back\\slash.txt', 'a..b_OUTPUT.txt']
EXPECTED = ['taskdata1_OUTPUT.txt', 'taskdata2_OUTPUT.txt', 'a..b_OUTPUT.txt']


def test_download_takes_only_this_runs_results_and_leaves_the_rest(mocker, tmp_path, capsys):
    """A task with the container's write SAS uploads .bashrc, .ssh/authorized_keys, ...: none reaches the folder."""
    home = tmp_path / 'home'
    home.mkdir()
    (home / '.bashrc').write_text('mine')
    (home / 'notes.txt').write_text('mine')
    (home / 'taskdata1_OUTPUT.txt').write_text('earlier result')
    service, container = output_container(mocker, ['taskdata1_OUTPUT.txt', 'taskdata2_OUTPUT.txt', 'notes.txt',
                                                   *HOSTILE_BLOBS])

    left = client.download_blobs_from_container(service, 'output', str(home), EXPECTED)

    assert sorted(left) == sorted(['notes.txt', *HOSTILE_BLOBS])
    assert sorted(c.args[0] for c in container.download_blob.call_args_list) == ['taskdata1_OUTPUT.txt',
                                                                                 'taskdata2_OUTPUT.txt']
    assert sorted(p.name for p in tmp_path.iterdir()) == ['home']  # nothing next to the folder ('../x')
    assert {p.name: p.read_text() for p in home.iterdir()} == {
        '.bashrc': 'mine', 'notes.txt': 'mine',  # not results: never written
        'taskdata1_OUTPUT.txt': 'taskdata1_OUTPUT.txt',  # an earlier result of the same name: replaced
        'taskdata2_OUTPUT.txt': 'taskdata2_OUTPUT.txt'}
    out = capsys.readouterr().out
    assert ("  Left 6 blob(s) in container [output] (refused: a name that starts with '.' or holds '/', '\\' or "
            "'..'): [.bashrc], [../x], [.ssh/authorized_keys], [sub/dir.txt], [back\\slash.txt], ...\n") in out
    assert "  Left 1 blob(s) in container [output] (not a result of this run's tasks): [notes.txt]\n" in out
    assert f"  Downloaded blob [taskdata1_OUTPUT.txt] from container [output] to {home / 'taskdata1_OUTPUT.txt'}" in out
    assert '  Download finished; 7 blob(s) left in the container.' in out
    assert 'Download complete!' not in out


def test_download_never_prints_a_blob_names_control_characters(mocker, tmp_path, capsys):
    service, _ = output_container(mocker, ['\x1b]0;owned\x07\x1b[2Jx.txt', 'two\nlines.txt'])
    client.download_blobs_from_container(service, 'output', str(tmp_path), EXPECTED)
    out = capsys.readouterr().out
    assert '\x1b' not in out and '\x07' not in out
    assert r"[\x1b]0;owned\x07\x1b[2Jx.txt], [two\nlines.txt]" in out


def test_download_does_not_follow_a_symlink_in_place_of_a_result(mocker, tmp_path, capsys):
    (tmp_path / '.bashrc').write_text('mine')
    (tmp_path / 'taskdata1_OUTPUT.txt').symlink_to(tmp_path / '.bashrc')
    service, _ = output_container(mocker, ['taskdata1_OUTPUT.txt'])

    assert client.download_blobs_from_container(service, 'output', str(tmp_path), EXPECTED) == [
        'taskdata1_OUTPUT.txt']
    assert (tmp_path / '.bashrc').read_text() == 'mine'
    assert '  Error: blob [taskdata1_OUTPUT.txt] not downloaded: ' in capsys.readouterr().out


def test_a_complete_download_says_so(mocker, tmp_path, capsys):
    service, _ = output_container(mocker, EXPECTED[:2])
    assert client.download_blobs_from_container(service, 'output', str(tmp_path / 'new'), EXPECTED) == []
    assert sorted(p.name for p in (tmp_path / 'new').iterdir()) == EXPECTED[:2]
    assert capsys.readouterr().out.endswith('  Download complete!\n')


def test_the_expected_results_are_the_names_the_task_uploads(tmp_path):
    import python_tutorial_task
    paths = [str(tmp_path / 'taskdata1.txt'), '/data/report.final.md', 'README', 'data/.hidden.txt']
    assert client.expected_results(paths) == [
        python_tutorial_task.output_file_path(os.path.basename(path)) for path in paths]
    assert client.expected_results(paths) == ['taskdata1_OUTPUT.txt', 'report.final_OUTPUT.md', 'README_OUTPUT',
                                              '.hidden_OUTPUT.txt']
