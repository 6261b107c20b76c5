"""Benchmark: the local portal with 50 nodes and 10,000 tasks, in headless Chromium.

    .venv/bin/python benchmarks/bench_portal.py [--nodes 50] [--tasks 10000] [--slots 4]

A real emulator (``python -m batch_emulator``) gets a pool of N nodes and a job of M trivial tasks
(``true``, one in 97 ``false``), added with azure-batch's ``create_tasks``; the page is open in
headless Chromium (Selenium, the system chromedriver) at 1920 x 1080 while they run. Prints:

- the page's own time per update (``performance.now()`` around merging one answer and redrawing
  heatmap, timeline, chart and the visible task rows): median, 95th percentile and maximum, while
  the tasks run and once they are done; target < 100 ms;
- the polling's cost: the overview's JSON bytes and the emulator's time to answer it, in full (a new
  page) and with a token (what a page polls every second), for the same 10,000 tasks.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from urllib.parse import quote

from azure.batch import BatchClient
from azure.batch import models as m
from azure.core.credentials import AzureNamedKeyCredential
from common import PROJECT_DIR

from batch_emulator import DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME

UBUNTU = m.VirtualMachineConfiguration(
    image_reference=m.BatchVmImageReference(publisher='canonical', offer='ubuntu-24_04-lts', sku='server'),
    node_agent_sku_id='batch.node.ubuntu 24.04')


def start_emulator(data_dir: str) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, '-m', 'batch_emulator', '--port', '0', '--location', data_dir,
                                '--node-step-seconds', '0.05'], cwd=PROJECT_DIR, stdout=subprocess.PIPE, text=True)
    match = re.search(r'listening on (http://127\.0\.0\.1:\d+)', process.stdout.readline())
    if not match:
        process.terminate()
        raise SystemExit('the emulator did not start')
    return process, match.group(1)


def open_browser(width: int, height: int):
    os.environ['SE_OFFLINE'] = 'true'  # Selenium Manager may not download anything
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which('chromium') or '/usr/bin/chromium'
    for flag in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run',
                 '--disable-background-networking', f'--window-size={width},{height}'):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which('chromedriver') or '/usr/bin/chromedriver'), options=options)


def timed_get(url: str, rounds: int = 15) -> tuple[float, int, dict]:
    """(median ms, bytes, last answer) of GET url."""
    times, body = [], b''
    for _ in range(rounds):
        started = time.perf_counter()
        with urllib.request.urlopen(url, timeout=60) as response:
            body = response.read()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), len(body), json.loads(body)


def summary(samples: list[float]) -> str:
    if not samples:
        return 'no updates'
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return (f'median {statistics.median(ordered):.1f} ms, p95 {p95:.1f} ms, max {ordered[-1]:.1f} ms '
            f'({len(ordered)} updates)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--nodes', type=int, default=50)
    parser.add_argument('--tasks', type=int, default=10_000)
    parser.add_argument('--slots', type=int, default=4)
    args = parser.parse_args()
    data_dir = tempfile.mkdtemp(prefix='bench-portal-')
    process, endpoint = start_emulator(data_dir)
    browser = None
    try:
        batch = BatchClient(endpoint, AzureNamedKeyCredential(DEFAULT_ACCOUNT_NAME, DEFAULT_ACCOUNT_KEY))
        batch.create_pool(m.BatchPoolCreateOptions(id='pool', vm_size='STANDARD_D2S_V3',
                                                   target_dedicated_nodes=args.nodes,
                                                   virtual_machine_configuration=UBUNTU,
                                                   task_slots_per_node=args.slots))
        batch.create_job(m.BatchJobCreateOptions(id='job', pool_info=m.BatchPoolInfo(pool_id='pool')))
        browser = open_browser(1920, 1080)
        browser.get(endpoint + '/')
        started = time.perf_counter()
        batch.create_tasks('job', [m.BatchTaskCreateOptions(id=f'task{i}', command_line='false' if i % 97 == 5
                                                            else 'true') for i in range(args.tasks)])
        print(f'{args.tasks} tasks added in {time.perf_counter() - started:.1f} s '
              f'on {args.nodes} nodes x {args.slots} slots')
        deadline = time.monotonic() + 900
        while batch.get_job_task_counts('job').task_counts.completed < args.tasks:
            if time.monotonic() > deadline:
                raise SystemExit('the tasks did not complete within 15 minutes')
            time.sleep(1)
        print(f'all completed after {time.perf_counter() - started:.1f} s')
        running = [ms for ms, _ in browser.execute_script('return window.portalStats.samples')]
        browser.execute_script('window.portalStats.samples = []')
        deadline = time.monotonic() + 30
        while len(browser.execute_script('return window.portalStats.samples')) < 10 and time.monotonic() < deadline:
            time.sleep(0.5)
        idle = browser.execute_script('return window.portalStats.samples')
        stats = browser.execute_script('return window.portalStats')
        print(f'page update while the tasks ran: {summary(running)}')
        print(f'page update with {stats["tasksKnown"]} tasks done: {summary([ms for ms, _ in idle])}; '
              f'tasks received per poll: {max((count for _, count in idle), default=0)}')
        rows = browser.execute_script('return document.querySelectorAll("#task-rows .task-row").length')
        bars = browser.execute_script('return document.getElementById("timeline").dataset.bars')
        print(f'task rows in the page: {rows}; timeline bars drawn: {bars}')
        full_ms, full_bytes, answer = timed_get(endpoint + '/portal/api/overview?since=')
        delta_ms, delta_bytes, _ = timed_get(endpoint + '/portal/api/overview?since=' + quote(answer['token']))
        print(f'overview in full: {full_bytes / 1024:.0f} KiB in {full_ms:.1f} ms; '
              f'with a token (nothing changed): {delta_bytes / 1024:.1f} KiB in {delta_ms:.1f} ms '
              f'(ratio {full_bytes / delta_bytes:.0f}x bytes, {full_ms / delta_ms:.1f}x time)')
        if os.environ.get('PORTAL_SCREENSHOT'):
            browser.save_screenshot(os.environ['PORTAL_SCREENSHOT'])
    finally:
        if browser is not None:
            browser.quit()
        process.terminate()
        process.wait(30)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == '__main__':
    main()
