"""Containers at node start, driven by the real azure-batch SDK: containerImageNames pulled while a node starts,
a start task in its container.

Nothing is pulled from the internet: the images come from a registry this module serves on 127.0.0.1 (the
pull side of the Docker Registry HTTP API V2: a manifest, its config and one layer built from the static
busybox), which the runtime is told, through its own registries.conf, to reach over plain HTTP. An image
name the registry does not know is the failed pull. The runtime and the emulator are set up as in
test_containers.py (Podman with runc; CI installs them, and there a missing runtime fails instead of skipping).
"""

from __future__ import annotations

import base64
import glob
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import tarfile
import tempfile
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from azure.batch import models as m

from tests.conftest import eventually
from tests.hostile import batch_client_for, start_emulator, stop_emulator
from tests.test_containers import IMAGE, runtime  # noqa: F401 (the module's runtime fixture, the image it imports)
from tests.test_emulator import raw, wait_for_nodes

MARKER = f'made-by-the-test-registry-{uuid.uuid4().hex[:8]}'  # a file only the registry's image holds
USER, PASSWORD = 'puller', f'pw-{uuid.uuid4().hex}'  # the registry's credentials (its repository is private)


def _image_blobs() -> tuple[bytes, dict[str, bytes]]:
    """(manifest, blobs by digest) of an image: the static busybox as /bin/sh and /marker holding MARKER."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode='w') as tar:
        for name, data, mode in (('bin/busybox', open(shutil.which('busybox'), 'rb').read(), 0o755),
                                 ('marker', f'{MARKER}\n'.encode(), 0o644)):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
        for applet in ('sh', 'cat'):
            link = tarfile.TarInfo(f'bin/{applet}')
            link.type, link.linkname = tarfile.SYMTYPE, 'busybox'
            tar.addfile(link)
    layer_tar = buffer.getvalue()
    layer = gzip.compress(layer_tar)
    config = json.dumps({'architecture': 'amd64', 'os': 'linux', 'config': {},
                         'rootfs': {'type': 'layers', 'diff_ids': [_digest(layer_tar)]}}).encode()
    manifest = json.dumps({
        'schemaVersion': 2, 'mediaType': 'application/vnd.docker.distribution.manifest.v2+json',
        'config': {'mediaType': 'application/vnd.docker.container.image.v1+json', 'size': len(config),
                   'digest': _digest(config)},
        'layers': [{'mediaType': 'application/vnd.docker.image.rootfs.diff.tar.gzip', 'size': len(layer),
                    'digest': _digest(layer)}]}).encode()
    return manifest, {_digest(config): config, _digest(layer): layer}


def _digest(data: bytes) -> str:
    return 'sha256:' + hashlib.sha256(data).hexdigest()


class _Registry(BaseHTTPRequestHandler):
    manifest: bytes = b''
    blobs: dict[str, bytes] = {}
    served: list[str] = []  # the manifests pulled
    repositories = {'prefetched'}  # the repositories it has (a test adds one to the registry)

    def do_HEAD(self) -> None:  # noqa: N802 (http.server's name)
        self._answer(head=True)

    def do_GET(self) -> None:  # noqa: N802
        self._answer(head=False)

    def _answer(self, *, head: bool) -> None:
        expected = 'Basic ' + base64.b64encode(f'{USER}:{PASSWORD}'.encode()).decode()
        if self.headers.get('Authorization') != expected:  # /v2/ too: its challenge is what asks for credentials
            self.send_response(401)
            self.send_header('WWW-Authenticate', 'Basic realm="test registry"')
            self._send(b'{"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}',
                       'application/json', head)
            return
        manifest = re.fullmatch(r'/v2/batch-emulator/([\w-]+)/manifests/([\w.:-]+)', self.path)
        blob = re.fullmatch(r'/v2/batch-emulator/[\w-]+/blobs/(sha256:[0-9a-f]+)', self.path)
        manifest = manifest if manifest and manifest.group(1) in self.repositories else None
        if self.path == '/v2/':
            body, kind = b'{}', 'application/json'
        elif manifest:
            self.served.append(manifest.group(2))
            body, kind = self.manifest, 'application/vnd.docker.distribution.manifest.v2+json'
        elif blob and blob.group(1) in self.blobs:
            body, kind = self.blobs[blob.group(1)], 'application/octet-stream'
        else:
            self.send_response(404)
            self._send(b'{"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]}',
                       'application/json', head)
            return
        self.send_response(200)
        if manifest:
            self.send_header('Docker-Content-Digest', _digest(body))
        self._send(body, kind, head)

    def _send(self, body: bytes, kind: str, head: bool) -> None:
        self.send_header('Content-Type', kind)
        self.send_header('Content-Length', str(len(body)))
        self.send_header('Docker-Distribution-API-Version', 'registry/2.0')
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def log_message(self, *_args) -> None:
        pass


@pytest.fixture(scope='module')
def registry(runtime) -> Iterator[str]:  # noqa: F811
    """The loopback registry's host:port."""
    if isinstance(runtime, str):
        yield ''
        return
    _Registry.manifest, _Registry.blobs = _image_blobs()
    server = ThreadingHTTPServer(('127.0.0.1', 0), _Registry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f'127.0.0.1:{server.server_address[1]}'
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope='module')
def start_batch(runtime, registry, tmp_path_factory) -> Iterator:  # noqa: F811
    if isinstance(runtime, str):
        reason = (f'{runtime} (the container tests need the Debian packages podman, runc and busybox-static; '
                  '.ci/run installs them)')
        if os.environ.get('CI'):
            pytest.fail(reason)
        pytest.skip(reason + ': test_containers.py::test_without_a_runtime_* covers the refusal')
    command, env = runtime
    conf = tmp_path_factory.mktemp('registries') / 'registries.conf'
    conf.write_text(f'[[registry]]\nlocation = "{registry}"\ninsecure = true\n')  # plain HTTP, this registry only
    env = {**env, 'CONTAINERS_REGISTRIES_CONF': str(conf)}
    process, endpoint = start_emulator(str(tmp_path_factory.mktemp('container-start')), '--container-runtime',
                                       command, env=env)
    try:
        yield batch_client_for(endpoint), command, env
    finally:
        stop_emulator(process)


def _pool(client, pool_id: str, images: list[str], start_task: m.BatchStartTask | None = None,
          registries: list[m.ContainerRegistryReference] | None = None) -> None:
    client.create_pool(m.BatchPoolCreateOptions(
        id=pool_id, vm_size='standard_d2s_v3', target_dedicated_nodes=1, start_task=start_task,
        virtual_machine_configuration=m.VirtualMachineConfiguration(
            image_reference=m.BatchVmImageReference(publisher='canonical', offer='ubuntu-24_04-lts', sku='server'),
            node_agent_sku_id='batch.node.ubuntu 24.04',
            container_configuration=m.BatchContainerConfiguration(type='dockerCompatible',
                                                                  container_image_names=images,
                                                                  container_registries=registries))))


def test_a_prefetched_image_is_pulled_while_the_node_starts_and_its_start_task_runs_in_it(start_batch, registry,
                                                                                          unique_id):
    client, command, env = start_batch
    pool_id = unique_id('prefetch')
    image = f'{registry}/batch-emulator/prefetched:{uuid.uuid4().hex[:12]}'  # on no machine before this test
    try:
        _pool(client, pool_id, [image], m.BatchStartTask(
            command_line="/bin/sh -c 'cat /marker; echo $AZ_BATCH_NODE_ID'", wait_for_success=True,
            container_settings=m.BatchTaskContainerSettings(image_name=image)),
              [m.ContainerRegistryReference(registry_server=registry, username=USER, password=PASSWORD)])
        node = wait_for_nodes(client, pool_id)[0]
        assert image.rsplit(':', 1)[1] in _Registry.served  # pulled, with the pool's credentials, as the node started
        info = client.get_node(pool_id, node.id).start_task_info
        assert (info.state, info.result, info.exit_code) == ('completed', 'success', 0), info.failure_info
        stdout = raw(client, 'GET', f'/pools/{pool_id}/nodes/{node.id}/files/startup/stdout.txt').text().split()
        assert stdout == [MARKER, node.id]  # a file only the image has, and the node's variables: it ran in there
        assert not client.get_node(pool_id, node.id).errors
        # The registry's password is write-only: the pool reads back its registry and user name, never the password.
        read = raw(client, 'GET', f'/pools/{pool_id}')
        registries = read.json()['virtualMachineConfiguration']['containerConfiguration']['containerRegistries']
        assert registries == [{'registryServer': registry, 'username': USER}]
        assert PASSWORD not in read.text() and PASSWORD not in raw(client, 'GET', '/pools').text()
    finally:
        client.begin_delete_pool(pool_id)
        subprocess.run([*command.split(), 'rmi', '--force', image], env=env, capture_output=True, timeout=60,
                       check=False)


def test_an_image_that_cannot_be_pulled_makes_the_node_unusable_until_a_reboot_finds_it(start_batch, registry,
                                                                                         unique_id):
    client, command, env = start_batch
    pool_id = unique_id('prefetch-missing')
    repository = f'absent-{uuid.uuid4().hex[:8]}'
    missing = f'{registry}/batch-emulator/{repository}'  # the registry answers MANIFEST_UNKNOWN
    _pool(client, pool_id, [IMAGE, missing], m.BatchStartTask(command_line='/bin/true'),
          [m.ContainerRegistryReference(registry_server=registry, username=USER, password=PASSWORD)])
    node = wait_for_nodes(client, pool_id, state='unusable')[0]
    error = client.get_node(pool_id, node.id).errors[0]
    assert error.code == 'ContainerInvalidImage'
    assert error.message == 'One or more container images specified are invalid'
    details = {detail.name: detail.value for detail in error.error_details}
    assert details['ContainerImage'] == f'{missing}:latest'  # the tag the spec adds to a name without one
    assert 'manifest unknown' in details['Message'].lower()  # what the runtime answered
    assert client.get_node(pool_id, node.id).start_task_info is None  # the start task never ran
    _Registry.repositories.add(repository)  # the image is pushed: a reboot pulls it and the node recovers
    try:
        client.begin_reboot_node(pool_id, node.id, m._models.BatchNodeRebootOptions(node_reboot_kind='requeue'),
                                 polling_interval=0.05).result()
        wait_for_nodes(client, pool_id)
        recovered = client.get_node(pool_id, node.id)
        assert not recovered.errors and recovered.start_task_info.result == 'success'
    finally:
        client.begin_delete_pool(pool_id)
        subprocess.run([*command.split(), 'rmi', '--force', f'{missing}:latest'], env=env, capture_output=True,
                       timeout=60, check=False)


def test_a_start_task_with_refused_container_run_options_fails_as_container_tasks_do(start_batch, unique_id):
    client, _, _ = start_batch
    pool_id = unique_id('start-refused')
    _pool(client, pool_id, [IMAGE], m.BatchStartTask(
        command_line='/bin/sh -c true', wait_for_success=True, container_settings=m.BatchTaskContainerSettings(
            image_name=IMAGE, container_run_options='--privileged')))
    node = wait_for_nodes(client, pool_id, state='starttaskfailed')[0]
    info = client.get_node(pool_id, node.id).start_task_info
    assert (info.result, info.failure_info.code) == ('failure', 'ContainerInvalidSettings')
    assert '--privileged' in info.failure_info.message
    client.begin_delete_pool(pool_id)


def _pulls_of(address: str) -> list[str]:
    """The command lines of the runtime's pulls from ``address`` still running on this machine."""
    found = []
    for entry in os.listdir('/proc'):
        try:
            with open(f'/proc/{entry}/cmdline', 'rb') as file:
                command = file.read().replace(b'\0', b' ').decode(errors='replace')
        except OSError:
            continue
        if ' pull ' in command and address in command:
            found.append(command)
    return found


def test_deleting_a_pool_stops_its_nodes_image_pull_and_removes_the_credentials(start_batch, unique_id):
    """A registry that never answers: the pull hangs while the node starts; the pool's delete ends it."""
    client, _, _ = start_batch
    silent = socket.create_server(('127.0.0.1', 0))  # accepts (the kernel's backlog) and never answers
    address = f'127.0.0.1:{silent.getsockname()[1]}'
    folders_before = set(glob.glob(os.path.join(tempfile.gettempdir(), 'batch-registry-auth-*')))
    pool_id = unique_id('prefetch-hangs')
    try:
        _pool(client, pool_id, [f'{address}/batch-emulator/never:1'], None,
              [m.ContainerRegistryReference(registry_server=address, username=USER, password=PASSWORD)])
        eventually(lambda: _pulls_of(address), timeout=60, message='the pull running')
        assert set(glob.glob(os.path.join(tempfile.gettempdir(), 'batch-registry-auth-*'))) - folders_before
        client.begin_delete_pool(pool_id, polling_interval=0.05).result()
        eventually(lambda: not _pulls_of(address), timeout=60, message='the pull stopped')
        eventually(lambda: not set(glob.glob(os.path.join(tempfile.gettempdir(), 'batch-registry-auth-*')))
                   - folders_before, message='the credentials gone')
    finally:
        silent.close()


def test_an_image_name_is_never_read_as_a_runtime_option(start_batch, unique_id):
    client, _, _ = start_batch
    pool_id = unique_id('prefetch-option')
    name = '--authfile=/etc/passwd:x'  # would be an option of `pull`
    _pool(client, pool_id, [name])
    node = wait_for_nodes(client, pool_id, state='unusable')[0]
    error = client.get_node(pool_id, node.id).errors[0]
    details = {detail.name: detail.value for detail in error.error_details}
    assert (error.code, details['ContainerImage']) == ('ContainerInvalidImage', name)
    assert 'invalid reference format' in details['Message']  # the runtime read it as an image, and refused it
    client.begin_delete_pool(pool_id)
