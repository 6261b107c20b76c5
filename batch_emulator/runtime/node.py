"""One emulated compute node: its folders, its environment, its processes, its files.

A node is a folder laid out like a real node's (``common/layout.py``).

A task is run as the service runs it: resource files are downloaded from their
URLs (SAS URLs into Azurite) into the working directory, the command line is
split like the service splits it (no implicit shell) and run by the node agent
(``node_agent.py``, a process of its own) as a process of the current user with
a node's environment (the AZ_BATCH_* variables, PATH with the emulated image
first, HOME, LANG, the task's own settings; nothing of the emulator's own
environment unless passed through by name), stdout and stderr go to files, and
output files are uploaded to their container URLs: only http(s) URLs a node may
reach (``outbound.py``), and no file is read or written through a link a task
planted (``files.open_within``). Every process a task starts dies with it
(``processes.py``); a container task's runtime gets neither the emulator's
environment nor options that reach the host (``containers.py``). Nothing here knows about HTTP
routes or the account's state; it returns exit codes and failure information.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import stat
import sys
from collections.abc import Callable, Iterable
from urllib.parse import quote, urlsplit, urlunsplit

import aiohttp

from batch_emulator.common import layout
from batch_emulator.common.redaction import redact_secrets
from batch_emulator.runtime import containers, outbound, processes, task_process
from batch_emulator.runtime.files import TooManyFiles, find_output_files, inside, open_within

_STORAGE_API_VERSION = '2021-12-02'
_NODE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'  # an Ubuntu node's default PATH


OnStarted = Callable[[int, int | None], None]  # told a task's process id as it starts, again with its start time


class NodeLost(Exception):
    """The run was taken from its node: the node went away, or a user asked for the task to be requeued
    (``asked``: then the task's requeueCount counts it)."""

    def __init__(self, asked: bool = False) -> None:
        super().__init__()
        self.asked = asked


def failure(code: str, message: str, category: str = 'usererror', details: dict | None = None) -> dict:
    info = {'category': category, 'code': code, 'message': message}
    if details:
        info['details'] = [{'name': key, 'value': value} for key, value in details.items()]
    return info


def _redact(url: str) -> str:
    return redact_secrets(url)


def _insert_blob_path(container_url: str, blob_path: str) -> str:
    parts = urlsplit(container_url)
    path = parts.path.rstrip('/') + '/' + quote(blob_path.lstrip('/'))
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ''))


class NodeRunner:
    """Runs processes for the emulated nodes and keeps track of them, so they can be stopped."""

    def __init__(self, image_bin_dir: str, account_name: str, account_url: str,
                 pass_environment: Iterable[str] = ()) -> None:
        self.image_bin_dir = image_bin_dir
        self.account_name = account_name
        self.account_url = account_url
        self.on_agent_lost: Callable[[], None] | None = None  # told when the node agent was lost (the scheduler)
        self._launcher = task_process.Launcher(on_lost=self._agent_lost)  # the node agent: starts, waits, stops
        self._runs: dict[object, int] = {}  # the agent's number of each run, from its start until its end is known
        self._lost: dict[object, bool] = {}  # runs taken from their node -> whether a user asked for it
        self._session: aiohttp.ClientSession | None = None
        # __main__ names the storage endpoint and the hosts allowed with --allow-outbound-host
        self.outbound = outbound.OutboundPolicy(own_url=lambda: self.account_url)
        self.allow_container_run_options = False  # --allow-container-run-options
        # A node's environment, not the developer's: only variables passed through by name.
        passed = {name: os.environ[name] for name in pass_environment if name in os.environ}
        self._base_environment = {'LANG': 'C.UTF-8', **passed,
                                  'PATH': image_bin_dir + os.pathsep + passed.get('PATH', _NODE_PATH)}
        processes.become_subreaper()

    @staticmethod
    def install_image(bin_dir: str) -> None:
        """The emulated node image: ``python3`` (and ``python``) run the emulator's own Python.

        A small shell wrapper, not a symlink: a symlink to a virtual environment's
        interpreter would lose the environment's packages.
        """
        os.makedirs(bin_dir, exist_ok=True)
        for name in ('python3', 'python'):
            path = os.path.join(bin_dir, name)
            with open(path, 'w') as wrapper:
                wrapper.write(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
            os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)

    async def close(self) -> None:
        self.kill_all()
        if self._session is not None:
            await self._session.close()

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600, sock_connect=10),
                                                  connector=aiohttp.TCPConnector(
                                                      resolver=outbound.GuardedResolver(lambda: self.outbound)))
        return self._session

    @staticmethod
    def prepare_node(root_dir: str) -> None:
        for folder in layout.NODE_FOLDERS:
            os.makedirs(os.path.join(root_dir, folder), exist_ok=True)

    def environment(self, root_dir: str, task_dir: str, variables: dict[str, str],
                    settings: Iterable[dict]) -> dict[str, str]:
        env = dict(self._base_environment)
        env.update({
            'AZ_BATCH_ACCOUNT_NAME': self.account_name,
            'AZ_BATCH_ACCOUNT_URL': self.account_url,
            'AZ_BATCH_NODE_ROOT_DIR': root_dir,
            'AZ_BATCH_NODE_SHARED_DIR': layout.shared_dir(root_dir),
            'AZ_BATCH_NODE_STARTUP_DIR': layout.startup_dir(root_dir),
            'AZ_BATCH_NODE_STARTUP_WORKING_DIR': layout.working_dir(layout.startup_dir(root_dir)),
            'AZ_BATCH_TASK_DIR': task_dir,
            'AZ_BATCH_TASK_WORKING_DIR': layout.working_dir(task_dir),
            'AZ_BATCH_NODE_IS_DEDICATED': 'true',
            'HOME': layout.working_dir(task_dir),
        })
        env.update(variables)
        for setting in settings:
            if setting.get('name'):
                env[setting['name']] = setting.get('value') or ''
        return env

    async def execute(self, key: object, *, command_line: str, task_dir: str, env: dict[str, str],
                      resource_files: list[dict], output_files: list[dict] | None = None,
                      max_wall_clock_seconds: float | None = None,
                      on_started: OnStarted | None = None,
                      container: tuple[tuple[str, ...], dict] | None = None) -> tuple[int | None, dict | None]:
        """Runs one task (or start/preparation/release task) to its end.

        Returns (exit code, failure info or None). Raises NodeLost if the node
        was killed meanwhile.
        """
        working_dir = os.path.join(task_dir, 'wd')
        if resource_files or container is not None:  # else the agent makes it when it starts the process
            os.makedirs(working_dir, mode=0o700, exist_ok=True)
        stdout_path, stderr_path = os.path.join(task_dir, 'stdout.txt'), os.path.join(task_dir, 'stderr.txt')
        download_failure = await self._download_resource_files(resource_files, working_dir)
        if download_failure:
            with open(stderr_path, 'a') as stderr:
                stderr.write(download_failure['message'] + '\n')
            return None, download_failure
        exit_code, run_failure = await self._run_process(key, command_line, working_dir, env, stdout_path,
                                                         stderr_path, max_wall_clock_seconds, on_started, container)
        if key in self._lost:
            raise NodeLost(self._lost.pop(key))
        if output_files:
            upload_failure = await self._upload_output_files(output_files, working_dir, succeeded=run_failure is None)
            run_failure = run_failure or upload_failure
        return exit_code, run_failure

    async def _run_process(self, key: object, command_line: str, working_dir: str, env: dict[str, str],
                           stdout_path: str, stderr_path: str, max_wall_clock_seconds: float | None,
                           on_started: OnStarted | None,
                           container: tuple[tuple[str, ...], dict] | None = None) -> tuple[int | None, dict | None]:
        try:
            argv = shlex.split(command_line)
        except ValueError as error:
            argv, invalid = [], f'The command line cannot be parsed: {error}'
        else:
            invalid = 'The command line is empty.'
        if not argv:
            os.makedirs(working_dir, mode=0o700, exist_ok=True)  # the task's folder is there all the same
            return None, failure('CommandLineInvalid', invalid)
        container_name = env_file = None
        if container is not None:  # the runtime runs it, with a runtime's environment and the task's in a file
            runtime, settings = container
            container_name = containers.new_name()
            node_root = env['AZ_BATCH_NODE_ROOT_DIR']  # the file lies beside it: no API lists it, no container sees it
            try:
                env_file, apart = containers.write_env_file(os.path.dirname(node_root), env)
            except OSError as error:
                return None, failure('ContainerMiscError', f"The task's environment cannot be written: {error}")
            try:
                argv = containers.run_argv(runtime, settings, name=container_name, argv=argv, env_file=env_file,
                                           env_apart=apart, node_root=node_root, working_dir=working_dir, env=env,
                                           allow_any_options=self.allow_container_run_options)
            except containers.RunOptionsRefused as error:
                os.remove(env_file)
                with open(stderr_path, 'a') as stderr:
                    stderr.write(f'{error}\n')
                return None, failure('ContainerInvalidSettings', str(error))
            env = containers.runtime_environment({'AZ_BATCH_TASK_DIR': env.get('AZ_BATCH_TASK_DIR', ''),
                                                  **{name: env[name] for name in apart}})
        try:
            return await self._start_and_wait(key, argv, working_dir, env, stdout_path, stderr_path,
                                              max_wall_clock_seconds, on_started, container, container_name)
        finally:
            if env_file is not None:
                with contextlib.suppress(OSError):
                    os.remove(env_file)

    async def _start_and_wait(self, key: object, argv: list[str], working_dir: str, env: dict[str, str],
                              stdout_path: str, stderr_path: str, max_wall_clock_seconds: float | None,
                              on_started: OnStarted | None, container: tuple[tuple[str, ...], dict] | None,
                              container_name: str | None) -> tuple[int | None, dict | None]:
        run = self._runs[key] = self._launcher.new_run()  # from now on a stop reaches it (``stop``)
        over = False  # its end is known (or it never started): else it is given up, and stopped
        try:
            # Told its id and start time (read by the agent): a restart checks both before it kills the group.
            try:
                ended = await self._launcher.start(run, argv, working_dir, env, stdout_path, stderr_path, on_started)
            except OSError as error:  # its folder or output files could not be made: nothing was started
                over = True  # (its node went away meanwhile, folder and all? ``execute`` then ends the run as lost)
                return None, failure('CommandLaunchFailed', "An error occurred when launching the task's command "
                                     'line', details={'Message': str(error)})
            if isinstance(ended, str):  # why the program could not be started (stderr.txt has it too)
                over = True
                return None, failure('CommandProgramNotFound', 'The specified command program is not found',
                                     details={'Message': ended})
            if max_wall_clock_seconds is not None and not (await asyncio.wait({ended},
                                                                              timeout=max_wall_clock_seconds))[0]:
                self._launcher.stop(run)
                exit_code = await ended
                over = True
                return exit_code, failure('MaxWallClockTimeExpiry',
                                          'The task ran longer than its maxWallClockTime constraint allows')
            exit_code = await ended
            over = True
        except task_process.AgentLost:  # whether it ran to its end is not known: as if its node were lost
            over = True
            raise NodeLost(self._lost.pop(key, False)) from None
        finally:
            self._runs.pop(key, None)
            if not over:  # given up (the emulator stops): its process dies too
                self._launcher.stop(run)
            if container is not None and container_name is not None:
                await containers.remove(container[0], container_name)
        return exit_code, (None if exit_code == 0 else failure(
            'FailureExitCode', 'The task exited with an exit code representing a failure',
            details={'Message': 'The task process exited with an unexpected exit code',
                     'AdditionalErrorCode': 'FailureExitCode'}))

    async def _download_resource_files(self, resource_files: list[dict], working_dir: str) -> dict | None:
        for resource_file in resource_files:
            try:
                if resource_file.get('httpUrl'):
                    await self._download(resource_file['httpUrl'], working_dir, resource_file['filePath'],
                                         resource_file.get('fileMode'))
                else:
                    await self._download_container(resource_file, working_dir)
            except (aiohttp.ClientError, OSError, ValueError, asyncio.TimeoutError) as error:
                url = resource_file.get('httpUrl') or resource_file.get('storageContainerUrl') or ''
                # The whole message: aiohttp's errors name the URL too, signature and all.
                return failure('ResourceFileDownloadFailed', _redact(f'Failed to download resource file {url}: '
                                                                    f'{error}'),
                               details={'FilePath': resource_file.get('filePath') or ''})
        return None

    async def _download(self, url: str, working_dir: str, file_path: str, file_mode: str | None) -> None:
        destination = inside(working_dir, file_path)
        if destination is None or destination == os.path.realpath(working_dir):
            raise ValueError(f'filePath {file_path} leaves the working directory')
        os.makedirs(os.path.dirname(destination), exist_ok=True)
        async with outbound.get(self.session(), self.outbound, url) as response:
            if response.status != 200:
                raise ValueError(f'HTTP {response.status} {response.reason}')
            descriptor = open_within(destination, working_dir, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
            with os.fdopen(descriptor, 'wb') as file:  # never through a link a task planted
                async for chunk in response.content.iter_chunked(1 << 16):
                    file.write(chunk)
                if file_mode:
                    os.fchmod(file.fileno(), int(file_mode, 8) & 0o1777)  # never setuid or setgid

    async def _download_container(self, resource_file: dict, working_dir: str) -> None:
        container_url = resource_file['storageContainerUrl']
        names = await outbound.blob_names(self.session(), self.outbound, container_url,
                                          resource_file.get('blobPrefix') or '', {'x-ms-version': _STORAGE_API_VERSION})
        base = resource_file.get('filePath') or ''
        for name in names:
            await self._download(_insert_blob_path(container_url, name), working_dir, os.path.join(base, name),
                                 resource_file.get('fileMode'))

    async def _upload_output_files(self, output_files: list[dict], working_dir: str, *,
                                   succeeded: bool) -> dict | None:
        for output_file in output_files:
            condition = str((output_file.get('uploadOptions') or {}).get('uploadCondition', '')).lower()
            if condition == 'tasksuccess' and not succeeded or condition == 'taskfailure' and succeeded:
                continue
            destination = output_file['destination']['container']
            pattern = output_file['filePattern']
            has_wildcard = any(character in pattern for character in '*?[')
            try:  # the walk runs off the event loop, never follows a link and has limits
                matches = await asyncio.to_thread(find_output_files, working_dir, pattern)
            except (TooManyFiles, OSError) as error:
                return failure('FileUploadError', f'The output file pattern {pattern} cannot be uploaded: {error}')
            for path, relative in matches:
                if has_wildcard:
                    blob_path = '/'.join(p for p in (destination.get('path', '').rstrip('/'), relative) if p)
                else:
                    blob_path = destination.get('path') or os.path.basename(path)
                try:
                    await self.upload(os.path.realpath(path), _insert_blob_path(destination['containerUrl'], blob_path),
                                      destination.get('uploadHeaders') or [],
                                      os.sep if os.path.isabs(pattern) else os.path.dirname(working_dir))
                except (aiohttp.ClientError, OSError, ValueError, asyncio.TimeoutError) as error:
                    return failure('FileUploadError', f'Failed to upload {os.path.basename(path)}: {error}')
        return None

    async def upload(self, path: str, url: str, upload_headers: list[dict], root: str) -> None:
        """Uploads a regular file below ``root`` as a block blob; never through a link."""
        self.outbound.check(url)
        with os.fdopen(open_within(path, root), 'rb') as data:
            await self.upload_data(data, os.fstat(data.fileno()).st_size, url, upload_headers)

    async def upload_data(self, data: object, size: int, url: str, upload_headers: Iterable[dict] = ()) -> None:
        self.outbound.check(url)
        headers = {'x-ms-blob-type': 'BlockBlob', 'x-ms-version': _STORAGE_API_VERSION, 'Content-Length': str(size)}
        headers.update({header['name']: header.get('value', '') for header in upload_headers if header.get('name')})
        async with self.session().put(url, data=data, headers=headers, allow_redirects=False) as response:
            if response.status not in (200, 201):
                raise ValueError(f'HTTP {response.status} {response.reason} from {_redact(url)}')

    def _agent_lost(self) -> None:
        if self.on_agent_lost is not None:
            self.on_agent_lost()

    def stop(self, key: object) -> bool:
        """Kills the process run for ``key`` (a task that is terminated or deleted)."""
        run = self._runs.get(key)
        if run is None:
            return False
        self._launcher.stop(run)  # also while it is being started: the agent stops it once it exists
        return True

    def lose(self, key: object, *, asked: bool = False) -> bool:
        """Kills the process as if its node died: the caller requeues the task (``asked``: at a user's request)."""
        if key in self._runs:
            self._lost[key] = self._lost.get(key, False) or asked  # a user's requeue stays one when the node goes
            return self.stop(key)
        return False

    def kill_all(self) -> None:
        """At shutdown: every task's process tree and every orphan a task left behind (the agent kills them, and
        ends), and whatever else the emulator's own children left (a container runtime's)."""
        self._launcher.close()
        processes.kill_trees(processes.orphans([]))

    def stop_node(self, root_dir: str) -> None:
        """A node reboots or goes away: whatever still runs there from its earlier life dies too."""
        self._launcher.stop_node(root_dir)

    def reap(self) -> None:
        """Collects the emulator's own orphans that ended (a container runtime's); the agent collects the tasks'."""
        pid = self._launcher.agent_pid()
        processes.reap([pid] if pid else [])
