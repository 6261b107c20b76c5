"""Soak: the whole tutorial runs locally while other clients hammer the emulator with valid and hostile requests.

    .venv/bin/python benchmarks/soak.py [--threads 4] [--seconds 90]

Starts Azurite and the Batch emulator (as --local does), runs python_tutorial_client.py against
them, and meanwhile sends from several threads a mix of ordinary signed requests and what a
hostile page or client sends: a rebinding Host, a foreign Origin, a replayed (old) date, broken
Authorization headers, JSON nested 100,000 deep, a chunked 2 MB addtaskcollection, a $filter
nested as deep as a request line allows. A side pool runs hostile tasks at the same time: links
to / under an output pattern of **, setsid children, a 50 MB stdout read back, unlimited retries.

Loopback only; every loop is bounded in count and time, and the whole soak stops by itself
(at most --seconds, 120 at most). Prints requests served, refused and failed (5xx or no answer:
must be 0), the slowest ordinary answer, the tutorial's exit code and whether its outputs are right.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from urllib.parse import urlsplit

from common import PROJECT_DIR

from batch_emulator.local import local_services
from tests.hostile import API, nested, pool_body, processes_running, send
from tests.test_end_to_end import DATA_FILES, original_top_three, top_words_in_output

SIDE_POOL = 'soak-hostile'


def _hostile_requests(endpoint: str) -> list[tuple[str, dict]]:
    """(name, keyword arguments for send) of each hostile request; every one must get a 4xx."""
    port = urlsplit(endpoint).port
    big_collection = json.dumps({'value': [{'id': f't{i}', 'commandLine': 'true', 'displayName': 'x' * 50_000}
                                           for i in range(40)]}).encode()
    return [
        ('rebinding Host', dict(method='POST', path=f'/pools?{API}', body=pool_body('rebound'),
                                headers={'Host': f'rebind.attacker.example:{port}'})),
        ('foreign Origin', dict(method='POST', path=f'/pools?{API}', body=pool_body('csrf'),
                                headers={'Origin': 'http://attacker.example'})),
        ('replayed date', dict(method='POST', path=f'/pools?{API}', body=pool_body('replayed'),
                               date=time.time() - 3600)),
        ('broken Authorization', dict(method='GET', path=f'/pools?{API}',
                                      headers={'Authorization': 'SharedKey devbatchaccount1:\u00ff'})),
        ('deep JSON', dict(method='POST', path=f'/pools?{API}', body=nested(100_000))),
        ('chunked 2 MB collection', dict(method='POST', path=f'/jobs/{SIDE_POOL}/addtaskcollection?{API}',
                                         body=iter([big_collection[:1_000_000], big_collection[1_000_000:]]))),
        ('deep $filter', dict(method='GET', path=f"/pools?{API}&$filter={'(' * 3000}id%20eq%20'a'{')' * 3000}")),
        ('huge slots', dict(method='POST', path=f'/pools?{API}', body=pool_body('slots', taskSlotsPerNode=10 ** 18))),
    ]


def _hostile_tasks() -> list[dict]:
    upload = {'filePattern': '**/*', 'uploadOptions': {'uploadCondition': 'taskcompletion'},
              'destination': {'container': {'containerUrl': 'http://127.0.0.1:9/closed?sv=1&sig=x'}}}
    return [
        {'id': 'rootlink', 'commandLine': "/bin/sh -c 'ln -s / root; ln -s /nowhere dangling'",
         'outputFiles': [upload]},
        {'id': 'escapes', 'commandLine': "/bin/bash -c 'sleep 3901 & setsid sleep 3902 & echo started'"},
        {'id': 'bigout', 'commandLine': "/bin/sh -c 'head -c 50000000 /dev/zero'"},
        {'id': 'spins', 'commandLine': 'false', 'constraints': {'maxTaskRetryCount': -1}},
    ]


def _hammer(endpoint: str, deadline: float, stop: threading.Event, counts: Counter, slowest: list[float],
            lock: threading.Lock) -> None:
    hostile = _hostile_requests(endpoint)
    for round_number in range(100_000):  # bounded; the deadline or the tutorial's end stop it first
        if stop.is_set() or time.monotonic() > deadline:
            return
        name, arguments = hostile[round_number % len(hostile)]
        started = time.monotonic()
        try:
            ordinary = send(endpoint, 'GET', f'/pools?{API}', timeout=5)
            elapsed = time.monotonic() - started
            answer = send(endpoint, timeout=10, **arguments)
        except OSError as error:
            with lock:
                counts[f'failed: no answer ({type(error).__name__})'] += 1
            continue
        with lock:
            slowest[0] = max(slowest[0], elapsed)
            counts['served' if ordinary.status == 200 else f'failed: ordinary request {ordinary.status}'] += 1
            counts['refused' if 400 <= answer.status < 500 else f'failed: {name} answered {answer.status}'] += 1


def _side_pool(endpoint: str) -> None:
    """A pool of one node whose tasks behave badly, running beside the tutorial."""
    send(endpoint, 'POST', f'/pools?{API}', pool_body(SIDE_POOL, targetDedicatedNodes=1, taskSlotsPerNode=4))
    send(endpoint, 'POST', f'/jobs?{API}', json.dumps({'id': SIDE_POOL, 'poolInfo': {'poolId': SIDE_POOL}}).encode())
    send(endpoint, 'POST', f'/jobs/{SIDE_POOL}/addtaskcollection?{API}',
         json.dumps({'value': _hostile_tasks()}).encode())


def _side_pool_report(endpoint: str) -> dict[str, str]:
    states = {}
    for task in ('rootlink', 'escapes', 'bigout', 'spins'):
        answer = send(endpoint, 'GET', f'/jobs/{SIDE_POOL}/tasks/{task}?{API}')
        body = answer.json() if answer.status == 200 else {}
        states[task] = f"{body.get('state')} (retries {body.get('executionInfo', {}).get('retryCount')})"
    download = send(endpoint, 'GET', f'/jobs/{SIDE_POOL}/tasks/bigout/files/stdout.txt?{API}', timeout=60)
    states['bigout stdout.txt'] = f'{len(download.body):,} bytes'
    states['escaped sleeps alive'] = str(len(processes_running('sleep 390')))
    return states


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--threads', type=int, default=4)
    parser.add_argument('--seconds', type=float, default=90)
    args = parser.parse_args()
    deadline = time.monotonic() + min(args.seconds, 120)
    output_dir = tempfile.mkdtemp(prefix='soak-output-')
    counts: Counter = Counter()
    slowest = [0.0]
    lock = threading.Lock()
    stop = threading.Event()
    with local_services(emulator_arguments=['--node-step-seconds', '0.05']) as services:
        endpoint = services.batch_endpoint
        _side_pool(endpoint)
        threads = [threading.Thread(target=_hammer, args=(endpoint, deadline, stop, counts, slowest, lock))
                   for _ in range(args.threads)]
        for thread in threads:
            thread.start()
        environment = dict(os.environ, **services.environment())
        try:
            tutorial = subprocess.run(
                [sys.executable, 'python_tutorial_client.py', '--yes', '--output-dir', output_dir, '--timeout',
                 str(max(1.0, (deadline - time.monotonic()) / 60))],
                cwd=PROJECT_DIR, env=environment, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                timeout=max(10.0, deadline - time.monotonic() + 30))
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        side = _side_pool_report(endpoint)
    outputs = sorted(name for name in os.listdir(output_dir) if name.endswith('_OUTPUT.txt'))
    correct = len(outputs) == len(DATA_FILES) and all(
        top_words_in_output(os.path.join(output_dir, os.path.basename(path).replace('.txt', '_OUTPUT.txt')))
        == original_top_three(path) for path in DATA_FILES)
    failed = sum(count for key, count in counts.items() if key.startswith('failed'))
    print(f"requests: {counts['served']} ordinary served, {counts['refused']} hostile refused, {failed} failed")
    for key, count in sorted(counts.items()):
        if key.startswith('failed'):
            print(f'  {key}: {count}')
    print(f'slowest ordinary answer while under attack: {slowest[0] * 1000:.0f} ms')
    print(f'hostile side pool: {side}')
    print(f"tutorial: exit code {tutorial.returncode}, outputs {outputs} {'correct' if correct else 'WRONG'}")
    if tutorial.returncode != 0:
        print(tutorial.stdout[-2000:], tutorial.stderr[-2000:])
    return 0 if tutorial.returncode == 0 and correct and not failed else 1


if __name__ == '__main__':
    sys.exit(main())
