"""What a hostile client, a tampered location or a careless command line cannot do (issue 17, cases 5, 8, 9, 13, 14).

Connections that trickle or idle are cut and the emulator goes on serving; secrets are never read back
(request log, portal, GET); a location's state file is checked before a restart acts on it; the emulator's
options cannot be abbreviated (so the pytest plugin's own cannot be overridden).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from email.utils import formatdate
from urllib.parse import urlsplit

import pytest

from batch_emulator import DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME
from batch_emulator.common.redaction import redact_query, redact_secrets
from batch_emulator.runtime import processes
from batch_emulator.wire import auth
from tests.conftest import PROJECT_DIR, eventually
from tests.hostile import API, pool_body, send, start_emulator, stop_emulator
from tests.test_pytest_plugin import users_pytest  # noqa: F401 - a fixture

pytest_plugins = ['pytester']


def _emulator_command(*arguments: str) -> list[str]:
    return [sys.executable, '-m', 'batch_emulator', '--port', '0', '--node-step-seconds', '0.05', *arguments]


def _first_line(process: subprocess.Popen) -> str:
    """The emulator's first line on stdout: its ready line, or '' when it exited before listening."""
    return process.stdout.readline()


# ----- case 5: connections bounded -------------------------------------------------------------------------

@pytest.fixture
def short_timeouts(tmp_path):
    """An emulator whose connections get half a second for their headers and for their bodies, at most 8 open."""
    log = open(tmp_path / 'stderr.txt', 'w+', encoding='utf-8')  # noqa: SIM115 - closed below
    process = subprocess.Popen(_emulator_command('--location', str(tmp_path / 'location'), '--header-timeout', '0.5',
                                                 '--body-timeout', '0.5', '--max-connections', '8'),
                               cwd=PROJECT_DIR, stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True)
    line = _first_line(process)
    try:
        assert line.startswith('Azure Batch emulator listening on'), (tmp_path / 'stderr.txt').read_text()
        yield re.search(r'http://\S+', line).group(0), tmp_path / 'stderr.txt'
    finally:
        _stop(process)
        log.close()


def _connect(endpoint: str) -> socket.socket:
    parts = urlsplit(endpoint)
    return socket.create_connection((parts.hostname, parts.port), timeout=10)


def _signed_head(endpoint: str, method: str, path: str, length: int) -> bytes:
    headers = {'Host': urlsplit(endpoint).netloc, 'ocp-date': formatdate(time.time(), usegmt=True),
               'Content-Type': 'application/json; odata=minimalmetadata', 'Content-Length': str(length)}
    signature = auth.sign(DEFAULT_ACCOUNT_KEY, auth.string_to_sign(method, path, headers, DEFAULT_ACCOUNT_NAME))
    headers['Authorization'] = f'SharedKey {DEFAULT_ACCOUNT_NAME}:{signature}'
    return (f'{method} {path} HTTP/1.1\r\n' + ''.join(f'{k}: {v}\r\n' for k, v in headers.items()) + '\r\n').encode()


def _closed_by_the_emulator(connection: socket.socket, trickle: bytes = b'') -> bool:
    """Sends one more byte of what it trickles; True once the emulator has closed the connection."""
    try:
        if trickle:
            connection.sendall(trickle)
        connection.setblocking(False)
        try:
            return connection.recv(65536) == b''  # an answer (a 408) may come first: read on
        except BlockingIOError:
            return False
        finally:
            connection.setblocking(True)
    except (ConnectionResetError, BrokenPipeError):
        return True


def test_a_connection_that_trickles_its_headers_is_cut_and_the_emulator_serves_on(short_timeouts):
    endpoint, _ = short_timeouts
    connection = _connect(endpoint)
    with connection:
        connection.sendall(f'GET /pools?{API} HTTP/1.1\r\nHost: {urlsplit(endpoint).netloc}\r\n'.encode())
        eventually(lambda: _closed_by_the_emulator(connection, b'X'), message='the trickling connection closed')
    assert send(endpoint, 'GET', f'/pools?{API}').status == 200


def test_a_body_that_trickles_is_cut_and_the_emulator_serves_on(short_timeouts):
    endpoint, _ = short_timeouts
    connection = _connect(endpoint)
    with connection:
        connection.sendall(_signed_head(endpoint, 'POST', f'/pools?{API}', 10_000) + b'{"id": ')
        eventually(lambda: _closed_by_the_emulator(connection, b' '), message='the trickling body cut')
    assert send(endpoint, 'GET', '/portal/api/requests', sign=False).json()['requests'][-1]['status'] == 408
    assert send(endpoint, 'GET', f'/pools?{API}').status == 200
    assert send(endpoint, 'GET', f'/pools?{API}').json()['value'] == []  # nothing half-sent was stored


def test_idle_connections_beyond_the_cap_make_room_and_the_log_is_not_flooded(tmp_path):
    location = str(tmp_path / 'location')
    with open(tmp_path / 'stderr.txt', 'w+', encoding='utf-8') as log:
        process = subprocess.Popen(_emulator_command('--location', location, '--max-connections', '8'),
                                   cwd=PROJECT_DIR, stdout=subprocess.PIPE, stderr=log, text=True,
                                   start_new_session=True)
        idle = []
        try:
            endpoint = re.search(r'http://\S+', _first_line(process)).group(0)
            idle = [_connect(endpoint) for _ in range(40)]  # far more than the cap, none sends a byte
            assert send(endpoint, 'GET', f'/pools?{API}').status == 200  # an ordinary request is served
            closed = eventually(lambda: sum(_closed_by_the_emulator(connection) for connection in idle) >= 32,
                                message='idle connections beyond the cap closed')
            assert closed
        finally:
            for connection in idle:
                connection.close()
            _stop(process)
        log.seek(0)
        lines = [line for line in log.read().splitlines() if 'connections open (the limit' in line]
    assert 1 <= len(lines) < 5, lines  # 33 evictions or more, logged once per minute


# ----- case 14: no abbreviations ------------------------------------------------------------------------------

def test_the_emulator_takes_no_abbreviated_options():
    result = subprocess.run(_emulator_command('--account-n', 'other', '--operations'), cwd=PROJECT_DIR,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert 'unrecognized arguments: --account-n other' in result.stderr
    assert result.stdout == ''  # not the operations table, which the abbreviation would have let through


def test_the_pytest_plugins_own_options_cannot_be_overridden_by_abbreviations(users_pytest, tmp_path):  # noqa: F811
    users_pytest.makepyfile('def test_uses_it(batch_emulator): pass')
    elsewhere = tmp_path / 'elsewhere'
    result = users_pytest.runpytest_subprocess('-p', 'batch_emulator.pytest_plugin', '--batch-emulator-args',
                                               f'--account-n other --loc {elsewhere}')
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert '--account-n is an abbreviation of --account-name, which the batch_emulator fixture sets itself' \
        in result.stderr.str()
    assert 'Traceback' not in result.stderr.str()
    assert not elsewhere.exists()


# ----- case 8: redaction ----------------------------------------------------------------------------------

@pytest.mark.parametrize('text, secret', [
    ('{"httpUrl":"https://a.blob.core.windows.net/c/f?sv=2025\\u0026sig=SeCrEt1\\u002Bx%3D\\u0026se=2"}', 'SeCrEt1'),
    ('{"httpUrl":"https:\\/\\/a\\/c?sv=1&sig=SeCrEt2\\/y&se=2"}', 'SeCrEt2'),
    ('url=https%3A%2F%2Fa%2Fc%3Fsv%3D1%26sig%3DSeCrEt3%253D%26se%3D2', 'SeCrEt3'),
    ('u=https%253A%252F%252Fa%253Fsv%253D1%2526sig%253DSeCrEt4%2526se%253D2', 'SeCrEt4'),
    ('[{"value": "SeCrEt5", "name": "DB_PWD"}]', 'SeCrEt5'),
    ('[{"name": "CREDENTIALS", "value": "SeCrEt6"}]', 'SeCrEt6'),
    ('[{"value":"SeCrEt7","name":"SECRET"},{"value":"SeCrEt8","name":"TOKEN"},{"value":"SeCrEt9","name":"KEY"}]',
     'SeCrEt7 SeCrEt8 SeCrEt9'),
    ('{"environmentSettings": [{"value": "SeCrEt10", "name": "API_KEY', 'SeCrEt10'),  # a body cut after the name
    ('password=SeCrEt11&user=me&client_secret=SeCrEt12', 'SeCrEt11 SeCrEt12'),
    ("/bin/sh -c 'DB_PWD=SeCrEt13 ./run'", 'SeCrEt13'),
    ('{"protectedSettings": {"commandToExecute": "SeCrEt14", "x": "y"}, "settings": {"a": "b"}}', 'SeCrEt14'),
])
def test_secrets_are_redacted_in_every_form_a_client_writes_them(text, secret):
    redacted = redact_secrets(text)
    assert all(word not in redacted for word in secret.split()), redacted
    assert 'REDACTED' in redacted


def test_redaction_leaves_what_is_not_secret():
    body = json.dumps({'environmentSettings': [{'value': '3', 'name': 'N'}],
                       'odata.nextLink': 'http://127.0.0.1:1/pools?api-version=2025-06-01&$skiptoken=100',
                       'settings': {'a': 'b'}})
    assert redact_secrets(body) == body
    assert redact_query({'$skiptoken': '100', 'sig': 'SeCrEt', 'api-version': '2025-06-01'}) == \
        {'$skiptoken': '100', 'sig': 'REDACTED', 'api-version': '2025-06-01'}


def test_the_request_log_and_its_portal_view_never_show_a_secret(emulator, unique_id):
    job_id = unique_id('job')
    secrets = ['SeCrEtA', 'SeCrEtB', 'SeCrEtC', 'SeCrEtD']
    # As Go's and .NET's JSON writers send it: & escaped, the setting's value before its name.
    body = ('{"id": "t1", "commandLine": "true", "resourceFiles": [{"httpUrl": '
            '"http://127.0.0.1:9/c/f?sv=1\\u0026sig=SeCrEtA\\u0026se=2", "filePath": "f"}], '
            '"environmentSettings": [{"value": "SeCrEtB", "name": "DB_PWD"}, '
            '{"value": "SeCrEtC", "name": "CREDENTIALS"}]}')
    send(emulator.endpoint, 'POST', f'/jobs?{API}', json.dumps({'id': job_id, 'poolInfo': {'poolId': 'none'}}).encode())
    assert send(emulator.endpoint, 'POST', f'/jobs/{job_id}/tasks?{API}', body.encode()).status == 201
    assert send(emulator.endpoint, 'GET', f'/jobs/{job_id}/tasks?{API}&sig=SeCrEtD').status == 200
    listed = send(emulator.endpoint, 'GET', '/portal/api/requests', sign=False).json()['requests']
    mine = [entry for entry in listed if entry['path'].startswith(f'/jobs/{job_id}/tasks')]
    assert len(mine) == 2
    details = [send(emulator.endpoint, 'GET', f"/portal/api/request?seq={entry['seq']}", sign=False).body.decode()
               for entry in mine]
    assert 'DB_PWD' in details[0] and 'sig=REDACTED' in details[0]  # the body is there, its secrets are not
    shown = ''.join(details) + json.dumps(listed)
    with open(emulator.request_log, encoding='utf-8') as log:
        shown += log.read()
    assert [secret for secret in secrets if secret in shown] == []
    send(emulator.endpoint, 'DELETE', f'/jobs/{job_id}?{API}')


def test_no_page_may_frame_the_portal(emulator):
    answer = send(emulator.endpoint, 'GET', '/', sign=False)
    assert answer.status == 200
    assert "frame-ancestors 'none'" in answer.headers['Content-Security-Policy']


# ----- case 9: extension protectedSettings are write-only --------------------------------------------------

def test_extension_protected_settings_are_never_read_back(emulator, unique_id):
    pool_id = unique_id('pool')
    body = json.loads(pool_body(pool_id, targetDedicatedNodes=1))
    body['virtualMachineConfiguration']['extensions'] = [
        {'name': 'setup', 'publisher': 'Microsoft.Azure.Extensions', 'type': 'CustomScript',
         'typeHandlerVersion': '2.0', 'settings': {'fileUris': 'https://example.invalid/s.sh'},
         'protectedSettings': {'commandToExecute': 'sh s.sh ProTecTed1'}}]
    endpoint = emulator.endpoint
    assert send(endpoint, 'POST', f'/pools?{API}', json.dumps(body).encode()).status == 201
    try:
        pool = send(endpoint, 'GET', f'/pools/{pool_id}?{API}')
        extension = pool.json()['virtualMachineConfiguration']['extensions'][0]
        assert extension['settings'] == {'fileUris': 'https://example.invalid/s.sh'}  # the public ones stay
        assert 'protectedSettings' not in extension
        node_id = eventually(lambda: (send(endpoint, 'GET', f'/pools/{pool_id}/nodes?{API}').json()['value']
                                      or [{}])[0].get('id'), message='a node')
        answers = [pool, send(endpoint, 'GET', f'/pools?{API}'),
                   send(endpoint, 'GET', f'/pools/{pool_id}/nodes/{node_id}/extensions?{API}'),
                   send(endpoint, 'GET', f'/pools/{pool_id}/nodes/{node_id}/extensions/setup?{API}'),
                   send(endpoint, 'GET', '/portal/api/overview', sign=False)]
        assert [answer.status for answer in answers] == [200] * 5
        listed = send(endpoint, 'GET', '/portal/api/requests', sign=False).json()['requests']
        details = [send(endpoint, 'GET', f"/portal/api/request?seq={entry['seq']}", sign=False)
                   for entry in listed if pool_id in entry['path'] or entry['path'] == '/pools']
        assert 'setup' in answers[2].body.decode()
        assert [answer.body for answer in answers + details if b'ProTecTed1' in answer.body] == []
    finally:
        send(endpoint, 'DELETE', f'/pools/{pool_id}?{API}')


@pytest.mark.parametrize('kind', ['job', 'job schedule'])
def test_an_auto_pools_secrets_are_never_read_back_from_its_job_or_schedule(emulator, unique_id, kind):
    """A password, a mount key and protectedSettings inside an autoPoolSpecification are write-only too."""
    pool = json.loads(pool_body('unused'))
    del pool['id']
    pool['virtualMachineConfiguration']['extensions'] = [
        {'name': 'setup', 'publisher': 'Microsoft.Azure.Extensions', 'type': 'CustomScript',
         'typeHandlerVersion': '2.0', 'protectedSettings': {'commandToExecute': 'sh s.sh ProTecTed2'}}]
    pool['userAccounts'] = [{'name': 'admin', 'password': 'PassWord2'}]
    pool['mountConfiguration'] = [{'azureBlobFileSystemConfiguration': {
        'accountName': 'store', 'containerName': 'data', 'relativeMountPath': 'data', 'accountKey': 'AccountKey2'}}]
    pool_info = {'autoPoolSpecification': {'poolLifetimeOption': 'job' if kind == 'job' else 'jobschedule',
                                           'keepAlive': False, 'pool': pool}}
    resource_id = unique_id(kind.replace(' ', ''))
    if kind == 'job':
        path, body = '/jobs', {'id': resource_id, 'poolInfo': pool_info}
    else:
        path, body = '/jobschedules', {'id': resource_id, 'schedule': {'doNotRunUntil': '2099-01-01T00:00:00Z'},
                                       'jobSpecification': {'poolInfo': pool_info}}
    endpoint = emulator.endpoint
    assert send(endpoint, 'POST', f'{path}?{API}', json.dumps(body).encode()).status == 201
    try:
        read = send(endpoint, 'GET', f'{path}/{resource_id}?{API}')
        assert read.status == 200
        spec = read.json()['poolInfo' if kind == 'job' else 'jobSpecification']
        spec = spec if kind == 'job' else spec['poolInfo']
        read_pool = spec['autoPoolSpecification']['pool']
        assert [account['name'] for account in read_pool['userAccounts']] == ['admin']  # what is not secret stays
        assert 'password' not in read_pool['userAccounts'][0]
        assert 'protectedSettings' not in read_pool['virtualMachineConfiguration']['extensions'][0]
        answers = [read, send(endpoint, 'GET', f'{path}?{API}'), send(endpoint, 'GET', '/portal/api/overview',
                                                                      sign=False)]
        leaked = [secret for secret in (b'ProTecTed2', b'PassWord2', b'AccountKey2')
                  if any(secret in answer.body for answer in answers)]
        assert leaked == []
    finally:
        send(endpoint, 'DELETE', f'{path}/{resource_id}?{API}')


@pytest.mark.parametrize('kind', ['task', 'job', 'job schedule'])
def test_a_container_registrys_password_is_never_read_back(emulator, unique_id, kind):
    """containerSettings.registry.password of a task, a job's preparation task, a schedule's job: write-only."""
    settings = {'imageName': 'example.invalid/app:1', 'registry': {'registryServer': 'example.invalid',
                                                                   'username': 'puller', 'password': 'RegPass3'}}
    endpoint = emulator.endpoint
    job_id = unique_id('job')
    preparation = {'commandLine': '/bin/true', 'containerSettings': settings}
    if kind == 'job schedule':
        path, resource = '/jobschedules', unique_id('schedule')
        body = {'id': resource, 'schedule': {'doNotRunUntil': '2099-01-01T00:00:00Z'},
                'jobSpecification': {'poolInfo': {'poolId': 'nowhere'}, 'jobPreparationTask': preparation}}
    else:
        path, resource = '/jobs', job_id
        body = {'id': job_id, 'poolInfo': {'poolId': 'nowhere'},
                **({'jobPreparationTask': preparation} if kind == 'job' else {})}
    assert send(endpoint, 'POST', f'{path}?{API}', json.dumps(body).encode()).status == 201
    try:
        if kind == 'task':
            task = {'id': 'in-a-container', 'commandLine': '/bin/true', 'containerSettings': settings}
            assert send(endpoint, 'POST', f'/jobs/{job_id}/tasks?{API}', json.dumps(task).encode()).status == 201
            reads = [send(endpoint, 'GET', f'/jobs/{job_id}/tasks/in-a-container?{API}'),
                     send(endpoint, 'GET', f'/jobs/{job_id}/tasks?{API}')]
            shown = reads[0].json()['containerSettings']
        else:
            reads = [send(endpoint, 'GET', f'{path}/{resource}?{API}'), send(endpoint, 'GET', f'{path}?{API}')]
            spec = reads[0].json() if kind == 'job' else reads[0].json()['jobSpecification']
            shown = spec['jobPreparationTask']['containerSettings']
        assert [read.status for read in reads] == [200, 200]
        assert shown['registry'] == {'registryServer': 'example.invalid', 'username': 'puller'}  # the rest stays
        assert [read for read in reads if b'RegPass3' in read.body] == []
    finally:
        send(endpoint, 'DELETE', f'{path}/{resource}?{API}')


# ----- case 13: a location that distrusts its own files ------------------------------------------------------

def _run_until_ready(location: str, *arguments: str) -> tuple[subprocess.Popen, str, str]:
    """Starts an emulator on ``location``: (process, its first stdout line, its stderr so far when it exited)."""
    process = subprocess.Popen(_emulator_command('--location', location, *arguments), cwd=PROJECT_DIR,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    line = _first_line(process)
    errors = process.stderr.read() if not line else ''
    return process, line, errors


def _stop(process: subprocess.Popen) -> str:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    process.wait(30)
    errors = process.stderr.read() if process.stderr else ''
    process.stdout.close()
    if process.stderr:
        process.stderr.close()
    return errors


def test_an_existing_location_keeps_its_mode_and_a_warning_says_others_can_read_it(tmp_path):
    location = tmp_path / 'shared'
    location.mkdir()
    location.chmod(0o755)
    process, line, _ = _run_until_ready(str(location))
    assert line.startswith('Azure Batch emulator listening on'), line
    errors = _stop(process)
    assert stat.S_IMODE(location.stat().st_mode) == 0o755
    assert f'warning: --location {location} is open to others (mode 0755)' in errors


def test_a_new_location_is_the_users_alone(tmp_path):
    location = tmp_path / 'new'
    process, line, _ = _run_until_ready(str(location))
    assert line.startswith('Azure Batch emulator listening on'), line
    assert 'warning' not in _stop(process)
    assert stat.S_IMODE(location.stat().st_mode) == 0o700


def _location_with_a_pool_and_a_task(location: str) -> None:
    """A location holding a pool of one node, a job and a task waiting in it (no node takes it: another pool)."""
    process, endpoint = start_emulator(location)
    try:
        assert send(endpoint, 'POST', f'/pools?{API}', pool_body('keep', targetDedicatedNodes=1)).status == 201
        eventually(lambda: send(endpoint, 'GET', f'/pools/keep?{API}').json()['allocationState'] == 'steady')
        send(endpoint, 'POST', f'/jobs?{API}', json.dumps({'id': 'j', 'poolInfo': {'poolId': 'absent'}}).encode())
        send(endpoint, 'POST', f'/jobs/j/tasks?{API}', json.dumps({'id': 't', 'commandLine': 'true'}).encode())
    finally:
        stop_emulator(process)


def _rewrite_records(location: str, change) -> int:
    """Applies ``change(event)`` to every line of state.jsonl; the number (from 1) of the first line it changed."""
    path = os.path.join(location, 'state.jsonl')
    with open(path, encoding='utf-8') as file:
        events = [json.loads(line) for line in file if line.strip()]
    changed = 0
    lines = []
    for number, event in enumerate(events, 1):
        text = json.dumps(event)
        event = change(event)
        if json.dumps(event) != text and not changed:
            changed = number
        lines.append(event if isinstance(event, str) else json.dumps(event))
    with open(path, 'w', encoding='utf-8') as file:
        file.write('\n'.join(lines) + '\n')
    assert changed, 'the test changed nothing'
    return changed


def _node_root(event: dict, root: str) -> dict:
    if 'pool' in event and event['pool']['nodes']:
        event['pool']['nodes'][0]['rootDir'] = root
    return event


@pytest.mark.parametrize('tamper, reason', [
    (lambda event: 'this is not json' if 'job' in event else event, 'not a JSON line'),
    (lambda event: {**event, 'pool': {**event['pool'], 'nodes': 7}} if 'pool' in event else event,
     'pool nodes has the wrong type (int)'),
    (lambda event: {'task': {**event['task'], 'state': 'exploding'}} if 'task' in event else event,
     "task state 'exploding' is not one of"),
    (lambda event: {'task': {**event['task'], 'spec': {**event['task']['spec'], 'commandLine': {'a': 1}}}}
     if 'task' in event else event, "task 't' has a spec the service would refuse (InvalidPropertyValue commandLine)"),
])
def test_a_tampered_state_file_stops_the_start_with_one_line_naming_the_line(tmp_path, tamper, reason):
    location = str(tmp_path / 'location')
    _location_with_a_pool_and_a_task(location)
    assert_tampered_start_refused(location, tamper, reason)


def assert_tampered_start_refused(location: str, tamper, reason: str) -> None:
    """A location's records changed by ``tamper``: the emulator does not start, says in one line which line of
    the state file is wrong and why (no traceback), and leaves the file as it was."""
    number = _rewrite_records(location, tamper)
    before = open(os.path.join(location, 'state.jsonl'), encoding='utf-8').read()
    process, line, errors = _run_until_ready(location)
    _stop(process)
    assert line == '' and process.returncode == 2
    assert f'state.jsonl, line {number}: {reason}' in errors, errors
    assert 'Traceback' not in errors and len(errors.strip().splitlines()) == 1, errors
    assert open(os.path.join(location, 'state.jsonl'), encoding='utf-8').read() == before  # left as it was


def test_a_node_folder_outside_the_location_is_refused_and_never_removed(tmp_path):
    location = str(tmp_path / 'location')
    _location_with_a_pool_and_a_task(location)
    victim = tmp_path / 'victim'
    victim.mkdir()
    (victim / 'precious.txt').write_text('keep me')
    number = _rewrite_records(location, lambda event: _node_root(event, str(victim)))
    process, line, errors = _run_until_ready(location)
    if line:  # it started (it must not): deleting the pool would remove the node's folder
        endpoint = re.search(r'http://\S+', line).group(0)
        send(endpoint, 'DELETE', f'/pools/keep?{API}')
        eventually(lambda: send(endpoint, 'GET', f'/pools/keep?{API}').status == 404)
    errors += _stop(process)
    assert (victim / 'precious.txt').read_text() == 'keep me'
    assert line == '' and f'line {number}: node rootDir' in errors


def test_a_restart_kills_a_recorded_process_only_if_it_is_a_task_of_this_location(tmp_path):
    location = str(tmp_path / 'location')
    _location_with_a_pool_and_a_task(location)
    bystander = subprocess.Popen(['sleep', '3600'], start_new_session=True)  # a process group of someone else
    try:
        started = eventually(lambda: processes.start_time(bystander.pid))
        _rewrite_records(location, lambda event: {'task': {**event['task'], 'processId': bystander.pid,
                                                           'processStartTime': started}} if 'task' in event else event)
        process, line, errors = _run_until_ready(location)
        assert line.startswith('Azure Batch emulator listening on'), errors
        _stop(process)  # the restart's clean-up ran before it listened
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_a_message_that_repeats_is_logged_once_per_interval_with_the_count_left_out():
    import logging

    from batch_emulator.wire.connections import FloodFilter
    now = [0.0]
    flood = FloodFilter(interval=60, clock=lambda: now[0])

    def record(message: str) -> logging.LogRecord:
        error = OSError(24, 'Too many open files')
        return logging.LogRecord('asyncio', logging.ERROR, __file__, 1, message, None, (OSError, error, None))

    passed = [flood.filter(record('socket.accept() out of system resource')) for _ in range(48_543)]
    assert passed.count(True) == 1
    assert flood.filter(record('another kind of message'))  # another kind is not held back
    now[0] = 61.0
    last = record('socket.accept() out of system resource')
    assert flood.filter(last) and '48542 more like this in the last 60 s not logged' in last.getMessage()


def test_a_download_failure_names_its_url_without_the_signature(tmp_path, monkeypatch):
    """aiohttp's own errors name the URL ("Connection timeout to host URL"): the task's message shows no signature."""
    import asyncio

    import aiohttp

    from batch_emulator.runtime.node import NodeRunner
    url = 'http://127.0.0.1:10000/devstoreaccount1/input/data.txt?sv=2025-01-05&sr=b&sig=SeCrEtSiG%2B1%3D'

    async def times_out(self, url, *args):
        raise aiohttp.ServerTimeoutError(f'Connection timeout to host {url}')
    monkeypatch.setattr(NodeRunner, '_download', times_out)
    runner = NodeRunner.__new__(NodeRunner)
    failure = asyncio.run(runner._download_resource_files([{'httpUrl': url, 'filePath': 'data.txt'}], str(tmp_path)))
    assert failure['code'] == 'ResourceFileDownloadFailed'
    assert 'SeCrEtSiG' not in failure['message'] and 'sig=REDACTED' in failure['message'], failure['message']
