"""Everything python_tutorial_client.py does before step 1; the tutorial itself needs none of it.

- the settings: the constants at the top of python_tutorial_client.py, overridden by the
  environment variables the Azure CLI uses, overridden by flags; all checked before anything is
  created, every problem named in one line;
- the command line (``parse_arguments``) and the logging behind ``--verbose``;
- ``--local``: Azurite and the project's Batch emulator started on this machine for the run
  (batch_emulator/local.py), and stopped, with everything the run left in them, when it ends.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import dataclasses
import datetime
import logging
import os
import re
import shlex
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any


class TutorialError(Exception):
    """A failure the sample explains in one line (no traceback)."""


class SettingsError(TutorialError):
    """A setting or an input is missing or wrong; nothing has been created (exit code 2)."""


# Per cloud: storage endpoint suffix, Microsoft Entra ID authority, Batch token scope.
CLOUDS = {
    'public': ('core.windows.net', 'login.microsoftonline.com', 'https://batch.core.windows.net//.default'),
    'china': ('core.chinacloudapi.cn', 'login.chinacloudapi.cn', 'https://batch.chinacloudapi.cn/.default'),
}
_CLOUD_ALIASES = {'public': 'public', 'azurecloud': 'public', 'china': 'china', 'azurechinacloud': 'china'}

_ACCOUNT_NAME = re.compile(r'^[a-z0-9]{3,24}$')
_BATCH_ID = re.compile(r'^[A-Za-z0-9_-]{1,64}$')
_VM_SIZE = re.compile(r'^[A-Za-z0-9_]{1,64}$')
_BATCH_URL = re.compile(r'^https?://[A-Za-z0-9.-]+(:\d+)?(/[^\s?#]*)?$')
_WITHOUT_AN_ACCOUNT = ('to run the tutorial without an Azure account, use --local: '
                       'python python_tutorial_client.py --local (or ./run.sh local)')


@dataclasses.dataclass
class Settings:
    """Everything the sample needs, after constants, environment and flags are merged."""
    batch_account_name: str
    batch_account_key: str
    batch_account_url: str
    storage_account_name: str
    storage_account_key: str
    blob_endpoint: str
    auth: str
    cloud: str
    pool_id: str
    job_id: str
    vm_size: str
    node_count: int
    numwords: int
    input_files: list[str]
    output_dir: str
    timeout: datetime.timedelta
    assume_yes: bool
    portal_url: str | None = None  # the local emulator's page (--local runs only)
    local: bool = False


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    where = 'at the top of python_tutorial_client.py'
    parser = argparse.ArgumentParser(
        description='Azure Batch Python tutorial: count the top words of files on a Batch pool.')
    parser.add_argument('--local', action='store_true',
                        help='run against Azurite and the local Batch emulator (no Azure account)')
    parser.add_argument('--pool-id', help=f'pool to create or reuse (default: _POOL_ID {where})')
    parser.add_argument('--job-id', help=f'job to create (default: _JOB_ID {where})')
    parser.add_argument('--vm-size', help=f'VM size of the nodes (default: _POOL_VM_SIZE {where})')
    parser.add_argument('--node-count', type=int,
                        help=f'dedicated nodes in the pool (default: _POOL_NODE_COUNT {where})')
    parser.add_argument('--numwords', type=int, default=3, help='top words per file (default 3)')
    parser.add_argument('--input', nargs='+', metavar='FILE_OR_FOLDER',
                        help='input files or folders (default: the three files in data/)')
    parser.add_argument('--output-dir', default=os.path.expanduser('~'),
                        help='where to download the results (default: your home folder)')
    parser.add_argument('--timeout', type=float, default=20,
                        help='minutes to wait for the tasks (default 20, as in the tutorial)')
    parser.add_argument('--auth', choices=['key', 'entra'],
                        help='key: account keys; entra: Microsoft Entra ID (default: entra when no keys are set)')
    parser.add_argument('--cloud', help='public (default) or china (Azure operated by 21Vianet)')
    parser.add_argument('--yes', action='store_true', help='answer yes to the clean-up questions')
    parser.add_argument('--verbose', action='store_true', help='log diagnostics, including every HTTP request')
    return parser.parse_args(argv)


def load_settings(args: argparse.Namespace, environ: Mapping[str, str], defaults: Mapping[str, Any]) -> Settings:
    """Merges ``defaults`` (the client's constants), the environment and the flags, and checks everything.

    Raises SettingsError naming every problem, so that nothing is created before the settings are
    known to be complete: first the accounts ("configuration is incomplete: ..."), then the flags
    and input files, each saying what is wrong with what.
    """
    account_problems: list[str] = []
    problems: list[str] = []
    connection = _parse_connection_string(environ.get('AZURE_STORAGE_CONNECTION_STRING', ''))
    batch_name = environ.get('AZURE_BATCH_ACCOUNT') or defaults['batch_account_name']
    batch_key = environ.get('AZURE_BATCH_ACCESS_KEY') or defaults['batch_account_key']
    batch_url = (environ.get('AZURE_BATCH_ENDPOINT') or defaults['batch_account_url']).rstrip('/')
    storage_name = (environ.get('AZURE_STORAGE_ACCOUNT') or connection.get('accountname')
                    or defaults['storage_account_name'])
    storage_key = environ.get('AZURE_STORAGE_KEY') or connection.get('accountkey') or defaults['storage_account_key']

    cloud_name = (args.cloud or environ.get('AZURE_CLOUD') or 'public').strip().lower()
    cloud = _CLOUD_ALIASES.get(cloud_name)
    if cloud is None:
        problems.append(f'unknown cloud "{cloud_name}" (use --cloud public or --cloud china)')
        cloud = 'public'
    auth = args.auth or ('key' if (batch_key or storage_key) else 'entra')
    if args.local and args.auth == 'entra':
        problems.append('--auth entra cannot be used with --local (the local services use their well-known keys)')

    if batch_url and not batch_url.startswith('http'):
        batch_url = 'https://' + batch_url  # the portal shows the URL without its scheme
    if not _ACCOUNT_NAME.match(batch_name or ''):
        account_problems.append('Batch account name is ' + (f'malformed ("{batch_name}")' if batch_name else 'missing')
                                + ' (set _BATCH_ACCOUNT_NAME or export AZURE_BATCH_ACCOUNT)')
    if not _BATCH_URL.match(batch_url or ''):
        account_problems.append('Batch account URL is ' + (f'malformed ("{batch_url}")' if batch_url else 'missing')
                                + ' (set _BATCH_ACCOUNT_URL or export AZURE_BATCH_ENDPOINT, '
                                  'e.g. https://mybatch.eastus.batch.azure.com)')
    if not _ACCOUNT_NAME.match(storage_name or ''):
        account_problems.append('storage account name is '
                                + (f'malformed ("{storage_name}")' if storage_name else 'missing')
                                + ' (set _STORAGE_ACCOUNT_NAME or export AZURE_STORAGE_ACCOUNT)')
    if auth == 'key':
        for label, value, where in (
                ('Batch account key', batch_key, '_BATCH_ACCOUNT_KEY or export AZURE_BATCH_ACCESS_KEY'),
                ('storage account key', storage_key, '_STORAGE_ACCOUNT_KEY or export AZURE_STORAGE_KEY')):
            if not value:
                account_problems.append(f'{label} is missing (set {where}, or use --auth entra)')
            elif not _is_base64(value):
                account_problems.append(f"{label} is not a base64 key (copy it from the portal's Keys blade)")

    pool_id = args.pool_id or defaults['pool_id']
    job_id = args.job_id or defaults['job_id']
    vm_size = args.vm_size or defaults['vm_size']
    node_count = defaults['node_count'] if args.node_count is None else args.node_count
    for label, value, flag in (('pool id', pool_id, '--pool-id'), ('job id', job_id, '--job-id')):
        if not _BATCH_ID.match(value):
            problems.append(f'{label} "{value}" is not valid: use up to 64 letters, digits, hyphens and '
                            f'underscores ({flag})')
    if not _VM_SIZE.match(vm_size):
        problems.append(f'VM size "{vm_size}" is not valid (e.g. --vm-size STANDARD_D2S_V3)')
    if node_count < 1:
        problems.append(f'--node-count must be 1 or more (got {node_count})')
    if args.numwords < 1:
        problems.append(f'--numwords must be 1 or more (got {args.numwords})')
    if not args.timeout > 0:
        problems.append(f'--timeout must be a positive number of minutes (got {args.timeout:g})')

    input_files = _expand_inputs(args.input or defaults['input_files'], problems)
    for path in input_files:
        _check_input_file(path, problems)
    seen: dict[str, str] = {}
    for path in input_files:
        name = os.path.basename(path)
        if name in seen and seen[name] != path:
            problems.append(f'input files {seen[name]} and {path} have the same name (blob names must differ)')
        seen.setdefault(name, path)
    input_files = list(dict.fromkeys(input_files))
    output_dir = os.path.realpath(os.path.expanduser(args.output_dir))
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        problems.append(f'--output-dir {args.output_dir} is a file, not a folder')

    if account_problems:
        problems.insert(0, 'configuration is incomplete: ' + '; '.join(account_problems))
        if not (batch_name and batch_url and storage_name) or (auth == 'key' and not (batch_key and storage_key)):
            problems.append(_WITHOUT_AN_ACCOUNT)  # no account (yet): say how to run without one
    if problems:
        raise SettingsError('; '.join(problems))

    suffix = CLOUDS[cloud][0]
    blob_endpoint = connection.get('blobendpoint') or (
        f"{connection.get('defaultendpointsprotocol', 'https')}://{storage_name}.blob."
        f"{connection.get('endpointsuffix', suffix)}")
    return Settings(
        batch_account_name=batch_name, batch_account_key=batch_key, batch_account_url=batch_url,
        storage_account_name=storage_name, storage_account_key=storage_key,
        blob_endpoint=blob_endpoint.rstrip('/'), auth=auth, cloud=cloud, pool_id=pool_id, job_id=job_id,
        vm_size=vm_size, node_count=node_count, numwords=args.numwords, input_files=input_files,
        output_dir=output_dir, timeout=datetime.timedelta(minutes=args.timeout), assume_yes=args.yes,
        portal_url=environ.get('BATCH_EMULATOR_PORTAL_URL'), local=args.local)


def _parse_connection_string(connection_string: str) -> dict[str, str]:
    parts = (part.split('=', 1) for part in connection_string.split(';') if '=' in part)
    return {key.strip().lower(): value.strip() for key, value in parts}


def _is_base64(value: str) -> bool:
    try:
        return bool(value) and len(base64.b64decode(value, validate=True)) > 0
    except (binascii.Error, ValueError):
        return False


def _expand_inputs(paths: Sequence[str], problems: list[str]) -> list[str]:
    files: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            found = sorted(os.path.join(path, name) for name in os.listdir(path)
                           if not name.startswith('.') and os.path.isfile(os.path.join(path, name)))
            if not found:
                problems.append(f'input folder {path} has no files')
            files.extend(os.path.realpath(f) for f in found)
        elif os.path.isfile(path):
            files.append(os.path.realpath(path))
        else:
            problems.append(f'input file {path} does not exist')
    return files


def _check_input_file(path: str, problems: list[str]) -> None:
    # The task counts words of UTF-8 text: refuse what it cannot analyse now,
    # before anything is created, rather than as a failed task later.
    try:
        with open(path, 'rb') as file:
            head = file.read(65536)
    except OSError as error:
        problems.append(f'input file {path} cannot be read ({error.strerror})')
        return
    if not head:
        problems.append(f'input file {path} is empty')
    elif b'\0' in head:
        problems.append(f'input file {path} is binary, not text')
    else:
        try:
            head.decode('utf-8')
        except UnicodeDecodeError as error:
            if error.start < len(head) - 4:  # not merely a character cut at the end of the sample
                problems.append(f'input file {path} is not UTF-8 text')


def missing_module_message(module: str | None, script: str, argv: Sequence[str]) -> str:
    """One line for a Python that lacks the tutorial's packages: the command that has them, or installs them."""
    project_dir = os.path.dirname(os.path.realpath(script))
    venv_python = os.path.join(project_dir, '.venv', 'bin', 'python')
    problem = f'this Python ({sys.executable}) has no module {module or "?"}, which the tutorial needs'
    if os.path.exists(venv_python) and os.path.realpath(sys.prefix) != os.path.realpath(os.path.dirname(
            os.path.dirname(venv_python))):
        command = ' '.join(shlex.quote(part) for part in (_relative(venv_python), os.path.relpath(script), *argv))
        return f'{problem}; the project\'s .venv has it: {command}'
    run_sh = shlex.quote(_relative(os.path.join(project_dir, 'run.sh')))
    return (f'{problem}; {run_sh} local installs the tutorial\'s packages in .venv and runs it locally '
            '(or install them into this Python: pip install -r requirements.txt)')


def _relative(path: str) -> str:
    """A path to type in this folder: relative, and starting with ./ when it is a file here ("./run.sh")."""
    relative = os.path.relpath(path)
    return relative if os.sep in relative else os.path.join(os.curdir, relative)


@contextlib.contextmanager
def settings_from_command_line(args: argparse.Namespace,
                               load: Callable[[argparse.Namespace, Mapping[str, str]], Settings]) -> Iterator[Settings]:
    """Yields the settings the flags ask for, checked; with --local, while Azurite and the emulator run.

    Everything is checked before anything starts: with --local, against placeholder endpoints,
    since the local services' own are known once they run. Both services stop when the block
    ends, and their data (containers, pools, jobs) are deleted with them.
    """
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format='%(asctime)s %(levelname)s %(name)s: %(message)s')
    if not args.verbose:
        logging.getLogger('azure').setLevel(logging.ERROR)
    environ = dict(os.environ)
    if not args.local:
        yield load(args, environ)
        return
    try:
        from batch_emulator.local import LocalServicesError, local_services, placeholder_environment
    except ModuleNotFoundError as missing:  # the emulator's packages (aiohttp, lark) are not installed
        client = os.path.join(os.path.dirname(os.path.realpath(__file__)), 'python_tutorial_client.py')
        raise TutorialError(missing_module_message(missing.name, client, ['--local'])) from None
    load(args, environ | placeholder_environment())
    try:
        with local_services(verbose=args.verbose) as services:
            print(f'Local run: Azurite at {services.blob_endpoint}, Batch emulator at {services.batch_endpoint}')
            yield load(args, environ | services.environment())
    except LocalServicesError as error:
        raise TutorialError(str(error)) from None
