"""
FILE: python_tutorial_client.py

DESCRIPTION:
    The client of the Azure Batch Python tutorial ("Azure Batch Python 客户端入门", 2016),
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

    Put your credentials in the constants below, then go to
    ``if __name__ == '__main__':`` at the end of this file to start with step 1.
    --local runs the same steps on this machine, against Azurite and the project's
    local Batch emulator: no Azure account needed. The settings, the flags and
    --local live in tutorial_settings.py: the tutorial itself needs none of it.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import datetime
import functools
import os
import re
import shlex
import sys
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any, Literal

import tutorial_settings

try:  # the tutorial's packages (requirements.txt): without them, one line saying what to run instead
    from azure.batch import BatchClient
    from azure.batch import models as batchmodels
    from azure.core.credentials import AzureNamedKeyCredential
    from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError, ResourceNotFoundError
    from azure.core.pipeline.policies import RetryPolicy
    from azure.storage.blob import (
        BlobSasPermissions,
        BlobServiceClient,
        ContainerSasPermissions,
        UserDelegationKey,
        generate_blob_sas,
        generate_container_sas,
    )
except ModuleNotFoundError as missing:
    if __name__ != '__main__':
        raise
    sys.exit('Error: ' + tutorial_settings.missing_module_message(missing.name, __file__, sys.argv[1:]))
from tutorial_settings import Settings, SettingsError, TutorialError, parse_arguments

# Update the Batch and Storage account credential strings below with the values
# unique to your accounts (Azure portal: the Batch account's "Keys" blade and the
# storage account's "Access keys" blade). The environment variables the Azure CLI
# uses (AZURE_BATCH_ACCOUNT, AZURE_BATCH_ACCESS_KEY, AZURE_BATCH_ENDPOINT,
# AZURE_STORAGE_ACCOUNT, AZURE_STORAGE_KEY) override them, so you can also leave
# them empty. With both keys empty you sign in with Microsoft Entra ID instead.

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
_NODE_OS_PUBLISHER = 'canonical'
_NODE_OS_OFFER = 'ubuntu-24_04-lts'
_NODE_OS_SKU = 'server'

# The task's only dependency, installed on the nodes by the pool's StartTask into
# a folder of their shared directory (see start_task_commands).
_TASK_DEPENDENCY = 'azure-storage-blob==12.31.1'
_TASK_PACKAGES = '"$AZ_BATCH_NODE_SHARED_DIR/python-packages"'

_APP_CONTAINER_NAME = 'application'
_INPUT_CONTAINER_NAME = 'input'
_OUTPUT_CONTAINER_NAME = 'output'
_HERE = os.path.dirname(os.path.realpath(__file__))
_TASK_SCRIPT_PATH = os.path.join(_HERE, 'python_tutorial_task.py')
_DEFAULT_INPUT_PATHS = [os.path.join(_HERE, 'data', f'taskdata{i}.txt') for i in (1, 2, 3)]

# Blob SAS URLs handed to the nodes are read-only and expire after 2 hours.
_SAS_LIFETIME = datetime.timedelta(hours=2)

# The Azure CLI commands that delete what a run leaves (the summary adds the account options).
_AZ_DELETE = {'container': 'az storage container delete --name {}', 'job': 'az batch job delete --job-id {} --yes',
              'pool': 'az batch pool delete --pool-id {} --yes'}


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


def print_batch_exception(batch_exception: BaseException) -> None:
    """Prints what stopped the run on one line of standard error.

    The service's answer (status, code, message, details), the tasks it refused, why
    it cannot be reached, or a TutorialError's message: never a traceback, an
    account key or a SAS signature.
    """
    sys.stdout.flush()
    print(redact_secrets('Error: ' + _describe(batch_exception)), file=sys.stderr)


def _describe(error: BaseException) -> str:
    if isinstance(error, batchmodels.CreateTasksError):
        failures = [f'{result.task_id}: {getattr(result.error, "code", "?")}' for result in error.failure_tasks]
        failures += [_describe(unknown) for unknown in error.errors]
        return f'{len(failures)} task(s) could not be added: ' + '; '.join(failures[:5])
    if isinstance(error, HttpResponseError):
        model = getattr(error, 'model', None)
        code = getattr(model, 'code', None) or getattr(error, 'error_code', None)
        message = getattr(getattr(model, 'message', None), 'value', None) or error.message or str(error)
        # The service appends "RequestId:..." and "Time:..." lines; the first line says what went wrong.
        details = ', '.join(f'{d.key}={d.value}' for d in (getattr(model, 'error_values', None) or []))
        status_and_code = ' '.join(str(part) for part in (error.status_code, code) if part)
        return (f'the service answered {status_and_code}: {_first_line(message)}'
                + (f' ({details})' if details else ''))
    if isinstance(error, AzureError):  # no answer: a wrong endpoint, a service gone, a connection lost
        return f'cannot reach the service: {_first_line(str(error))}'
    return str(error)


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or ['no message'])[0]


def redact_secrets(text: str) -> str:
    """Hides SAS signatures and account keys that might appear in a message."""
    # A signature and a key are base64, URL-encoded in a URL (%2B, %2F, %3D): what follows them is not theirs.
    text = re.sub(r'(sig=)[A-Za-z0-9%+/=]+', r'\1REDACTED', text, flags=re.IGNORECASE)
    return re.sub(r'(AccountKey=)[A-Za-z0-9%+/=]+', r'\1REDACTED', text, flags=re.IGNORECASE)


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


# ----- Step 2: upload the task script and the data files ---------------------------------------

def upload_file_to_container(blob_service_client: BlobServiceClient, container_name: str, file_path: str,
                             sas_credential: str | UserDelegationKey) -> batchmodels.ResourceFile:
    """Uploads a local file to an Azure Blob storage container.

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


def upload_files_to_container(blob_service_client: BlobServiceClient, container_name: str, file_paths: Sequence[str],
                              sas_credential: str | UserDelegationKey) -> list[batchmodels.ResourceFile]:
    """upload_file_to_container for each file, 8 at a time; the ResourceFiles in the order of the files."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as executor:
        return list(executor.map(functools.partial(upload_file_to_container, blob_service_client, container_name),
                                 file_paths, [sas_credential] * len(file_paths)))


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


def _sas_signing_arguments(sas_credential: str | UserDelegationKey) -> dict[str, Any]:
    # An account key signs an account SAS; with Microsoft Entra ID a user
    # delegation key (obtained once from the service) signs it instead.
    if isinstance(sas_credential, UserDelegationKey):
        return {'user_delegation_key': sas_credential}
    return {'account_key': sas_credential}


# ----- Step 3: create the pool --------------------------------------------------------------------

def get_vm_config_for_distro(batch_client: BatchClient, publisher: str, offer: str,
                             sku: str) -> batchmodels.VirtualMachineConfiguration:
    """Finds the image and node agent for a Marketplace image the service supports.

    Only verified images that have not reached their Batch end-of-life are used
    (images and node agents are retired over time: none is hard-coded).
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
                return batchmodels.VirtualMachineConfiguration(
                    image_reference=batchmodels.BatchVmImageReference(
                        publisher=reference.publisher, offer=reference.offer, sku=reference.sku,
                        version='latest'),
                    node_agent_sku_id=image.node_agent_sku_id)
    others = ', '.join(sorted({c.image_reference.sku for c in candidates})) or 'none'
    raise TutorialError(f'the Batch service supports no current image {publisher}/{offer}/{sku} '
                        f'(skus of that offer it supports: {others})')


_COPY_TASK_SCRIPT = 'cp -f "$AZ_BATCH_TASK_WORKING_DIR/python_tutorial_task.py" "$AZ_BATCH_NODE_SHARED_DIR/"'


def start_task_commands() -> list[str]:
    """The StartTask's commands, joined by wrap_commands_in_shell (set -e: the first that fails ends it).

    A StartTask runs again whenever its node reboots or is reimaged, so each command
    is idempotent.
    """
    return [
        # Copy the task script to the "shared" directory that every task on the node can read.
        _COPY_TASK_SCRIPT,
        # Ubuntu 24.04 refuses system-wide pip installs (PEP 668): the task's dependency goes
        # into a folder of our own, which the tasks put on PYTHONPATH (see add_tasks).
        f'export PYTHONPATH={_TASK_PACKAGES}',
        # Nothing to install if it imports already (a reboot, a custom image, the local emulator).
        'if python3 -c "import azure.storage.blob" 2>/dev/null; then exit 0; fi',
        # Install pip. A fresh node updates itself and holds the package lock meanwhile: wait
        # for it; apt retries failed downloads.
        'apt-get -o DPkg::Lock::Timeout=600 -o Acquire::Retries=3 update',
        'apt-get -o DPkg::Lock::Timeout=600 -o Acquire::Retries=3 install -y python3-pip',
        # Then the dependency, into that folder.
        f'python3 -m pip install --no-input --target "$PYTHONPATH" {_TASK_DEPENDENCY}',
    ]


# The pool-wide auto-user, elevated (2016: run_elevated=True): it may install packages,
# and what it writes to the shared directory stays writable by the next StartTask.
_POOL_ADMIN = batchmodels.UserIdentity(auto_user=batchmodels.AutoUserSpecification(
    scope=batchmodels.AutoUserScope.POOL, elevation_level=batchmodels.ElevationLevel.ADMIN))


def create_pool(batch_client: BatchClient, pool_id: str, resource_files: list[batchmodels.ResourceFile],
                vm_size: str, node_count: int,
                vm_configuration: batchmodels.VirtualMachineConfiguration | None = None) -> bool:
    """Creates a pool of Ubuntu 24.04 compute nodes, or reuses the pool of that id.

    Returns True when an existing pool is reused (create_job then refreshes the
    task script on its nodes). The image is looked up unless ``vm_configuration`` is given.
    """
    print(f'Creating pool [{pool_id}]...')

    # The StartTask runs on each node as it joins the pool, and again when it's rebooted or
    # reimaged. We use it to prepare the node for running our task script.
    start_task = batchmodels.BatchStartTask(
        command_line=wrap_commands_in_shell('linux', start_task_commands()),
        resource_files=resource_files,
        user_identity=_POOL_ADMIN,
        wait_for_success=True,  # no task is scheduled on a node before its StartTask succeeded
        max_task_retry_count=2)  # the service runs a failed StartTask again (a mirror was down...)

    new_pool = batchmodels.BatchPoolCreateOptions(
        id=pool_id,
        virtual_machine_configuration=vm_configuration or get_vm_config_for_distro(
            batch_client, _NODE_OS_PUBLISHER, _NODE_OS_OFFER, _NODE_OS_SKU),
        vm_size=vm_size,
        target_dedicated_nodes=node_count,
        start_task=start_task,
        metadata=_this_run())
    try:
        batch_client.create_pool(new_pool)
        return False
    except ResourceExistsError as error:
        pool = left_by_another_run(error, batch_client.get_pool, pool_id)
    if pool is None:
        return False  # this run's own: the SDK repeated a create whose answer was lost

    # Reusing the pool saves the minutes its nodes take to start (the tutorial's suggested next
    # step). Its StartTask names an earlier run's script and SAS URL: give nodes that reboot
    # from now on this run's. (Nodes running now get it from the job, see create_job.)
    print(f'  Pool [{pool_id}] already exists: reusing it ({pool.vm_size}, '
          f'{pool.current_dedicated_nodes} of {pool.target_dedicated_nodes} dedicated nodes).')
    batch_client.update_pool(pool_id, batchmodels.BatchPoolUpdateOptions(start_task=start_task))
    return True


# ----- Step 4: create the job ---------------------------------------------------------------------

def create_job(batch_client: BatchClient, job_id: str, pool_id: str,
               reused_pool_script: batchmodels.ResourceFile | None = None) -> None:
    """Creates a job with the specified ID, associated with the specified pool.

    On a reused pool, pass the task script: a job preparation task copies it to the
    shared directory of each node before the job's first task runs there.
    """
    print(f'Creating job [{job_id}]...')
    job = batchmodels.BatchJobCreateOptions(
        id=job_id,
        pool_info=batchmodels.BatchPoolInfo(pool_id=pool_id),
        job_preparation_task=_copying_task_script(reused_pool_script) if reused_pool_script else None,
        metadata=_this_run())
    try:
        batch_client.create_job(job)
    except ResourceExistsError as error:
        if left_by_another_run(error, batch_client.get_job, job_id):
            raise left_behind('job', job_id) from None


def _copying_task_script(script: batchmodels.ResourceFile) -> batchmodels.BatchJobPreparationTask:
    return batchmodels.BatchJobPreparationTask(command_line=wrap_commands_in_shell('linux', [_COPY_TASK_SCRIPT]),
                                               resource_files=[script], user_identity=_POOL_ADMIN,
                                               wait_for_success=True)


# Pools and jobs carry the id of the run that created them (main() draws one per run).
_RUN_METADATA = 'python-tutorial-run'
_run_id = uuid.uuid4().hex


def _this_run() -> list[batchmodels.BatchMetadataItem]:
    return [batchmodels.BatchMetadataItem(name=_RUN_METADATA, value=_run_id)]


def _made_by_this_run(pool_or_job: Any) -> bool:
    return any(item.name == _RUN_METADATA and item.value == _run_id for item in pool_or_job.metadata or [])


def left_behind(kind: str, resource_id: str) -> TutorialError:
    """What to say when an earlier run's job is in the way: how to delete it, or which flag picks another id."""
    return TutorialError(f'{kind} [{resource_id}] already exists (left by an earlier run?). Delete it with '
                         f'"{_AZ_DELETE[kind].format(resource_id)}" or choose another id with --{kind}-id')


def left_by_another_run(error: ResourceExistsError, get: Callable[[str], Any], resource_id: str) -> Any | None:
    """A create answered "already exists": is it ours? Returns None if so, else the pool or job found.

    The Batch client repeats a create whose answer was lost (see create_service_clients);
    when the first request had reached the service, the repeat finds what it made. The
    run id in the metadata tells that apart from a pool or job an earlier run left.
    """
    code = getattr(getattr(error, 'model', None), 'code', None) or ''
    if code in ('PoolBeingDeleted', 'JobBeingDeleted'):
        kind = code[:-len('BeingDeleted')].lower()
        raise TutorialError(f'{kind} [{resource_id}] is being deleted; wait a few minutes or choose another id '
                            f'with --{kind}-id') from None
    if code not in ('PoolExists', 'JobExists'):
        raise error
    existing = get(resource_id)
    return None if _made_by_this_run(existing) else existing


# ----- Step 5: add tasks to the job ---------------------------------------------------------------

def add_tasks(batch_client: BatchClient, job_id: str, input_files: list[batchmodels.ResourceFile],
              output_container_name: str, output_container_sas_token: str, *, numwords: int,
              storage_account_name: str, blob_endpoint: str) -> int:
    """Adds a task for each input file to the job; returns how many were added.

    Each task downloads its input file (a ResourceFile) and runs the task script that
    the StartTask copied to the node's shared directory.
    """
    print(f'Adding {len(input_files)} tasks to job [{job_id}]...')
    tasks = []
    for index, input_file in enumerate(input_files):
        command = (f'PYTHONPATH={_TASK_PACKAGES} python3 "$AZ_BATCH_NODE_SHARED_DIR/python_tutorial_task.py" '
                   f'--filepath {shlex.quote(input_file.file_path)} --numwords {numwords} '
                   f'--storageaccount {shlex.quote(storage_account_name)} '
                   f'--storagecontainer {shlex.quote(output_container_name)} '
                   f'--sastoken "{output_container_sas_token}" '
                   f'--blobendpoint {shlex.quote(blob_endpoint)}')
        tasks.append(batchmodels.BatchTaskCreateOptions(
            id=f'topNtask{index}',
            command_line=wrap_commands_in_shell('linux', [command]),
            resource_files=[input_file]))
    # create_tasks sends 100 tasks per request (the service's limit), 4 requests at a time, and
    # takes them from the end of the list: reversed, they are added in the order of the files.
    batch_client.create_tasks(job_id, tasks[::-1], max_concurrency=4)
    return len(tasks)


# ----- Step 6: monitor the tasks ------------------------------------------------------------------

def wait_for_tasks_to_complete(batch_client: BatchClient, job_id: str, pool_id: str, task_count: int,
                               timeout: datetime.timedelta) -> bool:
    """Returns True when all tasks in the job reach the Completed state, False at the timeout.

    Each poll asks for the job's task counts: one request, however many tasks there are.
    Counts can lag behind the tasks, so the end is confirmed by listing the tasks that are
    not completed. While no task has run, a look at the pool ends the wait early when its
    nodes cannot be allocated or their StartTask failed (a TutorialError says why).
    """
    print(f"Monitoring all tasks for 'Completed' state, timeout in {timeout}...", end='', flush=True)
    progress = _Progress(task_count, timeout)
    while progress.elapsed < timeout:
        counts = batch_client.get_job_task_counts(job_id).task_counts
        progress.show(counts)
        if counts.completed >= task_count and not any(
                batch_client.list_tasks(job_id, filter="state ne 'completed'", select=['id'])):
            progress.end()
            return True
        if counts.completed == counts.running == 0 and (problem := _start_task_failure(batch_client, pool_id)):
            progress.end()
            raise TutorialError(problem)
        time.sleep(1)
    progress.end(timed_out=True)
    return False


class _Progress:
    """The wait's progress: completed, running and failed of N, the time so far and the rate.

    On a terminal it is one line, updated in place. Elsewhere (a log, CI) the tutorial's
    dots, one per poll, and a progress line each time another tenth of the tasks completed.
    """

    def __init__(self, task_count: int, timeout: datetime.timedelta) -> None:
        self.task_count, self.timeout = task_count, timeout
        self.started = time.monotonic()
        self.on_terminal = sys.stdout.isatty()
        self.line, self.tenths_shown = '', 0
        self.counts: batchmodels.BatchTaskCounts | None = None

    @property
    def elapsed(self) -> datetime.timedelta:
        return datetime.timedelta(seconds=time.monotonic() - self.started)

    def show(self, counts: batchmodels.BatchTaskCounts) -> None:
        self.counts = counts
        minutes = max(self.elapsed.total_seconds(), 1) / 60
        line = (f'  [{counts.completed} of {self.task_count} completed, {counts.running} running, {counts.failed} '
                f'failed; {str(self.elapsed).split(".")[0]}, {counts.completed / minutes:.1f} tasks/min]')
        if self.on_terminal:  # rewrite the line (spaces cover a longer one before)
            print(('\r' if self.line else '\n') + line.ljust(len(self.line)), end='', flush=True)
            self.line = line
            return
        print('.', end='')
        tenths = counts.completed * 10 // max(self.task_count, 1)
        if tenths > self.tenths_shown:
            print('\n' + line, end='')
            self.tenths_shown = tenths
        sys.stdout.flush()

    def end(self, timed_out: bool = False) -> None:
        print()
        if timed_out:
            completed = self.counts.completed if self.counts else 0
            sys.stdout.flush()
            print(f"Error: Tasks did not reach 'Completed' state within timeout period of {self.timeout}: "
                  f'{self.task_count - completed} of {self.task_count} did not complete (give them more time '
                  f'with --timeout MINUTES; now {self.timeout.total_seconds() / 60:g}). Downloading the results '
                  f'of the {completed} that did.', file=sys.stderr)


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
    stderr = _tail_of_file(
        functools.partial(batch_client.get_node_file_properties, pool_id, node.id, 'startup/stderr.txt'),
        functools.partial(batch_client.download_node_file, pool_id, node.id, 'startup/stderr.txt'))
    exit_code = getattr(node.start_task_info, 'exit_code', None)
    return (f'the StartTask failed on node [{node.id}] (exit code {exit_code}), so it cannot run tasks.'
            + (f'\n  stderr.txt (end):\n{_indent(stderr)}' if stderr else ''))


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


def _indent(text: str) -> str:
    return '\n'.join('    ' + line for line in text.splitlines())


# ----- Step 7: download the task output -----------------------------------------------------------

def download_blobs_from_container(blob_service_client: BlobServiceClient, container_name: str,
                                  directory_path: str, expected_names: Collection[str]) -> list[str]:
    """Downloads this run's results from a container into a local folder, 8 at a time.

    Only the blobs named in ``expected_names`` are downloaded (see _results_to_download):
    anything else is listed and left in the container. Returns the names of the blobs
    left there (refused, unexpected or failed).
    """
    print(f'Downloading all files from container [{container_name}]...')
    container_client = blob_service_client.get_container_client(container_name)
    blob_names, left = _results_to_download([blob.name for blob in container_client.list_blobs()],
                                            expected_names, container_name)
    os.makedirs(directory_path, exist_ok=True)
    destinations = [os.path.join(directory_path, blob_name) for blob_name in blob_names]
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as executor:
        errors = executor.map(functools.partial(_download_blob, container_client), blob_names, destinations)
        for blob_name, destination_file_path, error in zip(blob_names, destinations, errors, strict=True):
            if error:
                left.append(blob_name)
                print(f'  Error: blob [{blob_name}] not downloaded: {error}')
            else:
                print(f'  Downloaded blob [{blob_name}] from container [{container_name}] to {destination_file_path}')
    print('  Download complete!' if not left else f'  Download finished; {len(left)} blob(s) left in the container.')
    return left


def expected_results(input_files: Sequence[str]) -> list[str]:
    """The blob names this run's tasks upload: ``taskdata1.txt`` -> ``taskdata1_OUTPUT.txt``.

    Each task is given its input file's name (see add_tasks) and names its result
    as output_file_path in python_tutorial_task.py does.
    """
    return [f'{stem}_OUTPUT{extension}'
            for stem, extension in (os.path.splitext(os.path.basename(path)) for path in input_files)]


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


def _refused(blob_name: str) -> bool:
    return blob_name.startswith('.') or any(part in blob_name for part in ('/', '\\', '..'))


def _printable(name: str) -> str:
    # Blob names are chosen by the tasks: control characters must not reach the terminal.
    return ''.join(c if c.isprintable() else repr(c)[1:-1] for c in name)


# Results are written under their expected name only. A file already there is replaced: it
# is taken to be an earlier result for the same input (any other file is never written).
# A symlink in its place is not followed.
_RESULT_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, 'O_NOFOLLOW', 0) | getattr(os, 'O_BINARY', 0)


def _download_blob(container_client: Any, blob_name: str, destination: str) -> str | None:
    """Downloads one blob to ``destination``; returns why it failed, or None."""
    try:
        with open(os.open(destination, _RESULT_FILE_FLAGS, 0o666), 'wb') as file:
            container_client.download_blob(blob_name).readinto(file)
    except (HttpResponseError, OSError) as error:
        return redact_secrets(_first_line(str(error)))
    return None


# ----- Steps 8 and 9: clean up, and say what is left ----------------------------------------------

@dataclasses.dataclass
class Leftovers:
    """What this run made and has not deleted yet: clean-up takes out what it deletes, the summary lists the rest."""
    containers: list[str] = dataclasses.field(default_factory=list)  # created by this run
    reused_containers: list[str] = dataclasses.field(default_factory=list)  # existed before: never deleted
    not_downloaded: list[str] | None = None  # blobs step 7 left in the output container (None: it did not run)
    output_kept: bool = False  # the output container is kept: it may hold blobs that were not downloaded
    # '' (none), 'requested' (create_pool or create_job sent its request but did not return: the
    # service may have done it anyway), 'made' (created; a pool may also be reused) or 'unknown'
    # (requested, and the check whether it exists failed: unknown_because says why).
    job: Literal['', 'requested', 'made', 'unknown'] = ''
    pool: Literal['', 'requested', 'made', 'unknown'] = ''
    unknown_because: dict[str, str] = dataclasses.field(default_factory=dict)  # 'job'/'pool' -> why
    # '' (no task added), 'unfinished' (tasks were added, not all seen completed) or 'completed'.
    tasks: Literal['', 'unfinished', 'completed'] = ''
    input_links_expire: datetime.datetime | None = None  # when the tasks' SAS URLs to their input files expire
    kept_for_job: bool = False  # step 8 kept the containers because the job left had unfinished tasks


_CONTAINERS_THE_TASKS_NEED = {
    _APP_CONTAINER_NAME: 'need the task script in it (their nodes download it from there)',
    _INPUT_CONTAINER_NAME: 'download their input files from it',
    _OUTPUT_CONTAINER_NAME: 'upload their results to it',
}


def _tasks_still_need_containers(left: Leftovers) -> bool:
    """Whether a job with unfinished tasks may be left on a pool that may be left: they still need the containers."""
    return left.tasks == 'unfinished' and bool(left.job) and bool(left.pool)


def delete_containers(blob_service_client: BlobServiceClient, left: Leftovers) -> None:
    """Step 8: deletes the containers this run created, except an output container holding results not downloaded.

    While the job may be left with unfinished tasks, they need all three: nothing is deleted then,
    and step 9 calls this again once the job (or its pool) is deleted.
    """
    left.kept_for_job = _tasks_still_need_containers(left)
    if left.kept_for_job:
        return
    left.output_kept = (left.not_downloaded != [] and _OUTPUT_CONTAINER_NAME in left.containers
                        and _holds_blobs(blob_service_client, _OUTPUT_CONTAINER_NAME))
    to_delete = [name for name in left.containers if not (left.output_kept and name == _OUTPUT_CONTAINER_NAME)]
    if to_delete:
        print('Deleting containers...')
    for name in to_delete:
        if _delete(blob_service_client.delete_container, 'container', name):
            left.containers.remove(name)


def _holds_blobs(blob_service_client: BlobServiceClient, container_name: str) -> bool:
    try:
        return any(True for _ in blob_service_client.get_container_client(container_name).list_blobs())
    except AzureError:
        return True  # cannot tell: keep it rather than lose results


def delete_job_and_pool(batch_client: BatchClient, settings: Settings, left: Leftovers) -> None:
    """Step 9: asks before deleting the job and the pool; what is deleted is taken out of ``left``.

    A job or pool whose create did not return is looked up first: only one this run made is
    offered for deletion; one that cannot be looked up is left as 'unknown', with the reason.
    """
    for kind, get, resource_id in (('job', batch_client.get_job, settings.job_id),
                                   ('pool', batch_client.get_pool, settings.pool_id)):
        if getattr(left, kind) == 'requested':
            state, because = _made_by_this_run_or_why_unknown(get, resource_id, settings)
            setattr(left, kind, state)
            if because:
                left.unknown_because[kind] = because
    if left.job == 'made' and query_yes_no('Delete job?', assume_yes=settings.assume_yes) == 'yes':
        if _delete(batch_client.begin_delete_job, 'job', settings.job_id):
            left.job = ''
    if left.pool == 'made' and query_yes_no('Delete pool?', assume_yes=settings.assume_yes) == 'yes':
        if _delete(batch_client.begin_delete_pool, 'pool', settings.pool_id):
            left.pool = ''


def _made_by_this_run_or_why_unknown(get: Callable[[str], Any], resource_id: str,
                                     settings: Settings) -> tuple[Literal['', 'made', 'unknown'], str]:
    """Whether a pool or job whose create did not return exists, made by this run: ('made' or '', '').

    When the service cannot tell, ('unknown', why): it is neither offered for deletion nor said to exist.
    """
    try:
        return ('made' if _made_by_this_run(get(resource_id)) else ''), ''
    except ResourceNotFoundError:
        return '', ''
    except AzureError as error:
        return 'unknown', _why_not_checked(error, settings)


def _why_not_checked(error: AzureError, settings: Settings) -> str:
    if isinstance(error, HttpResponseError) and error.status_code in (401, 403):
        code = getattr(getattr(error, 'model', None), 'code', None) or getattr(error, 'error_code', None)
        refused = 'the key' if settings.auth == 'key' else 'your Microsoft Entra ID identity'
        return f'the service refused {refused} ({code or error.status_code})'
    return _describe(error)


def _delete(delete: Callable[[str], Any], kind: str, name: str) -> bool:
    """Calls a delete operation; returns False, with one line, when it failed."""
    try:
        delete(name)
    except ResourceNotFoundError:
        pass
    except AzureError as error:
        print(f'  Could not delete {kind} [{name}]: {redact_secrets(_first_line(str(error)))}')
        return False
    return True


def print_leftovers(settings: Settings, left: Leftovers) -> None:
    """Lists what the run leaves behind and, on Azure, the Azure CLI commands that delete it.

    What it could not find out (whether a pool or job exists) it says it does not know, and why.
    """
    if settings.local:  # Azurite and the emulator stop when the run ends, and everything in them goes
        names = ([f'container [{name}]' for name in left.reused_containers + left.containers]
                 + [f'{kind} [{resource_id}]' for kind, resource_id, made in
                    (('job', settings.job_id, left.job), ('pool', settings.pool_id, left.pool)) if made == 'made'])
        if names:
            print(f'The local services stop now, and with them go: {", ".join(names)}.')
        return
    lines = [f'Kept container [{name}]: it existed before this run.' for name in left.reused_containers]
    commands = []
    storage_account = f' --account-name {settings.storage_account_name}' + (
        ' --auth-mode login' if settings.auth == 'entra' else '')
    batch_account = f' --account-name {settings.batch_account_name} --account-endpoint {settings.batch_account_url}'
    still_needed = left.kept_for_job and _tasks_still_need_containers(left)
    for name in left.containers:
        if still_needed and name in _CONTAINERS_THE_TASKS_NEED:
            lines.append(f'Kept container [{name}]: the unfinished tasks of job [{settings.job_id}] '
                         f'{_CONTAINERS_THE_TASKS_NEED[name]}.')
        elif left.output_kept and name == _OUTPUT_CONTAINER_NAME:
            lines.append(f'Kept container [{name}]: it may hold blobs that were not downloaded.')
        else:
            lines.append(f'Container [{name}] is left.')
        commands.append(_AZ_DELETE['container'].format(name) + storage_account)
    for kind, resource_id, state, consequence in (
            ('job', settings.job_id, left.job, _what_the_job_does(settings, left)),
            ('pool', settings.pool_id, left.pool, 'its nodes are billed until you delete it')):
        command = _AZ_DELETE[kind].format(resource_id) + batch_account
        if state == 'made':
            lines.append(f'{kind.capitalize()} [{resource_id}] is left' + (' running' if kind == 'pool' else '')
                         + f': {consequence}.')
            commands.append(command)
        elif state:  # requested (clean-up stopped before the check) or unknown (the check failed)
            because = left.unknown_because.get(kind, 'clean-up was stopped before it could check')
            lines.append(f'Could not check whether {kind} [{resource_id}] exists: {because}. '
                         f'If it does, {consequence}.')
            commands.append(command + '  # if it exists')
    for line in lines:
        print(line)
    if commands:
        cloud = ', after "az cloud set --name AzureChinaCloud"' if settings.cloud == 'china' else ''
        print(f'To delete what is left (Azure CLI{cloud}):')
        for command in commands:
            print('  ' + command)


def _what_the_job_does(settings: Settings, left: Leftovers) -> str:
    if left.tasks == 'completed':
        return 'all its tasks completed'
    if left.tasks == '':
        return 'it has no tasks'
    if not left.pool:
        return f'its unfinished tasks wait for pool [{settings.pool_id}], which is deleted'
    expiry = (f'; one that starts after {left.input_links_expire:%Y-%m-%d %H:%M} UTC cannot download its input '
              'file (the link to it expires then)' if left.input_links_expire else '')
    return f'its unfinished tasks keep running on pool [{settings.pool_id}]{expiry}'


def _press_enter_interrupted(settings: Settings) -> bool:
    """The tutorial's "Press ENTER to exit..." (on a terminal, without --yes); True after Ctrl-C there."""
    if sys.stdin is None or not sys.stdin.isatty() or settings.assume_yes:
        return False
    try:
        input('\nPress ENTER to exit...')
    except EOFError:
        pass
    except KeyboardInterrupt:
        print()
        return True
    return False


# ----- Before step 1: the settings (tutorial_settings.py) and the clients ------------------------

def load_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
    """The settings: the constants at the top of this file, unless environment variables or flags say otherwise."""
    return tutorial_settings.load_settings(args, environ, defaults=dict(
        batch_account_name=_BATCH_ACCOUNT_NAME, batch_account_key=_BATCH_ACCOUNT_KEY,
        batch_account_url=_BATCH_ACCOUNT_URL, storage_account_name=_STORAGE_ACCOUNT_NAME,
        storage_account_key=_STORAGE_ACCOUNT_KEY, pool_id=_POOL_ID, job_id=_JOB_ID, vm_size=_POOL_VM_SIZE,
        node_count=_POOL_NODE_COUNT, input_files=_DEFAULT_INPUT_PATHS))


class _RetryLostPostsToo(RetryPolicy):
    """azure-core's retry policy (5xx answers, lost connections, back-off), for POST and PATCH too.

    By default azure-core does not repeat a POST whose connection dropped before the
    answer: it may have taken effect. Every POST and PATCH of this client is safe to
    repeat: creating a pool or a job (a repeat that finds it is recognised, see
    left_by_another_run), adding tasks (a task that did arrive answers TaskExists, which
    create_tasks counts as added) and updating a pool.
    """

    def configure_retries(self, options: dict[str, Any]) -> dict[str, Any]:
        options.setdefault('retry_on_methods', {'HEAD', 'GET', 'PUT', 'DELETE', 'OPTIONS', 'TRACE', 'POST', 'PATCH'})
        return super().configure_retries(options)


def create_service_clients(settings: Settings) -> tuple[BlobServiceClient, BatchClient, str | UserDelegationKey]:
    """Creates the Blob Storage client, the Batch client and what signs the SAS tokens."""
    if settings.auth == 'key':
        blob_service_client = BlobServiceClient(
            settings.blob_endpoint,
            credential={'account_name': settings.storage_account_name, 'account_key': settings.storage_account_key})
        batch_client = BatchClient(
            settings.batch_account_url,
            AzureNamedKeyCredential(settings.batch_account_name, settings.batch_account_key),
            retry_policy=_RetryLostPostsToo())
        return blob_service_client, batch_client, settings.storage_account_key

    # Microsoft Entra ID: your az login, environment or managed identity. The
    # SAS tokens are then signed with a user delegation key (valid 2 hours).
    from azure.identity import DefaultAzureCredential
    _, authority, batch_scope = tutorial_settings.CLOUDS[settings.cloud]
    credential = DefaultAzureCredential(authority=authority)
    blob_service_client = BlobServiceClient(settings.blob_endpoint, credential=credential)
    batch_client = BatchClient(settings.batch_account_url, credential, credential_scopes=[batch_scope],
                               retry_policy=_RetryLostPostsToo())
    now = datetime.datetime.now(datetime.timezone.utc)
    delegation_key = blob_service_client.get_user_delegation_key(now - datetime.timedelta(minutes=5),
                                                                 now + _SAS_LIFETIME)
    return blob_service_client, batch_client, delegation_key


# ----- The tutorial's steps 1-9 --------------------------------------------------------------------

def main(settings: Settings, blob_service_client: BlobServiceClient, batch_client: BatchClient,
         sas_credential: str | UserDelegationKey) -> int:
    """The tutorial's steps 1-9; clean-up (steps 8 and 9) runs whatever happens.

    Returns 0; 1 when a step failed, the timeout passed or blobs were left in the
    output container; 130 after Ctrl-C. However the run ends (a Ctrl-C during
    clean-up included), it says what it leaves and how to delete it.
    """
    global _run_id
    _run_id = uuid.uuid4().hex  # marks the pool and the job this run creates
    start_time = datetime.datetime.now().replace(microsecond=0)
    print(f'Sample start: {start_time}\n')
    left = Leftovers()  # the one record of what this run made and has not deleted
    exit_code = 1
    try:
        # Step 1: create the containers application, input and output. An existing
        # container is used as it is, and kept at the end: it may hold someone's data.
        for container_name in (_APP_CONTAINER_NAME, _INPUT_CONTAINER_NAME, _OUTPUT_CONTAINER_NAME):
            try:
                blob_service_client.create_container(container_name)
                left.containers.append(container_name)
            except ResourceExistsError:
                left.reused_containers.append(container_name)

        # Step 2: upload the task script and the input files; each becomes a
        # ResourceFile whose SAS URL lets a node download it.
        application_files = upload_files_to_container(blob_service_client, _APP_CONTAINER_NAME,
                                                      [_TASK_SCRIPT_PATH], sas_credential)
        input_files = upload_files_to_container(blob_service_client, _INPUT_CONTAINER_NAME,
                                                settings.input_files, sas_credential)
        left.input_links_expire = (datetime.datetime.now(datetime.timezone.utc) + _SAS_LIFETIME).replace(
            second=0, microsecond=0) + datetime.timedelta(minutes=1)  # at the latest
        # The tasks upload their results with a write/create-only container SAS that outlives the run.
        output_container_sas_token = get_container_sas_token(
            blob_service_client, _OUTPUT_CONTAINER_NAME, ContainerSasPermissions(write=True, create=True),
            sas_credential, lifetime=max(_SAS_LIFETIME, settings.timeout + datetime.timedelta(hours=1)))

        # Step 3: create the pool (its StartTask prepares each node) from a supported image. Once
        # the create is sent, until create_pool returns, whether the pool exists is not known
        # (Ctrl-C, a lost answer).
        vm_configuration = get_vm_config_for_distro(batch_client, _NODE_OS_PUBLISHER, _NODE_OS_OFFER, _NODE_OS_SKU)
        left.pool = 'requested'
        reused_pool = create_pool(batch_client, settings.pool_id, application_files, settings.vm_size,
                                  settings.node_count, vm_configuration)
        left.pool = 'made'

        # Step 4: create the job.
        left.job = 'requested'
        create_job(batch_client, settings.job_id, settings.pool_id, application_files[0] if reused_pool else None)
        left.job = 'made'

        # Step 5: add one task per input file.
        left.tasks = 'unfinished'
        task_count = add_tasks(batch_client, settings.job_id, input_files, _OUTPUT_CONTAINER_NAME,
                               output_container_sas_token, numwords=settings.numwords,
                               storage_account_name=settings.storage_account_name,
                               blob_endpoint=settings.blob_endpoint)

        # Step 6: monitor the tasks, then report the ones that failed. (On Azure, watch the
        # pool, nodes, job and tasks in the portal meanwhile; --local serves a local page.)
        if settings.portal_url:
            print(f'Watch the pool, nodes, job and tasks live at {settings.portal_url}')
        all_completed = wait_for_tasks_to_complete(batch_client, settings.job_id, settings.pool_id, task_count,
                                                   settings.timeout)
        if all_completed:
            left.tasks = 'completed'
            print("  Success! All tasks reached the 'Completed' state within the specified timeout period.")
        failed_tasks = report_failed_tasks(batch_client, settings.job_id)

        # Step 7: download the results of the tasks that completed; any other blob stays in the container.
        left.not_downloaded = download_blobs_from_container(blob_service_client, _OUTPUT_CONTAINER_NAME,
                                                            settings.output_dir,
                                                            expected_results(settings.input_files))
        exit_code = 0 if all_completed and not failed_tasks and not left.not_downloaded else 1
    except KeyboardInterrupt:
        print('\nInterrupted: cleaning up.')
        exit_code = 130
    except (TutorialError, AzureError) as error:
        print_batch_exception(error)
    finally:
        try:
            # Step 8: delete the containers this run created.
            delete_containers(blob_service_client, left)

            end_time = datetime.datetime.now().replace(microsecond=0)
            print(f'\nSample end: {end_time}')
            print(f'Elapsed time: {end_time - start_time}\n')

            # Step 9: delete the job and the pool, if you say so. Jobs cost nothing; nodes do.
            delete_job_and_pool(batch_client, settings, left)
            if left.kept_for_job and not _tasks_still_need_containers(left):
                delete_containers(blob_service_client, left)  # the job's tasks no longer need them
        except KeyboardInterrupt:  # a (second) Ctrl-C during clean-up: stop it, but say what is left
            print('\nInterrupted: clean-up stopped.')
            exit_code = 130
        print_leftovers(settings, left)
        if exit_code != 130 and _press_enter_interrupted(settings):
            exit_code = 130
    return exit_code


def run_from_command_line(argv: Sequence[str] | None = None) -> int:
    """Reads the settings (with --local, while the local services run), creates the clients, runs main()."""
    try:
        with tutorial_settings.settings_from_command_line(parse_arguments(argv), load_settings) as settings:
            blob_service_client, batch_client, sas_credential = create_service_clients(settings)
            return main(settings, blob_service_client, batch_client, sas_credential)
    except (TutorialError, AzureError) as error:
        print_batch_exception(error)
        return 2 if isinstance(error, SettingsError) else 1
    except KeyboardInterrupt:
        print('\nInterrupted.', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(run_from_command_line())
