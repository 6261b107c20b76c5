"""python -m batch_emulator: run the local Azure Batch emulator.

    python -m batch_emulator [--port 0] [--location DIR] [--request-log FILE]

It prints its endpoint, account and key (the published development key only;
a key of your own is never printed), ready to export for azure-batch clients
(AZURE_BATCH_ENDPOINT, AZURE_BATCH_ACCOUNT, AZURE_BATCH_ACCESS_KEY), and runs
until Ctrl-C or SIGTERM, when it stops every process it started.

It listens on loopback only. Listening on another address runs commands for
whoever can reach it and sign a request, so it needs --allow-remote and a key
of your own (--account-key, or the variable BATCH_EMULATOR_ACCOUNT_KEY, which
unlike a command line other users of the machine cannot read).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import ipaddress
import logging
import os
import shutil
import signal
import stat
import sys
import tempfile

from aiohttp import web

from batch_emulator.app import create_app
from batch_emulator.runtime import processes
from batch_emulator.runtime.faults import FaultInjector
from batch_emulator.runtime.outbound import OutboundPolicy, host_port, storage_endpoints
from batch_emulator.runtime.pool_nodes import SPOT_RESTORE_SECONDS
from batch_emulator.runtime.scheduler import DEFAULT_NODE_QUOTA
from batch_emulator.service.jobs import DEFAULT_ACTIVE_JOB_QUOTA
from batch_emulator.service.state_checks import StateFileError
from batch_emulator.wire.auth import is_valid_key
from batch_emulator.wire.connections import DEFAULT_BODY_TIMEOUT, DEFAULT_HEADER_TIMEOUT, FloodFilter
from batch_emulator.wire.server import (
    DEFAULT_ACCOUNT_KEY,
    DEFAULT_ACCOUNT_NAME,
    SCHEDULER,
    STATE,
    app_runner,
    bound_connections,
    set_base_url,
)

READY_LINE = 'Azure Batch emulator listening on'
ACCOUNT_KEY_VARIABLE = 'BATCH_EMULATOR_ACCOUNT_KEY'  # --account-key's default: kept out of `ps`


def _number_up_to(highest: float, what: str):
    """An argparse type: a number above 0 and at most ``highest`` (``what`` names it in the error)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = 0.0
        if not 0 < value <= highest:
            raise argparse.ArgumentTypeError(f'{text!r} is not {what} between 0 and {highest:g}')
        return value
    return parse


_speed = _number_up_to(100_000, 'a speed-up factor')
_seconds = _number_up_to(86_400, 'a number of seconds')


def _rate(text: str) -> float:
    """Preemptions per spot node per minute: 0 (none, the default) up to 600."""
    return 0.0 if text.strip() in ('0', '0.0') else _number_up_to(600, 'a rate per minute')(text)


def _share(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f'{text} is not a share between 0 and 1')
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f'{text} is not a count of nodes')
    return value


def _host_port(text: str) -> str:
    try:
        host_port(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not HOST:PORT') from None
    return text


def _positive_count(text: str) -> int:
    value = _count(text)
    if value == 0:
        raise argparse.ArgumentTypeError('0 connections would serve nothing')
    return value


def is_loopback(host: str) -> bool:
    if host.lower() == 'localhost':
        return True
    try:
        return ipaddress.ip_address(host.strip('[]')).is_loopback
    except ValueError:
        return False


def _refuse(message: str) -> None:
    print(f'error: {message}', file=sys.stderr)
    sys.exit(2)


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    invoked = os.path.basename(sys.argv[0])
    # No abbreviations: '--loc' or '--account-n' must not stand for an option (a wrapper that sets some options
    # itself, such as the pytest plugin, could be overridden by one).
    parser = argparse.ArgumentParser(prog=invoked if invoked == 'batch-emulator' else 'python -m batch_emulator',
                                     description='Local emulator of the Azure Batch service (REST API 2025-06-01).',
                                     allow_abbrev=False)
    parser.add_argument('--host', default='127.0.0.1',
                        help='address to bind (default 127.0.0.1); another than loopback needs --allow-remote')
    parser.add_argument('--allow-remote', action='store_true',
                        help='allow --host beyond loopback: anyone who reaches it with the key runs commands here; '
                             'needs --account-key of your own')
    parser.add_argument('--port', type=int, default=0, help='port to listen on (default 0: any free port)')
    parser.add_argument('--location', help='folder that keeps the account (pools, jobs, tasks) and the nodes\' '
                                           'files across restarts (default: a temporary folder, removed at exit)')
    parser.add_argument('--account-name', default=DEFAULT_ACCOUNT_NAME)
    parser.add_argument('--account-key', default=os.environ.get(ACCOUNT_KEY_VARIABLE) or DEFAULT_ACCOUNT_KEY,
                        help=f'base64 key clients sign requests with (default: ${ACCOUNT_KEY_VARIABLE}, else the '
                             "published development key); a key of your own is better given in that variable: "
                             "a command line is readable by every user of the machine")
    parser.add_argument('--request-log', metavar='FILE', help='append one JSON line per request to FILE')
    parser.add_argument('--node-step-seconds', type=float, default=0.2,
                        help='how long each node state (creating, starting) lasts (default 0.2)')
    parser.add_argument('--storage-connection-string', metavar='CONNECTION_STRING',
                        help='the (Azurite) storage account whose containers the local portal lists; its blob '
                             "endpoint is the one on this machine that tasks' resource and output files may reach")
    parser.add_argument('--fault-rate', type=_share, default=0.0, metavar='R',
                        help='answer a share R of requests with 500/503 or a dropped connection (default 0)')
    parser.add_argument('--node-failure-rate', type=_share, default=0.0, metavar='R',
                        help='a share R of task runs lose their node mid-task (default 0)')
    parser.add_argument('--spot-preemption-rate', type=_rate, default=0.0, metavar='R',
                        help='preempt each spot node R times a minute on average (default 0: only on demand, '
                             'POST /_emulator/pools/{poolId}/nodes/{nodeId}/preempt)')
    parser.add_argument('--spot-restore-seconds', type=_seconds, default=SPOT_RESTORE_SECONDS, metavar='S',
                        help=f'a preempted spot node stays preempted S seconds, then boots again '
                             f'(default {SPOT_RESTORE_SECONDS:g})')
    parser.add_argument('--fault-seed', type=int, default=None,
                        help='seed for reproducible faults and spot preemptions')
    parser.add_argument('--dedicated-node-quota', type=_count, default=DEFAULT_NODE_QUOTA, metavar='N',
                        help=f'dedicated nodes the account may have in all (default {DEFAULT_NODE_QUOTA}); a resize '
                             'beyond it stops there with the AccountCoreQuotaReached resize error')
    parser.add_argument('--spot-node-quota', type=_count, default=DEFAULT_NODE_QUOTA, metavar='N',
                        help=f'spot/low-priority nodes the account may have (default {DEFAULT_NODE_QUOTA})')
    parser.add_argument('--active-job-quota', type=_count, default=DEFAULT_ACTIVE_JOB_QUOTA, metavar='N',
                        help=f'active jobs and job schedules the account may have in all (default '
                             f'{DEFAULT_ACTIVE_JOB_QUOTA}); a create beyond it is refused with '
                             'ActiveJobAndScheduleQuotaReached')
    parser.add_argument('--pass-env', action='append', default=[], metavar='NAME',
                        help="pass this variable of the emulator's environment to tasks (repeatable); tasks get "
                             "a node's environment and nothing else by default")
    parser.add_argument('--clock-speed', type=_speed, default=1.0, metavar='F',
                        help='run autoscale evaluation intervals and job schedules F times faster than real '
                             'time (for tests; default 1: real time)')
    parser.add_argument('--container-runtime', metavar='COMMAND',
                        help="the command that runs container tasks, e.g. 'podman' or 'docker' (default: the first of "
                             'docker and podman that answers)')
    parser.add_argument('--allow-container-run-options', action='store_true',
                        help='pass containerRunOptions to the container runtime as they are; by default options '
                             "that reach the host (--privileged, host namespaces, mounts outside the node's folder, "
                             'devices, capabilities, root, the environment) fail the task')
    parser.add_argument('--allow-outbound-host', action='append', default=[], type=_host_port, metavar='HOST:PORT',
                        help="let resource files, output files and log uploads reach this address of this machine "
                             '(repeatable); on this machine they reach only the storage endpoint of '
                             '--storage-connection-string by default, and never the emulator')
    parser.add_argument('--header-timeout', type=_seconds, default=DEFAULT_HEADER_TIMEOUT, metavar='S',
                        help='seconds a connection has to send a request\'s headers, and an idle one stays open '
                             f'(default {DEFAULT_HEADER_TIMEOUT:g})')
    parser.add_argument('--body-timeout', type=_seconds, default=DEFAULT_BODY_TIMEOUT, metavar='S',
                        help="seconds a request's body has to arrive after its headers "
                             f'(default {DEFAULT_BODY_TIMEOUT:g})')
    parser.add_argument('--max-connections', type=_positive_count, default=None, metavar='N',
                        help='connections open at once; one more closes the longest idle one (default: a quarter '
                             'of the open-file limit, 64 to 1000)')
    parser.add_argument('--parent-pid', type=int, help='exit when this process ends (used by --local runs)')
    parser.add_argument('--verbose', action='store_true', help='log diagnostics to stderr')
    parser.add_argument('--operations', action='store_true',
                        help="print the spec's operations and which are implemented (Markdown), then exit")
    args = parser.parse_args(argv)
    if not is_valid_key(args.account_key):
        _refuse('--account-key must be a base64 key')
    if not is_loopback(args.host):
        if not args.allow_remote:
            _refuse(f'--host {args.host} is not a loopback address: anyone who reaches it could run commands '
                         'on this machine; add --allow-remote and --account-key with a key of your own to do it')
        if args.account_key == DEFAULT_ACCOUNT_KEY:
            _refuse(f'--host {args.host} with the published development key lets anyone run commands here: '
                         'give --account-key a key of your own')
    return args


async def serve(args: argparse.Namespace, data_dir: str) -> None:
    processes.claim_every_child()  # this process is the emulator: every orphan below it is a task's
    faults = (FaultInjector(args.fault_rate, args.fault_seed, args.node_failure_rate, args.spot_preemption_rate)
              if args.fault_rate or args.node_failure_rate or args.spot_preemption_rate else None)
    # What is imported by now (Python's, aiohttp's and the emulator's modules: about 38,000 objects) lives
    # as long as the process: kept out of the garbage collector's passes, a full pass then costs what the
    # account holds, and a request waits less behind one. The account's objects (restored ones too) stay
    # collectable.
    gc.freeze()
    app = create_app(data_dir=data_dir, faults=faults, persist=bool(args.location),
                     account_name=args.account_name, account_key=args.account_key,
                     request_log_path=args.request_log, node_step_seconds=args.node_step_seconds,
                     storage_connection_string=args.storage_connection_string, pass_environment=args.pass_env,
                     dedicated_node_quota=args.dedicated_node_quota, spot_node_quota=args.spot_node_quota,
                     max_connections=args.max_connections, body_timeout=args.body_timeout)
    app[STATE].clock_speed = args.clock_speed
    app[SCHEDULER].nodes.spot_restore_seconds = args.spot_restore_seconds
    app[STATE].container_runtime_setting = args.container_runtime
    node_runner = app[SCHEDULER].runner
    node_runner.allow_container_run_options = args.allow_container_run_options
    node_runner.outbound = OutboundPolicy(storage_endpoints(args.storage_connection_string) + args.allow_outbound_host,
                                          own_url=lambda: node_runner.account_url)
    app[STATE].active_job_quota = args.active_job_quota
    if args.clock_speed != 1.0:  # --clock-speed wins over BATCH_EMULATOR_SCHEDULE_CLOCK
        app[STATE].schedule_clock = args.clock_speed
    runner = app_runner(app, args.header_timeout)
    await runner.setup()
    bound_connections(app, runner)
    site = web.TCPSite(runner, args.host, args.port)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # the real port when 0 was asked for
    host = f'[{args.host}]' if ':' in args.host else args.host
    endpoint = f'http://{host}:{port}'
    set_base_url(app, endpoint)
    print(f'{READY_LINE} {endpoint}')
    print(f'  export AZURE_BATCH_ENDPOINT={endpoint}')
    print(f'  export AZURE_BATCH_ACCOUNT={args.account_name}')
    if args.account_key == DEFAULT_ACCOUNT_KEY:  # published, like Azurite's; a key of the user's own stays unprinted
        print(f'  export AZURE_BATCH_ACCESS_KEY={args.account_key}')
    else:
        print(f'  export AZURE_BATCH_ACCESS_KEY=<your key: --account-key or ${ACCOUNT_KEY_VARIABLE}>')
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


def operations_table() -> str:
    """The spec's operations, implemented or 501, as the README lists them (generated, never written by hand)."""
    from batch_emulator.contract.schema import operations
    from batch_emulator.wire.routes import HANDLERS
    rows = sorted(operations(), key=lambda o: (o.operation_id not in HANDLERS, o.operation_id))
    done = sum(o.operation_id in HANDLERS for o in rows)
    lines = [f'{done} of {len(rows)} operations of the 2025-06-01 spec are implemented; the others answer '
             '`501 NotImplemented` naming their operation id.', '',
             '| operation id | method and path | emulated |', '|---|---|---|']
    lines += [f'| `{o.operation_id}` | `{o.method} {o.path}` | {"yes" if o.operation_id in HANDLERS else "501"} |'
              for o in rows]
    lines += ['', '### What is not emulated', '', '| what the service has | why the emulator does not |', '|---|---|']
    lines += [f'| {what} | {why} |' for what, why in NOT_EMULATED]
    return '\n'.join(lines) + '\n'


# What the service does and the emulator does not, with the reason: printed by --operations, kept in the READMEs.
NOT_EMULATED = (
    ('Windows images (`batch.node.windows amd64`)', 'A node is a folder and processes of this machine, and this '
     'machine runs Linux: there is no Windows to run `cmd /c`, Windows containers or Windows user accounts. Such a '
     'pool is refused with `InvalidPropertyValue` saying so.'),
    ('Real VM timings', 'A node spends `--node-step-seconds` (default 0.2 s) in each boot state and a task starts '
     'as soon as a slot is free; Azure takes minutes to allocate and boot a VM, and how long varies by region, size '
     'and image and is not recorded, so no delay the emulator chose would be true.'),
    ('VM sizes (cores, memory, GPUs, RDMA, disks)', 'Every node shares this machine; `vmSize` is checked and kept, '
     'but a task gets what the machine gives, not what the size would.'),
    ('Application packages', 'The account has none: they are uploaded through Azure Resource Manager (the Batch '
     'management API), which the emulator does not serve.'),
    ('Node users and remote login', 'Records only: making OS accounts or running sshd on your machine for a test is '
     'not safe, so no one can log in to a node.'),
    ('`mountConfiguration` (Azure Files, blobfuse, NFS, CIFS)', 'Kept and returned (without keys), not mounted: '
     'mounting needs root and reaches outside the machine.'),
    ('Managed identities (`identityReference`)', 'There is no Microsoft Entra ID here: a registry with an '
     '`identityReference` is pulled from without credentials, and tasks get no identity tokens.'),
    ('Virtual networks, public IPs, disk encryption, OS upgrades', 'Kept as sent: they configure Azure\'s '
     'infrastructure, which the emulator does not have.'),
)


def _prepare_location(data_dir: str) -> None:
    """A new folder is made the user's alone (0700); an existing one keeps its mode (it is the user's choice),
    with a warning when others may read it: state.jsonl keeps secrets in clear (README, "What the location
    keeps"). The state file itself is always 0600."""
    if not os.path.isdir(data_dir):
        os.makedirs(data_dir, mode=0o700)
        os.chmod(data_dir, 0o700)  # whatever the umask
        return
    mode = stat.S_IMODE(os.stat(data_dir).st_mode)
    if mode & 0o077:
        print(f'warning: --location {data_dir} is open to others (mode {mode:04o}); its state.jsonl (0600) keeps '
              'secrets in clear and its node folders hold your tasks\' files: chmod 700 it to keep them yours',
              file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    if args.operations:
        print(operations_table(), end='')
        return 0
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format='%(asctime)s %(levelname)s %(name)s: %(message)s')
    for handler in logging.getLogger().handlers:
        handler.addFilter(FloodFilter())  # one line per kind of message per minute: a flood fills no disk
    data_dir = args.location or tempfile.mkdtemp(prefix='batch-emulator-')
    try:
        _prepare_location(data_dir)
    except OSError as error:
        print(f'error: cannot use --location {data_dir}: {error.strerror}', file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(args, data_dir))
    except StateFileError as error:
        print(f'error: cannot restore the account from --location {data_dir}: {error}', file=sys.stderr)
        return 2
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
