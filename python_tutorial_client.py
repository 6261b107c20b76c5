"""
FILE: python_tutorial_client.py

DESCRIPTION:
    The client of the Azure Batch Python tutorial ("Azure Batch Python 客户端入门"),
    ported to today's SDKs (azure-batch 15, azure-storage-blob 12, azure-identity).
    It runs on your workstation, stages files in Azure Storage and has Azure Batch
    count the top words of each input file on a pool of Linux compute nodes:

    1. Create the containers application, input and output in Blob Storage.
    2. Upload the task script and the input files; make SAS URLs for them and a
       write-only SAS for the output container.
    3. Create the Batch pool (or reuse it); its StartTask prepares every node.
    4. Create the Batch job on that pool.
    5. Add one task per input file to the job.
    6. Monitor the tasks until they are all completed.
    7. Download the tasks' output files from the output container.
    8. Delete the containers.
    9. Delete the job and the pool (if you say so).

USAGE:
    python python_tutorial_client.py [--local] [--yes] [--input FILE_OR_FOLDER ...]

    Set the credentials in the constants below, or export the variables the
    Azure CLI uses (they override the constants; flags override both):
      AZURE_BATCH_ACCOUNT, AZURE_BATCH_ACCESS_KEY, AZURE_BATCH_ENDPOINT,
      AZURE_STORAGE_ACCOUNT, AZURE_STORAGE_KEY or AZURE_STORAGE_CONNECTION_STRING,
      AZURE_CLOUD (AzureCloud or AzureChinaCloud).
    Leave the keys empty (or pass --auth entra) to sign in with Microsoft Entra ID
    through DefaultAzureCredential instead (az login, a managed identity, ...).

    --local runs the same workflow on this machine, against Azurite and the
    project's local Batch emulator: no Azure account needed.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import concurrent.futures
import contextlib
import dataclasses
import datetime
import functools
import logging
import os
import re
import shlex
import sys
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any, Literal

from azure.batch import BatchClient
from azure.batch import models as batchmodels
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import (
    BlobSasPermissions,
    BlobServiceClient,
    ContainerSasPermissions,
    UserDelegationKey,
    generate_blob_sas,
    generate_container_sas,
)

# Update the Batch and Storage account credential strings below with the values
# unique to your accounts (Azure portal: the Batch account's "Keys" blade and the
# storage account's "Access keys" blade). The environment variables named in the
# header above override them, so you can also leave them empty.

# Batch account credentials
_BATCH_ACCOUNT_NAME = ''
_BATCH_ACCOUNT_KEY = ''
_BATCH_ACCOUNT_URL = ''  # e.g. https://mybatch.eastus.batch.azure.com

# Storage account credentials
_STORAGE_ACCOUNT_NAME = ''
_STORAGE_ACCOUNT_KEY = ''

# What the sample creates. A current general-purpose size (2 vCPUs) that supports
# the Gen2 Ubuntu image; the retired STANDARD_A1 of 2016 no longer exists.
_POOL_ID = 'PythonTutorialPool'
_POOL_NODE_COUNT = 1
_POOL_VM_SIZE = 'STANDARD_D2S_V3'
_JOB_ID = 'PythonTutorialJob'

# The node operating system: Ubuntu Server 24.04 LTS from the Azure Marketplace.
# create_pool asks the Batch service for the matching node agent instead of
# hard-coding it (images and agents are retired over time).
_NODE_OS_PUBLISHER = 'canonical'
_NODE_OS_OFFER = 'ubuntu-24_04-lts'
_NODE_OS_SKU = 'server'

# The task's only dependency, installed on the nodes by the pool's StartTask.
_TASK_DEPENDENCY = 'azure-storage-blob==12.31.1'

_APP_CONTAINER_NAME = 'application'
_INPUT_CONTAINER_NAME = 'input'
_OUTPUT_CONTAINER_NAME = 'output'
_TASK_SCRIPT_PATH = os.path.join(os.path.dirname(os.path.realpath(__file__)), 'python_tutorial_task.py')
_DEFAULT_INPUT_PATHS = [os.path.join(os.path.dirname(os.path.realpath(__file__)), 'data', f'taskdata{i}.txt')
                        for i in (1, 2, 3)]

# Blob SAS URLs handed to the nodes are read-only and expire after 2 hours.
_SAS_LIFETIME = datetime.timedelta(hours=2)

# Per cloud: storage endpoint suffix, Entra ID authority and Batch token scope.
_CLOUDS = {
    'public': ('core.windows.net', 'login.microsoftonline.com', 'https://batch.core.windows.net//.default'),
    'china': ('core.chinacloudapi.cn', 'login.chinacloudapi.cn', 'https://batch.chinacloudapi.cn/.default'),
}
_CLOUD_ALIASES = {'public': 'public', 'azurecloud': 'public', 'china': 'china', 'azurechinacloud': 'china'}

_log = logging.getLogger('python_tutorial_client')


class TutorialError(Exception):
    """A failure the sample explains in one line (no traceback)."""


# Pools and jobs carry the id of the run that created them: if a create request
# reaches the service but its answer is lost, the retry's "already exists" can
# be told apart from a pool or job left by someone else.
_RUN_METADATA = 'python-tutorial-run'
_ATTEMPTS = 4

# The Azure CLI commands that delete what a run leaves (the summary adds the account options).
_AZ_DELETE = {'container': 'az storage container delete --name {}', 'job': 'az batch job delete --job-id {} --yes',
              'pool': 'az batch pool delete --pool-id {} --yes'}


def _created_by(metadata: list[batchmodels.BatchMetadataItem] | None, run_id: str) -> bool:
    return any(item.name == _RUN_METADATA and item.value == run_id for item in metadata or [])


def _repeat_if_response_lost(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Calls a Batch operation, repeating it when the connection drops before the answer.

    azure-core already retries 5xx answers and GETs; a POST or PATCH whose
    connection drops is left to the caller, because it may have taken effect.
    The operations passed here are safe to repeat (creates detect their own
    earlier success through the run id).
    """
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            return call(*args, **kwargs)
        except ServiceResponseError:
            if attempt == _ATTEMPTS:
                raise
            _log.info('connection dropped during %s; repeating it', getattr(call, '__name__', 'a request'))
            time.sleep(attempt)


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


def query_yes_no(question: str, default: str = 'yes', *, assume_yes: bool = False,
                 input_function: Callable[[str], str] | None = None, interactive: bool | None = None) -> str:
    """Asks a yes/no question and returns 'yes' or 'no'.

    --yes answers yes without asking. When standard input is not a terminal
    (a pipeline, CI) the default is taken instead of waiting for an answer.
    """
    valid = {'y': 'yes', 'yes': 'yes', 'n': 'no', 'no': 'no'}
    prompt = ' [Y/n] ' if default == 'yes' else ' [y/N] '
    if assume_yes:
        print(question + prompt + 'yes (--yes)')
        return 'yes'
    if interactive is None:
        interactive = sys.stdin is not None and sys.stdin.isatty()
    if not interactive:
        print(question + prompt + f'{default} (standard input is not a terminal)')
        return default
    while True:
        try:
            choice = (input_function or input)(question + prompt).strip().lower()
        except EOFError:
            return default
        if not choice:
            return default
        if choice in valid:
            return valid[choice]
        print("Please respond with 'yes' or 'no' (or 'y' or 'n').")


def redact_secrets(text: str) -> str:
    """Hides SAS signatures and account keys that might appear in a message."""
    text = re.sub(r'(sig=)[^&\s"\']+', r'\1REDACTED', text, flags=re.IGNORECASE)
    return re.sub(r'(AccountKey=)[^;\s"\']+', r'\1REDACTED', text, flags=re.IGNORECASE)


def print_batch_exception(batch_exception: HttpResponseError) -> None:
    """Prints the error a service returned, on one line: its code, message and details."""
    model = getattr(batch_exception, 'model', None)
    code = getattr(model, 'code', None) or getattr(batch_exception, 'error_code', None)
    message = getattr(getattr(model, 'message', None), 'value', None) or batch_exception.message or str(batch_exception)
    # The service appends "RequestId:..." and "Time:..." lines; the first line says what went wrong.
    message = message.strip().splitlines()[0] if message.strip() else 'no message'
    details = ', '.join(f'{d.key}={d.value}' for d in (getattr(model, 'error_values', None) or []))
    status_and_code = ' '.join(str(part) for part in (getattr(batch_exception, 'status_code', None), code) if part)
    sys.stdout.flush()
    print(redact_secrets(f'Error: the service answered {status_and_code}: {message}'
                         + (f' ({details})' if details else '')), file=sys.stderr)


def print_unreachable(error: Exception) -> None:
    """One line for a service that cannot be reached (wrong endpoint, service gone)."""
    sys.stdout.flush()
    print(f'Error: cannot reach the service: {redact_secrets(str(error)).splitlines()[0]}', file=sys.stderr)


def wrap_commands_in_shell(ostype: str, commands: Sequence[str]) -> str:
    """Joins commands into one command line run by a shell.

    Batch does not run a command line through a shell, so environment variables
    such as $AZ_BATCH_NODE_SHARED_DIR are only expanded inside one.
    """
    if ostype.lower() == 'linux':
        return '/bin/bash -c ' + shlex.quote('set -e; set -o pipefail; ' + '; '.join(commands) + '; wait')
    if ostype.lower() == 'windows':
        return 'cmd.exe /c "{}"'.format('&'.join(commands))
    raise ValueError(f'unknown ostype: {ostype}')


def _sas_signing_arguments(sas_credential: str | UserDelegationKey) -> dict[str, Any]:
    # An account key signs an account SAS; with Microsoft Entra ID a user
    # delegation key (obtained once from the service) signs it instead.
    if isinstance(sas_credential, UserDelegationKey):
        return {'user_delegation_key': sas_credential}
    return {'account_key': sas_credential}


def upload_file_to_container(blob_service_client: BlobServiceClient, container_name: str, file_path: str,
                             sas_credential: str | UserDelegationKey) -> batchmodels.ResourceFile:
    """Uploads a local file to a Blob Storage container.

    Returns a ResourceFile whose http_url carries a read-only SAS for that one
    blob, valid for 2 hours: Batch downloads it onto the node before the task
    (or StartTask) that lists it runs. The node never sees the account key.
    """
    blob_name = os.path.basename(file_path)
    # One write per line: uploads run in parallel and their lines must not interleave.
    print(f'Uploading file {file_path} to container [{container_name}]...\n', end='', flush=True)
    blob_client = blob_service_client.get_blob_client(container_name, blob_name)
    with open(file_path, 'rb') as data:
        blob_client.upload_blob(data, overwrite=True)

    now = datetime.datetime.now(datetime.timezone.utc)
    sas_token = generate_blob_sas(
        account_name=blob_service_client.account_name,
        container_name=container_name,
        blob_name=blob_name,
        permission=BlobSasPermissions(read=True),
        start=now - datetime.timedelta(minutes=5),  # tolerate clock skew on the nodes
        expiry=now + _SAS_LIFETIME,
        **_sas_signing_arguments(sas_credential))
    return batchmodels.ResourceFile(http_url=f'{blob_client.url}?{sas_token}', file_path=blob_name)


def get_container_sas_token(blob_service_client: BlobServiceClient, container_name: str,
                            permission: ContainerSasPermissions, sas_credential: str | UserDelegationKey,
                            lifetime: datetime.timedelta = _SAS_LIFETIME) -> str:
    """Returns a SAS token granting ``permission`` on one container.

    The tasks get a write/create-only token for the output container: they can
    add their results but not read, list or delete anything.
    """
    now = datetime.datetime.now(datetime.timezone.utc)
    return generate_container_sas(
        account_name=blob_service_client.account_name,
        container_name=container_name,
        permission=permission,
        start=now - datetime.timedelta(minutes=5),
        expiry=now + lifetime,
        **_sas_signing_arguments(sas_credential))


def get_vm_config_for_distro(batch_client: BatchClient, publisher: str, offer: str,
                             sku: str) -> batchmodels.VirtualMachineConfiguration:
    """Finds the image and node agent for a Marketplace image the service supports.

    Only verified images that have not reached their Batch end-of-life are used.
    """
    now = datetime.datetime.now(datetime.timezone.utc)
    candidates = []
    for image in batch_client.list_supported_images(filter="verificationType eq 'verified'"):
        reference = image.image_reference
        if ((image.os_type or '').lower() == 'linux'
                and (reference.publisher or '').lower() == publisher.lower()
                and (reference.offer or '').lower() == offer.lower()):
            candidates.append(image)
            if (reference.sku or '').lower() == sku.lower() and (
                    image.batch_support_end_of_life is None or image.batch_support_end_of_life > now):
                _log.debug('image %s/%s/%s, node agent %s, end of life %s', reference.publisher,
                           reference.offer, reference.sku, image.node_agent_sku_id, image.batch_support_end_of_life)
                return batchmodels.VirtualMachineConfiguration(
                    image_reference=batchmodels.BatchVmImageReference(
                        publisher=reference.publisher, offer=reference.offer, sku=reference.sku,
                        version='latest'),
                    node_agent_sku_id=image.node_agent_sku_id)
    others = ', '.join(sorted({c.image_reference.sku for c in candidates})) or 'none'
    raise TutorialError(f'the Batch service supports no current image {publisher}/{offer}/{sku} '
                        f'(skus of that offer it supports: {others})')


def _start_task_commands() -> list[str]:
    """The StartTask's shell commands: copy the task script, install its dependency.

    Start tasks re-run whenever a node reboots or is reimaged, so every command
    is idempotent. Ubuntu 24.04 refuses system-wide ``pip install`` (PEP 668);
    ``pip install --target`` into a folder of our own is allowed, and tasks put
    that folder on PYTHONPATH. If the dependency is already importable (an
    earlier run, a custom image, the local emulator) nothing is installed.
    """
    install = (
        'for attempt in 1 2 3; do '
        'apt-get -o DPkg::Lock::Timeout=600 update '
        '&& apt-get -o DPkg::Lock::Timeout=600 install -y python3-pip '
        f'&& python3 -m pip install --no-input --target "$PYTHONPATH" {_TASK_DEPENDENCY} && break; '
        '[ "$attempt" = 3 ] && exit 1; sleep 15; done')
    return [
        # Copy the task script to the "shared" folder that every task on the node can read.
        'cp -f "$AZ_BATCH_TASK_WORKING_DIR/python_tutorial_task.py" "$AZ_BATCH_NODE_SHARED_DIR/"',
        'export PYTHONPATH="$AZ_BATCH_NODE_SHARED_DIR/python-packages"',
        'if python3 -c "import azure.storage.blob" 2>/dev/null; '
        'then echo "azure-storage-blob is already installed"; '
        f'else {install}; fi',
    ]


def _admin_pool_user() -> batchmodels.UserIdentity:
    # The pool-wide auto-user, elevated: it may install packages, and what it
    # writes to the shared folder stays writable by the next start task.
    return batchmodels.UserIdentity(auto_user=batchmodels.AutoUserSpecification(
        scope=batchmodels.AutoUserScope.POOL, elevation_level=batchmodels.ElevationLevel.ADMIN))


def create_pool(batch_client: BatchClient, pool_id: str, resource_files: list[batchmodels.ResourceFile],
                vm_size: str, node_count: int, run_id: str) -> bool:
    """Creates a pool of Ubuntu 24.04 compute nodes; reuses it if it exists.

    The pool's StartTask runs on each node as it joins the pool (and again after
    every reboot or reimage) and prepares the node to run our task script.
    Returns True when an existing pool is reused.
    """
    print(f'Creating pool [{pool_id}]...')
    start_task = batchmodels.BatchStartTask(
        command_line=wrap_commands_in_shell('linux', _start_task_commands()),
        resource_files=resource_files,
        user_identity=_admin_pool_user(),
        wait_for_success=True,  # no task is scheduled on a node before its StartTask succeeded
        max_task_retry_count=1)
    new_pool = batchmodels.BatchPoolCreateOptions(
        id=pool_id,
        vm_size=vm_size,
        target_dedicated_nodes=node_count,
        virtual_machine_configuration=get_vm_config_for_distro(
            batch_client, _NODE_OS_PUBLISHER, _NODE_OS_OFFER, _NODE_OS_SKU),
        start_task=start_task,
        metadata=[batchmodels.BatchMetadataItem(name=_RUN_METADATA, value=run_id)])
    try:
        _repeat_if_response_lost(batch_client.create_pool, new_pool)
        return False
    except ResourceExistsError as error:
        if getattr(error.model, 'code', None) != 'PoolExists':
            raise

    # Reusing a pool saves the minutes nodes take to start (the tutorial's own
    # suggested next step). Its StartTask still names the previous run's script
    # and SAS URL, which expired: replace it so a node that reboots now gets
    # this run's copy. Nodes already running get this run's script from the
    # job preparation task (see create_job).
    pool = batch_client.get_pool(pool_id)
    if _created_by(pool.metadata, run_id):
        return False  # this run created it; the service's answer was lost and the retry found it
    if (pool.state or '').lower() == 'deleting':
        raise TutorialError(f'pool [{pool_id}] is being deleted; wait a few minutes or choose '
                            'another id with --pool-id')
    print(f'  Pool [{pool_id}] already exists: reusing it ({pool.vm_size}, '
          f'{pool.current_dedicated_nodes} of {pool.target_dedicated_nodes} dedicated nodes).')
    _repeat_if_response_lost(batch_client.update_pool, pool_id,
                             batchmodels.BatchPoolUpdateOptions(start_task=start_task))
    return True


def create_job(batch_client: BatchClient, job_id: str, pool_id: str, run_id: str,
               refresh_task_script: batchmodels.ResourceFile | None = None) -> None:
    """Creates a job, associated with the pool whose nodes will run its tasks.

    When the pool was reused, a job preparation task copies this run's task
    script to each node's shared folder before the job's first task runs there.
    """
    print(f'Creating job [{job_id}]...')
    preparation_task = None
    if refresh_task_script is not None:
        preparation_task = batchmodels.BatchJobPreparationTask(
            command_line=wrap_commands_in_shell('linux', [
                'cp -f "$AZ_BATCH_TASK_WORKING_DIR/python_tutorial_task.py" "$AZ_BATCH_NODE_SHARED_DIR/"']),
            resource_files=[refresh_task_script],
            user_identity=_admin_pool_user(),
            wait_for_success=True)
    job = batchmodels.BatchJobCreateOptions(
        id=job_id,
        pool_info=batchmodels.BatchPoolInfo(pool_id=pool_id),
        job_preparation_task=preparation_task,
        metadata=[batchmodels.BatchMetadataItem(name=_RUN_METADATA, value=run_id)])
    try:
        _repeat_if_response_lost(batch_client.create_job, job)
    except ResourceExistsError as error:
        if getattr(error.model, 'code', None) != 'JobExists':
            raise
        if _created_by(batch_client.get_job(job_id).metadata, run_id):
            return  # this run created it; the service's answer was lost and the retry found it
        raise TutorialError(
            f'job [{job_id}] already exists (left by an earlier run?). Delete it with '
            f'"{_AZ_DELETE["job"].format(job_id)}" or choose another id with --job-id') from None


def add_tasks(batch_client: BatchClient, job_id: str, input_files: list[batchmodels.ResourceFile],
              output_container_name: str, output_container_sas_token: str, *, numwords: int,
              storage_account_name: str, blob_endpoint: str) -> int:
    """Adds one task per input file to the job; returns how many were added.

    Each task downloads its input file (a ResourceFile) and runs the task script
    that the StartTask copied to the node's shared folder. create_tasks sends the
    tasks 100 per request (the service's limit) on a few threads, so 10,000
    input files work as well as 3.
    """
    print(f'Adding {len(input_files)} tasks to job [{job_id}]...')
    tasks = []
    for index, input_file in enumerate(input_files):
        command = ('PYTHONPATH="$AZ_BATCH_NODE_SHARED_DIR/python-packages" '
                   'python3 "$AZ_BATCH_NODE_SHARED_DIR/python_tutorial_task.py" '
                   f'--filepath {shlex.quote(input_file.file_path)} --numwords {numwords} '
                   f'--storageaccount {shlex.quote(storage_account_name)} '
                   f'--storagecontainer {shlex.quote(output_container_name)} '
                   f'--sastoken "{output_container_sas_token}" '
                   f'--blobendpoint {shlex.quote(blob_endpoint)}')
        tasks.append(batchmodels.BatchTaskCreateOptions(
            id=f'topNtask{index}',
            command_line=wrap_commands_in_shell('linux', [command]),
            resource_files=[input_file]))
    _log.debug('first task command line: %s', redact_secrets(tasks[0].command_line) if tasks else None)
    pending = tasks
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            batch_client.create_tasks(job_id, pending, max_concurrency=4)
            return len(tasks)
        except batchmodels.CreateTasksError as error:
            lost = [e for e in error.errors if isinstance(e, ServiceResponseError)]
            if error.failure_tasks or len(lost) < len(error.errors) or attempt == _ATTEMPTS:
                failures = [f'{r.task_id}: {getattr(r.error, "code", "?")}' for r in error.failure_tasks]
                failures += [redact_secrets(str(e)).splitlines()[0] for e in error.errors]
                raise TutorialError(f'{len(error.failure_tasks) + len(error.errors)} task(s) could not be added: '
                                    + '; '.join(failures[:5])) from None
            # A response was lost: send what is not known to be added again. Task ids
            # make this safe: a task that did arrive answers TaskExists, which counts as added.
            pending = list(error.pending_tasks)
            _log.info('resending %d tasks after a lost response', len(pending))
    return len(tasks)


def _tail_of_file(get_properties: Callable[[], Any], download: Callable[..., Iterator[bytes]],
                  max_bytes: int = 2000) -> str:
    """The last ``max_bytes`` of a task or node file, fetched with a byte range (ocp-range)."""
    try:
        length = int(get_properties().content_length)
        if length == 0:
            return ''
        data = b''.join(download(ocp_range=f'bytes={max(0, length - max_bytes)}-{length - 1}'))
    except HttpResponseError:
        return ''
    return redact_secrets(data.decode('utf-8', errors='replace')).rstrip()


def _start_task_failure(batch_client: BatchClient, pool_id: str) -> str | None:
    """Explains why the pool cannot run tasks, or returns None while it still can."""
    pool = batch_client.get_pool(pool_id, select=['id', 'allocationState', 'resizeErrors'])
    if pool.resize_errors and (pool.allocation_state or '').lower() == 'steady':
        errors = '; '.join(f'{e.code}: {e.message}' for e in pool.resize_errors)
        return f'pool [{pool_id}] could not allocate its nodes: {errors}'
    failed_nodes = list(batch_client.list_nodes(pool_id, filter="state eq 'starttaskfailed'",
                                                select=['id', 'state', 'startTaskInfo']))
    if not failed_nodes:
        return None
    node = failed_nodes[0]
    info = node.start_task_info
    stderr = _tail_of_file(
        functools.partial(batch_client.get_node_file_properties, pool_id, node.id, 'startup/stderr.txt'),
        functools.partial(batch_client.download_node_file, pool_id, node.id, 'startup/stderr.txt'))
    exit_code = getattr(info, 'exit_code', None)
    return (f'the StartTask failed on node [{node.id}] (exit code {exit_code}), so it cannot run tasks.'
            + (f'\n  stderr.txt (end):\n{_indent(stderr)}' if stderr else ''))


def _indent(text: str) -> str:
    return '\n'.join('    ' + line for line in text.splitlines())


def wait_for_tasks_to_complete(batch_client: BatchClient, job_id: str, pool_id: str, task_count: int,
                               timeout: datetime.timedelta, *, poll_interval: float = 1.0,
                               sleep: Callable[[float], None] = time.sleep,
                               clock: Callable[[], float] = time.monotonic) -> None:
    """Returns when every task of the job has reached the 'completed' state.

    Each poll costs the same few requests however many tasks there are: the
    job's task counts, plus a look at the pool until the first task has run (to
    stop early when the StartTask fails or nodes cannot be allocated). Task
    counts can lag the tasks' real states, so the end is confirmed by listing
    the tasks that are not completed. Raises TutorialError on timeout.
    """
    print(f"Monitoring all tasks for 'Completed' state, timeout in {timeout}...", end='')
    sys.stdout.flush()
    deadline = clock() + timeout.total_seconds()
    last_progress = None
    while clock() < deadline:
        print('.', end='')
        sys.stdout.flush()
        counts = batch_client.get_job_task_counts(job_id).task_counts
        progress = (counts.completed, counts.running)
        if progress != last_progress and last_progress is not None:
            print(f'[{counts.completed}/{task_count} completed, {counts.running} running]', end='')
        last_progress = progress
        if counts.completed >= task_count:
            incomplete = list(batch_client.list_tasks(job_id, filter="state ne 'completed'", select=['id']))
            if not incomplete:
                print()
                return
        elif counts.completed == 0 and counts.running == 0:
            problem = _start_task_failure(batch_client, pool_id)
            if problem:
                print()
                raise TutorialError(problem)
        sleep(poll_interval)
    print()
    raise TutorialError(f"Tasks did not reach 'Completed' state within timeout period of {timeout}")


def report_failed_tasks(batch_client: BatchClient, job_id: str, max_reported: int = 10) -> int:
    """Prints each failed task with its exit code and the end of its stderr; returns how many failed."""
    failed = list(batch_client.list_tasks(job_id, filter="executionInfo/result eq 'failure'",
                                          select=['id', 'executionInfo']))
    for task in failed[:max_reported]:
        info = task.execution_info
        reason = getattr(info.failure_info, 'message', None) if info.failure_info else None
        print(f'  Task [{task.id}] failed with exit code {info.exit_code}'
              + (f' ({reason})' if reason else '') + '.')
        stderr = _tail_of_file(
            functools.partial(batch_client.get_task_file_properties, job_id, task.id, 'stderr.txt'),
            functools.partial(batch_client.download_task_file, job_id, task.id, 'stderr.txt'))
        if stderr:
            print('  stderr.txt (end):\n' + _indent(stderr))
    if len(failed) > max_reported:
        print(f'  ... and {len(failed) - max_reported} more failed task(s).')
    return len(failed)


def expected_results(input_files: Sequence[str]) -> list[str]:
    """The blob names this run's tasks upload: ``taskdata1.txt`` -> ``taskdata1_OUTPUT.txt``.

    Each task is given its input file's name (see add_tasks) and names its result
    as output_file_path in python_tutorial_task.py does.
    """
    return [f'{stem}_OUTPUT{extension}'
            for stem, extension in (os.path.splitext(os.path.basename(path)) for path in input_files)]


def _printable(name: str) -> str:
    # Blob names are chosen by the tasks: control characters must not reach the terminal.
    return ''.join(c if c.isprintable() else repr(c)[1:-1] for c in name)


def _refused(blob_name: str) -> bool:
    return blob_name.startswith('.') or any(part in blob_name for part in ('/', '\\', '..'))


def _results_to_download(blob_names: Sequence[str], expected_names: Collection[str],
                         container_name: str) -> tuple[list[str], list[str]]:
    """Splits a container's blobs into (results to download, blobs to leave there) and lists the latter.

    Only the results this run's tasks were asked to produce are downloaded. A name
    that starts with '.' or holds '/', '\\' or '..' is refused even if expected: it
    could become a dot-file such as .bashrc or reach a folder such as .ssh.
    """
    expected = set(expected_names)
    refused = [name for name in blob_names if _refused(name)]
    others = [name for name in blob_names if not _refused(name) and name not in expected]
    for names, reason in ((refused, "refused: a name that starts with '.' or holds '/', '\\' or '..'"),
                          (others, "not a result of this run's tasks")):
        if names:
            shown = ', '.join(f'[{_printable(name)}]' for name in names[:5]) + (', ...' if len(names) > 5 else '')
            print(f'  Left {len(names)} blob(s) in container [{container_name}] ({reason}): {shown}')
    return [name for name in blob_names if not _refused(name) and name in expected], refused + others


# Results are written under their expected name only. A file already there is replaced: it
# is taken to be an earlier result for the same input (any other file is never written).
# A symlink in its place is not followed.
_RESULT_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, 'O_NOFOLLOW', 0) | getattr(os, 'O_BINARY', 0)


def download_blobs_from_container(blob_service_client: BlobServiceClient, container_name: str,
                                  directory_path: str, expected_names: Collection[str]) -> list[str]:
    """Downloads this run's results from a container into a local folder (in parallel).

    Only the blobs named in ``expected_names`` are downloaded (see
    _results_to_download); anything else is listed and left in the container.
    Returns the names of the blobs left there (refused, unexpected or failed).
    """
    print(f'Downloading all files from container [{container_name}]...')
    container_client = blob_service_client.get_container_client(container_name)
    os.makedirs(directory_path, exist_ok=True)

    def download(blob_name: str) -> str:
        destination = os.path.join(directory_path, blob_name)
        with open(os.open(destination, _RESULT_FILE_FLAGS, 0o666), 'wb') as file:
            container_client.download_blob(blob_name).readinto(file)
        return destination

    wanted, left = _results_to_download([blob.name for blob in container_client.list_blobs()], expected_names,
                                        container_name)
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as executor:
        futures = {name: executor.submit(download, name) for name in wanted}
        for name, future in futures.items():
            try:
                destination = future.result()
            except (HttpResponseError, OSError) as error:
                left.append(name)
                print(f'  Error: blob [{name}] not downloaded: {redact_secrets(str(error)).splitlines()[0]}')
                continue
            print(f'  Downloaded blob [{name}] from container [{container_name}] to {destination}')
    print('  Download complete!' if not left else f'  Download finished; {len(left)} blob(s) left in the container.')
    return left


# --------------------------------------------------------------------------
# Configuration: constants, then environment variables, then flags.
# --------------------------------------------------------------------------

_ACCOUNT_NAME = re.compile(r'^[a-z0-9]{3,24}$')
_BATCH_ID = re.compile(r'^[A-Za-z0-9_-]{1,64}$')
_VM_SIZE = re.compile(r'^[A-Za-z0-9_]{1,64}$')


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Azure Batch Python tutorial: count the top words of files on a Batch pool.')
    parser.add_argument('--local', action='store_true',
                        help='run against Azurite and the local Batch emulator (no Azure account)')
    parser.add_argument('--pool-id', help=f'pool to create or reuse (default {_POOL_ID})')
    parser.add_argument('--job-id', help=f'job to create (default {_JOB_ID})')
    parser.add_argument('--vm-size', help=f'VM size of the nodes (default {_POOL_VM_SIZE})')
    parser.add_argument('--node-count', type=int, help=f'dedicated nodes in the pool (default {_POOL_NODE_COUNT})')
    parser.add_argument('--numwords', type=int, default=3, help='top words per file (default 3)')
    parser.add_argument('--input', nargs='+', metavar='FILE_OR_FOLDER',
                        help='input files or folders (default: the three files in data/)')
    parser.add_argument('--output-dir', default=os.path.expanduser('~'),
                        help='where to download the results (default: your home folder)')
    parser.add_argument('--timeout', type=float, default=20,
                        help='minutes to wait for the tasks (default 20)')
    parser.add_argument('--auth', choices=['key', 'entra'],
                        help='key: account keys; entra: Microsoft Entra ID (default: entra when no keys are set)')
    parser.add_argument('--cloud', help='public (default) or china (Azure operated by 21Vianet)')
    parser.add_argument('--yes', action='store_true', help='answer yes to the clean-up questions')
    parser.add_argument('--verbose', action='store_true', help='log diagnostics, including every HTTP request')
    return parser.parse_args(argv)


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


def load_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
    """Merges constants, environment and flags and validates everything.

    Raises TutorialError naming every missing or malformed setting, so nothing
    is created before the configuration is known to be complete.
    """
    problems: list[str] = []
    connection = _parse_connection_string(environ.get('AZURE_STORAGE_CONNECTION_STRING', ''))
    batch_name = environ.get('AZURE_BATCH_ACCOUNT') or _BATCH_ACCOUNT_NAME
    batch_key = environ.get('AZURE_BATCH_ACCESS_KEY') or _BATCH_ACCOUNT_KEY
    batch_url = (environ.get('AZURE_BATCH_ENDPOINT') or _BATCH_ACCOUNT_URL).rstrip('/')
    storage_name = environ.get('AZURE_STORAGE_ACCOUNT') or connection.get('accountname') or _STORAGE_ACCOUNT_NAME
    storage_key = environ.get('AZURE_STORAGE_KEY') or connection.get('accountkey') or _STORAGE_ACCOUNT_KEY

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
        problems.append('Batch account name is ' + (f'malformed ("{batch_name}")' if batch_name else 'missing')
                        + ' (set _BATCH_ACCOUNT_NAME or export AZURE_BATCH_ACCOUNT)')
    if not re.match(r'^https?://[A-Za-z0-9.-]+(:\d+)?(/[^\s?#]*)?$', batch_url or ''):
        problems.append('Batch account URL is ' + (f'malformed ("{batch_url}")' if batch_url else 'missing')
                        + ' (set _BATCH_ACCOUNT_URL or export AZURE_BATCH_ENDPOINT, '
                          'e.g. https://mybatch.eastus.batch.azure.com)')
    if not _ACCOUNT_NAME.match(storage_name or ''):
        problems.append('storage account name is '
                        + (f'malformed ("{storage_name}")' if storage_name else 'missing')
                        + ' (set _STORAGE_ACCOUNT_NAME or export AZURE_STORAGE_ACCOUNT)')
    if auth == 'key':
        for label, value, where in (
                ('Batch account key', batch_key, '_BATCH_ACCOUNT_KEY or export AZURE_BATCH_ACCESS_KEY'),
                ('storage account key', storage_key, '_STORAGE_ACCOUNT_KEY or export AZURE_STORAGE_KEY')):
            if not value:
                problems.append(f'{label} is missing (set {where}, or use --auth entra)')
            elif not _is_base64(value):
                problems.append(f'{label} is not a base64 key (copy it from the portal\'s Keys blade)')

    pool_id = args.pool_id or _POOL_ID
    job_id = args.job_id or _JOB_ID
    vm_size = args.vm_size or _POOL_VM_SIZE
    node_count = _POOL_NODE_COUNT if args.node_count is None else args.node_count
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

    input_files = _expand_inputs(args.input or _DEFAULT_INPUT_PATHS, problems)
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

    if problems:
        raise TutorialError('configuration is incomplete: ' + '; '.join(problems))

    suffix = _CLOUDS[cloud][0]
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


def create_service_clients(settings: Settings) -> tuple[BlobServiceClient, BatchClient, str | UserDelegationKey]:
    """Builds the Storage and Batch clients and what signs SAS tokens."""
    if settings.auth == 'key':
        blob_service_client = BlobServiceClient(
            settings.blob_endpoint,
            credential={'account_name': settings.storage_account_name, 'account_key': settings.storage_account_key})
        batch_client = BatchClient(
            settings.batch_account_url,
            AzureNamedKeyCredential(settings.batch_account_name, settings.batch_account_key))
        return blob_service_client, batch_client, settings.storage_account_key

    # Microsoft Entra ID: your az login, environment or managed identity. The
    # SAS tokens are then signed with a user delegation key (valid 2 hours).
    from azure.identity import DefaultAzureCredential
    _, authority, batch_scope = _CLOUDS[settings.cloud]
    credential = DefaultAzureCredential(authority=authority)
    blob_service_client = BlobServiceClient(settings.blob_endpoint, credential=credential)
    batch_client = BatchClient(settings.batch_account_url, credential,
                               credential_scopes=[batch_scope])
    now = datetime.datetime.now(datetime.timezone.utc)
    delegation_key = blob_service_client.get_user_delegation_key(now - datetime.timedelta(minutes=5),
                                                                 now + _SAS_LIFETIME)
    return blob_service_client, batch_client, delegation_key


def _upload_files(blob_service_client: BlobServiceClient, container_name: str, paths: Sequence[str],
                  sas_credential: str | UserDelegationKey) -> list[batchmodels.ResourceFile]:
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as executor:
        return list(executor.map(
            lambda path: upload_file_to_container(blob_service_client, container_name, path, sas_credential),
            paths))


def _holds_blobs(blob_service_client: BlobServiceClient, container_name: str) -> bool:
    try:
        return any(True for _ in blob_service_client.get_container_client(container_name).list_blobs())
    except (HttpResponseError, ServiceRequestError):
        return True  # cannot tell: keep it rather than lose results


@contextlib.contextmanager
def local_services_if_requested(local: bool, verbose: bool, environ: dict[str, str]) -> Iterator[None]:
    """With --local: start Azurite and the Batch emulator and point the settings at them.

    Only endpoints and credentials change; both services stop when the block ends.
    """
    if not local:
        yield
        return
    from batch_emulator.local import LocalServicesError, local_services
    try:
        with local_services(verbose=verbose) as services:
            environ.update(services.environment())
            print(f'Local run: Azurite at {services.blob_endpoint}, Batch emulator at {services.batch_endpoint}')
            yield
    except LocalServicesError as error:
        raise TutorialError(str(error)) from None


def run_from_command_line(argv: Sequence[str] | None = None) -> int:
    """Parses the flags, validates the settings, builds the clients, runs main()."""
    args = parse_arguments(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format='%(asctime)s %(levelname)s %(name)s: %(message)s')
    if not args.verbose:
        logging.getLogger('azure').setLevel(logging.ERROR)
    environ = dict(os.environ)
    try:
        # Validate everything before anything starts (with --local, the endpoints and
        # credentials are the local services' own, known once they run).
        if args.local:
            from batch_emulator.local import placeholder_environment
            load_settings(args, environ | placeholder_environment())
        else:
            load_settings(args, environ)
        with local_services_if_requested(args.local, args.verbose, environ):
            settings = load_settings(args, environ)
            blob_service_client, batch_client, sas_credential = create_service_clients(settings)
            return main(settings, blob_service_client, batch_client, sas_credential)
    except TutorialError as error:
        sys.stdout.flush()
        print(f'Error: {error}', file=sys.stderr)
        return 2 if str(error).startswith('configuration') else 1
    except ServiceRequestError as error:
        print_unreachable(error)
        return 1
    except KeyboardInterrupt:
        print('\nInterrupted.', file=sys.stderr)
        return 130


@dataclasses.dataclass
class Leftovers:
    """What this run made and has not deleted yet: clean-up takes out what it deletes, the summary lists the rest."""
    containers: list[str] = dataclasses.field(default_factory=list)  # created by this run
    reused_containers: list[str] = dataclasses.field(default_factory=list)  # existed before: never deleted
    output_kept: bool = False  # the output container is kept: it may hold blobs that were not downloaded
    # '' (none), 'requested' (create_pool or create_job was called but did not return: the
    # service may have done it anyway) or 'made' (created; a pool may also be reused).
    job: Literal['', 'requested', 'made'] = ''
    pool: Literal['', 'requested', 'made'] = ''


def main(settings: Settings, blob_service_client: BlobServiceClient, batch_client: BatchClient,
         sas_credential: str | UserDelegationKey) -> int:
    """The tutorial's steps 1-9; clean-up (steps 8 and 9) runs whatever happens.

    Returns 0; 1 when a step failed or blobs were left in the output container;
    130 after Ctrl-C. However the run ends (a Ctrl-C during clean-up included),
    it says what it leaves and how to delete it.
    """
    start_time = datetime.datetime.now().replace(microsecond=0)
    print(f'Sample start: {start_time}\n')
    run_id = uuid.uuid4().hex
    left = Leftovers()  # the one record of what this run made and has not deleted
    downloaded = False
    exit_code = 1
    try:
        # Step 1: create the containers application, input and output
        # (idempotent: an existing container is reused, and kept at the end).
        for name in (_APP_CONTAINER_NAME, _INPUT_CONTAINER_NAME, _OUTPUT_CONTAINER_NAME):
            try:
                blob_service_client.create_container(name)
                left.containers.append(name)
            except ResourceExistsError:
                left.reused_containers.append(name)

        # Step 2: upload the task script and the input files; each becomes a
        # ResourceFile whose SAS URL lets a node download it.
        application_files = _upload_files(blob_service_client, _APP_CONTAINER_NAME, [_TASK_SCRIPT_PATH],
                                          sas_credential)
        input_files = _upload_files(blob_service_client, _INPUT_CONTAINER_NAME, settings.input_files,
                                    sas_credential)
        # The tasks upload their results with a write/create-only container SAS
        # that must outlive the whole run.
        output_container_sas_token = get_container_sas_token(
            blob_service_client, _OUTPUT_CONTAINER_NAME, ContainerSasPermissions(write=True, create=True),
            sas_credential, lifetime=max(_SAS_LIFETIME, settings.timeout + datetime.timedelta(hours=1)))

        # Step 3: create the pool (its StartTask prepares each node). Until create_pool
        # returns, whether the pool exists is not known (Ctrl-C, a lost answer).
        left.pool = 'requested'
        reused_pool = create_pool(batch_client, settings.pool_id, application_files, settings.vm_size,
                                  settings.node_count, run_id)
        left.pool = 'made'

        # Step 4: create the job.
        left.job = 'requested'
        create_job(batch_client, settings.job_id, settings.pool_id, run_id,
                   refresh_task_script=application_files[0] if reused_pool else None)
        left.job = 'made'

        # Step 5: add one task per input file.
        task_count = add_tasks(batch_client, settings.job_id, input_files, _OUTPUT_CONTAINER_NAME,
                               output_container_sas_token, numwords=settings.numwords,
                               storage_account_name=settings.storage_account_name,
                               blob_endpoint=settings.blob_endpoint)

        # Step 6: monitor the tasks; then report the ones that failed. (On Azure, watch the
        # pool, nodes, job and tasks in the portal meanwhile; --local serves a local page.)
        if settings.portal_url:
            print(f'Watch the pool, nodes, job and tasks live at {settings.portal_url}')
        wait_for_tasks_to_complete(batch_client, settings.job_id, settings.pool_id, task_count, settings.timeout)
        print("  Success! All tasks reached the 'Completed' state within the specified timeout period.")
        failed_tasks = report_failed_tasks(batch_client, settings.job_id)

        # Step 7: download the results the tasks were asked to produce; any other blob stays in the container.
        not_downloaded = download_blobs_from_container(blob_service_client, _OUTPUT_CONTAINER_NAME,
                                                       settings.output_dir, expected_results(settings.input_files))
        downloaded = not not_downloaded
        exit_code = 1 if failed_tasks or not_downloaded else 0
    except KeyboardInterrupt:
        print('\nInterrupted: cleaning up.')
        exit_code = 130
    except TutorialError as error:
        sys.stdout.flush()
        print(f'Error: {error}', file=sys.stderr)
    except HttpResponseError as error:
        print_batch_exception(error)
    except (ServiceRequestError, ServiceResponseError) as error:
        print_unreachable(error)
    finally:
        try:
            # Step 8: delete the containers this run created. Blobs not downloaded are
            # kept, and so are containers that existed before.
            left.output_kept = (not downloaded and _OUTPUT_CONTAINER_NAME in left.containers
                                and _holds_blobs(blob_service_client, _OUTPUT_CONTAINER_NAME))
            to_delete = [name for name in left.containers if not (left.output_kept and name == _OUTPUT_CONTAINER_NAME)]
            if to_delete:
                _delete_containers(blob_service_client, to_delete, left)

            end_time = datetime.datetime.now().replace(microsecond=0)
            print(f'\nSample end: {end_time}')
            print(f'Elapsed time: {end_time - start_time}\n')

            # Step 9: delete the job and the pool. Jobs cost nothing; nodes do.
            _delete_job_and_pool(batch_client, settings, left, run_id)
        except KeyboardInterrupt:  # a (second) Ctrl-C during clean-up: stop it, but say what is left
            print('\nInterrupted: clean-up stopped.')
            exit_code = 130
        print_leftovers(settings, left)
        if exit_code != 130 and sys.stdin is not None and sys.stdin.isatty() and not settings.assume_yes:
            try:
                input('\nPress ENTER to exit...')
            except EOFError:
                pass
            except KeyboardInterrupt:
                print()
                exit_code = 130
    return exit_code


def _delete(delete: Callable[[str], Any], kind: str, name: str) -> bool:
    """Calls a delete operation; returns False, with one line, when the service refused it."""
    try:
        delete(name)
    except ResourceNotFoundError:
        pass
    except (HttpResponseError, ServiceRequestError, ServiceResponseError) as error:
        print(f'  Could not delete {kind} [{name}]: {redact_secrets(str(error)).splitlines()[0]}')
        return False
    return True


def _delete_containers(blob_service_client: BlobServiceClient, names: Sequence[str], left: Leftovers) -> None:
    print('Deleting containers...')
    for name in names:
        if _delete(blob_service_client.delete_container, 'container', name):
            left.containers.remove(name)


def _made_by_run(get: Callable[[str], Any], resource_id: str, run_id: str) -> bool:
    """Whether a pool or job whose create did not return exists, made by this run."""
    try:
        return _created_by(get(resource_id).metadata, run_id)
    except ResourceNotFoundError:
        return False
    except (HttpResponseError, ServiceRequestError, ServiceResponseError):
        return True  # cannot tell: count it as left rather than leave a billed pool unmentioned


def _delete_job_and_pool(batch_client: BatchClient, settings: Settings, left: Leftovers, run_id: str) -> None:
    """Asks before deleting the job and the pool; what is deleted is taken out of ``left``."""
    if left.job == 'requested':
        left.job = 'made' if _made_by_run(batch_client.get_job, settings.job_id, run_id) else ''
    if left.pool == 'requested':
        left.pool = 'made' if _made_by_run(batch_client.get_pool, settings.pool_id, run_id) else ''
    if left.job and query_yes_no('Delete job?', assume_yes=settings.assume_yes) == 'yes':
        if _delete(batch_client.begin_delete_job, 'job', settings.job_id):
            left.job = ''
    if left.pool and query_yes_no('Delete pool?', assume_yes=settings.assume_yes) == 'yes':
        if _delete(batch_client.begin_delete_pool, 'pool', settings.pool_id):
            left.pool = ''


def print_leftovers(settings: Settings, left: Leftovers) -> None:
    """Lists what the run leaves behind and the Azure CLI commands that delete it."""
    lines = [f'Kept container [{name}]: it existed before this run.' for name in left.reused_containers]
    commands = []
    storage_account = f' --account-name {settings.storage_account_name}' + (
        ' --auth-mode login' if settings.auth == 'entra' else '')
    batch_account = f' --account-name {settings.batch_account_name} --account-endpoint {settings.batch_account_url}'
    for name in left.containers:
        lines.append(f'Kept container [{name}]: it may hold blobs that were not downloaded.'
                     if left.output_kept and name == _OUTPUT_CONTAINER_NAME else f'Container [{name}] is left.')
        commands.append(_AZ_DELETE['container'].format(name) + storage_account)
    if left.job:
        lines.append(f'Job [{settings.job_id}] is left; its unfinished tasks keep running.')
        commands.append(_AZ_DELETE['job'].format(settings.job_id) + batch_account)
    if left.pool:
        lines.append(f'Pool [{settings.pool_id}] is left; the local emulator stops when this run ends.'
                     if settings.local else
                     f'Pool [{settings.pool_id}] is left running: its nodes are billed until you delete it.')
        commands.append(_AZ_DELETE['pool'].format(settings.pool_id) + batch_account)
    for line in lines:
        print(line)
    # A --local run's services and their data are removed when it ends: nothing to delete.
    if commands and not settings.local:
        cloud = ', after "az cloud set --name AzureChinaCloud"' if settings.cloud == 'china' else ''
        print(f'To delete what is left (Azure CLI{cloud}):')
        for command in commands:
            print('  ' + command)


if __name__ == '__main__':
    sys.exit(run_from_command_line())
