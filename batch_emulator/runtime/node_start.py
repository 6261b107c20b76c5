"""Containers at node start: a pool's container images pulled while its nodes start, a start task in a container.

As the service does it (batch-docker-container-workloads), a node of a pool with
``virtualMachineConfiguration.containerConfiguration`` pulls every one of ``containerImageNames`` while it
starts, before its start task runs, with the credentials of ``containerRegistries``; an image already on the
machine is not pulled again (the runtime's own store is the node's disk). A node whose pull fails becomes
``unusable`` with the error in its ``errors`` (ContainerInvalidImage, the service's code and message for an
image it cannot get; errorDetails name the image and say what the runtime answered). A reboot (or a restart
of the emulator) checks them again and pulls only what is missing, so rebooting an unusable node retries its pull.

A start task with ``containerSettings`` runs in that container exactly as a container task does
(``containers.py``: the allow-list of ``containerRunOptions``, a scrubbed environment for the runtime, the
variables in a 0600 ``--env-file``, only the node's folders mounted); without ``containerSettings`` it runs on
the node, as on the service. Registry credentials reach the runtime only through a 0600 auth file in a 0700
folder of its own (``DOCKER_CONFIG`` for Docker, ``REGISTRY_AUTH_FILE`` for Podman), never its command line,
and the folder is removed when the pull ends. ``identityReference`` (a managed identity) has no local
equivalent: such a registry is pulled from without credentials.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

from batch_emulator.common.redaction import redact_secrets
from batch_emulator.runtime import containers
from batch_emulator.runtime.node import failure
from batch_emulator.service.state import BatchState, Node, Pool

_DOCKER_HUB = ('docker.io', 'https://index.docker.io/v1/')  # the spec's default registryServer, in each runtime


def container_configuration(pool: Pool) -> dict | None:
    return (pool.spec.get('virtualMachineConfiguration') or {}).get('containerConfiguration') or None


async def runtime_for(state: BatchState) -> tuple[str, ...] | None:
    """The container runtime (found when a container pool was created; after a restart, found here)."""
    if state.container_runtime is None:
        state.container_runtime = await asyncio.to_thread(containers.find_runtime, state.container_runtime_setting)
    return state.container_runtime


async def pull_images(state: BatchState, pool: Pool, node: Node) -> bool:
    """Pulls the pool's containerImageNames onto the machine; False (the node made unusable) when one fails."""
    configuration = container_configuration(pool)
    node.errors = []
    if not configuration or not configuration.get('containerImageNames'):
        return True
    runtime = await runtime_for(state)
    for name in configuration['containerImageNames']:
        image = containers.image_reference(str(name))
        if runtime is None:
            problem = 'No container runtime (Docker or Podman) answers on this machine.'
        elif (await _run(runtime, ['image', 'inspect', '--format', '{{.Id}}', '--', image], {}))[0] == 0:
            continue  # already on the machine: as a pulled image, not fetched again
        else:
            # A temporary folder of its own: a pull that is killed (its node's work stops) leaves the runtime's
            # half-written blobs (podman's storage*) there, and the folder goes once the pull has ended.
            with _auth_files(configuration.get('containerRegistries') or []) as auth, \
                    tempfile.TemporaryDirectory(prefix='batch-image-pull-') as scratch:
                # '--': a name is no option
                code, output = await _run(runtime, ['pull', '--', image], {**auth, 'TMPDIR': scratch})
            if code == 0:
                continue
            problem = _last_line(output) or f'The runtime could not pull the image (exit code {code}).'
        node.errors = [{'code': 'ContainerInvalidImage',
                        'message': 'One or more container images specified are invalid',
                        'errorDetails': [{'name': 'ContainerImage', 'value': image},
                                         {'name': 'Message', 'value': redact_secrets(problem)}]}]
        node.set_state('unusable')
        return False
    return True


async def start_task_container(state: BatchState, pool: Pool,
                               start_task: dict) -> tuple[tuple[tuple[str, ...], dict] | None, dict | None]:
    """(runtime and containerSettings the start task runs with, or None; the start task's failure, or None)."""
    settings = start_task.get('containerSettings')
    if not settings:
        return None, None
    if container_configuration(pool) is None:
        return None, failure('ContainerInvalidSettings',
                             'The start task has containerSettings but its pool has no containerConfiguration.')
    runtime = await runtime_for(state)
    if runtime is None:
        return None, failure('ContainerInvalidSettings',
                             'No container runtime (Docker or Podman) answers on this machine.')
    return (runtime, settings), None


@contextlib.contextmanager
def _auth_files(registries: list[dict]) -> Iterator[dict[str, str]]:
    """The runtime variables that point it at the registries' credentials, in a folder removed afterwards."""
    auths = {}
    for registry in registries:
        if registry.get('username') and registry.get('password') is not None:
            token = base64.b64encode(f"{registry['username']}:{registry['password']}".encode()).decode()
            server = registry.get('registryServer') or 'docker.io'
            for name in (_DOCKER_HUB if server in _DOCKER_HUB else (server,)):
                auths[name] = {'auth': token}
    if not auths:
        yield {}
        return
    folder = tempfile.mkdtemp(prefix='batch-registry-auth-')  # 0700
    try:
        path = os.path.join(folder, 'config.json')
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(descriptor, 'w', encoding='utf-8') as file:
            json.dump({'auths': auths}, file)
        yield {'DOCKER_CONFIG': folder, 'REGISTRY_AUTH_FILE': path}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def _run(runtime: tuple[str, ...], arguments: list[str], variables: dict[str, str]) -> tuple[int, str]:
    """Runs the runtime with a runtime's environment; (exit code, what it wrote). Killed if the boot is cancelled."""
    process = await asyncio.create_subprocess_exec(
        *runtime, *arguments, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env=containers.runtime_environment(variables))
    try:
        output, _ = await process.communicate()
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
    return process.returncode or 0, output.decode('utf-8', errors='replace')


def _last_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1][-1000:] if lines else ''
