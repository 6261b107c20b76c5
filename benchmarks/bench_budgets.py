"""Benchmark: what the evaluation budgets cost a hostile request, and what everyone else waits meanwhile.

    .venv/bin/python benchmarks/bench_budgets.py [--tasks 10000] [--rounds 3]

Starts a real emulator (``python -m batch_emulator``), an autoscale pool and a job of N tasks (on a
pool of no nodes: they stay active), then, per round, sends each hostile request of issue 17 while a
probe thread sends GET /pools?$select=id back to back, and prints the hostile request's status and time
and the slowest probe answered meanwhile (what an ordinary client waited):

- case 1: evaluateautoscale of the 368-character ten-fold formula (10^7 values without a budget);
- the most a formula can cost inside the budgets (vector arithmetic up to the step budget);
- case 15: GET tasks with a $filter of 250 equalities joined by 'or' (7.5 KB as sent; answered: one look-up
  per task);
- a $filter of 250 comparisons joined by 'and', all true (7.2 KB; refused with 400 at the comparison budget);
- for comparison, the same list without a filter (building 10,000 tasks' bodies is most of a list's cost).

Before this change (same machine, --tasks 10000): case 1 took 15.7 s with every request waiting and
a 22 MB results string; the 7.8 KB $filter stalled the emulator 4.2 s (the issue's figures).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from urllib.parse import quote

from common import PROJECT_DIR

sys.path.insert(0, PROJECT_DIR)

from tests.hostile import API, send, start_emulator, stop_emulator, ten_fold_formula  # noqa: E402

UBUNTU = {'imageReference': {'publisher': 'canonical', 'offer': 'ubuntu-24_04-lts', 'sku': 'server'},
          'nodeAgentSKUId': 'batch.node.ubuntu 24.04'}


def costliest_formula() -> str:
    """Builds a doubleVec of 40,000 values (within the length budget), then works on it until the step budget."""
    tens = '$a=floor(' + ','.join(['1'] * 10) + ');'
    tens += ''.join(f'{name}=floor(' + ','.join([before] * 10) + ');'
                    for before, name in (('$a', '$b'), ('$b', '$c'), ('$c', '$d')))
    return tens + '$e=floor($d,$d,$d,$d);' + ''.join(f'$x{i}=$e*2+1;' for i in range(200))


def hostile_requests(pool_id: str, job_id: str) -> list[tuple[str, dict]]:
    """Each hostile request, named with its $filter's length as sent (percent-encoded: a request line holds 8 KB)."""
    equalities = quote(' or '.join(f"id eq 'n{i:05d}'" for i in range(250)), safe='')
    comparisons = quote(' and '.join(f"id ne 'n{i}'" for i in range(250)), safe='')
    evaluate = f'/pools/{pool_id}/evaluateautoscale?{API}'
    return [
        ('case 1 formula', dict(method='POST', path=evaluate, body=_formula(ten_fold_formula()))),
        ('costliest formula', dict(method='POST', path=evaluate, body=_formula(costliest_formula()))),
        (f'{len(equalities) / 1000:.1f} KB eq filter',
         dict(method='GET', path=f'/jobs/{job_id}/tasks?{API}&$filter={equalities}&$select=id')),
        (f'{len(comparisons) / 1000:.1f} KB and filter',
         dict(method='GET', path=f'/jobs/{job_id}/tasks?{API}&$filter={comparisons}&$select=id')),
        ('no filter', dict(method='GET', path=f'/jobs/{job_id}/tasks?{API}&$select=id')),
    ]


def _formula(formula: str) -> bytes:
    return _json({'autoScaleFormula': formula})


def _json(body: dict) -> bytes:
    return json.dumps(body).encode()


def measure(endpoint: str, request: dict) -> tuple[int, float, float, str]:
    """(status, seconds, slowest probe in seconds, error code or '') of one request, probes running meanwhile."""
    stop, probes = threading.Event(), []

    def probe() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            send(endpoint, 'GET', f'/pools?{API}&$select=id', timeout=60)
            probes.append(time.perf_counter() - started)
    prober = threading.Thread(target=probe)
    prober.start()
    time.sleep(0.2)  # the probe is under way
    started = time.perf_counter()
    answer = send(endpoint, timeout=120, **request)
    seconds = time.perf_counter() - started
    stop.set()
    prober.join()
    try:
        body = answer.json()
    except ValueError:
        body = {}
    code = body.get('code') or (body.get('error') or {}).get('code', '')  # a 4xx's, or the AutoScaleRun's
    return answer.status, seconds, max(probes), code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--tasks', type=int, default=10_000)
    parser.add_argument('--rounds', type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix='bench-budgets-') as location:
        process, endpoint = start_emulator(location)
        try:
            pool = {'id': 'budgets', 'vmSize': 'standard_d2s_v3', 'virtualMachineConfiguration': UBUNTU,
                    'enableAutoScale': True, 'autoScaleFormula': '$TargetDedicatedNodes=0;',
                    'autoScaleEvaluationInterval': 'PT5M'}
            assert send(endpoint, 'POST', f'/pools?{API}', _json(pool)).status == 201
            job = {'id': 'budgets', 'poolInfo': {'poolId': 'budgets'}}
            assert send(endpoint, 'POST', f'/jobs?{API}', _json(job)).status == 201
            for start in range(0, args.tasks, 100):
                tasks = {'value': [{'id': f't{i}', 'commandLine': 'true'} for i in range(start, start + 100)]}
                assert send(endpoint, 'POST', f'/jobs/budgets/addtaskcollection?{API}', _json(tasks)).status == 200
            results: dict[str, list[tuple[int, float, float, str]]] = {}
            for _ in range(args.rounds):
                for name, request in hostile_requests('budgets', 'budgets'):
                    results.setdefault(name, []).append(measure(endpoint, request))
        finally:
            stop_emulator(process)
    print(f'{args.tasks} tasks, {args.rounds} rounds; times in ms as median [min-max]')
    for name, rows in results.items():
        statuses = sorted({f'{status} {code}'.strip() for status, _, _, code in rows})
        print(f'{name:18} answer {_spread([row[1] for row in rows])}  slowest probe meanwhile '
              f'{_spread([row[2] for row in rows])}  -> {", ".join(statuses)}')


def _spread(values: list[float]) -> str:
    return f'{statistics.median(values) * 1000:7.1f} [{min(values) * 1000:.1f}-{max(values) * 1000:.1f}]'


if __name__ == '__main__':
    main()
