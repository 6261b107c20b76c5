"""Benchmark: the whole tutorial with many input files, locally, against the floor of its own tasks.

    .venv/bin/python benchmarks/bench_orchestration.py [--files 100 1000] [--node-count 2]

Floor (same run, same machine): python_tutorial_task.py itself, run once per input file over the
same number of slots (one per node), each run uploading its output to the same Azurite — about
0.25 s of CPU per run just to start Python and import azure.storage.blob. Then the tutorial's
client runs end to end with --local --node-count N on those files (in this process, with a
timer around each step) and is compared with the floor. Prints each step's time, the client's
own steps per 1,000 files, the Batch requests per monitoring poll (from the emulator's request
log: it must not grow with the number of files) and peak memory of the client, the emulator
and Azurite. Target: end to end <= 1.5x the floor.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import datetime
import io
import json
import os
import subprocess
import sys
import tempfile
import time

from common import PROJECT_DIR, PeakRss

import python_tutorial_client as client
from batch_emulator.local import AZURITE_ACCOUNT_KEY, AZURITE_ACCOUNT_NAME, local_services

STEPS = ['upload_files_to_container', 'create_pool', 'create_job', 'add_tasks', 'wait_for_tasks_to_complete',
         'report_failed_tasks', 'download_blobs_from_container', 'delete_containers']
CLIENT_STEPS = ('upload_files_to_container', 'add_tasks', 'download_blobs_from_container')
LABELS = {'upload_files_to_container': 'upload', 'create_pool': 'pool', 'create_job': 'job', 'add_tasks': 'submit',
          'wait_for_tasks_to_complete': 'monitor', 'report_failed_tasks': 'report',
          'download_blobs_from_container': 'download', 'delete_containers': 'cleanup'}


def make_inputs(folder: str, count: int) -> None:
    words = ['batch', 'pool', 'node', 'task', 'job', 'blob', 'container', 'storage', 'queue', 'output']
    os.makedirs(folder)
    for index in range(count):
        with open(os.path.join(folder, f'file{index:05}.txt'), 'w', encoding='utf-8') as file:
            file.write(' '.join(words[(index + i * i) % len(words)] for i in range(300)))


def floor_seconds(folder: str, services, slots: int) -> float:
    """The task script run once per file, over `slots` parallel workers, uploading to Azurite."""
    from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas
    blob_service = BlobServiceClient.from_connection_string(services.environment()['AZURE_STORAGE_CONNECTION_STRING'])
    with contextlib.suppress(Exception):
        blob_service.create_container('floor')
    sas = generate_container_sas(AZURITE_ACCOUNT_NAME, 'floor', account_key=AZURITE_ACCOUNT_KEY,
                                 permission=ContainerSasPermissions(write=True, create=True),
                                 expiry=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=4))
    task_script = os.path.join(PROJECT_DIR, 'python_tutorial_task.py')
    files = sorted(os.listdir(folder))

    def run(name: str) -> None:
        finished = subprocess.run([sys.executable, task_script, '--filepath', name, '--numwords', '3',
                                   '--storageaccount', AZURITE_ACCOUNT_NAME, '--storagecontainer', 'floor',
                                   '--sastoken', sas, '--blobendpoint', services.blob_endpoint], cwd=folder,
                                  stdout=subprocess.DEVNULL)
        if finished.returncode:  # said without the command line: it holds the SAS token
            raise SystemExit(f'the task script failed on {name} (exit code {finished.returncode}); its error is above')
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(slots) as executor:
        list(executor.map(run, files))
    seconds = time.perf_counter() - started
    blob_service.delete_container('floor')
    for name in os.listdir(folder):
        if name.endswith('_OUTPUT.txt'):
            os.remove(os.path.join(folder, name))
    return seconds


def requests_per_poll(request_log: str) -> tuple[int, float]:
    """(polls, Batch requests per poll) while the client waited for its tasks."""
    with open(request_log, encoding='utf-8') as log:
        entries = [json.loads(line) for line in log]
    polls = [i for i, e in enumerate(entries) if e['path'].endswith('/taskcounts')]
    window = entries[polls[0]:polls[-1] + 1]
    return len(polls), len(window) / len(polls)


def run_tutorial(folder: str, services, node_count: int, output_dir: str) -> tuple[dict, float, int]:
    timings: dict[str, float] = collections.defaultdict(float)
    originals = {name: getattr(client, name) for name in STEPS}

    def timed(name):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return originals[name](*args, **kwargs)
            finally:
                timings[name] += time.perf_counter() - started
        return wrapper
    for name in STEPS:
        setattr(client, name, timed(name))
    try:
        settings = client.load_settings(client.parse_arguments(
            ['--yes', '--input', folder, '--node-count', str(node_count), '--output-dir', output_dir,
             '--timeout', '120']), services.environment())
        blob_service, batch, sas_key = client.create_service_clients(settings)
        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            exit_code = client.main(settings, blob_service, batch, sas_key)
        total = time.perf_counter() - started
    finally:
        for name, function in originals.items():
            setattr(client, name, function)
    return timings, total, exit_code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--files', type=int, nargs='+', default=[100, 1000])
    parser.add_argument('--node-count', type=int, default=2)
    parser.add_argument('--skip-floor', action='store_true', help='only the end-to-end runs (for 10,000 files)')
    args = parser.parse_args()
    print(f'{"files":>6} {"floor s":>8} {"total s":>8} {"ratio":>6} {"client s/1000":>13} {"polls":>6} '
          f'{"req/poll":>8}  steps (s)  peak MiB')
    with tempfile.TemporaryDirectory() as work:
        for count in args.files:
            folder = os.path.join(work, f'inputs{count}')
            make_inputs(folder, count)
            with local_services(emulator_arguments=['--node-step-seconds', '0.05']) as services:
                floor = None if args.skip_floor else floor_seconds(folder, services, args.node_count)
                pids = {'client': os.getpid()}
                pids.update(_service_pids(services))
                with PeakRss(pids) as peaks:
                    timings, total, exit_code = run_tutorial(folder, services, args.node_count,
                                                             os.path.join(work, f'out{count}'))
                polls, per_poll = requests_per_poll(services.request_log)
            client_seconds = sum(timings[name] for name in CLIENT_STEPS)
            ratio = f'{total / floor:5.2f}x' if floor else '   - '
            steps = ', '.join(f'{LABELS[name]} {timings[name]:.1f}' for name in STEPS)
            memory = ', '.join(f'{name} {peak:.0f}' for name, peak in peaks.peaks.items())
            print(f'{count:6} {floor or 0:8.1f} {total:8.1f} {ratio:>6} {client_seconds * 1000 / count:13.1f} '
                  f'{polls:6} {per_poll:8.2f}  {steps}  [{memory}]  exit {exit_code}', flush=True)


def _service_pids(services) -> dict[str, int]:
    """The Azurite and emulator processes, found by their command lines (children of this process)."""
    pids = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/cmdline', 'rb') as file:
                command = file.read().replace(b'\0', b' ').decode(errors='replace')
        except OSError:
            continue
        if services.data_dir in command:
            pids['emulator' if 'batch_emulator' in command else 'azurite'] = int(entry)
    return pids


if __name__ == '__main__':
    main()
