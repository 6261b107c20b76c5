"""Benchmark: what one blob upload and download costs Azurite as its account fills up.

    .venv/bin/python benchmarks/bench_storage.py [--blobs 0 5000 10000 20000] [--azurite PATH]

The tutorial at 10,000 files keeps 20,000 blobs in one Azurite account (inputs and outputs), and every
task uploads one and the emulator downloads two for it. If each request costs Azurite time in
proportion to the blobs it holds, the run's cost grows with the square of the files. Baseline (same
run): the cost at the first count of the list (0 blobs). For each count, fills the account to it
(3 KB blobs in another container, 8 threads), then times 200 uploads and 200 downloads of 3 KB blobs
one after another: wall time per request and Azurite's CPU time per request, and the ratio of that CPU
to the baseline's. Azurite is started as ``--local`` starts it (``--azurite`` measures another install,
e.g. an older version in another folder's ``node_modules/.bin/azurite-blob``).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import subprocess
import tempfile
import time

from azure.storage.blob import BlobServiceClient
from common import PROJECT_DIR, cpu_seconds

from batch_emulator.local import AZURITE_ACCOUNT_NAME, AZURITE_BIN, _connection_string, start_azurite

PROBES = 200



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--blobs', type=int, nargs='+', default=[0, 5000, 10000, 20000])
    parser.add_argument('--azurite', default=AZURITE_BIN, help='the azurite-blob to start (default: this project\'s)')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as location:
        azurite = start_azurite(location, os.path.join(location, 'azurite.log'), args.azurite)
        try:
            found = azurite.wait_ready()
            version = subprocess.run([args.azurite, '--version'], capture_output=True, text=True,
                                     cwd=PROJECT_DIR).stdout.strip()
            service = BlobServiceClient.from_connection_string(
                _connection_string(found.group(1) + '/' + AZURITE_ACCOUNT_NAME))
            filler, probes = service.create_container('filler'), service.create_container('probes')
            print(f'Azurite {version}: {PROBES} uploads and {PROBES} downloads of 3 KB at each count')
            print(f'{"blobs":>7} {"wall ms/request":>16} {"Azurite CPU ms/request":>23} {"CPU vs baseline":>16}')
            filled, baseline = 0, None
            with concurrent.futures.ThreadPoolExecutor(8) as executor:
                for count in args.blobs:
                    list(executor.map(lambda index: filler.upload_blob(f'file{index:06}.txt', b'x' * 3000),
                                      range(filled, count)))
                    filled = max(filled, count)
                    cpu, started = cpu_seconds(azurite.process.pid), time.perf_counter()
                    for index in range(PROBES):
                        probes.upload_blob(f'probe{index}', b'y' * 3000, overwrite=True)
                        probes.download_blob(f'probe{index}').readall()
                    wall = (time.perf_counter() - started) * 1000 / (2 * PROBES)
                    cpu = (cpu_seconds(azurite.process.pid) - cpu) * 1000 / (2 * PROBES)
                    baseline = baseline or cpu
                    print(f'{filled:7} {wall:16.2f} {cpu:23.2f} {cpu / baseline:15.2f}x', flush=True)
        finally:
            azurite.stop()


if __name__ == '__main__':
    main()
