"""Container tasks: a pool's containerConfiguration and a task's containerSettings, run with Docker or Podman.

As the spec describes a container task on Linux: every directory below AZ_BATCH_NODE_ROOT_DIR is
mapped into the container at the same path, every task environment variable is set in it, and the
task's command line runs in it, in the task's working directory (``workingDirectory:
taskWorkingDirectory``, the default) or the image's (``containerImageDefault``); ``containerRunOptions``
are added to the create command. A pool with containerConfiguration needs a runtime: the emulator
uses ``--container-runtime`` (for example ``podman``, or ``podman --runtime /usr/sbin/runc``), else the
first of ``docker`` and ``podman`` that answers ``info``; with none, such a pool is refused saying
what to install.
"""

from __future__ import annotations

import functools
import shlex
import shutil
import subprocess
import uuid

INSTALL_HINT = ('No container runtime answers on this machine: install Docker Engine or Podman (the emulator runs '
                'container tasks with it), or leave containerConfiguration out.')
_NOT_INTO_CONTAINER = {'PATH', 'HOME', 'LANG'}  # the image's own


@functools.lru_cache(maxsize=4)
def find_runtime(configured: str | None) -> tuple[str, ...] | None:
    """The container runtime's command (``docker`` or ``podman`` and its options), if one answers."""
    candidates = [shlex.split(configured)] if configured else [['docker'], ['podman']]
    for command in candidates:
        if not command or shutil.which(command[0]) is None:
            continue
        try:
            answered = subprocess.run([*command, 'info'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      timeout=20, check=False).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            answered = False
        if answered:
            return tuple(command)
    return None


def new_name() -> str:
    return f'batch-task-{uuid.uuid4().hex[:16]}'


def run_argv(runtime: tuple[str, ...], settings: dict, *, name: str, argv: list[str], env: dict[str, str],
             node_root: str, working_dir: str) -> list[str]:
    """The runtime command that runs ``argv`` in the task's container, as the service runs it."""
    command = [*runtime, 'run', '--rm', '--name', name, '--network', 'host']
    mounts = settings.get('containerHostBatchBindMounts')
    if mounts is None:  # the whole node root, at the same path
        command += ['--volume', f'{node_root}:{node_root}']
    for name_value in sorted(env.items()):
        if name_value[0] not in _NOT_INTO_CONTAINER:
            command += ['--env', '='.join(name_value)]
    if str(settings.get('workingDirectory') or 'taskWorkingDirectory').lower() == 'taskworkingdirectory':
        command += ['--workdir', working_dir]
    command += shlex.split(settings.get('containerRunOptions') or '')
    image = settings['imageName']
    return [*command, image if ':' in image.rsplit('/', 1)[-1] else f'{image}:latest', *argv]


async def remove(runtime: tuple[str, ...], name: str) -> None:
    """Removes the task's container (it is gone already unless the task was killed)."""
    import asyncio
    process = await asyncio.create_subprocess_exec(*runtime, 'rm', '--force', name, stdout=subprocess.DEVNULL,
                                                   stderr=subprocess.DEVNULL)
    await process.wait()
