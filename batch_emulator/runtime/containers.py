"""Container tasks: a pool's containerConfiguration and a task's containerSettings, run with Docker or Podman.

As the spec describes a container task on Linux: every directory below AZ_BATCH_NODE_ROOT_DIR is
mapped into the container at the same path, every task environment variable is set in it, and the
task's command line runs in it, in the task's working directory (``workingDirectory:
taskWorkingDirectory``, the default) or the image's (``containerImageDefault``); ``containerRunOptions``
are added to the create command. A pool with containerConfiguration needs a runtime: the emulator
uses ``--container-runtime`` (for example ``podman``, or ``podman --runtime /usr/sbin/runc``), else the
first of ``docker`` and ``podman`` that answers ``info``; with none, such a pool is refused saying
what to install.

The runtime runs on the developer's machine (with rootful Docker, as root), so a task must not
get more from it than a node's container gets:

- the runtime process gets a scrubbed environment (``runtime_environment``: what a runtime needs
  to find its socket and configuration), never the emulator's;
- the task's variables reach the container through an ``--env-file`` (mode 0600, beside the node's
  folder, where no file API lists it and no container sees it; removed when the task ends), never
  the command line, where ``ps`` would show them;
- ``containerRunOptions`` are parsed (``shlex``) against an allow-list (``check_run_options``):
  resources, labels, users other than root, mounts of the node's own folders, tmpfs. Whatever
  reaches the host (``--privileged``, host namespaces, other mounts, devices, capabilities,
  security options, ``--env-host``, ``-e NAME`` copying a host variable, root) fails the task
  with ContainerInvalidSettings, unless the emulator runs with ``--allow-container-run-options``.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
import shlex
import shutil
import subprocess
import uuid

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
                                      timeout=20, check=False, env=runtime_environment({})).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            answered = False
        if answered:
            return tuple(command)
    return None


def new_name() -> str:
    return f'batch-task-{uuid.uuid4().hex[:16]}'


class RunOptionsRefused(ValueError):
    """A containerRunOptions value that would reach the host from the container."""


# What a runtime needs of the environment to find its socket, storage and configuration; nothing else.
# (No proxy variables: Podman copies those into every container, credentials included.)
RUNTIME_VARIABLES = ('PATH', 'HOME', 'USER', 'LOGNAME', 'LANG', 'LC_ALL', 'TMPDIR', 'XDG_RUNTIME_DIR',
                     'XDG_CONFIG_HOME', 'XDG_DATA_HOME', 'DBUS_SESSION_BUS_ADDRESS', 'DOCKER_HOST', 'DOCKER_CONFIG',
                     'DOCKER_CONTEXT', 'DOCKER_CERT_PATH', 'DOCKER_TLS_VERIFY', 'DOCKER_API_VERSION',
                     'DOCKER_DEFAULT_PLATFORM', 'CONTAINER_HOST', 'CONTAINER_CONNECTION', 'CONTAINER_SSHKEY',
                     'CONTAINERS_CONF', 'CONTAINERS_CONF_OVERRIDE', 'CONTAINERS_STORAGE_CONF',
                     'CONTAINERS_REGISTRIES_CONF', 'REGISTRY_AUTH_FILE', 'STORAGE_DRIVER', 'STORAGE_OPTS')
_VARIABLE_NAME = re.compile(r'[A-Za-z_][A-Za-z0-9_.-]*')  # Podman reads NAME* in an env file as a glob of its own


def runtime_environment(marker: dict[str, str]) -> dict[str, str]:
    """The runtime process's environment: the variables above from the emulator's, and the task's marker."""
    return {**{name: os.environ[name] for name in RUNTIME_VARIABLES if name in os.environ}, **marker}


def _not_root(value: str, _node_root: str) -> str | None:
    for part in value.split(':', 1):  # user[:group]: neither may be root
        part = part.strip()
        if part in ('', 'root') or part.lstrip('+').isdigit() and int(part) == 0:
            return 'the container may not run as root (user or group)'
    return None


def _network(value: str, _node_root: str) -> str | None:  # the emulator already runs containers on the host network
    return None if value in ('host', 'none', 'bridge') else f'network {value} is not host, none or bridge'


def _name_value(value: str, _node_root: str) -> str | None:
    return None if '=' in value else f'{value} without a value would copy the emulator\'s variable'


def _inside(path: str, node_root: str) -> bool:
    root = os.path.realpath(node_root)
    resolved = os.path.realpath(path)
    return os.path.isabs(path) and (resolved == root or resolved.startswith(root + os.sep))


def _volume(value: str, node_root: str) -> str | None:
    source = value.split(':', 1)[0]
    if ':' not in value and source.startswith('/'):
        return None  # an anonymous volume: nothing of the host
    return None if _inside(source, node_root) else f'{source} is not below the node\'s folder {node_root}'


def _mount(value: str, node_root: str) -> str | None:
    """Read as the runtimes read it (docker/cli opts/mount.go, Podman alike): keys in any case, and of ``source``
    and ``src`` (and of a repeated ``type``) the last one wins."""
    kind, source = 'volume', ''
    for item in value.split(','):
        key, _, field = item.partition('=')
        key = key.strip().lower()
        if key == 'type':
            kind = field.strip().lower()
        elif key in ('source', 'src'):
            source = field
    if kind == 'tmpfs':
        return None
    if kind == 'bind' and _inside(source, node_root):
        return None
    return f'a {kind} mount of {source or "nothing"} (only binds below {node_root} and tmpfs)'


def _anything(_value: str, _node_root: str) -> str | None:
    return None


# Options that take a value, with the check of the value; flags that take none.
_WITH_VALUE: dict[str, object] = {
    **dict.fromkeys(('--memory', '-m', '--memory-swap', '--memory-reservation', '--memory-swappiness',
                     '--kernel-memory', '--cpus', '--cpu-shares', '-c', '--cpuset-cpus', '--cpuset-mems',
                     '--cpu-period', '--cpu-quota', '--shm-size', '--pids-limit', '--ulimit', '--label', '-l',
                     '--hostname', '-h', '--workdir', '-w', '--entrypoint', '--tmpfs', '--stop-signal',
                     '--stop-timeout', '--add-host', '--dns', '--dns-search', '--dns-option', '--domainname',
                     '--blkio-weight', '--platform', '--pull',
                     '--health-cmd', '--health-interval', '--health-retries', '--health-timeout',
                     '--health-start-period', '--expose', '--mac-address'), _anything),
    '--user': _not_root, '-u': _not_root,
    '--network': _network, '--net': _network,
    '--env': _name_value, '-e': _name_value,
    '--volume': _volume, '-v': _volume,
    '--mount': _mount,
}
_FLAGS = {'--init', '--read-only', '--tty', '-t', '--interactive', '-i', '--rm', '--no-healthcheck'}


_OPT_IN = ' Start the emulator with --allow-container-run-options to pass containerRunOptions as they are.'


def check_run_options(text: str, node_root: str) -> list[str]:
    """containerRunOptions as arguments, if every one is on the allow-list; RunOptionsRefused names the first not."""
    try:
        words = shlex.split(text or '')
    except ValueError as error:
        raise RunOptionsRefused(f'containerRunOptions cannot be parsed: {error}.') from None
    index = 0
    while index < len(words):
        word = words[index]
        name, has_value, value = word.partition('=') if word.startswith('--') else (word, False, '')
        if not word.startswith('--') and word.startswith('-') and len(word) > 2 and word[:2] in _WITH_VALUE:
            name, has_value, value = word[:2], True, word[2:]  # -m512m
        elif not word.startswith('--') and len(word) > 2 and all(f'-{letter}' in _FLAGS for letter in word[1:]):
            index += 1  # -it
            continue
        check = _WITH_VALUE.get(name)
        if check is not None:
            if not has_value:
                index += 1
                if index >= len(words):
                    raise RunOptionsRefused(f'containerRunOptions: {name} needs a value.{_OPT_IN}')
                value = words[index]
            problem = check(value, node_root)  # type: ignore[operator]
            if problem:
                raise RunOptionsRefused(f'containerRunOptions {name} {value} is refused: {problem}.{_OPT_IN}')
        elif name not in _FLAGS or has_value:
            raise RunOptionsRefused(
                f'containerRunOptions {word} is refused: on this machine it could reach the host (privileges, '
                "host namespaces or devices, mounts outside the node's folder, the emulator's environment) or "
                f'is not one the emulator knows to be safe.{_OPT_IN}')
        index += 1
    return words


def write_env_file(folder: str, env: dict[str, str]) -> tuple[str, list[str]]:
    """The task's variables in a new 0600 file (never through a link); (its path, the names it cannot hold).

    A value with a line break cannot be written in an env file: those are left to the runtime's own
    environment (``--env NAME`` copies a variable of the runtime process, which holds only those).
    """
    path = os.path.join(folder, f'.batch-task-env-{secrets.token_hex(8)}')
    lines, apart = [], []
    for name, value in sorted(env.items()):
        if name in _NOT_INTO_CONTAINER or not _VARIABLE_NAME.fullmatch(name):
            continue
        if any(character in value for character in '\r\n\0'):
            apart.append(name)
        else:
            lines.append(f'{name}={value}\n')
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, 'w', encoding='utf-8') as file:
        file.writelines(lines)
    return path, apart


def image_reference(image: str) -> str:
    """An image reference with the tag ``:latest`` when it names none (the spec's rule for imageName)."""
    return image if '@' in image or ':' in image.rsplit('/', 1)[-1] else f'{image}:latest'


# containerHostBatchBindMounts' sources: the task variable that names each folder (at the same path inside)
_BIND_MOUNT_FOLDERS = {'shared': 'AZ_BATCH_NODE_SHARED_DIR', 'startup': 'AZ_BATCH_NODE_STARTUP_DIR',
                       'task': 'AZ_BATCH_TASK_DIR', 'jobprep': 'AZ_BATCH_JOB_PREP_DIR',
                       'applications': 'AZ_BATCH_NODE_ROOT_DIR/applications',
                       'vfsmounts': 'AZ_BATCH_NODE_ROOT_DIR/fsmounts'}


def _bind_mounts(entries: list, env: dict[str, str], node_root: str) -> list[str]:
    """The volumes containerHostBatchBindMounts lists, each at the path of the node's folder (read-only if asked);
    a folder the node does not have for this task (no job preparation) is not mounted."""
    volumes = []
    for entry in entries:
        variable, _, below = _BIND_MOUNT_FOLDERS.get(str(entry.get('source') or '').lower(), '').partition('/')
        folder = env.get(variable) if variable else None
        if not folder:
            continue
        folder = os.path.join(folder, below) if below else folder
        if not _inside(folder, node_root):
            continue
        os.makedirs(folder, exist_ok=True)
        volumes += ['--volume', f"{folder}:{folder}{':ro' if entry.get('isReadOnly') else ''}"]
    return volumes


def _sets_network(words: list[str]) -> bool:
    return any(word in ('--network', '--net') or word.startswith(('--network=', '--net=')) for word in words)


def run_argv(runtime: tuple[str, ...], settings: dict, *, name: str, argv: list[str], env_file: str,
             env_apart: list[str], node_root: str, working_dir: str, env: dict[str, str] | None = None,
             allow_any_options: bool = False) -> list[str]:
    """The runtime command that runs ``argv`` in the task's container, as the service runs it."""
    options = settings.get('containerRunOptions') or ''
    extra = shlex.split(options) if allow_any_options else check_run_options(options, node_root)
    command = [*runtime, 'run', '--rm', '--name', name, '--env-file', env_file]
    if not _sets_network(extra):  # the host's network, unless the options choose one (the runtime takes one)
        command += ['--network', 'host']
    mounts = settings.get('containerHostBatchBindMounts')
    if mounts is None:  # the whole node root, at the same path
        command += ['--volume', f'{node_root}:{node_root}']
    else:  # only the folders listed (none for an empty list)
        command += _bind_mounts(mounts, env or {}, node_root)
    for variable in env_apart:
        command += ['--env', variable]  # the name only: its value is in the runtime's environment
    if str(settings.get('workingDirectory') or 'taskWorkingDirectory').lower() == 'taskworkingdirectory':
        command += ['--workdir', working_dir]
    command += extra
    # '--' ends the options: an image name is never read as one ('--volume=/:/host:x' is no image either)
    return [*command, '--', image_reference(settings['imageName']), *argv]


async def remove(runtime: tuple[str, ...], name: str) -> None:
    """Removes the task's container (it is gone already unless the task was killed)."""
    import asyncio
    process = await asyncio.create_subprocess_exec(*runtime, 'rm', '--force', name, stdout=subprocess.DEVNULL,
                                                   stderr=subprocess.DEVNULL, env=runtime_environment({}))
    await process.wait()
