"""The hostile cases of issue 17, each sent to a running emulator and judged: refused or harmless, or not.

Every probe is bounded in time (HTTP timeouts of seconds, waits with deadlines) and never raises: an
exception is a verdict too. ``run_cases`` runs them one after the other (the connection flood in a
thread of its own, since it waits for the emulator's timeouts) and returns ``Verdict``s.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from email.utils import formatdate
from urllib.parse import quote, urlsplit

from common import PROJECT_DIR

from batch_emulator import DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME
from batch_emulator.wire import auth
from tests.hostile import API, pool_body, send, ten_fold_formula

CONTAINER_IMAGE = 'localhost/batch-emulator-busybox:latest'  # the image test_containers builds
SECRET = 'SoakSeCrEt'


@dataclasses.dataclass
class Verdict:
    case: str
    harmless: bool | None  # None: could not be tried here
    detail: str
    seconds: float = 0.0


class NotTried(Exception):
    """A case's set-up was refused (a quota, a missing runtime): the case says so instead of a verdict."""


class Probe:
    """What the probes share: the emulator's endpoint, a loopback web server of their own, a clock."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.hits: list[str] = []  # paths the loopback server was asked for
        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), self._handler())
        threading.Thread(target=self.server.serve_forever, daemon=True, name='soak-loopback').start()
        self.url = f'http://127.0.0.1:{self.server.server_port}'

    def _handler(self) -> type:
        probe = self
        listings = {'/notxml': b'this is not <xml', '/laughs': _billion_laughs()}

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                probe.hits.append(self.path)
                body = listings.get(urlsplit(self.path).path, b'<?xml version="1.0"?><EnumerationResults/>')
                self.send_response(200)
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_PUT(self) -> None:  # noqa: N802
                probe.hits.append('PUT ' + self.path)
                self.rfile.read(int(self.headers.get('Content-Length') or 0))
                self.send_response(201)
                self.send_header('Content-Length', '0')
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass
        return Handler

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def call(self, method: str, path: str, body: object = None, timeout: float = 10.0, **kwargs):
        data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
        return send(self.endpoint, method, path, data, timeout=timeout, **kwargs)

    def wait(self, condition: Callable[[], object], seconds: float) -> object:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            result = condition()
            if result:
                return result
            time.sleep(0.2)
        return None

    def task(self, job_id: str, task_id: str) -> dict:
        answer = self.call('GET', f'/jobs/{job_id}/tasks/{task_id}?{API}')
        return answer.json() if answer.status == 200 else {}

    def completed(self, job_id: str, task_id: str, seconds: float = 30) -> dict | None:
        return self.wait(lambda: (task := self.task(job_id, task_id)).get('state') == 'completed' and task, seconds)

    def pool_with_job(self, name: str, nodes: int = 0, dependencies: bool = False) -> None:
        for answer in (self.call('POST', f'/pools?{API}', pool_body(name, targetDedicatedNodes=nodes)),
                       self.call('POST', f'/jobs?{API}', {'id': name, 'poolInfo': {'poolId': name},
                                                          **({'usesTaskDependencies': True} if dependencies else {})})):
            if answer.status != 201:
                raise NotTried(f'set-up refused: {answer.status} {answer.code}')
        if nodes:
            self.wait(lambda: self.call('GET', f'/pools/{name}?{API}').json().get('allocationState') == 'steady', 30)

    def add_tasks(self, job_id: str, tasks: list[dict]) -> int:
        """Adds tasks 100 per call; the number added."""
        added = 0
        for start in range(0, len(tasks), 100):
            answer = self.call('POST', f'/jobs/{job_id}/addtaskcollection?{API}', {'value': tasks[start:start + 100]},
                               timeout=30)
            if answer.status != 200:
                break
            added += sum(item.get('status') == 'success' for item in answer.json().get('value', []))
        return added

    def timed_get(self, path: str, timeout: float = 30.0) -> tuple[int | None, float]:
        started = time.monotonic()
        try:
            status = self.call('GET', path, timeout=timeout).status
        except OSError:
            status = None
        return status, time.monotonic() - started


def _billion_laughs() -> bytes:
    entities = '<!ENTITY lol "lol">' + ''.join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10))
    return f'<?xml version="1.0"?><!DOCTYPE lolz [{entities}]><EnumerationResults>&lol9;</EnumerationResults>'.encode()


def _autoscale_pool(probe: Probe, name: str, formula: str):
    body = {**json.loads(pool_body(name)), 'enableAutoScale': True, 'autoScaleFormula': formula,
            'autoScaleEvaluationInterval': 'PT5M'}
    del body['targetDedicatedNodes']  # the service refuses a target beside enableAutoScale
    return probe.call('POST', f'/pools?{API}', body)


# ----- the cases ----------------------------------------------------------------------------------------------

def case_1(probe: Probe) -> tuple[bool | None, str]:
    if (created := _autoscale_pool(probe, 'soak-c1', '$TargetDedicatedNodes=0;')).status != 201:
        return None, f'not tried: the autoscale pool was refused ({created.status} {created.code})'
    started = time.monotonic()
    try:
        answer = probe.call('POST', f'/pools/soak-c1/evaluateautoscale?{API}',
                            {'autoScaleFormula': ten_fold_formula()}, timeout=10)
    except OSError:
        return False, 'no answer within 10 s (evaluated on the event loop)'
    size = len(answer.body)
    error = (answer.json().get('error') or {}).get('code') if answer.status == 200 else answer.code
    return size < 100_000 and answer.status < 500, \
        f'{answer.status} in {time.monotonic() - started:.1f} s, {size:,} bytes, error {error}'


def case_2(probe: Probe) -> tuple[bool, str]:
    created = _autoscale_pool(probe, 'soak-c2', '$x=TimeInterval_Year*1e300;')
    stored = probe.call('GET', f'/pools/soak-c2?{API}').status == 200
    start = '0001-01-01T00:00:00Z'
    schedule = probe.call('POST', f'/jobschedules?{API}', {
        'id': 'soak-c2', 'schedule': {'doNotRunAfter': start},
        'jobSpecification': {'poolInfo': {'poolId': 'soak-c2'}}})
    # Is the schedule loop alive? A schedule with no recurrence makes its job at once.
    probe.call('POST', f'/jobschedules?{API}', {'id': 'soak-c2-alive', 'schedule': {},
                                                'jobSpecification': {'poolInfo': {'poolId': 'soak-c2'}}})
    alive = probe.wait(lambda: probe.call('GET', f'/jobschedules/soak-c2-alive?{API}').json().get(
        'executionInfo', {}).get('recentJob'), 15)
    harmless = created.status != 500 and schedule.status != 500 and bool(alive)
    return harmless, (f'1e300 pool: {created.status}{" and stored" if created.status == 500 and stored else ""}; '
                      f'0001 schedule: {schedule.status}; schedule loop {"alive" if alive else "DEAD"}')


def case_3(probe: Probe) -> tuple[bool, str]:
    """3,000 dependents on the range [0, 2^31-1], added before their 3,000 parents, which then run and complete."""
    probe.call('POST', f'/pools?{API}', pool_body('soak-c3', targetDedicatedNodes=1, taskSlotsPerNode=8))
    probe.call('POST', f'/jobs?{API}', {'id': 'soak-c3', 'poolInfo': {'poolId': 'soak-c3'},
                                        'usesTaskDependencies': True})
    dependents = probe.add_tasks('soak-c3', [{'id': f'w{i}', 'commandLine': 'true', 'dependsOn': {
        'taskIdRanges': [{'start': 0, 'end': 2147483647}]}} for i in range(3000)])
    not_active = quote("state ne 'active'")
    early = probe.call('GET', f'/jobs/soak-c3/tasks?{API}&$filter={not_active}&$select=id').json()
    ran_early = len(early.get('value', []))  # a range over tasks not added yet must wait for them
    parents = probe.add_tasks('soak-c3', [{'id': str(i), 'commandLine': 'true'} for i in range(3000)])
    slowest, deadline, counts = 0.0, time.monotonic() + 60, {}
    while time.monotonic() < deadline:  # GETs while the parents complete (each completion checks the waiting)
        started = time.monotonic()
        try:
            counts = probe.call('GET', f'/jobs/soak-c3/taskcounts?{API}', timeout=30).json().get('taskCounts', {})
        except OSError:
            counts = {}
        slowest = max(slowest, time.monotonic() - started)
        if counts.get('completed', 0) >= 3000:
            break
        time.sleep(0.5)
    return ran_early == 0 and slowest < 1, (f'{dependents} dependents added first ({ran_early} did not wait), '
                                            f'{parents} parents; {counts.get("completed")} completed in the window; '
                                            f'slowest GET meanwhile {slowest:.2f} s')


def case_4(probe: Probe) -> tuple[bool | None, str]:
    runtime = shutil.which('podman') or shutil.which('docker')
    if runtime is None or subprocess.run([runtime, 'image', 'exists', CONTAINER_IMAGE],
                                         capture_output=True, timeout=30).returncode != 0:
        return None, f'not tried: no container runtime or no local {CONTAINER_IMAGE}'
    config = {'type': 'dockerCompatible', 'containerImageNames': [CONTAINER_IMAGE]}
    body = json.loads(pool_body('soak-c4', targetDedicatedNodes=1))
    body['virtualMachineConfiguration']['containerConfiguration'] = config
    if (created := probe.call('POST', f'/pools?{API}', body)).status != 201:
        return None, f'not tried: container pool refused ({created.status} {created.code})'
    probe.call('POST', f'/jobs?{API}', {'id': 'soak-c4', 'poolInfo': {'poolId': 'soak-c4'}})
    added = probe.call('POST', f'/jobs/soak-c4/tasks?{API}', {
        'id': 'breakout', 'commandLine': '/bin/sh -c true', 'containerSettings': {
            'imageName': CONTAINER_IMAGE, 'containerRunOptions': '--privileged -v /:/host --pid=host --user 0'}})
    if 400 <= added.status < 500:
        return True, f'refused at add: {added.status} {added.code}'
    task = probe.completed('soak-c4', 'breakout', 90) or {}
    failure = task.get('executionInfo', {}).get('failureInfo') or {}
    refused = failure.get('code') == 'ContainerInvalidSettings'
    return refused, f"task {task.get('state')}, {failure.get('code') or 'ran with the options'}"


def case_5(probe: Probe, seconds: float = 75) -> tuple[bool, str]:
    """550 connections trickling headers or bodies and 1,050 idle ones; then: are they cut, is a new one served?"""
    parts = urlsplit(probe.endpoint)
    head = f'POST /pools?{API} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Length: 100000\r\n'.encode()
    opened: list[tuple[socket.socket, bytes]] = []
    try:
        refused = 0
        for kind, count in (('headers', 500), ('body', 50), ('idle', 1050)):
            for _ in range(count):
                try:
                    connection = socket.create_connection((parts.hostname, parts.port), timeout=5)
                except OSError:
                    refused += 1  # not accepted within 5 s (the emulator busy, its backlog full)
                    continue
                connection.setblocking(False)
                if kind == 'headers':
                    connection.send(head)
                elif kind == 'body':
                    connection.send(_signed_head(probe.endpoint, f'/pools?{API}', 100_000) + b'{"id": ')
                opened.append((connection, {'headers': b'X', 'body': b' ', 'idle': b''}[kind]))
        served = probe.call('GET', f'/pools?{API}', timeout=10).status == 200
        deadline = time.monotonic() + seconds
        open_now = len(opened)
        while time.monotonic() < deadline and open_now:
            open_now = sum(1 for connection, trickle in opened if trickle and _still_open(connection, trickle))
            time.sleep(2)
        idle_open = sum(1 for connection, trickle in opened if not trickle and _still_open(connection, b''))
        after = probe.call('GET', f'/pools?{API}', timeout=10).status == 200
    finally:
        for connection, _ in opened:
            connection.close()
    return served and after and open_now == 0, (f'{len(opened)} connections ({refused} not accepted within 5 s): '
                                                f'a request served among them: '
                                                f'{served}; trickling ones still open after {seconds:g} s: '
                                                f'{open_now}; idle ones open: {idle_open}; served after: {after}')


def _signed_head(endpoint: str, path: str, length: int) -> bytes:
    headers = {'Host': urlsplit(endpoint).netloc, 'ocp-date': formatdate(time.time(), usegmt=True),
               'Content-Type': 'application/json; odata=minimalmetadata', 'Content-Length': str(length)}
    signature = auth.sign(DEFAULT_ACCOUNT_KEY, auth.string_to_sign('POST', path, headers, DEFAULT_ACCOUNT_NAME))
    headers['Authorization'] = f'SharedKey {DEFAULT_ACCOUNT_NAME}:{signature}'
    return (f'POST {path} HTTP/1.1\r\n' + ''.join(f'{k}: {v}\r\n' for k, v in headers.items()) + '\r\n').encode()


def _still_open(connection: socket.socket, trickle: bytes) -> bool:
    try:
        if trickle:
            connection.send(trickle[:1])
        return connection.recv(65536) != b''
    except BlockingIOError:
        return True
    except OSError:
        return False


def case_6(probe: Probe) -> tuple[bool, str]:
    created, refused, times = 0, 0, []
    deadline = time.monotonic() + 90
    for i in range(650):
        if time.monotonic() > deadline:
            break
        started = time.monotonic()
        answer = probe.call('POST', f'/jobschedules?{API}', {
            'id': f'soak-c6-{i}', 'schedule': {'doNotRunUntil': '2099-01-01T00:00:00Z', 'recurrenceInterval': 'PT1H'},
            'jobSpecification': {'poolInfo': {'poolId': 'soak-c6'}}}, timeout=30)
        times.append(time.monotonic() - started)
        created += answer.status == 201
        refused += 400 <= answer.status < 500
    status, seconds = probe.timed_get(f'/jobschedules?{API}&maxresults=10')
    for i in range(created + refused):  # the later cases need the account's job quota
        probe.call('DELETE', f'/jobschedules/soak-c6-{i}?{API}', timeout=30)
    probe.wait(lambda: not [item for item in probe.call('GET', f'/jobschedules?{API}&$select=id').json().get(
        'value', []) if item['id'].startswith('soak-c6-')], 60)
    last = sorted(times[-50:])[len(times[-50:]) // 2] if times else 0.0
    return created + refused >= 600 and last < 0.1 and status == 200 and seconds < 0.5, (
        f'{created} created, {refused} refused (quota), in {sum(times):.0f} s; median of the last 50 creates '
        f'{last * 1000:.0f} ms; a GET then {seconds * 1000:.0f} ms')


def case_7(probe: Probe) -> tuple[bool, str]:
    probe.pool_with_job('soak-c7', nodes=1)
    probe.call('POST', f'/jobs/soak-c7/tasks?{API}', {
        'id': 'self', 'commandLine': 'true',
        'resourceFiles': [{'httpUrl': f'{probe.endpoint}/portal/api/requests', 'filePath': 'log.json'}]})
    task = probe.completed('soak-c7', 'self') or {}
    failure = (task.get('executionInfo', {}).get('failureInfo') or {}).get('code')
    return failure == 'ResourceFileDownloadFailed', f"task {task.get('state')}, failure {failure}"


def case_8(probe: Probe) -> tuple[bool, str]:
    body = ('{"id": "redact", "commandLine": "true", "resourceFiles": [{"httpUrl": "http://127.0.0.1:9/c/f?sv=1'
            f'\\u0026sig={SECRET}1\\u0026se=2", "filePath": "f"}}], "environmentSettings": [{{"value": "{SECRET}2", '
            f'"name": "DB_PWD"}}, {{"name": "CREDENTIALS", "value": "{SECRET}3"}}]}}')
    probe.call('POST', f'/jobs?{API}', {'id': 'soak-c8', 'poolInfo': {'poolId': 'soak-c8'}})
    probe.call('POST', f'/jobs/soak-c8/tasks?{API}', body.encode())
    probe.call('GET', f'/jobs/soak-c8/tasks?{API}&sig={SECRET}4')
    listed = probe.call('GET', '/portal/api/requests', sign=False).json()['requests']
    shown = json.dumps(listed) + ''.join(
        probe.call('GET', f"/portal/api/request?seq={entry['seq']}", sign=False).body.decode()
        for entry in listed if entry['path'].startswith('/jobs/soak-c8'))
    leaked = [n for n in '1234' if f'{SECRET}{n}' in shown]
    frame = "frame-ancestors 'none'" in probe.call('GET', '/', sign=False).headers.get('Content-Security-Policy', '')
    return not leaked and frame, f'secrets shown: {leaked or "none"}; frame-ancestors: {frame}'


def case_9(probe: Probe) -> tuple[bool, str]:
    body = json.loads(pool_body('soak-c9'))
    body['virtualMachineConfiguration']['extensions'] = [{
        'name': 'x', 'publisher': 'Microsoft.Azure.Extensions', 'type': 'CustomScript', 'typeHandlerVersion': '2.0',
        'protectedSettings': {'commandToExecute': SECRET + 'P'}}]
    probe.call('POST', f'/pools?{API}', body)
    answers = [probe.call('GET', f'/pools/soak-c9?{API}'), probe.call('GET', f'/pools?{API}')]
    leaked = sum((SECRET + 'P').encode() in answer.body for answer in answers)
    return leaked == 0, f'protectedSettings read back by {leaked} of 2 GETs'


def case_10(probe: Probe) -> tuple[bool, str]:
    probe.pool_with_job('soak-c10', nodes=1)
    for name in ('notxml', 'laughs'):
        probe.call('POST', f'/jobs/soak-c10/tasks?{API}', {
            'id': name, 'commandLine': 'true',
            'resourceFiles': [{'storageContainerUrl': f'{probe.url}/{name}?sv=1&sig=x'}]})
    results = {}
    for name in ('notxml', 'laughs'):
        task = probe.completed('soak-c10', name, 15) or probe.task('soak-c10', name)
        results[name] = (task.get('state'), (task.get('executionInfo', {}).get('failureInfo') or {}).get('code'))
    return all(state == 'completed' and code for state, code in results.values()), \
        '; '.join(f'{name}: {state}, {code}' for name, (state, code) in results.items())


def case_11(probe: Probe) -> tuple[bool, str]:
    probe.pool_with_job('soak-c11', nodes=1)
    nodes = probe.call('GET', f'/pools/soak-c11/nodes?{API}').json().get('value') or [{}]
    node = nodes[0].get('id')
    outcomes = []
    for url in ('file:///tmp/soak-logs', f'{probe.url}/logs?sv=1&sig=x'):
        before = len(probe.hits)
        answer = probe.call('POST', f'/pools/soak-c11/nodes/{node}/uploadbatchservicelogs?{API}',
                            {'containerUrl': url, 'startTime': '2020-01-01T00:00:00Z'})
        uploaded = answer.json().get('numberOfFilesUploaded') if answer.status == 200 else None
        outcomes.append((url.split(':')[0], answer.status, uploaded, len(probe.hits) - before))
    harmless = all(status >= 400 or (not uploaded and not puts) for _, status, uploaded, puts in outcomes)
    return harmless, '; '.join(f'{scheme}: {status}, {uploaded} files reported, {puts} sent'
                               for scheme, status, uploaded, puts in outcomes)


def case_12(probe: Probe) -> tuple[bool, str]:
    created = _autoscale_pool(probe, 'soak-c12', '$TargetDedicatedNodes=1e300;')
    pool = probe.call('GET', f'/pools/soak-c12?{API}')
    if pool.status != 200:
        return created.status < 500, f'create {created.status} {created.code}: nothing stored'
    target = pool.json().get('targetDedicatedNodes', 0)
    return created.status < 500 and abs(int(target)) < 2 ** 31, f'create {created.status}; target {str(target)[:20]}'


def case_13(probe: Probe) -> tuple[bool, str]:
    folder = tempfile.mkdtemp(prefix='soak-tampered-')
    try:
        location = os.path.join(folder, 'location')
        os.makedirs(location)
        os.chmod(location, 0o755)
        with open(os.path.join(location, 'state.jsonl'), 'w', encoding='utf-8') as file:
            file.write('{"pool": {"id": "p"}}\nnot json\n')
        result = _emulator(['--location', location, '--port', '0'], 60)
        mode = os.stat(location).st_mode & 0o777
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    errors = result.stderr.strip().splitlines() if result else []
    harmless = result is not None and result.returncode == 2 and 'Traceback' not in result.stderr \
        and 'line 1' in result.stderr and mode == 0o755
    return harmless, (f'exit {result.returncode if result else "none (still running after 60 s)"}, '
                      f'{len(errors)} line(s) on stderr, folder mode {mode:o}: {(errors or [""])[-1][-120:]}')


def case_14(probe: Probe) -> tuple[bool, str]:
    result = _emulator(['--account-n', 'other', '--operations'], 60)
    return result is not None and result.returncode == 2, \
        f'--account-n: exit {result.returncode if result else "none"}'


def case_15(probe: Probe) -> tuple[bool, str]:
    probe.pool_with_job('soak-c15')
    added = probe.add_tasks('soak-c15', [{'id': f't{i}', 'commandLine': 'true'} for i in range(10_000)])
    if added < 10_000:
        raise NotTried(f'only {added} of 10,000 tasks added')
    hostile = quote(' and '.join(f"id ne 'n{i:03d}'" for i in range(265)), safe='')  # 7.8 KB in the request line
    started = time.monotonic()
    try:
        answer = probe.call('GET', f'/jobs/soak-c15/tasks?{API}&$filter={hostile}&$select=id', timeout=30)
        status = answer.status
    except OSError:
        status = None
    seconds = time.monotonic() - started
    return status is not None and (400 <= status < 500 or seconds < 1), \
        f'{added:,} tasks; a $filter of {len(hostile):,} bytes answered {status} in {seconds:.2f} s'


def _emulator(arguments: list[str], timeout: float) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run([sys.executable, '-m', 'batch_emulator', *arguments], cwd=PROJECT_DIR,
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None


CASES: dict[str, Callable[[Probe], tuple[bool | None, str]]] = {
    '1 autoscale formula, ten copies x7': case_1, '2 1e300 interval, 0001 doNotRunAfter': case_2,
    '3 dependencies 3,000 x range': case_3, '4 container escape options': case_4,
    '5 trickling and idle connections': case_5, '6 650 job schedules': case_6, '7 loopback httpUrl': case_7,
    '8 redaction probes': case_8, '9 protectedSettings': case_9, '10 non-XML, billion-laughs listing': case_10,
    '11 log upload to file:// and loopback': case_11, '12 $TargetDedicatedNodes=1e300': case_12,
    '13 tampered location': case_13, '14 abbreviated options': case_14, '15 7.8 KB $filter, 10,000 tasks': case_15,
}


def judge(name: str, probe: Probe) -> Verdict:
    started = time.monotonic()
    try:
        harmless, detail = CASES[name](probe)
    except NotTried as reason:
        harmless, detail = None, f'not tried: {reason}'
    except Exception as error:  # a probe that breaks is reported, never ends the soak
        harmless, detail = False, f'probe failed: {type(error).__name__}: {str(error)[:200]}'
    return Verdict(name, harmless, detail, time.monotonic() - started)


def run_cases(endpoint: str, verdicts: list[Verdict], under_way: list[str], skip: list[int] = ()) -> None:
    """Every case, in order (the connection flood beside them); appends to ``verdicts`` as each ends.

    ``under_way[0]`` names the case being sent (besides the flood), for the latency samples.
    """
    probe = Probe(endpoint)
    try:
        flood = threading.Thread(target=lambda: verdicts.append(judge('5 trickling and idle connections', probe)),
                                 name='soak-case-5', daemon=True)
        for name in [name for name in CASES if int(name.split()[0]) not in skip]:
            if int(name.split()[0]) > 5 and 5 not in skip and not flood.is_alive() and flood.ident is None:
                flood.start()  # beside the cases after the first ones (which may hold the event loop)
            if not name.startswith('5 '):
                under_way[0] = name
                verdicts.append(judge(name, probe))
        under_way[0] = '(cases done)'
        if flood.is_alive():
            flood.join()
    finally:
        probe.close()
