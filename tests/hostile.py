"""Raw HTTP to the emulator with every header under the test's control: how a hostile page or client talks.

The SDKs always send a correct Host, a fresh ocp-date and a well-formed Authorization
header. These helpers sign (or mis-sign) requests by hand, so that a test can send what a
browser under DNS rebinding, a replayed capture or a broken client would send.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email.utils import formatdate
from urllib.parse import urlsplit

from azure.batch import BatchClient
from azure.core.credentials import AzureNamedKeyCredential

from batch_emulator import DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME
from batch_emulator.pytest_plugin import launch_batch_emulator
from batch_emulator.wire import auth

API = 'api-version=2025-06-01'


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)

    @property
    def code(self) -> str | None:
        try:
            return self.json().get('code')
        except ValueError:
            return None


def send(endpoint: str, method: str, path: str, body: bytes | Iterable[bytes] | None = None, *,
         headers: dict[str, str] | None = None, sign: bool = True, date: float | None = None,
         timeout: float = 10.0) -> Answer:
    """One request; ``headers`` may override Host, ocp-date, Authorization or add Origin; None drops a header."""
    parts = urlsplit(endpoint)
    chunked = body is not None and not isinstance(body, bytes)
    sent = {'Host': parts.netloc, 'ocp-date': formatdate(time.time() if date is None else date, usegmt=True)}
    if body is not None:
        sent['Content-Type'] = 'application/json; odata=minimalmetadata'
        if chunked:
            sent['Transfer-Encoding'] = 'chunked'
        else:
            sent['Content-Length'] = str(len(body))
    elif method not in ('GET', 'HEAD'):
        sent['Content-Length'] = '0'
    sent.update(headers or {})
    sent = {name: value for name, value in sent.items() if value is not None}
    if sign and 'Authorization' not in sent:
        text = auth.string_to_sign(method, path, sent, DEFAULT_ACCOUNT_NAME)
        sent['Authorization'] = f'SharedKey {DEFAULT_ACCOUNT_NAME}:{auth.sign(DEFAULT_ACCOUNT_KEY, text)}'
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in sent.items():
            connection.putheader(name, value.encode('utf-8') if isinstance(value, str) else value)
        connection.endheaders()
        if body is not None:
            if chunked:
                for piece in body:
                    connection.send(f'{len(piece):X}\r\n'.encode() + piece + b'\r\n')
                connection.send(b'0\r\n\r\n')
            else:
                connection.send(body)
        response = connection.getresponse()
        return Answer(response.status, dict(response.getheaders()), response.read())
    finally:
        connection.close()


def still_answers(endpoint: str) -> bool:
    """The emulator answers an ordinary signed request: neither dead nor stuck after (or while) something hostile
    goes on. The 60 s is a deadline for a hang, not a speed: how fast it answers is the benchmarks' to say."""
    return send(endpoint, 'GET', f'/pools?{API}', timeout=60.0).status == 200


def pool_body(pool_id: str, **extra: object) -> bytes:
    body = {'id': pool_id, 'vmSize': 'standard_d2s_v3', 'targetDedicatedNodes': 0,
            'virtualMachineConfiguration': {'imageReference': {'publisher': 'canonical', 'offer': 'ubuntu-24_04-lts',
                                                               'sku': 'server'},
                                            'nodeAgentSKUId': 'batch.node.ubuntu 24.04'}}
    body.update(extra)
    return json.dumps(body).encode()


def start_emulator(location: str, *arguments: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """A separate emulator on a free loopback port (for tests that restart, kill or configure it), started by the
    project's own pytest plugin; its request log and stderr (``requests.jsonl``, ``emulator.log``) go into
    ``location`` beside its journal."""
    arguments = list(arguments)
    node_step_seconds = 0.05
    if '--node-step-seconds' in arguments:  # the plugin sets it itself
        at = arguments.index('--node-step-seconds')
        node_step_seconds = float(arguments[at + 1])
        del arguments[at:at + 2]
    emulator = launch_batch_emulator(location, *arguments, node_step_seconds=node_step_seconds, location=location,
                                     environment=env)
    return emulator.process, emulator.endpoint


def stop_emulator(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        process.wait(15)
    process.stdout.close()


def batch_client_for(endpoint: str) -> BatchClient:
    return BatchClient(endpoint, AzureNamedKeyCredential(DEFAULT_ACCOUNT_NAME, DEFAULT_ACCOUNT_KEY))


def processes_running(marker: str) -> list[int]:
    """Processes (not zombies) whose command line starts with ``marker`` (a shell that runs it does not count)."""
    found = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f'/proc/{entry}/cmdline', 'rb') as file:
                command = file.read().replace(b'\0', b' ').decode(errors='replace')
            with open(f'/proc/{entry}/stat', encoding='utf-8') as file:
                state = file.read().rsplit(')', 1)[1].split()[0]
        except OSError:
            continue
        if command.startswith(marker) and state != 'Z':
            found.append(int(entry))
    return found


def node_agent_of(emulator_pid: int) -> int | None:
    """The node agent an emulator started (its child whose command line names ``node_agent``), or None."""
    for thread in os.listdir(f'/proc/{emulator_pid}/task'):
        try:
            with open(f'/proc/{emulator_pid}/task/{thread}/children', encoding='ascii') as file:
                children = file.read().split()
        except OSError:
            continue
        for child in children:
            try:
                with open(f'/proc/{child}/cmdline', 'rb') as file:
                    if b'node_agent' in file.read():
                        return int(child)
            except OSError:
                continue
    return None


def nested(depth: int) -> Iterator[bytes]:
    """A JSON body nested ``depth`` levels deep, sent in pieces."""
    yield b'{"id": "deep", "metadata": ' + b'[' * depth
    yield b']' * depth + b'}'


def ten_fold_formula() -> str:
    """Issue 17's case 1: seven statements, each floor() of ten copies of the one before (10^7 values)."""
    names = ['$a', '$b', '$c', '$d', '$e', '$f', '$g']
    statements = ['$a=floor(' + ','.join(['1'] * 10) + ')']
    statements += [f'{name}=floor(' + ','.join([before] * 10) + ')'
                   for before, name in zip(names, names[1:], strict=False)]
    return ';'.join(statements) + ';'
