"""Container tasks, driven by the real azure-batch SDK over HTTP against an emulator with a container runtime.

On a machine with Podman (``.ci/run`` installs it, with runc and a static busybox to build a local image, so
nothing is pulled from a registry) the tasks really run in containers. Without a runtime, the emulator
refuses container pools the way the service refuses an unsupported configuration, saying what to install —
that is what the last test checks wherever it runs. Under CI (``CI`` set) a missing runtime fails the container
tests instead of skipping them, as a missing browser fails the portal's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import uuid
from collections.abc import Iterator

import pytest
from azure.batch import models as m

from tests.conftest import eventually
from tests.hostile import batch_client_for, start_emulator, stop_emulator
from tests.test_emulator import raw, wait_for_nodes

IMAGE = 'localhost/batch-emulator-busybox:latest'
# Podman as this sandbox needs it (runc, cgroupfs, no rlimits of its own); plain `podman` elsewhere works too.
PODMAN = 'podman --runtime /usr/sbin/runc --cgroup-manager=cgroupfs'


def _podman_environment(tmp_path) -> dict[str, str]:
    conf = tmp_path / 'containers.conf'
    conf.write_text('[containers]\ndefault_ulimits = []\n')
    return {**os.environ, 'CONTAINERS_CONF': str(conf)}


@pytest.fixture(scope='module')
def runtime(tmp_path_factory) -> tuple[str, dict[str, str]] | str:
    """(runtime command, environment) with the test image imported, or why the machine has no runtime."""
    tmp_path = tmp_path_factory.mktemp('runtime')
    env = _podman_environment(tmp_path)
    missing = [name for name, found in (('podman', shutil.which('podman')), ('/usr/sbin/runc', os.path.exists(
        '/usr/sbin/runc')), ('busybox', shutil.which('busybox'))) if not found]
    if missing:
        return f'no container runtime here: {", ".join(missing)} not found'
    probe = subprocess.run([*PODMAN.split(), 'info'], env=env, capture_output=True, text=True, timeout=60,
                           check=False)
    if probe.returncode != 0:
        return f'`{PODMAN} info` failed: {probe.stderr.strip()[-300:]}'
    rootfs = tmp_path / 'rootfs'
    (rootfs / 'bin').mkdir(parents=True)
    shutil.copy(shutil.which('busybox'), rootfs / 'bin' / 'busybox')
    for applet in ('sh', 'echo', 'cat', 'pwd', 'env', 'sleep', 'hostname'):
        os.symlink('busybox', rootfs / 'bin' / applet)
    archive = tmp_path / 'rootfs.tar'
    with tarfile.open(archive, 'w') as tar:
        tar.add(rootfs, arcname='.')
    subprocess.run([*PODMAN.split(), 'import', str(archive), IMAGE], env=env, capture_output=True, timeout=120,
                   check=True)
    return PODMAN, env


@pytest.fixture(scope='module')
def container_batch(runtime, tmp_path_factory) -> Iterator:
    if isinstance(runtime, str):
        reason = (f'{runtime} (the container tests need the Debian packages podman, runc and busybox-static; '
                  '.ci/run installs them)')
        if os.environ.get('CI'):  # CI installs them: a missing runtime there is a failure, not a skip
            pytest.fail(reason)
        pytest.skip(reason + ': test_without_a_runtime_* covers the refusal')
    command, env = runtime
    process, endpoint = start_emulator(str(tmp_path_factory.mktemp('containers')), '--container-runtime', command,
                                       env=env)
    try:
        yield batch_client_for(endpoint)
    finally:
        stop_emulator(process)


def _container_pool(client, pool_id: str, nodes: int = 1) -> None:
    client.create_pool(m.BatchPoolCreateOptions(
        id=pool_id, vm_size='standard_d2s_v3', target_dedicated_nodes=nodes,
        virtual_machine_configuration=m.VirtualMachineConfiguration(
            image_reference=m.BatchVmImageReference(publisher='canonical', offer='ubuntu-24_04-lts', sku='server'),
            node_agent_sku_id='batch.node.ubuntu 24.04',
            container_configuration=m.BatchContainerConfiguration(type='dockerCompatible',
                                                                  container_image_names=[IMAGE]))))


def test_a_container_task_runs_in_its_image_with_the_node_folders_mounted(container_batch, unique_id):
    client = container_batch
    pool_id, job_id = unique_id('containers'), unique_id('containers')
    _container_pool(client, pool_id)
    node = wait_for_nodes(client, pool_id)[0]
    client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool_id)))
    client.create_task(job_id, m.BatchTaskCreateOptions(
        id='inside', command_line="/bin/sh -c 'pwd; echo $AZ_BATCH_TASK_ID; cat /proc/1/cmdline; echo made > out.txt'",
        container_settings=m.BatchTaskContainerSettings(image_name=IMAGE)))
    client.create_task(job_id, m.BatchTaskCreateOptions(
        id='image-default', command_line="/bin/sh -c 'pwd'", container_settings=m.BatchTaskContainerSettings(
            image_name=IMAGE, working_directory='containerImageDefault')))
    client.create_task(job_id, m.BatchTaskCreateOptions(id='not-in-a-container', command_line='true'))
    done = {task_id: eventually(lambda task_id=task_id: (t := client.get_task(job_id, task_id)).state == 'completed'
                                and t, timeout=120, message=task_id)
            for task_id in ('inside', 'image-default', 'not-in-a-container')}
    assert done['inside'].execution_info.result == 'success', done['inside'].execution_info.failure_info
    stdout = raw(client, 'GET', f'/jobs/{job_id}/tasks/inside/files/stdout.txt').text().splitlines()
    assert stdout[0].endswith(f'/workitems/{job_id}/job-1/inside/wd')  # the task's working dir, mounted
    assert stdout[1] == 'inside'  # the task's environment, in the container
    assert '/bin/sh' in stdout[2]  # PID 1 of the container is the task's shell: it ran in its own namespace
    written = raw(client, 'GET', f'/pools/{pool_id}/nodes/{node.id}/files/workitems/{job_id}/job-1/inside/wd/out.txt')
    assert written.text() == 'made\n'  # what the container wrote is on the node, for the file APIs
    assert raw(client, 'GET', f'/jobs/{job_id}/tasks/image-default/files/stdout.txt').text().strip() == '/'
    refused = done['not-in-a-container'].execution_info
    assert (refused.result, refused.failure_info.code) == ('failure', 'ContainerInvalidSettings')
    client.begin_delete_job(job_id)
    client.begin_delete_pool(pool_id)


def test_a_killed_container_task_leaves_no_container_behind(container_batch, runtime, unique_id):
    client = container_batch
    command, env = runtime
    pool_id, job_id = unique_id('killed'), unique_id('killed')
    _container_pool(client, pool_id)
    wait_for_nodes(client, pool_id)
    client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool_id)))
    client.create_task(job_id, m.BatchTaskCreateOptions(
        id='long', command_line='sleep 300', container_settings=m.BatchTaskContainerSettings(image_name=IMAGE)))

    def running_containers() -> list[str]:
        listed = subprocess.run([*command.split(), 'ps', '--format', '{{.Names}}'], env=env, capture_output=True,
                                text=True, timeout=60, check=True).stdout.split()
        return [name for name in listed if name.startswith('batch-task-')]
    eventually(lambda: client.get_task(job_id, 'long').state == 'running' and running_containers(), timeout=60,
               message='the container runs')
    client.terminate_task(job_id, 'long')
    eventually(lambda: client.get_task(job_id, 'long').state == 'completed', timeout=60, message='terminated')
    eventually(lambda: not running_containers(), timeout=60, message='its container gone')
    client.begin_delete_job(job_id)
    client.begin_delete_pool(pool_id)


def test_without_a_runtime_a_container_pool_is_refused_saying_what_to_install(tmp_path, unique_id):
    process, endpoint = start_emulator(str(tmp_path / 'none'), '--container-runtime', 'no-such-runtime-here')
    try:
        client = batch_client_for(endpoint)
        response = raw(client, 'POST', '/pools', {
            'id': unique_id('refused'), 'vmSize': 'standard_d2s_v3',
            'virtualMachineConfiguration': {
                'imageReference': {'publisher': 'canonical', 'offer': 'ubuntu-24_04-lts', 'sku': 'server'},
                'nodeAgentSKUId': 'batch.node.ubuntu 24.04',
                'containerConfiguration': {'type': 'dockerCompatible'}}})
        body = response.json()
        assert (response.status_code, body['code']) == (400, 'InvalidPropertyValue')
        values = {item['key']: item.get('value') for item in body['values']}
        assert values['PropertyName'] == 'containerConfiguration'
        assert 'No container runtime answers on this machine' in values['Reason'] and 'Podman' in values['Reason']
    finally:
        stop_emulator(process)


def _run_in_container(client, job_id: str, task_id: str, command_line: str, **settings) -> m.BatchTask:
    client.create_task(job_id, m.BatchTaskCreateOptions(id=task_id, command_line=command_line,
                                                        container_settings=m.BatchTaskContainerSettings(**settings)))
    return eventually(lambda: (t := client.get_task(job_id, task_id)).state == 'completed' and t, timeout=120,
                      message=task_id)


def _task_file(client, job_id: str, task_id: str, name: str) -> str:
    return raw(client, 'GET', f'/jobs/{job_id}/tasks/{task_id}/files/{name}').text()


def test_an_image_name_is_never_read_as_an_option_of_the_runtime(container_batch, unique_id, tmp_path):
    """'--volume=/:/hostroot:ro' as the image, the real image as the command: the host's root is not mounted."""
    client = container_batch
    secret = tmp_path / 'host-secret.txt'
    secret.write_text(f'host-secret-{uuid.uuid4().hex}')
    pool_id, job_id = unique_id('image-option'), unique_id('image-option')
    _container_pool(client, pool_id)
    wait_for_nodes(client, pool_id)
    client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool_id)))
    task = _run_in_container(client, job_id, 'escape', f'{IMAGE} cat /hostroot{secret}',
                             image_name='--volume=/:/hostroot:ro')
    assert task.execution_info.result == 'failure'
    assert secret.read_text() not in _task_file(client, job_id, 'escape', 'stdout.txt')
    assert 'invalid reference format' in _task_file(client, job_id, 'escape', 'stderr.txt')
    client.begin_delete_job(job_id)
    client.begin_delete_pool(pool_id)


def test_bind_mounts_and_a_network_of_the_tasks_choosing(container_batch, unique_id):
    """containerHostBatchBindMounts mounts the folders it lists (read-only if asked) and nothing else; a network
    the run options allow replaces the host's."""
    client = container_batch
    pool_id, job_id = unique_id('binds'), unique_id('binds')
    _container_pool(client, pool_id)
    wait_for_nodes(client, pool_id)
    client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool_id)))
    task_only = _run_in_container(
        client, job_id, 'task-only', "/bin/sh -c 'pwd; echo made > out.txt; cat $AZ_BATCH_NODE_SHARED_DIR/x'",
        image_name=IMAGE, container_host_batch_bind_mounts=[m.ContainerHostBatchBindMountEntry(source='Task')])
    stdout = _task_file(client, job_id, 'task-only', 'stdout.txt').splitlines()
    assert stdout[0].endswith(f'/workitems/{job_id}/job-1/task-only/wd')  # its folder, mounted, is its working dir
    assert _task_file(client, job_id, 'task-only', 'wd/out.txt') == 'made\n'
    assert task_only.execution_info.exit_code != 0  # the shared folder is not there: only the task's was listed
    shared_read_only = _run_in_container(
        client, job_id, 'shared-ro', "/bin/sh -c 'cd $AZ_BATCH_NODE_SHARED_DIR && pwd && echo x > written'",
        image_name=IMAGE, working_directory='containerImageDefault',
        container_host_batch_bind_mounts=[m.ContainerHostBatchBindMountEntry(source='Shared', is_read_only=True)])
    assert _task_file(client, job_id, 'shared-ro', 'stdout.txt').strip().endswith('/shared')  # mounted
    assert shared_read_only.execution_info.exit_code != 0  # and read-only
    assert 'read-only' in _task_file(client, job_id, 'shared-ro', 'stderr.txt').lower()
    nothing = _run_in_container(client, job_id, 'nothing', "/bin/sh -c 'cat /proc/1/cmdline'", image_name=IMAGE,
                                working_directory='containerImageDefault', container_host_batch_bind_mounts=[])
    assert nothing.execution_info.result == 'success'  # an empty list mounts no folder of the node, and runs
    no_network = _run_in_container(client, job_id, 'no-network', "/bin/sh -c 'cat /proc/net/dev'", image_name=IMAGE,
                                   container_run_options='--network none')
    assert no_network.execution_info.result == 'success', _task_file(client, job_id, 'no-network', 'stderr.txt')
    interfaces = [line.split(':')[0].strip() for line in
                  _task_file(client, job_id, 'no-network', 'stdout.txt').splitlines()[2:]]
    assert interfaces == ['lo']  # its own network namespace with loopback only, not the host's
    client.begin_delete_job(job_id)
    client.begin_delete_pool(pool_id)
