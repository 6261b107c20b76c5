"""The emulator is safe to leave running: hostile pages, hostile tasks and huge requests are refused or contained.

Each test sends what an attacker (a web page under DNS rebinding, a task whose code the user did
not write, a broken or malicious client) would send, checks the service's answer, and checks that
the emulator still answers an ordinary request (while a download is held open, during it). How fast
it answers and how much memory it takes meanwhile are benchmarks' figures (benchmarks/bench_memory.py).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import stat
import time
from email.utils import formatdate
from urllib.parse import urlsplit

import pytest
from azure.batch import BatchClient
from azure.batch import models as m
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import HttpResponseError

from batch_emulator import DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME
from batch_emulator.wire import auth
from tests.conftest import PROJECT_DIR, eventually
from tests.hostile import (
    API,
    batch_client_for,
    nested,
    node_agent_of,
    pool_body,
    processes_running,
    send,
    start_emulator,
    still_answers,
    stop_emulator,
)
from tests.test_emulator import UBUNTU, create_pool, wait_for_task

pytestmark = pytest.mark.emulator


# ----- a browser cannot reach the API ------------------------------------------------------------------

@pytest.mark.parametrize('host', ['rebind.attacker.example:{port}', 'rebind.attacker.example', '127.0.0.1:1',
                                  '192.168.1.20:{port}', '',
                                  # under localhost, only the account's own name on the emulator's port
                                  'otheraccount.localhost:{port}', 'devbatchaccount1.localhost:1',
                                  'devbatchaccount1.localhost', 'devbatchaccount1.localhost.attacker.example:{port}',
                                  'localhost.devbatchaccount1.localhost.evil:{port}',
                                  'devbatchaccount1..localhost:{port}', 'devbatchaccount1.a_b.localhost:{port}'])
def test_a_request_addressed_to_another_host_is_refused(emulator, unique_id, host):
    """DNS rebinding: a page on a name that resolves to 127.0.0.1 sends its own name as Host."""
    port = emulator.endpoint.rsplit(':', 1)[1]
    pool_id = unique_id('rebound')
    answer = send(emulator.endpoint, 'POST', f'/pools?{API}', pool_body(pool_id),
                  headers={'Host': host.format(port=port)})
    assert (answer.status, answer.code) == (400, 'InvalidHeaderValue')
    assert {'key': 'HeaderName', 'value': 'Host'} in answer.json()['values']
    assert send(emulator.endpoint, 'GET', f'/pools/{pool_id}?{API}').status == 404
    portal = send(emulator.endpoint, 'GET', '/portal/api/overview', headers={'Host': host.format(port=port)},
                  sign=False)
    assert portal.status == 400


@pytest.mark.parametrize('name', ['127.0.0.1', 'localhost', 'LOCALHOST'])
def test_the_loopback_names_of_the_emulator_are_served(emulator, unique_id, name):
    port = emulator.endpoint.rsplit(':', 1)[1]
    pool_id = unique_id('named')
    answer = send(emulator.endpoint, 'POST', f'/pools?{API}', pool_body(pool_id), headers={'Host': f'{name}:{port}'})
    assert answer.status == 201, answer.body
    send(emulator.endpoint, 'DELETE', f'/pools/{pool_id}?{API}')


@pytest.mark.parametrize('name', ['devbatchaccount1.localhost', 'DevBatchAccount1.eastus.localhost',
                                  'devbatchaccount1.a.b-c.localhost'])
def test_the_accounts_name_under_localhost_is_served(emulator, unique_id, name):
    """As https://{account}.{region}.batch.azure.com addresses an account on Azure (RFC 6761: loopback only)."""
    port = emulator.endpoint.rsplit(':', 1)[1]
    pool_id = unique_id('named')
    answer = send(emulator.endpoint, 'POST', f'/pools?{API}', pool_body(pool_id), headers={'Host': f'{name}:{port}'})
    assert answer.status == 201, answer.body
    page = send(emulator.endpoint, 'GET', f'/pools/{pool_id}?{API}', headers={
        'Host': f'{name}:{port}', 'Origin': f'http://{name}:{port}'})
    assert page.status == 200, page.body
    send(emulator.endpoint, 'DELETE', f'/pools/{pool_id}?{API}')


def test_a_page_on_another_localhost_name_is_refused(emulator):
    port = emulator.endpoint.rsplit(':', 1)[1]
    answer = send(emulator.endpoint, 'GET', f'/pools?{API}', headers={'Origin': f'http://otherapp.localhost:{port}'})
    assert (answer.status, answer.code) == (403, 'AuthorizationFailure')


def test_the_sdk_reaches_the_emulator_at_the_accounts_name(emulator, unique_id, monkeypatch):
    """A client that takes the account from the endpoint's first label (snakemake's Batch executor does).

    This machine's resolver may not know *.localhost (systemd-resolved and browsers answer it with
    loopback themselves, glibc's files/dns do not): the test resolves it as they do.
    """
    import socket

    real_getaddrinfo = socket.getaddrinfo

    def loopback_for_localhost(host, *args, **kwargs):
        if isinstance(host, str) and host.lower().endswith('.localhost'):
            host = '127.0.0.1'
        return real_getaddrinfo(host, *args, **kwargs)
    monkeypatch.setattr(socket, 'getaddrinfo', loopback_for_localhost)
    port = emulator.endpoint.rsplit(':', 1)[1]
    endpoint = f'http://devbatchaccount1.westeurope.localhost:{port}'
    account = urlsplit(endpoint).hostname.split('.')[0]
    client = BatchClient(endpoint, AzureNamedKeyCredential(account, DEFAULT_ACCOUNT_KEY))
    pool_id = unique_id('byname')
    client.create_pool(m.BatchPoolCreateOptions(id=pool_id, vm_size='standard_d2s_v3',
                                                virtual_machine_configuration=UBUNTU))
    try:
        assert client.get_pool(pool_id).id == pool_id
    finally:
        client.begin_delete_pool(pool_id, polling_interval=0.05).result()


@pytest.mark.parametrize(('headers', 'path'), [
    ({'Origin': 'http://rebind.attacker.example:8080'}, f'/pools?{API}'),
    ({'Origin': 'null'}, f'/pools?{API}'),
    ({'Sec-Fetch-Site': 'cross-site'}, f'/pools?{API}'),
    ({'Origin': 'http://rebind.attacker.example'}, '/portal/api/overview'),
])
def test_a_request_made_by_a_page_of_another_origin_is_refused(emulator, unique_id, headers, path):
    answer = send(emulator.endpoint, 'GET', path, headers=headers, sign=path.startswith('/pools'))
    assert (answer.status, answer.code) == (403, 'AuthorizationFailure')


def test_the_emulators_own_origin_is_served(emulator):
    assert send(emulator.endpoint, 'GET', f'/pools?{API}', headers={'Origin': emulator.endpoint}).status == 200
    assert send(emulator.endpoint, 'GET', '/portal/api/overview', headers={'Origin': emulator.endpoint},
                sign=False).status == 200


@pytest.mark.parametrize(('offset', 'detail'), [(-16 * 60, 'too old'), (16 * 60, 'in the future'),
                                                (-100 * 365 * 86400, 'too old')])
def test_a_signed_request_is_valid_for_15_minutes_only(emulator, unique_id, offset, detail):
    """A signature captured once cannot be replayed for ever: ocp-date must be within 15 minutes."""
    pool_id = unique_id('replayed')
    answer = send(emulator.endpoint, 'POST', f'/pools?{API}', pool_body(pool_id), date=time.time() + offset)
    assert (answer.status, answer.code) == (403, 'AuthenticationFailed')
    assert detail in json.dumps(answer.json()['values'])
    assert send(emulator.endpoint, 'GET', f'/pools/{pool_id}?{API}').status == 404
    assert send(emulator.endpoint, 'GET', f'/pools?{API}', date=time.time() - 14 * 60).status == 200


@pytest.mark.parametrize('headers', [{'ocp-date': None}, {'ocp-date': 'yesterday'}, {'ocp-date': None, 'Date': 'x'}])
def test_a_request_without_a_valid_date_is_refused(emulator, headers):
    answer = send(emulator.endpoint, 'GET', f'/pools?{API}', headers=headers)
    assert (answer.status, answer.code) == (403, 'AuthenticationFailed')


def test_the_date_header_serves_when_there_is_no_ocp_date(emulator):
    answer = send(emulator.endpoint, 'GET', f'/pools?{API}', headers={'ocp-date': None,
                                                                     'Date': formatdate(time.time(), usegmt=True)})
    assert answer.status == 200


@pytest.mark.parametrize('authorization', [
    'SharedKey', 'SharedKey devbatchaccount1', 'SharedKey devbatchaccount1:', 'SharedKey :abc',
    'SharedKey devbatchaccount1:s\u00efgn\u00e4ture', 'Bearer abc.def', 'SharedKey devbatchaccount1:' + 'A' * 5000,
    '\u00ff\u00fe',
])
def test_a_malformed_authorization_header_gets_403(emulator, authorization):
    answer = send(emulator.endpoint, 'GET', f'/pools?{API}', headers={'Authorization': authorization})
    assert (answer.status, answer.code) == (403, 'AuthenticationFailed')


def test_a_request_without_content_length_signs_an_empty_line(emulator, unique_id):
    """The JavaScript and .NET SDKs send no Content-Length on a DELETE and sign an empty line; it verifies."""
    pool_id = unique_id('nolength')
    assert send(emulator.endpoint, 'POST', f'/pools?{API}', pool_body(pool_id)).status == 201
    date = formatdate(time.time(), usegmt=True)
    # Signed as those SDKs sign it: the Content-Length line (the 4th) is empty, not "0".
    text = '\n'.join(['DELETE'] + [''] * 11 + [f'ocp-date:{date}', f'/{DEFAULT_ACCOUNT_NAME}/pools/{pool_id}',
                                                'api-version:2025-06-01'])
    signature = auth.sign(DEFAULT_ACCOUNT_KEY, text)
    answer = send(emulator.endpoint, 'DELETE', f'/pools/{pool_id}?{API}', headers={
        'Content-Length': None, 'ocp-date': date, 'Authorization': f'SharedKey {DEFAULT_ACCOUNT_NAME}:{signature}'})
    assert answer.status == 202, answer.body


@pytest.mark.parametrize('arguments', [['--host', '0.0.0.0'], ['--host', '192.168.1.20', '--allow-remote'],
                                       ['--account-key', 'not base64!']])
def test_listening_beyond_loopback_needs_a_flag_and_a_key_of_ones_own(arguments, tmp_path):
    import subprocess
    import sys
    result = subprocess.run([sys.executable, '-m', 'batch_emulator', '--location', str(tmp_path), *arguments],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and result.stdout == ''
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith('error: ')


def test_a_key_of_ones_own_can_be_given_out_of_sight_of_other_users(tmp_path):
    """BATCH_EMULATOR_ACCOUNT_KEY instead of --account-key: the key signs requests, the published key does not,
    and the emulator's command line (which every user of the machine can read) does not hold it."""
    import subprocess
    import sys
    own_key = base64.b64encode(os.urandom(64)).decode()
    process = subprocess.Popen([sys.executable, '-m', 'batch_emulator', '--port', '0', '--location', str(tmp_path),
                                '--parent-pid', str(os.getpid())], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, 'BATCH_EMULATOR_ACCOUNT_KEY': own_key}, cwd=PROJECT_DIR)
    try:
        ready = process.stdout.readline()  # the ready line: '... listening on http://127.0.0.1:PORT'
        endpoint = ready.split()[-1]
        assert endpoint.startswith('http://127.0.0.1:'), ready
        own = BatchClient(endpoint, AzureNamedKeyCredential(DEFAULT_ACCOUNT_NAME, own_key))
        assert list(own.list_pools()) == []
        with pytest.raises(HttpResponseError) as refused:
            list(batch_client_for(endpoint).list_pools())
        assert refused.value.status_code == 403
        with open(f'/proc/{process.pid}/cmdline', 'rb') as file:
            assert own_key.encode() not in file.read()
    finally:
        stop_emulator(process)


# ----- nothing a task leaves in its folders stalls the service ---------------------------------------------

def test_an_output_pattern_over_a_link_to_root_neither_walks_the_disk_nor_stalls(batch_client, pool_and_job,
                                                                                 emulator):
    _, job_id = pool_and_job
    batch_client.create_task(job_id, m.BatchTaskCreateOptions(
        id='rootlink', command_line="/bin/sh -c 'ln -s / root; ln -s /nowhere dangling; echo x > kept.x'",
        output_files=[m.OutputFile(
            file_pattern='**/*.x',
            destination=m.OutputFileDestination(container=m.OutputFileBlobContainerDestination(
                container_url='http://127.0.0.1:9/unreachable?sv=1&sig=abc')),
            upload_options=m.OutputFileUploadConfiguration(upload_condition=m.OutputFileUploadCondition.TASK_COMPLETION))]))
    task = eventually(lambda: (t := batch_client.get_task(job_id, 'rootlink')).state == 'completed' and t,
                      timeout=20, message='the task completed')
    assert still_answers(emulator.endpoint)
    # Only kept.x matched (its upload to a closed port failed); nothing below the link to / was looked at.
    assert task.execution_info.failure_info.code == 'FileUploadError'
    assert 'kept.x' in task.execution_info.failure_info.message
    names = {f.name for f in batch_client.list_task_files(job_id, 'rootlink', recursive=True)}
    assert {'wd/root', 'wd/dangling', 'wd/kept.x'} <= names and not any(n.startswith('wd/root/') for n in names)
    for escape in ('wd%2Froot%2Fetc%2Fpasswd', 'wd%2Fdangling'):
        assert send(emulator.endpoint, 'GET', f'/jobs/{job_id}/tasks/rootlink/files/{escape}?{API}').status == 404


def test_a_huge_task_file_is_streamed_in_ranges_without_loading_it(batch_client, pool_and_job, emulator):
    _, job_id = pool_and_job
    batch_client.create_task(job_id, m.BatchTaskCreateOptions(
        id='huge', command_line="/bin/sh -c 'head -c 200000000 /dev/zero; printf END'"))
    wait_for_task(batch_client, job_id, 'huge')
    download = iter(batch_client.download_task_file(job_id, 'huge', 'stdout.txt'))
    first = next(download)  # the rest is not read yet: the download stays under way
    assert still_answers(emulator.endpoint)  # (the emulator's memory meanwhile: benchmarks/bench_memory.py)
    assert first and set(first) == {0}
    tail = b''.join(batch_client.download_task_file(job_id, 'huge', 'stdout.txt', ocp_range='bytes=199999998-'))
    assert tail == b'\0\0END'


def test_a_task_collection_over_1_mb_is_refused_when_sent_chunked(emulator, pool_and_job):
    _, job_id = pool_and_job
    task = {'id': 't', 'commandLine': 'true', 'displayName': 'x' * 30_000}
    pieces = [json.dumps({'value': [dict(task, id=f't{i}') for i in range(40)]}).encode()]
    assert sum(map(len, pieces)) > 1024 * 1024
    answer = send(emulator.endpoint, 'POST', f'/jobs/{job_id}/addtaskcollection?{API}', iter(pieces))
    assert (answer.status, answer.code) == (413, 'RequestBodyTooLarge')
    assert send(emulator.endpoint, 'GET', f'/jobs/{job_id}/tasks/t0?{API}').status == 404


@pytest.mark.parametrize('depth', [100, 100_000])
def test_deeply_nested_json_gets_400(emulator, depth):
    answer = send(emulator.endpoint, 'POST', f'/pools?{API}', nested(depth))
    assert (answer.status, answer.code) == (400, 'InvalidRequestBody')
    assert still_answers(emulator.endpoint)


def test_a_body_nested_64_levels_passes_the_depth_check_and_65_do_not(emulator):
    """The limit itself (64 levels, the body's own object counted): one level more is refused for its depth."""
    deepest = send(emulator.endpoint, 'POST', f'/pools?{API}', b''.join(nested(63)))  # 64 levels
    one_more = send(emulator.endpoint, 'POST', f'/pools?{API}', b''.join(nested(64)))
    reasons = [{value['key']: value['value'] for value in answer.json().get('values', [])}.get('Reason')
               for answer in (deepest, one_more)]
    assert deepest.status == 400 and reasons[0] != 'The JSON nests deeper than 64 levels.'  # refused for another
    assert (one_more.status, one_more.code, reasons[1]) == (400, 'InvalidRequestBody',
                                                            'The JSON nests deeper than 64 levels.')


def test_a_deeply_nested_filter_gets_400(emulator):
    text = '(' * 3000 + 'not%20' * 300 + "id%20eq%20'a'" + ')' * 3000  # as deep as a request line allows
    answer = send(emulator.endpoint, 'GET', f'/pools?{API}&$filter={text}')
    assert (answer.status, answer.code) == (400, 'InvalidQueryParameterValue')


def test_a_chunked_body_over_the_general_limit_gets_the_services_413(emulator):
    piece = b' ' * (1024 * 1024)
    answer = send(emulator.endpoint, 'POST', f'/pools?{API}', iter([b'{"id": "big",'] + [piece] * 6 + [b'}']))
    assert (answer.status, answer.code) == (413, 'RequestBodyTooLarge')


# ----- quotas like a real account ---------------------------------------------------------------------------

def test_a_pool_beyond_the_accounts_quota_stops_at_it_with_the_services_resize_error(tmp_path):
    process, endpoint = start_emulator(str(tmp_path), '--dedicated-node-quota', '2')
    try:
        batch = batch_client_for(endpoint)
        answer = send(endpoint, 'POST', f'/pools?{API}', pool_body('huge', targetDedicatedNodes=1_000_000_000))
        assert answer.status == 201
        assert still_answers(endpoint)
        pool = eventually(lambda: (p := batch.get_pool('huge')).allocation_state == 'steady' and p, timeout=20,
                          message='the pool steady')
        assert pool.current_dedicated_nodes == 2 and pool.target_dedicated_nodes == 1_000_000_000
        assert [error.code for error in pool.resize_errors] == ['AccountCoreQuotaReached']
        assert len(list(batch.list_nodes('huge'))) == 2
        # The quota is the account's: a second pool gets no node at all.
        create_pool(batch, 'second', nodes=1)
        second = eventually(lambda: (p := batch.get_pool('second')).allocation_state == 'steady' and p, timeout=20,
                            message='the second pool steady')
        assert second.current_dedicated_nodes == 0 and second.resize_errors[0].code == 'AccountCoreQuotaReached'
    finally:
        stop_emulator(process)
    process, endpoint = start_emulator(str(tmp_path), '--dedicated-node-quota', '2')  # the restart does not hang
    try:
        assert still_answers(endpoint)
        assert len(list(batch_client_for(endpoint).list_nodes('huge'))) == 2
    finally:
        stop_emulator(process)


@pytest.mark.parametrize(('body', 'property_name'), [
    ({'taskSlotsPerNode': 10 ** 18}, 'taskSlotsPerNode'), ({'taskSlotsPerNode': 257}, 'taskSlotsPerNode'),
])
def test_slots_beyond_the_services_range_are_refused(emulator, unique_id, body, property_name):
    answer = send(emulator.endpoint, 'POST', f'/pools?{API}', pool_body(unique_id('slots'), **body))
    assert (answer.status, answer.code) == (400, 'InvalidPropertyValue')
    assert {'key': 'PropertyName', 'value': property_name} in answer.json()['values']


def test_a_task_needing_more_slots_than_any_node_has_is_refused(batch_client, unique_id):
    job_id = unique_id('nopool')
    batch_client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=unique_id('none'))))
    with pytest.raises(HttpResponseError) as raised:
        batch_client.create_task(job_id, m.BatchTaskCreateOptions(id='t', command_line='true', required_slots=10 ** 18))
    assert raised.value.model.code == 'InvalidPropertyValue'
    batch_client.begin_delete_job(job_id)


def test_unlimited_retries_back_off(batch_client, pool_and_job):
    """maxTaskRetryCount -1 with a failing command: retried, but not hundreds of times a second."""
    _, job_id = pool_and_job
    batch_client.create_task(job_id, m.BatchTaskCreateOptions(
        id='forever', command_line='false', constraints=m.BatchTaskConstraints(max_task_retry_count=-1)))
    task = eventually(lambda: (t := batch_client.get_task(job_id, 'forever')).execution_info.retry_count >= 5 and t,
                      timeout=20, message='five retries')
    # The service's own clock: after five failures the fourth retry has started, after 0.1 + 0.2 + 0.4 + 0.8 s.
    waited = (task.execution_info.last_retry_time - task.creation_time).total_seconds()
    assert waited >= 1.5, f'the fourth retry started {waited:.2f} s after creation'
    batch_client.terminate_task(job_id, 'forever')


# ----- every process a node starts dies with its task, its node and the emulator ----------------------------

def test_background_and_setsid_children_die_with_their_task(batch_client, pool_and_job, unique_id):
    _, job_id = pool_and_job
    # Digits only: `sleep 3…1` must be a sleep of weeks (a hex marker such as `3a1b` made sleep exit at once,
    # and the test passed with the protection switched off).
    marker = '3' + str(int(unique_id('sleep').split('-')[1], 16))[-6:]
    # The task ends only once its three children run, so what is checked below is that they were killed.
    command = (f"/bin/bash -c 'sleep {marker}1 & setsid sleep {marker}2 & (setsid sleep {marker}3 &); "
               f"until [ $(pgrep -fc \"^sleep {marker}\") = 3 ]; do sleep 0.01; done; echo started'")
    batch_client.create_task(job_id, m.BatchTaskCreateOptions(id='escape', command_line=command))
    try:
        assert wait_for_task(batch_client, job_id, 'escape').execution_info.exit_code == 0
        eventually(lambda: not processes_running(f'sleep {marker}'), timeout=5, message='no child left')
    finally:
        for pid in processes_running(f'sleep {marker}'):  # a failure leaves nothing running either
            os.kill(pid, signal.SIGKILL)


def test_nothing_a_task_started_outlives_the_emulator(tmp_path):
    process, endpoint = start_emulator(str(tmp_path))
    batch = batch_client_for(endpoint)
    marker = '4' + str(os.getpid())[-5:]
    try:
        create_pool(batch, 'pool', start_task=m.BatchStartTask(
            command_line=f"/bin/bash -c 'setsid sleep {marker}1 & exit 0'", wait_for_success=True))
        batch.create_job(m.BatchJobCreateOptions(id='job', pool_info=m.BatchPoolInfo(pool_id='pool')))
        batch.create_task('job', m.BatchTaskCreateOptions(
            id='long', command_line=f"/bin/bash -c 'setsid sleep {marker}2 & sleep {marker}3'"))
        eventually(lambda: len(processes_running(f'sleep {marker}')) == 2, message='the task and its child run')
        assert not processes_running(f'sleep {marker}1'), "the start task's child died with the start task"
    finally:
        stop_emulator(process)
    assert processes_running(f'sleep {marker}') == []


def test_a_reboot_leaves_no_start_task_children_behind(batch_client, unique_id):
    pool_id = unique_id('reboots')
    marker = '5' + str(os.getpid())[-5:]
    create_pool(batch_client, pool_id, start_task=m.BatchStartTask(
        command_line=f"/bin/bash -c 'setsid sleep {marker} & sleep 30'", wait_for_success=False))
    node = eventually(lambda: (nodes := list(batch_client.list_nodes(pool_id))) and nodes[0].state == 'idle'
                      and nodes[0], message='node idle')
    for _ in range(3):
        eventually(lambda: len(processes_running(f'sleep {marker}')) == 1, message='the start task child runs')
        batch_client.begin_reboot_node(pool_id, node.id, m._models.BatchNodeRebootOptions(
            node_reboot_kind='requeue'), polling_interval=0.05).result()
    eventually(lambda: len(processes_running(f'sleep {marker}')) == 1, message='only the latest start task child')
    batch_client.begin_delete_pool(pool_id)
    eventually(lambda: not processes_running(f'sleep {marker}'), message='gone with the pool')


def test_after_a_kill_and_restart_a_task_never_runs_twice(tmp_path):
    """The task's process changed directory: it is still found by its process group, start time and node."""
    location = str(tmp_path / 'location')
    marker = '6' + str(os.getpid())[-5:]
    process, endpoint = start_emulator(location)
    batch = batch_client_for(endpoint)
    create_pool(batch, 'pool')
    batch.create_job(m.BatchJobCreateOptions(id='job', pool_info=m.BatchPoolInfo(pool_id='pool')))
    batch.create_task('job', m.BatchTaskCreateOptions(
        id='wanders', command_line=f"/bin/bash -c 'cd /; setsid sleep {marker}1 & sleep {marker}2'"))
    eventually(lambda: len(processes_running(f'sleep {marker}')) == 2, message='the task runs')
    first_run = set(processes_running(f'sleep {marker}'))
    # Killed with its node agent (as the OOM killer or `pkill -9 -f batch_emulator` kills them): the agent is
    # frozen first, so that it cannot stop the tasks when the emulator goes (what it does when only the emulator
    # is killed: test_task_processes).
    agent = node_agent_of(process.pid)
    os.kill(agent, signal.SIGSTOP)
    process.send_signal(signal.SIGKILL)
    process.wait(15)
    process.stdout.close()
    os.kill(agent, signal.SIGKILL)
    assert set(processes_running(f'sleep {marker}')) == first_run  # nothing was left to stop them

    process, endpoint = start_emulator(location)
    try:
        assert not first_run & set(processes_running(f'sleep {marker}')), 'stopped before the emulator listens'
        batch = batch_client_for(endpoint)
        eventually(lambda: batch.get_task('job', 'wanders').state == 'running', message='running again')
        second_run = eventually(lambda: len(found := processes_running(f'sleep {marker}')) == 2 and found,
                                message='the requeued run, with its child')
        assert not first_run & set(second_run)
        assert batch.get_task('job', 'wanders').execution_info.requeue_count == 0  # not a user's requeue
    finally:
        stop_emulator(process)
    assert processes_running(f'sleep {marker}') == []


# ----- a node's environment, not the developer's --------------------------------------------------------------

def test_tasks_get_a_nodes_environment_not_the_emulators(tmp_path):
    env = dict(os.environ, DEVELOPER_CLOUD_TOKEN='secret-token-value', PASSED_ON='visible')
    process, endpoint = start_emulator(str(tmp_path), '--pass-env', 'PASSED_ON', env=env)
    try:
        batch = batch_client_for(endpoint)
        create_pool(batch, 'pool')
        batch.create_job(m.BatchJobCreateOptions(id='job', pool_info=m.BatchPoolInfo(pool_id='pool')))
        batch.create_task('job', m.BatchTaskCreateOptions(
            id='env', command_line='env', environment_settings=[m.EnvironmentSetting(name='MINE', value='1')]))
        assert wait_for_task(batch, 'job', 'env').execution_info.exit_code == 0
        variables = dict(line.split('=', 1) for line in
                         b''.join(batch.download_task_file('job', 'env', 'stdout.txt')).decode().splitlines())
        assert 'DEVELOPER_CLOUD_TOKEN' not in variables and variables['PASSED_ON'] == 'visible'
        assert variables['MINE'] == '1' and variables['AZ_BATCH_TASK_ID'] == 'env'
        assert variables['PATH'].split(':')[0].endswith(os.path.join('image', 'bin'))
        assert variables['HOME'] == variables['AZ_BATCH_TASK_WORKING_DIR']
        assert set(variables) - {'PATH', 'HOME', 'LANG', 'PASSED_ON', 'MINE', 'PWD', 'SHLVL', '_'} <= {
            name for name in variables if name.startswith('AZ_BATCH_')}
        # The location folder is the user's alone: it keeps SAS URLs.
        assert stat.S_IMODE(os.stat(tmp_path).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(tmp_path / 'state.jsonl').st_mode) == 0o600
    finally:
        stop_emulator(process)


def test_a_resource_file_mode_never_sets_setuid_or_setgid(local_stack, unique_id):
    """fileMode "6777" is honoured as 0777: a task cannot make a setuid file on the developer's machine."""
    import datetime

    from azure.storage.blob import BlobSasPermissions, BlobServiceClient, generate_blob_sas
    # The emulator --local starts: it reaches Azurite on this machine because it was given Azurite's endpoint.
    batch_client = batch_client_for(local_stack.batch_endpoint)
    pool_id, job_id = unique_id('modes'), unique_id('modes')
    create_pool(batch_client, pool_id)
    batch_client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool_id)))
    environ = local_stack.environment()
    service = BlobServiceClient.from_connection_string(environ['AZURE_STORAGE_CONNECTION_STRING'])
    container = service.create_container(f'modes{time.time_ns()}')
    container.upload_blob('tool.sh', b'#!/bin/sh\necho tool\n')
    sas = generate_blob_sas(service.account_name, container.container_name, 'tool.sh',
                            account_key=environ['AZURE_STORAGE_KEY'], permission=BlobSasPermissions(read=True),
                            expiry=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1))
    try:
        batch_client.create_task(job_id, m.BatchTaskCreateOptions(
            id='modes', command_line="/bin/sh -c 'stat -c %a tool.sh'", resource_files=[m.ResourceFile(
                http_url=f'{container.url}/tool.sh?{sas}', file_path='tool.sh', file_mode='6777')]))
        assert wait_for_task(batch_client, job_id, 'modes').execution_info.exit_code == 0
        assert b''.join(batch_client.download_task_file(job_id, 'modes', 'stdout.txt')).strip() == b'777'
    finally:
        container.delete_container()
        batch_client.begin_delete_job(job_id)
        batch_client.begin_delete_pool(pool_id)


def test_a_listing_that_is_not_recursive_reads_one_folder_only(tmp_path):
    """The bound is on what a listing reads: a deep tree below a folder does not count against a flat listing."""
    from batch_emulator.runtime.files import TooManyFiles, list_files
    (tmp_path / 'deep').mkdir()
    for index in range(20):
        (tmp_path / 'deep' / f'f{index}').write_text('x')
    (tmp_path / 'top.txt').write_text('x')
    assert [name for name, _ in list_files(str(tmp_path), recursive=False, limit=5)] == ['deep', 'top.txt']
    with pytest.raises(TooManyFiles):
        list_files(str(tmp_path), recursive=True, limit=5)
