"""The client's step functions against a service that answers as Batch does, in process.

``FakeBatch`` answers ``$filter`` and ``$select`` the way the service does (through the emulator's OData,
whose own tests are tests/test_unit_odata.py) and byte ranges of files as ``ocp-range`` asks, and gives the
SDK's models back: a step that asks for the wrong properties, the wrong nodes or the wrong bytes gets what
the service would give it, and says something else to the user. What the user is told is the README's and
the docstrings' (what failed, which task or node, the end of its stderr; never a secret). Fast, so mutation
testing (benchmarks/mutation.sh) sees them.
"""

from __future__ import annotations

import argparse
import datetime
import re
import urllib.parse

import pytest
from azure.batch import models as batchmodels
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ServiceRequestError
from azure.storage.blob import ContainerSasPermissions

import python_tutorial_client as client
from batch_emulator.contract.odata import apply_select, compile_filter

STORAGE_KEY = 'a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5'  # base64, not a real key


class FakeBatch:
    """The few Batch operations the monitoring step calls, answered as the service answers them."""

    def __init__(self, pool: dict, nodes: list[dict] = (), files: dict[tuple[str, str], bytes] | None = None):
        self.pool, self.nodes, self.files = pool, list(nodes), files or {}
        self.ranges: list[str] = []

    @staticmethod
    def _selected(item: dict, select: list[str] | None) -> dict:
        return apply_select(item, ','.join(select) if select else None)

    def get_pool(self, pool_id: str, *, select: list[str] | None = None) -> batchmodels.BatchPool:
        assert pool_id == self.pool['id'], f'no pool {pool_id}'
        return batchmodels.BatchPool(self._selected(self.pool, select))

    def list_nodes(self, pool_id: str, *, filter: str | None = None, select: list[str] | None = None):  # noqa: A002
        assert pool_id == self.pool['id'], f'no pool {pool_id}'
        predicate = compile_filter(filter) or (lambda node: True)
        return [batchmodels.BatchNode(self._selected(node, select)) for node in self.nodes if predicate(node)]

    def get_node_file_properties(self, pool_id: str, node_id: str, file_path: str):
        data = self._file(pool_id, node_id, file_path)
        return argparse.Namespace(content_length=len(data))

    def download_node_file(self, pool_id: str, node_id: str, file_path: str, *, ocp_range: str | None = None):
        data = self._file(pool_id, node_id, file_path)
        self.ranges.append(ocp_range)
        first, last = map(int, re.fullmatch(r'bytes=(\d+)-(\d+)', ocp_range).groups())
        return iter([data[first:last + 1][:7], data[first:last + 1][7:]])  # in chunks, as the SDK streams it

    def _file(self, pool_id: str, node_id: str, file_path: str) -> bytes:
        if pool_id != self.pool['id'] or (node_id, file_path) not in self.files:
            raise HttpResponseError(message='The specified file does not exist.')
        return self.files[(node_id, file_path)]


def steady_pool(**changes) -> dict:
    return {'id': 'pool', 'url': 'https://x/pools/pool', 'state': 'active', 'allocationState': 'steady', **changes}


def node(node_id: str, state: str, exit_code: int | None = None) -> dict:
    return {'id': node_id, 'url': f'https://x/pools/pool/nodes/{node_id}', 'state': state,
            'startTaskInfo': {'state': 'completed', 'exitCode': exit_code, 'retryCount': 0}}


# ----- _start_task_failure: why the pool cannot run tasks, or None while it still can ---------------------

def test_resize_errors_of_a_steady_pool_are_why_it_has_no_nodes():
    pool = steady_pool(resizeErrors=[{'code': 'AccountCoreQuotaReached', 'message': 'Quota reached'},
                                     {'code': 'AllocationFailed', 'message': 'No capacity'}])
    assert client._start_task_failure(FakeBatch(pool), 'pool') == (
        'pool [pool] could not allocate its nodes: AccountCoreQuotaReached: Quota reached; '
        'AllocationFailed: No capacity')


def test_a_pool_still_resizing_may_still_get_its_nodes():
    pool = steady_pool(allocationState='resizing', resizeErrors=[{'code': 'AllocationFailed', 'message': 'x'}])
    assert client._start_task_failure(FakeBatch(pool, [node('tvm-1', 'creating')]), 'pool') is None
    assert client._start_task_failure(FakeBatch(steady_pool(), [node('tvm-1', 'idle')]), 'pool') is None
    assert client._start_task_failure(FakeBatch(steady_pool(allocationState=None)), 'pool') is None


def test_a_failed_start_task_is_reported_with_its_node_exit_code_and_the_end_of_its_stderr():
    stderr = b'x' * 3000 + b'\nE: Unable to locate package python3-pip\n'
    batch = FakeBatch(steady_pool(), [node('tvm-1', 'idle', 0), node('tvm-2', 'starttaskfailed', 100),
                                      node('tvm-3', 'starttaskfailed', 1)],
                      {('tvm-2', 'startup/stderr.txt'): stderr})
    problem = client._start_task_failure(batch, 'pool')
    assert problem.startswith('the StartTask failed on node [tvm-2] (exit code 100), so it cannot run tasks.\n'
                              '  stderr.txt (end):\n    ')
    assert problem.endswith('\n    E: Unable to locate package python3-pip')
    assert batch.ranges == [f'bytes={len(stderr) - 2000}-{len(stderr) - 1}']  # only the end is fetched


def test_a_failed_start_task_without_stderr_says_so_in_one_line():
    batch = FakeBatch(steady_pool(), [node('tvm-1', 'starttaskfailed', 2)], {('tvm-1', 'startup/stderr.txt'): b''})
    assert client._start_task_failure(batch, 'pool') == \
        'the StartTask failed on node [tvm-1] (exit code 2), so it cannot run tasks.'
    missing = FakeBatch(steady_pool(), [node('tvm-1', 'starttaskfailed', 2)])
    assert client._start_task_failure(missing, 'pool') == \
        'the StartTask failed on node [tvm-1] (exit code 2), so it cannot run tasks.'


def test_a_failed_start_task_without_its_info_has_no_exit_code():
    batch = FakeBatch(steady_pool(), [{'id': 'tvm-1', 'state': 'starttaskfailed'}])
    assert client._start_task_failure(batch, 'pool').startswith('the StartTask failed on node [tvm-1] (exit code None)')


# ----- the end of a task's or node's file -------------------------------------------------------------

def file_reader(data: bytes, ranges: list[str]):
    def download(*, ocp_range: str):
        ranges.append(ocp_range)
        first, last = map(int, re.fullmatch(r'bytes=(\d+)-(\d+)', ocp_range).groups())
        return iter([data[first:last + 1][:3], data[first:last + 1][3:]])
    return (lambda: argparse.Namespace(content_length=str(len(data)))), download


def test_the_tail_of_a_file_is_its_last_2000_bytes_as_text_without_trailing_blanks():
    ranges: list[str] = []
    data = b'a' * 2500 + b'\n  indented last line \n\n'
    assert client._tail_of_file(*file_reader(data, ranges)) == data[-2000:].decode().rstrip()
    assert ranges == [f'bytes={len(data) - 2000}-{len(data) - 1}']


def test_a_short_file_is_read_whole_and_an_empty_one_not_at_all():
    ranges: list[str] = []
    assert client._tail_of_file(*file_reader(b'x', ranges)) == 'x'
    assert ranges == ['bytes=0-0']
    assert client._tail_of_file(*file_reader(b'', ranges)) == ''
    assert ranges == ['bytes=0-0']
    assert client._tail_of_file(*file_reader(b'    raise ValueError\n', ranges)) == '    raise ValueError'  # indented


def test_the_tail_of_a_file_keeps_undecodable_bytes_as_replacement_characters_and_hides_secrets():
    ranges: list[str] = []
    data = b'caf\xe9 https://a.blob.core.windows.net/c?sv=1&sig=SECRET%3D&sp=r'
    assert client._tail_of_file(*file_reader(data, ranges)) == 'caf\ufffd https://a.blob.core.windows.net/c?sv=1&' \
                                                              'sig=REDACTED&sp=r'


def test_a_file_that_cannot_be_read_has_no_tail():
    def failing():
        raise HttpResponseError(message='gone')
    assert client._tail_of_file(failing, lambda **kwargs: iter([b'never'])) == ''


def test_indent_puts_four_spaces_before_each_line():
    assert client._indent('one\ntwo\n\nfour') == '    one\n    two\n    \n    four'


# ----- what stopped the run, on one line ---------------------------------------------------------------

def task_result(task_id: str, code: str | None) -> batchmodels.BatchTaskCreateResult:
    body = {'status': 'clienterror' if code else 'servererror', 'taskId': task_id}
    if code:
        body['error'] = {'code': code, 'message': {'value': 'x'}}
    return batchmodels.BatchTaskCreateResult(body)


def stderr_of(error: BaseException, capsys) -> str:
    client.print_batch_exception(error)
    return capsys.readouterr().err


def test_tasks_the_service_refused_are_counted_and_the_first_five_named(capsys):
    failures = [task_result(f't{i}', 'InvalidPropertyValue') for i in range(6)]
    error = batchmodels.CreateTasksError(failure_tasks=failures, errors=[])
    assert stderr_of(error, capsys) == ('Error: 6 task(s) could not be added: t0: InvalidPropertyValue; '
                                        't1: InvalidPropertyValue; t2: InvalidPropertyValue; '
                                        't3: InvalidPropertyValue; t4: InvalidPropertyValue\n')


def test_a_refused_task_without_an_error_code_and_a_request_that_failed_are_both_told(capsys):
    error = batchmodels.CreateTasksError(failure_tasks=[task_result('t0', None)],
                                         errors=[ServiceRequestError('Connection refused\nmore detail')])
    assert stderr_of(error, capsys) == ('Error: 2 task(s) could not be added: t0: ?; '
                                        'cannot reach the service: Connection refused\n')


def test_an_answer_without_a_body_is_told_by_its_status_and_error_code_header(capsys):
    error = HttpResponseError(message='Operation returned an invalid status (Service Unavailable)')
    error.status_code, error.error_code = 503, 'ServerBusy'
    assert stderr_of(error, capsys) == ('Error: the service answered 503 ServerBusy: Operation returned an invalid '
                                        'status (Service Unavailable)\n')


def test_an_error_that_is_not_the_services_is_its_own_message(capsys):
    assert stderr_of(client.TutorialError('pool [p] is being deleted'), capsys) == \
        'Error: pool [p] is being deleted\n'
    assert stderr_of(ServiceRequestError('  \n'), capsys) == 'Error: cannot reach the service: no message\n'


# ----- a create that answered "already exists" -----------------------------------------------------------

def exists_error(code: str | None) -> ResourceExistsError:
    error = ResourceExistsError(message=f'{code}: exists')
    error.status_code = 409
    if code is not None:
        error.model = batchmodels.BatchError(code=code, message=batchmodels.BatchErrorMessage(value='x'))
    return error


@pytest.mark.parametrize('code, kind', [('PoolBeingDeleted', 'pool'), ('JobBeingDeleted', 'job')])
def test_a_pool_or_job_being_deleted_says_to_wait_or_choose_another_id(code, kind):
    with pytest.raises(client.TutorialError) as raised:
        client.left_by_another_run(exists_error(code), lambda resource_id: pytest.fail('not read'), 'the-id')
    assert str(raised.value) == (f'{kind} [the-id] is being deleted; wait a few minutes or choose another id '
                                 f'with --{kind}-id')


@pytest.mark.parametrize('code', ['OperationInvalidForCurrentState', None])
def test_another_conflict_is_raised_as_it_came(code):
    error = exists_error(code)
    with pytest.raises(ResourceExistsError) as raised:
        client.left_by_another_run(error, lambda resource_id: pytest.fail('not read'), 'the-id')
    assert raised.value is error


def test_an_existing_pool_is_ours_only_with_this_runs_id():
    seen = []
    ours = batchmodels.BatchPool({'id': 'p', 'metadata': [{'name': 'python-tutorial-run', 'value': client._run_id}]})
    theirs = batchmodels.BatchPool({'id': 'p', 'metadata': [{'name': 'python-tutorial-run', 'value': 'other'}]})
    bare = batchmodels.BatchPool({'id': 'p'})
    assert client.left_by_another_run(exists_error('PoolExists'), lambda i: seen.append(i) or ours, 'p') is None
    assert client.left_by_another_run(exists_error('JobExists'), lambda i: seen.append(i) or theirs, 'p') is theirs
    assert client.left_by_another_run(exists_error('PoolExists'), lambda i: seen.append(i) or bare, 'p') is bare
    assert seen == ['p', 'p', 'p']


def test_what_an_earlier_run_left_says_how_to_delete_it_or_go_around_it():
    assert str(client.left_behind('job', 'MyJob')) == (
        'job [MyJob] already exists (left by an earlier run?). Delete it with "az batch job delete --job-id MyJob '
        '--yes" or choose another id with --job-id')


def test_a_reused_pools_nodes_get_the_script_from_a_preparation_task_run_as_the_pool_admin():
    """The StartTask wrote the shared folder as the pool's admin auto-user: only that user may replace the script."""
    script = batchmodels.ResourceFile(http_url='https://a/b?sig=x', file_path='python_tutorial_task.py')
    preparation = client._copying_task_script(script)
    assert preparation.user_identity.auto_user.scope == 'pool'
    assert preparation.user_identity.auto_user.elevation_level == 'admin'
    assert preparation.resource_files == [script] and preparation.wait_for_success is True
    assert preparation.command_line.startswith('/bin/bash -c ')


# ----- failed tasks: each with its exit code and the end of its stderr ------------------------------------

class FakeJob:
    """A job's tasks and their files, listed and read as the service answers."""

    def __init__(self, tasks: list[dict], files: dict[str, bytes]):
        self.tasks, self.files = tasks, files

    def list_tasks(self, job_id: str, *, filter: str | None = None, select: list[str] | None = None):  # noqa: A002
        assert job_id == 'job', f'no job {job_id}'
        predicate = compile_filter(filter) or (lambda task: True)
        return [batchmodels.BatchTask(apply_select(task, ','.join(select) if select else None))
                for task in self.tasks if predicate(task)]

    def get_task_file_properties(self, job_id: str, task_id: str, file_path: str):
        return argparse.Namespace(content_length=len(self._file(job_id, task_id, file_path)))

    def download_task_file(self, job_id: str, task_id: str, file_path: str, *, ocp_range: str):
        first, last = map(int, re.fullmatch(r'bytes=(\d+)-(\d+)', ocp_range).groups())
        return iter([self._file(job_id, task_id, file_path)[first:last + 1]])

    def _file(self, job_id: str, task_id: str, file_path: str) -> bytes:
        if job_id != 'job' or f'{task_id}/{file_path}' not in self.files:
            raise HttpResponseError(message='The specified file does not exist.')
        return self.files[f'{task_id}/{file_path}']


def task(task_id: str, result: str, exit_code: int, reason: str | None = None) -> dict:
    info = {'result': result, 'exitCode': exit_code, 'retryCount': 0, 'requeueCount': 0}
    if reason is not None:
        info['failureInfo'] = {'category': 'usererror', 'code': 'FailureExitCode', 'message': reason}
    return {'id': task_id, 'url': f'https://x/jobs/job/tasks/{task_id}', 'state': 'completed',
            'commandLine': 'c', 'executionInfo': info}


def test_each_failed_task_is_reported_with_its_exit_code_reason_and_stderr(capsys):
    job = FakeJob([task('ok', 'success', 0), task('t1', 'failure', 2, 'The task exited with exit code 2'),
                   task('t2', 'failure', 1)],
                  {'t1/stderr.txt': b'Traceback (most recent call last):\n  ValueError: boom\n',
                   'ok/stderr.txt': b'fine', 't2/stdout.txt': b'not stderr'})
    assert client.report_failed_tasks(job, 'job') == 2
    assert capsys.readouterr().out == (
        '  Task [t1] failed with exit code 2 (The task exited with exit code 2).\n'
        '  stderr.txt (end):\n    Traceback (most recent call last):\n      ValueError: boom\n'
        '  Task [t2] failed with exit code 1.\n')


@pytest.mark.parametrize('failed, more', [(10, None), (11, 1), (13, 3)])
def test_at_most_ten_failed_tasks_are_shown_then_how_many_more(capsys, failed, more):
    job = FakeJob([task(f't{i:02d}', 'failure', 1) for i in range(failed)], {})
    assert client.report_failed_tasks(job, 'job') == failed
    lines = capsys.readouterr().out.splitlines()
    assert [line for line in lines if line.startswith('  Task [')] == \
        [f'  Task [t{i:02d}] failed with exit code 1.' for i in range(10)]
    assert lines[10:] == ([f'  ... and {more} more failed task(s).'] if more else [])


# ----- secrets never reach the terminal -----------------------------------------------------------------

@pytest.mark.parametrize('text, shown', [
    ('https://a.blob.core.windows.net/c/b?sv=2025&Sig=abc%2B%3D&sp=r', 'https://a.blob.core.windows.net/c/b?sv=2025&'
                                                                        'Sig=REDACTED&sp=r'),
    ("GET ...?SIG=abc failed: 'x'", "GET ...?SIG=REDACTED failed: 'x'"),
    ('DefaultEndpointsProtocol=https;AccountName=a;AccountKey=a2V5+/==;EndpointSuffix=core.windows.net',
     'DefaultEndpointsProtocol=https;AccountName=a;AccountKey=REDACTED;EndpointSuffix=core.windows.net'),
    ('accountkey=a2V5 and sig=x"', 'accountkey=REDACTED and sig=REDACTED"'),
    ('no secret here', 'no secret here'),
    # What follows a signature or a key stays: a message that quotes a URL in brackets keeps its bracket.
    ('download failed (https://a/c/b?sp=r&sig=ab%2Bc%3D) after 3 tries',
     'download failed (https://a/c/b?sp=r&sig=REDACTED) after 3 tries'),
    ('<AccountKey=a2V5+/==>, retrying', '<AccountKey=REDACTED>, retrying'),
])
def test_sas_signatures_and_account_keys_are_redacted_in_any_casing(text, shown):
    assert client.redact_secrets(text) == shown


# ----- downloaded results ---------------------------------------------------------------------------------

def test_a_downloaded_result_is_an_ordinary_file_not_an_executable(mocker, tmp_path):
    container = mocker.MagicMock()
    container.download_blob.return_value.readinto.side_effect = lambda file: file.write(b'result')
    assert client._download_blob(container, 'taskdata1_OUTPUT.txt', str(tmp_path / 'taskdata1_OUTPUT.txt')) is None
    written = tmp_path / 'taskdata1_OUTPUT.txt'
    assert written.read_bytes() == b'result'
    assert written.stat().st_mode & 0o111 == 0  # whatever the umask: created 0o666 at most


def test_a_failed_download_says_why_in_one_line_without_secrets(mocker, tmp_path):
    container = mocker.MagicMock()
    container.download_blob.side_effect = HttpResponseError(
        message='The specified blob does not exist: https://a/c/b?sig=SECRET\nRequestId:1\nTime:2')
    why = client._download_blob(container, 'b', str(tmp_path / 'b'))
    assert why == 'The specified blob does not exist: https://a/c/b?sig=REDACTED'


def test_blobs_left_in_the_container_are_listed_five_at_most(mocker, capsys):
    for count, suffix in [(5, ''), (6, ', ...')]:
        names = [f'other{i}.txt' for i in range(count)]
        client._results_to_download(names, [], 'output')
        shown = ', '.join(f'[{name}]' for name in names[:5]) + suffix
        assert capsys.readouterr().out == (f"  Left {count} blob(s) in container [output] (not a result of this "
                                           f"run's tasks): {shown}\n")


# ----- the progress line ----------------------------------------------------------------------------------

def test_on_a_terminal_a_shorter_progress_line_covers_the_longer_one_before(mocker, capsys):
    now = [100.0]
    mocker.patch.object(client.time, 'monotonic', lambda: now[0])
    mocker.patch.object(client.sys.stdout, 'isatty', return_value=True)
    progress = client._Progress(1000, client.datetime.timedelta(minutes=30))
    now[0] += 90.75
    progress.show(batchmodels.BatchTaskCounts(active=0, running=100, completed=300, succeeded=300, failed=10))
    now[0] += 0.25
    progress.show(batchmodels.BatchTaskCounts(active=0, running=0, completed=999, succeeded=999, failed=0))
    first = '  [300 of 1000 completed, 100 running, 10 failed; 0:01:30, 198.3 tasks/min]'
    second = '  [999 of 1000 completed, 0 running, 0 failed; 0:01:31, 658.7 tasks/min]'
    assert capsys.readouterr().out == '\n' + first + '\r' + second.ljust(len(first))


def test_the_rate_counts_at_least_one_second(mocker, capsys):
    mocker.patch.object(client.time, 'monotonic', lambda: 5.0)
    mocker.patch.object(client.sys.stdout, 'isatty', return_value=True)
    progress = client._Progress(4, client.datetime.timedelta(minutes=1))
    progress.show(batchmodels.BatchTaskCounts(active=0, running=0, completed=2, succeeded=2, failed=0))
    assert capsys.readouterr().out.endswith('; 0:00:00, 120.0 tasks/min]')


def test_a_timeout_before_the_first_poll_says_none_completed(mocker, capsys):
    progress = client._Progress(3, client.datetime.timedelta(0))
    progress.end(timed_out=True)
    err = capsys.readouterr().err
    assert '3 of 3 did not complete' in err and 'the 0 that did' in err


# ----- Storage: what is uploaded, and for how long the nodes may read it ------------------------------------

def sas_times(token: str) -> tuple[datetime.datetime, datetime.datetime]:
    query = {key: values[0] for key, values in urllib.parse.parse_qs(token.split('?', 1)[-1]).items()}
    return tuple(datetime.datetime.fromisoformat(query[key].replace('Z', '+00:00')) for key in ('st', 'se'))


def test_sas_tokens_start_five_minutes_back_for_the_nodes_clocks_and_last_two_hours(mocker, tmp_path):
    path = tmp_path / 'taskdata1.txt'
    path.write_bytes(b'words \xe2\x80\x94 and bytes')
    service = mocker.MagicMock(account_name='storacct')
    service.get_blob_client.return_value.url = 'https://storacct.blob.core.windows.net/input/taskdata1.txt'
    uploaded = []
    service.get_blob_client.return_value.upload_blob.side_effect = \
        lambda data, overwrite: uploaded.append((data.read(), overwrite))
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    resource_file = client.upload_file_to_container(service, 'input', str(path), STORAGE_KEY)
    container_token = client.get_container_sas_token(service, 'output', ContainerSasPermissions(write=True),
                                                     STORAGE_KEY)
    after = datetime.datetime.now(datetime.timezone.utc)
    assert uploaded == [(b'words \xe2\x80\x94 and bytes', True)]  # the file's bytes, replacing an earlier upload
    for token in (resource_file.http_url, container_token):
        start, expiry = sas_times(token)
        assert before - datetime.timedelta(minutes=5) <= start <= after - datetime.timedelta(minutes=5)
        assert before + datetime.timedelta(hours=2) <= expiry <= after + datetime.timedelta(hours=2)


# ----- the node image ----------------------------------------------------------------------------------------

def image(publisher: str, offer: str, sku: str, os_type: str | None = 'linux', end_of_life=None):
    return batchmodels.BatchSupportedImage(
        node_agent_sku_id=f'batch.node.{sku}', os_type=os_type, verification_type='verified',
        batch_support_end_of_life=end_of_life,
        image_reference=batchmodels.BatchVmImageReference(publisher=publisher, offer=offer, sku=sku))


def test_only_a_linux_image_of_that_publisher_and_offer_is_taken_whatever_the_casing(mocker):
    batch = mocker.MagicMock()
    batch.list_supported_images.return_value = [
        image('Canonical', 'ubuntu-24_04-lts', 'server', os_type='windows'),
        image('other', 'ubuntu-24_04-lts', 'server'), image('Canonical', 'other-offer', 'server'),
        image('Canonical', 'Ubuntu-24_04-LTS', 'Server', os_type='Linux')]
    config = client.get_vm_config_for_distro(batch, 'canonical', 'ubuntu-24_04-lts', 'server')
    reference = config.image_reference
    assert (reference.publisher, reference.offer, reference.sku, reference.version) == (
        'Canonical', 'Ubuntu-24_04-LTS', 'Server', 'latest')
    assert config.node_agent_sku_id == 'batch.node.Server'


def test_an_image_reaching_its_end_of_life_now_or_with_missing_fields_is_not_taken(mocker):
    batch = mocker.MagicMock()
    now = datetime.datetime.now(datetime.timezone.utc)
    batch.list_supported_images.return_value = [
        image('canonical', 'ubuntu-24_04-lts', 'server', end_of_life=now - datetime.timedelta(seconds=1)),
        image('canonical', 'ubuntu-24_04-lts', 'server-arm64'), image('canonical', 'ubuntu-24_04-lts', 'gen1'),
        image(None, None, None, os_type=None)]
    with pytest.raises(client.TutorialError) as raised:
        client.get_vm_config_for_distro(batch, 'canonical', 'ubuntu-24_04-lts', 'server')
    assert str(raised.value) == ('the Batch service supports no current image canonical/ubuntu-24_04-lts/server '
                                 '(skus of that offer it supports: gen1, server, server-arm64)')
    batch.list_supported_images.return_value = []
    with pytest.raises(client.TutorialError, match=r'\(skus of that offer it supports: none\)$'):
        client.get_vm_config_for_distro(batch, 'canonical', 'ubuntu-24_04-lts', 'server')


# ----- questions ------------------------------------------------------------------------------------------

def test_a_question_whose_default_is_no_shows_it_and_the_question_is_asked(capsys):
    asked = []
    assert client.query_yes_no('Delete job?', 'no', input_function=lambda prompt: asked.append(prompt) or '',
                               interactive=True) == 'no'
    assert asked == ['Delete job? [y/N] ']
    assert client.query_yes_no('Delete job?', 'no', interactive=False) == 'no'
    assert capsys.readouterr().out == 'Delete job? [y/N] no (standard input is not a terminal)\n'


def test_without_a_terminal_nothing_is_asked(mocker, capsys):
    mocker.patch.object(client.sys, 'stdin', mocker.MagicMock(isatty=lambda: False))
    assert client.query_yes_no('Delete pool?', input_function=lambda prompt: pytest.fail('asked')) == 'yes'
    mocker.patch.object(client.sys, 'stdin', None)
    assert client.query_yes_no('Delete pool?', input_function=lambda prompt: pytest.fail('asked')) == 'yes'


def test_an_answer_that_is_neither_yes_nor_no_is_asked_again(capsys):
    answers = iter(['maybe', 'n'])
    assert client.query_yes_no('Delete?', input_function=lambda prompt: next(answers), interactive=True) == 'no'
    assert capsys.readouterr().out == "Please respond with 'yes' or 'no' (or 'y' or 'n').\n"


# ----- clean-up -------------------------------------------------------------------------------------------

def test_a_delete_that_fails_says_what_and_why_in_one_line_and_is_not_counted(capsys):
    def refuse(name):
        raise HttpResponseError(message='This request is not authorized (sig=SECRET)\nRequestId:1')
    assert client._delete(refuse, 'pool', 'MyPool') is False
    assert capsys.readouterr().out == ('  Could not delete pool [MyPool]: This request is not authorized '
                                       '(sig=REDACTED)\n')


def settings(**changes) -> client.Settings:
    values = dict(batch_account_name='mybatch', batch_account_key=STORAGE_KEY,
                  batch_account_url='https://mybatch.eastus.batch.azure.com', storage_account_name='mystorage',
                  storage_account_key=STORAGE_KEY, blob_endpoint='https://mystorage.blob.core.windows.net/',
                  auth='key', cloud='public', pool_id='MyPool', job_id='MyJob', vm_size='standard_d2s_v3',
                  node_count=2, numwords=3, input_files=[], output_dir='out', timeout=datetime.timedelta(minutes=30),
                  assume_yes=True)
    values.update(changes)
    return client.Settings(**values)


def test_the_job_and_pool_this_run_made_are_deleted_and_no_longer_left(mocker, capsys):
    batch = mocker.MagicMock()
    left = client.Leftovers(job='made', pool='made')
    client.delete_job_and_pool(batch, settings(), left)
    batch.begin_delete_job.assert_called_once_with('MyJob')
    batch.begin_delete_pool.assert_called_once_with('MyPool')
    assert (left.job, left.pool) == ('', '')
    assert capsys.readouterr().out == 'Delete job? [Y/n] yes (--yes)\nDelete pool? [Y/n] yes (--yes)\n'


def test_a_job_or_pool_whose_delete_failed_stays_left_and_says_which(mocker, capsys):
    batch = mocker.MagicMock()
    batch.begin_delete_job.side_effect = HttpResponseError(message='job busy')
    batch.begin_delete_pool.side_effect = HttpResponseError(message='pool busy')
    left = client.Leftovers(job='made', pool='made')
    client.delete_job_and_pool(batch, settings(), left)
    assert (left.job, left.pool) == ('made', 'made')
    out = capsys.readouterr().out
    assert '  Could not delete job [MyJob]: job busy\n' in out
    assert '  Could not delete pool [MyPool]: pool busy\n' in out


def test_a_requested_job_is_looked_up_by_its_id(mocker):
    batch = mocker.MagicMock()
    seen = []
    batch.get_job.side_effect = lambda job_id: seen.append(job_id) or batchmodels.BatchJob(
        {'id': job_id, 'metadata': [{'name': 'python-tutorial-run', 'value': client._run_id}]})
    left = client.Leftovers(job='requested')
    client.delete_job_and_pool(batch, settings(assume_yes=False), left)  # no terminal: the default, yes
    assert seen == ['MyJob']
    batch.begin_delete_job.assert_called_once_with('MyJob')


def test_a_refused_look_up_says_which_credential_was_refused_and_the_code(mocker):
    for auth, who in [('key', 'the key'), ('entra', 'your Microsoft Entra ID identity')]:
        for status, model_code, header_code, shown in [(403, 'AuthenticationFailed', None, 'AuthenticationFailed'),
                                                       (401, None, 'InvalidAuthenticationInfo',
                                                        'InvalidAuthenticationInfo'), (403, None, None, '403')]:
            error = HttpResponseError(message='refused')
            error.status_code, error.error_code = status, header_code
            if model_code:
                error.model = batchmodels.BatchError(code=model_code,
                                                     message=batchmodels.BatchErrorMessage(value='x'))
            assert client._why_not_checked(error, settings(auth=auth)) == f'the service refused {who} ({shown})'
    other = HttpResponseError(message='Server busy')
    other.status_code = 402
    assert client._why_not_checked(other, settings()) == 'the service answered 402: Server busy'


def test_windows_commands_run_through_cmd_joined_by_ampersands_as_in_the_2016_tutorial():
    assert client.wrap_commands_in_shell('Windows', ['echo a', 'echo b']) == 'cmd.exe /c "echo a&echo b"'
    with pytest.raises(ValueError, match='^unknown ostype: macos$'):
        client.wrap_commands_in_shell('macos', ['echo a'])


def test_the_job_carries_this_runs_id_so_a_repeated_create_is_recognised(mocker):
    batch = mocker.MagicMock()
    client.create_job(batch, 'MyJob', 'MyPool')
    job = batch.create_job.call_args.args[0]
    assert [(item.name, item.value) for item in job.metadata] == [('python-tutorial-run', client._run_id)]


def test_each_upload_is_announced_on_one_line(mocker, tmp_path, capsys):
    path = tmp_path / 'taskdata1.txt'
    path.write_bytes(b'words')
    service = mocker.MagicMock(account_name='storacct')
    service.get_blob_client.return_value.url = 'https://storacct.blob.core.windows.net/input/taskdata1.txt'
    client.upload_file_to_container(service, 'input', str(path), STORAGE_KEY)
    assert capsys.readouterr().out == f'Uploading file {path} to container [input]...\n'
