"""python -m batch_emulator: run the local Azure Batch emulator.

    python -m batch_emulator [--port 0] [--location DIR] [--request-log FILE]

It prints its endpoint, account and key, ready to export for azure-batch
clients (AZURE_BATCH_ENDPOINT, AZURE_BATCH_ACCOUNT, AZURE_BATCH_ACCESS_KEY),
and runs until Ctrl-C or SIGTERM, when it stops every process it started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile

from aiohttp import web

from .faults import FaultInjector
from .server import DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME, create_app, set_base_url

READY_LINE = 'Azure Batch emulator listening on'


def _share(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f'{text} is not a share between 0 and 1')
    return value


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='python -m batch_emulator',
                                     description='Local emulator of the Azure Batch service (REST API 2025-06-01).')
    parser.add_argument('--host', default='127.0.0.1', help='address to bind (default 127.0.0.1, loopback only)')
    parser.add_argument('--port', type=int, default=0, help='port to listen on (default 0: any free port)')
    parser.add_argument('--location', help='folder that keeps the account (pools, jobs, tasks) and the nodes\' '
                                           'files across restarts (default: a temporary folder, removed at exit)')
    parser.add_argument('--account-name', default=DEFAULT_ACCOUNT_NAME)
    parser.add_argument('--account-key', default=DEFAULT_ACCOUNT_KEY, help='base64 key clients sign requests with')
    parser.add_argument('--request-log', metavar='FILE', help='append one JSON line per request to FILE')
    parser.add_argument('--node-step-seconds', type=float, default=0.2,
                        help='how long each node state (creating, starting) lasts (default 0.2)')
    parser.add_argument('--storage-connection-string', metavar='CONNECTION_STRING',
                        help='the (Azurite) storage account whose containers the local portal lists')
    parser.add_argument('--fault-rate', type=_share, default=0.0, metavar='R',
                        help='answer a share R of requests with 500/503 or a dropped connection (default 0)')
    parser.add_argument('--node-failure-rate', type=_share, default=0.0, metavar='R',
                        help='a share R of task runs lose their node mid-task (default 0)')
    parser.add_argument('--fault-seed', type=int, default=None, help='seed for reproducible faults')
    parser.add_argument('--parent-pid', type=int, help='exit when this process ends (used by --local runs)')
    parser.add_argument('--verbose', action='store_true', help='log diagnostics to stderr')
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace, data_dir: str) -> None:
    faults = (FaultInjector(args.fault_rate, args.fault_seed, args.node_failure_rate)
              if args.fault_rate or args.node_failure_rate else None)
    app = create_app(data_dir=data_dir, faults=faults, persist=bool(args.location),
                     account_name=args.account_name, account_key=args.account_key,
                     request_log_path=args.request_log, node_step_seconds=args.node_step_seconds,
                     storage_connection_string=args.storage_connection_string)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # the real port when 0 was asked for
    endpoint = f'http://{args.host}:{port}'
    set_base_url(app, endpoint)
    print(f'{READY_LINE} {endpoint}')
    print(f'  export AZURE_BATCH_ENDPOINT={endpoint}')
    print(f'  export AZURE_BATCH_ACCOUNT={args.account_name}')
    print(f'  export AZURE_BATCH_ACCESS_KEY={args.account_key}')
    print(f'  local portal: {endpoint}/')
    print(f'  node folders: {data_dir}', flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stop.set)
    watcher = loop.create_task(_stop_when_parent_ends(args.parent_pid, stop)) if args.parent_pid else None
    try:
        await stop.wait()
    finally:
        if watcher is not None:
            watcher.cancel()
        await runner.cleanup()


async def _stop_when_parent_ends(parent_pid: int, stop: asyncio.Event) -> None:
    # A client killed outright cannot stop us; do not outlive it.
    while os.getppid() == parent_pid:
        await asyncio.sleep(1)
    stop.set()


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format='%(asctime)s %(levelname)s %(name)s: %(message)s')
    data_dir = args.location or tempfile.mkdtemp(prefix='batch-emulator-')
    try:
        asyncio.run(serve(args, data_dir))
    except OSError as error:
        print(f'error: cannot listen on {args.host}:{args.port}: {error.strerror}', file=sys.stderr)
        return 1
    finally:
        if not args.location:
            with contextlib.suppress(OSError):
                shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
