"""What a task cannot reach through the emulator: the emulator itself and this machine's other services (resource
files, output files, log uploads), files outside its node (links a start task planted), the developer's environment
and the host through the container runtime, the emulator's memory through a hostile container listing.

Each test drives the emulator as a client does (the azure-batch SDK over HTTP) and checks what a user would see:
the task's failureInfo, the files that arrive in storage, the processes on this machine.
"""

from __future__ import annotations

import datetime
import glob
import http.server
import os
import stat
import threading
import uuid
from collections.abc import Iterator

import pytest
from azure.batch import models as m

from batch_emulator.runtime import containers, outbound
from batch_emulator.runtime.files import open_within
from tests.conftest import eventually
from tests.hostile import batch_client_for, start_emulator, stop_emulator
from tests.test_containers import IMAGE, _container_pool, runtime  # noqa: F401 - runtime is a fixture
from tests.test_emulator import create_pool, raw, wait_for_nodes

# ----- a web server on this machine that a task names -------------------------------------------------------

BILLION_LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                  + b''.join(b'<!ENTITY lol%d "%s">' % (i, (b'&lol%d;' % (i - 1) if i > 1 else b'&lol;') * 10)
                             for i in range(1, 10))
                  + b']><EnumerationResults><Blobs><Blob><Name>&lol9;</Name></Blob></Blobs></EnumerationResults>')
LARGE_LISTING_BYTES = 40 * 1024 * 1024  # more than a listing page may be (32 MiB)


def _listing(*names: str, next_marker: str = '') -> bytes:
    blobs = ''.join(f'<Blob><Name>{name}</Name><Properties/></Blob>' for name in names)
    return (f'<?xml version="1.0" encoding="utf-8"?><EnumerationResults><Blobs>{blobs}</Blobs>'
            f'<NextMarker>{next_marker}</NextMarker></EnumerationResults>').encode()


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 - the http.server name
        self.server.requests.append(('GET', self.path))
        path, _, query = self.path.partition('?')
        if path == '/redirect':
            self.send_response(302)
            self.send_header('Location', self.server.redirect_to)
            self.send_header('Content-Length', '0')
            self.end_headers()
            return
        if path == '/large' and 'comp=list' in query:
            self.send_response(200)
            self.send_header('Content-Length', str(LARGE_LISTING_BYTES))
            self.end_headers()
            self.wfile.write(b'<EnumerationResults><Blobs>')
            piece = b' ' * (1 << 20)
            try:
                for _ in range(LARGE_LISTING_BYTES // len(piece)):
                    self.wfile.write(piece)
            except OSError:
                pass  # the emulator stopped reading, as it should
            return
        listings = {'/notxml': b'this is not <xml', '/laughs': BILLION_LAUGHS,
                    '/paged': _listing('in/b.txt') if 'marker=page2' in query
                    else _listing('in/a.txt', next_marker='page2')}
        files = {'/paged/in/a.txt': b'first page\n', '/paged/in/b.txt': b'second page\n', '/plain.txt': b'served\n'}
        body = listings.get(path) if 'comp=list' in query else files.get(path)
        self.send_response(200 if body is not None else 404)
        self.send_header('Content-Length', str(len(body or b'')))
        self.end_headers()
        self.wfile.write(body or b'')

    def do_PUT(self) -> None:  # noqa: N802
        self.server.requests.append(('PUT', self.path))
        self.rfile.read(int(self.headers.get('Content-Length') or 0))
        self.send_response(201)
        self.send_header('Content-Length', '0')
        self.end_headers()


@pytest.fixture
def local_server() -> Iterator[http.server.ThreadingHTTPServer]:
    """A web server on 127.0.0.1 that records what it is asked (``server.requests``)."""
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Handler)
    server.requests = []
    server.redirect_to = ''
    server.url = f'http://127.0.0.1:{server.server_address[1]}'
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def _completed(client, job_id: str, task_id: str, timeout: float = 30) -> m.BatchTask:
    return eventually(lambda: (task := client.get_task(job_id, task_id)).state == 'completed' and task,
                      timeout=timeout, message=f'task {task_id} completed')


# ----- outbound URLs: never the emulator, on this machine only what was named (cases 7 and 11) ------------

def test_a_resource_file_on_the_emulator_itself_is_not_fetched(batch_client, pool_and_job, emulator):
    _, job_id = pool_and_job
    batch_client.create_task(job_id, m.BatchTaskCreateOptions(
        id='own-log', command_line='cat requests.json', resource_files=[m.ResourceFile(
            http_url=f'{emulator.endpoint}/portal/api/requests', file_path='requests.json')]))
    info = _completed(batch_client, job_id, 'own-log').execution_info
    assert info.failure_info.code == 'ResourceFileDownloadFailed'
    assert 'is this emulator' in info.failure_info.message
    names = {f.name for f in batch_client.list_task_files(job_id, 'own-log', recursive=True)}
    assert 'wd/requests.json' not in names


def test_other_services_of_this_machine_and_other_schemes_are_not_reached(batch_client, pool_and_job, local_server):
    _, job_id = pool_and_job
    batch_client.create_task(job_id, m.BatchTaskCreateOptions(id='loopback', command_line='true', resource_files=[
        m.ResourceFile(http_url=f'{local_server.url}/plain.txt', file_path='plain.txt')]))
    batch_client.create_task(job_id, m.BatchTaskCreateOptions(id='localhost-name', command_line='true', resource_files=[
        m.ResourceFile(http_url=f'{local_server.url.replace("127.0.0.1", "localhost")}/plain.txt',
                       file_path='plain.txt')]))
    batch_client.create_task(job_id, m.BatchTaskCreateOptions(id='file-scheme', command_line='true', resource_files=[
        m.ResourceFile(http_url='file:///etc/hostname', file_path='hostname')]))
    batch_client.create_task(job_id, m.BatchTaskCreateOptions(
        id='upload', command_line="/bin/sh -c 'echo result > out.txt'", output_files=[m.OutputFile(
            file_pattern='out.txt', destination=m.OutputFileDestination(container=m.OutputFileBlobContainerDestination(
                container_url=f'{local_server.url}/container?sv=1&sig=secret')),
            upload_options=m.OutputFileUploadConfiguration(upload_condition='taskCompletion'))]))
    for task_id in ('loopback', 'localhost-name', 'file-scheme'):
        info = _completed(batch_client, job_id, task_id).execution_info
        assert info.failure_info.code == 'ResourceFileDownloadFailed', task_id
    assert 'only http and https' in _completed(batch_client, job_id, 'file-scheme').execution_info.failure_info.message
    upload = _completed(batch_client, job_id, 'upload').execution_info
    assert upload.exit_code == 0 and upload.failure_info.code == 'FileUploadError'
    assert 'is on this machine' in upload.failure_info.message and 'secret' not in upload.failure_info.message
    assert local_server.requests == []  # nothing reached it


@pytest.fixture
def allowing_emulator(tmp_path, local_server) -> Iterator:
    """An emulator started with --allow-outbound-host naming the test's web server."""
    process, endpoint = start_emulator(str(tmp_path / 'emulator'), '--allow-outbound-host',
                                       local_server.url.removeprefix('http://'))
    client = batch_client_for(endpoint)
    pool_id, job_id = f'allowed-{uuid.uuid4().hex[:8]}', f'allowed-{uuid.uuid4().hex[:8]}'
    try:
        create_pool(client, pool_id)
        client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool_id)))
        yield client, endpoint, job_id
    finally:
        stop_emulator(process)


def test_a_host_named_with_the_flag_is_reached_but_a_redirect_to_the_emulator_is_not(allowing_emulator,
                                                                                     local_server):
    client, endpoint, job_id = allowing_emulator
    local_server.redirect_to = f'{endpoint}/portal/api/requests'
    client.create_task(job_id, m.BatchTaskCreateOptions(id='allowed', command_line='cat plain.txt', resource_files=[
        m.ResourceFile(http_url=f'{local_server.url}/plain.txt', file_path='plain.txt')]))
    client.create_task(job_id, m.BatchTaskCreateOptions(id='redirected', command_line='true', resource_files=[
        m.ResourceFile(http_url=f'{local_server.url}/redirect', file_path='requests.json')]))
    assert _completed(client, job_id, 'allowed').execution_info.result == 'success'
    assert b''.join(client.download_task_file(job_id, 'allowed', 'stdout.txt')) == b'served\n'
    info = _completed(client, job_id, 'redirected').execution_info
    assert info.failure_info.code == 'ResourceFileDownloadFailed' and 'is this emulator' in info.failure_info.message


# ----- container listings: hardened and bounded XML (case 10) -----------------------------------------------

@pytest.mark.parametrize('listing', ['notxml', 'laughs', 'large'])
def test_a_bad_container_listing_fails_the_task_with_resource_file_download_failed(allowing_emulator, local_server,
                                                                                   listing):
    client, _, job_id = allowing_emulator
    client.create_task(job_id, m.BatchTaskCreateOptions(id='listing', command_line='true', resource_files=[
        m.ResourceFile(storage_container_url=f'{local_server.url}/{listing}?sv=1&sig=secret', file_path='in')]))
    info = _completed(client, job_id, 'listing', timeout=60).execution_info
    assert (info.result, info.failure_info.code) == ('failure', 'ResourceFileDownloadFailed')
    assert 'secret' not in info.failure_info.message


def test_a_container_listing_is_followed_across_its_pages(allowing_emulator, local_server):
    client, _, job_id = allowing_emulator
    client.create_task(job_id, m.BatchTaskCreateOptions(
        id='paged', command_line="/bin/sh -c 'cat inputs/in/a.txt inputs/in/b.txt'", resource_files=[
            m.ResourceFile(storage_container_url=f'{local_server.url}/paged?sv=1', blob_prefix='in/',
                           file_path='inputs')]))
    assert _completed(client, job_id, 'paged').execution_info.result == 'success'
    assert b''.join(client.download_task_file(job_id, 'paged', 'stdout.txt')) == b'first page\nsecond page\n'


# ----- service log uploads: only the node's own logs, never through a link (case 11) -------------------------

def _log_container(local_stack, name: str):
    from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas
    environ = local_stack.environment()
    service = BlobServiceClient.from_connection_string(environ['AZURE_STORAGE_CONNECTION_STRING'])
    service.create_container(name)
    sas = generate_container_sas(service.account_name, name, account_key=environ['AZURE_STORAGE_KEY'],
                                 permission=ContainerSasPermissions(write=True, create=True),
                                 expiry=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1))
    return service.get_container_client(name), f'{service.url}{name}?{sas}'


def test_a_log_upload_sends_only_the_nodes_own_logs_and_writes_through_no_link(local_stack, tmp_path, unique_id):
    outside = tmp_path / 'outside-secret.txt'
    outside.write_text('a file of the developer\n')
    victim = tmp_path / 'victim.txt'
    victim.write_text('precious\n')
    batch = batch_client_for(local_stack.batch_endpoint)
    pool_id = unique_id('LinkedLogs')
    plant = (f'rm -f $AZ_BATCH_NODE_STARTUP_DIR/stderr.txt; ln -s {outside} $AZ_BATCH_NODE_STARTUP_DIR/stderr.txt; '
             f'ln -s {victim} $AZ_BATCH_NODE_ROOT_DIR/emulator-node.log; echo started')
    create_pool(batch, pool_id, start_task=m.BatchStartTask(command_line=f"/bin/sh -c '{plant}'",
                                                            wait_for_success=True))
    node = wait_for_nodes(batch, pool_id)[0]
    container, container_url = _log_container(local_stack, unique_id('linkedlogs'))
    try:
        result = batch.upload_node_logs(pool_id, node.id, m.UploadBatchServiceLogsOptions(
            container_url=container_url,
            start_time=datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)))
        names = eventually(lambda: len(found := sorted(b.name for b in container.list_blobs()))
                           == result.number_of_files_uploaded and found, message='the logs uploaded')
        assert [name.rsplit('/', 1)[1] for name in names] == ['emulator-node.log', 'stdout.txt']
        contents = b''.join(container.download_blob(name).readall() for name in names)
        assert b'a file of the developer' not in contents and b'started' in contents
        assert victim.read_text() == 'precious\n'
    finally:
        container.delete_container()
        batch.begin_delete_pool(pool_id)


def test_a_log_upload_to_a_file_url_or_this_machine_is_refused(local_stack, local_server, unique_id):
    batch = batch_client_for(local_stack.batch_endpoint)
    pool_id = unique_id('RefusedLogs')
    create_pool(batch, pool_id)
    node = wait_for_nodes(batch, pool_id)[0]
    start = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)).isoformat()
    try:
        for url in ('file:///tmp/logs', f'{local_server.url}/logs?sv=1&sig=secret',
                    f'{local_stack.batch_endpoint}/portal?sig=secret'):
            response = raw(batch, 'POST', f'/pools/{pool_id}/nodes/{node.id}/uploadbatchservicelogs',
                           {'containerUrl': url, 'startTime': start})
            body = response.json()
            assert (response.status_code, body['code']) == (400, 'InvalidPropertyValue'), url
            values = {item['key']: item.get('value') for item in body['values']}
            assert values['PropertyName'] == 'containerUrl' and 'secret' not in response.text()
        assert local_server.requests == []
    finally:
        batch.begin_delete_pool(pool_id)


# ----- the files the emulator itself opens -------------------------------------------------------------------

def test_the_emulator_opens_no_file_through_a_link_or_a_fifo(tmp_path):
    root = tmp_path / 'root'
    root.mkdir()
    (tmp_path / 'outside.txt').write_text('outside')
    os.symlink(tmp_path / 'outside.txt', root / 'link.txt')
    os.symlink(tmp_path, root / 'folder')
    os.mkfifo(root / 'fifo')
    (root / 'plain.txt').write_text('plain')
    os.close(open_within(str(root / 'plain.txt'), str(root)))
    for name in ('link.txt', 'folder/outside.txt', 'fifo'):
        with pytest.raises(OSError):
            os.close(open_within(str(root / name), str(root)))
    with pytest.raises(OSError):  # nor written through
        open_within(str(root / 'link.txt'), str(root), os.O_WRONLY | os.O_TRUNC)
    assert (tmp_path / 'outside.txt').read_text() == 'outside'


def test_the_storage_endpoint_is_the_one_of_the_connection_string():
    assert outbound.storage_endpoints('AccountName=a;AccountKey=k;BlobEndpoint=http://127.0.0.1:41234/a;') == [
        '127.0.0.1:41234']
    assert outbound.storage_endpoints(None) == []
    policy = outbound.OutboundPolicy(['127.0.0.1:41234'], own_url=lambda: 'http://127.0.0.1:41235')
    assert policy.check('http://127.0.0.1:41234/a/c?sig=x') == ('127.0.0.1', 41234)
    for refused in ('http://127.0.0.1:41235/', 'http://127.0.0.1:41236/', 'http://[::1]:41234/', 'ftp://h/x',
                    'file:///etc/passwd', 'http://0.0.0.0:41236/'):
        with pytest.raises(outbound.OutboundRefused):
            policy.check(refused)


# ----- container runtime: no escape, no developer's environment, no password in ps (case 4) ------------------

@pytest.mark.parametrize('options', [
    '--privileged', '-v /:/host', '--volume=/etc:/etc', '--mount type=bind,source=/,target=/host', '--pid=host',
    '--pid host', '--net=container:other', '--ipc=host', '--uts=host', '--userns=host', '--cgroupns=host',
    '--device /dev/kmsg', '--cap-add=SYS_ADMIN', '--security-opt seccomp=unconfined', '--user 0', '-u root',
    '--user=0:0', '-u0', '--user 00', '--user 1000:0', '--user 1000:root', '--log-opt path=/tmp/x',
    '--env-host', '-e HOME', '--env=PATH', '--env-file /etc/environment', '--volumes-from x',
    '--gpus all', '-d', 'otherimage', '-v {root}/../..:/up',
    # read as the runtimes read --mount: of source and src the last wins, keys in any case, the last type wins
    '--mount type=bind,source={root},src=/,target=/host', '--mount type=bind,SRC=/,target=/host',
    '--mount type=tmpfs,type=bind,source=/,target=/host'])
def test_run_options_that_reach_the_host_are_refused(options, tmp_path):
    with pytest.raises(containers.RunOptionsRefused) as refused:
        containers.check_run_options(options.format(root=tmp_path), str(tmp_path))
    assert 'refused' in str(refused.value)


@pytest.mark.parametrize('options', ['--memory 512m --cpus=1.5 -it', '-e NAME=value --user 1000:1000',
                                     '-v {root}/shared:/data:ro', '--mount type=bind,source={root},target=/n',
                                     '--tmpfs /scratch --read-only --init', '--network none', '-m512m'])
def test_run_options_that_stay_in_the_container_are_passed(options, tmp_path):
    text = options.format(root=tmp_path)
    (tmp_path / 'shared').mkdir()
    assert containers.check_run_options(text, str(tmp_path)) == text.split()
    argv = containers.run_argv(('podman',), {'imageName': 'busybox', 'containerRunOptions': text}, name='n',
                               argv=['true'], env_file='/f', env_apart=[], node_root=str(tmp_path),
                               working_dir=str(tmp_path))
    assert argv[-3 - len(text.split()):] == [*text.split(), '--', 'busybox:latest', 'true']
    assert argv.count('--network') == 1  # the options' own network, or the host's: a runtime takes one


def test_with_the_opt_in_flag_run_options_are_passed_as_they_are(tmp_path):
    argv = containers.run_argv(('podman',), {'imageName': 'busybox', 'containerRunOptions': '--privileged -u 0'},
                               name='n', argv=['true'], env_file='/f', env_apart=[], node_root=str(tmp_path),
                               working_dir=str(tmp_path), allow_any_options=True)
    assert argv[-6:] == ['--privileged', '-u', '0', '--', 'busybox:latest', 'true']


DEVELOPER_SECRET = 'developer-secret-' + uuid.uuid4().hex


@pytest.fixture(scope='module')
def container_emulator(runtime, tmp_path_factory) -> Iterator:  # noqa: F811 - the imported fixture
    if runtime is None:
        pytest.skip('no container runtime here (podman + runc + busybox): the option tests above run everywhere')
    command, env = runtime
    location = str(tmp_path_factory.mktemp('safe-containers'))
    process, endpoint = start_emulator(location, '--container-runtime', command,
                                       env={**env, 'DEVELOPER_SECRET': DEVELOPER_SECRET})
    try:
        yield batch_client_for(endpoint), location
    finally:
        stop_emulator(process)


def _command_lines() -> dict[int, bytes]:
    found = {}
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open(f'/proc/{entry}/cmdline', 'rb') as file:
                    found[int(entry)] = file.read()
            except OSError:
                continue
    return found


def test_a_container_task_with_breakout_options_fails_and_its_variables_stay_off_the_command_line(
        container_emulator, unique_id):
    client, location = container_emulator
    pool_id, job_id = unique_id('safe'), unique_id('safe')
    _container_pool(client, pool_id)
    wait_for_nodes(client, pool_id)
    client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool_id)))
    client.create_task(job_id, m.BatchTaskCreateOptions(
        id='breakout', command_line='/bin/sh -c true', container_settings=m.BatchTaskContainerSettings(
            image_name=IMAGE, container_run_options='--privileged -v /:/host --pid=host --user 0')))
    client.create_task(job_id, m.BatchTaskCreateOptions(
        id='copy-env', command_line='/bin/sh -c true', container_settings=m.BatchTaskContainerSettings(
            image_name=IMAGE, container_run_options='-e DEVELOPER_SECRET')))
    password = 'hunter2-' + uuid.uuid4().hex
    client.create_task(job_id, m.BatchTaskCreateOptions(
        id='password', command_line="/bin/sh -c 'env > seen.txt; while [ ! -e release ]; do sleep 0.1; done'",
        environment_settings=[m.EnvironmentSetting(name='DB_PASSWORD', value=password),
                              m.EnvironmentSetting(name='TWO_LINES', value='one\ntwo')],
        container_settings=m.BatchTaskContainerSettings(image_name=IMAGE)))
    for task_id, named in (('breakout', '--privileged'), ('copy-env', 'DEVELOPER_SECRET')):
        info = _completed(client, job_id, task_id, timeout=120).execution_info
        assert (info.result, info.failure_info.code) == ('failure', 'ContainerInvalidSettings'), task_id
        assert named in info.failure_info.message and '--allow-container-run-options' in info.failure_info.message

    seen = eventually(lambda: glob.glob(f'{location}/nodes/**/workitems/{job_id}/job-1/password/wd/seen.txt',
                                        recursive=True), timeout=120, message='the container task runs')[0]
    command_lines = _command_lines()
    assert not [line for line in command_lines.values() if password.encode() in line]  # ps never shows it
    runtimes = {pid: line.split(b'\0') for pid, line in command_lines.items()
                if b'--env-file' in line and job_id.encode() in line}
    assert runtimes, 'the runtime reads the task variables from a file'
    pid, argv = next(iter(runtimes.items()))
    env_file = argv[argv.index(b'--env-file') + 1].decode()
    assert stat.S_IMODE(os.stat(env_file).st_mode) == 0o600
    assert not env_file.startswith(seen.split('/workitems/')[0] + os.sep)  # neither mounted nor listed by the API
    with open(f'/proc/{pid}/environ', 'rb') as file:
        runtime_environment = file.read()
    assert DEVELOPER_SECRET.encode() not in runtime_environment and password.encode() not in runtime_environment
    open(os.path.join(os.path.dirname(seen), 'release'), 'w').close()
    assert _completed(client, job_id, 'password', timeout=120).execution_info.result == 'success'
    inside = open(seen).read()
    assert f'DB_PASSWORD={password}\n' in inside and 'TWO_LINES=one\ntwo\n' in inside  # the container got them
    assert DEVELOPER_SECRET not in inside
    assert not os.path.exists(env_file)  # removed with the task
    client.begin_delete_job(job_id)
    client.begin_delete_pool(pool_id)


def test_a_multi_instance_container_task_runs_in_its_container_under_the_same_rules(container_emulator, unique_id):
    client, _ = container_emulator
    pool_id, job_id = unique_id('mpi'), unique_id('mpi')
    _container_pool(client, pool_id, nodes=2)
    wait_for_nodes(client, pool_id, count=2)
    client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool_id)))
    in_the_image_only = "/bin/sh -c 'test ! -e /usr'"  # the busybox image has no /usr; this machine has
    for task_id, options in (('mpi-inside', ''), ('mpi-breakout', '--privileged')):
        client.create_task(job_id, m.BatchTaskCreateOptions(
            id=task_id, command_line=in_the_image_only,
            multi_instance_settings=m.MultiInstanceSettings(number_of_instances=2,
                                                            coordination_command_line=in_the_image_only),
            container_settings=m.BatchTaskContainerSettings(image_name=IMAGE, container_run_options=options)))
    inside = _completed(client, job_id, 'mpi-inside', timeout=120).execution_info
    assert (inside.result, inside.exit_code) == ('success', 0), inside.failure_info
    breakout = _completed(client, job_id, 'mpi-breakout', timeout=120).execution_info
    assert (breakout.result, breakout.failure_info.code) == ('failure', 'ContainerInvalidSettings')
    client.begin_delete_job(job_id)
    client.begin_delete_pool(pool_id)
