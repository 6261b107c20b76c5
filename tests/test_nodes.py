"""Node operations and file deletes, driven by the real azure-batch SDK over HTTP (status codes and
headers as recorded: recorded-service-behaviour.md sections 1.2, 4 "Node states" and 5)."""

from __future__ import annotations

import datetime

import pytest
from azure.batch import BatchClient
from azure.batch import models as m
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from tests.conftest import eventually
from tests.test_emulator import _pool, create_pool, raw, raw_json, validate, wait_for_nodes, wait_for_task


def _node_state(client, pool_id: str, node_id: str) -> dict:
    return raw_json(client, f'/pools/{pool_id}/nodes/{node_id}')


def test_scheduling_off_keeps_tasks_waiting_and_on_lets_them_run(batch_client, pool_and_job):
    pool_id, job_id = pool_and_job
    node = wait_for_nodes(batch_client, pool_id)[0]
    off = raw(batch_client, 'POST', f'/pools/{pool_id}/nodes/{node.id}/disablescheduling')  # no body (JS SDK)
    assert off.status_code == 200 and 'ETag' not in off.headers and 'DataServiceId' in off.headers
    assert _node_state(batch_client, pool_id, node.id)['schedulingState'] == 'disabled'
    batch_client.create_task(job_id, m.BatchTaskCreateOptions(id='waits', command_line='true'))
    created = batch_client.get_task(job_id, 'waits')
    assert created.state == 'active'
    batch_client.enable_node_scheduling(pool_id, node.id)
    assert wait_for_task(batch_client, job_id, 'waits').execution_info.result == 'success'
    assert batch_client.get_node(pool_id, node.id).scheduling_state == 'enabled'


def test_disabling_scheduling_with_requeue_puts_the_running_task_back(batch_client, pool_and_job):
    pool_id, job_id = pool_and_job
    node = wait_for_nodes(batch_client, pool_id)[0]
    batch_client.create_task(job_id, m.BatchTaskCreateOptions(id='long', command_line='sleep 30'))
    eventually(lambda: batch_client.get_task(job_id, 'long').state == 'running', message='running')
    batch_client.disable_node_scheduling(pool_id, node.id, m.BatchNodeDisableSchedulingOptions(
        node_disable_scheduling_option='requeue'))
    task = eventually(lambda: (t := batch_client.get_task(job_id, 'long')).state == 'active' and t, message='requeued')
    assert task.execution_info.requeue_count == 1
    batch_client.terminate_task(job_id, 'long')


def test_node_users_remote_login_and_extensions(batch_client, pool_and_job):
    pool_id, _ = pool_and_job
    node = wait_for_nodes(batch_client, pool_id)[0]
    users = f'/pools/{pool_id}/nodes/{node.id}/users'
    created = raw(batch_client, 'POST', users, {'name': 'learner', 'isAdmin': False, 'password': 'secret-1A',
                                               'expiryTime': '2030-01-01T00:00:00Z'})
    assert created.status_code == 201 and 'ETag' not in created.headers
    assert created.headers['Location'] == created.headers['DataServiceId'] == \
        f'{batch_client._config.endpoint}{users}/learner'
    again = raw(batch_client, 'POST', users, {'name': 'learner', 'password': 'x'})
    assert (again.status_code, again.json()['code']) == (409, 'NodeUserExists')
    assert raw(batch_client, 'PUT', f'{users}/learner', {'password': 'new-2B'}).status_code == 200
    assert raw(batch_client, 'DELETE', f'{users}/learner').status_code == 200
    gone = raw(batch_client, 'DELETE', f'{users}/learner')
    assert (gone.status_code, gone.json()['code']) == (404, 'NodeUserNotFound')

    login = batch_client.get_node_remote_login_settings(pool_id, node.id)
    assert (login.remote_login_ip_address, login.remote_login_port) == ('127.0.0.1', 50000)
    assert login.ipv6_remote_login_ip_address is None and login.ipv6_remote_login_port is None
    extensions = raw_json(batch_client, f'/pools/{pool_id}/nodes/{node.id}/extensions')
    validate(extensions, 'BatchNodeVMExtensionListResult')
    names = [item['vmExtension']['name'] for item in extensions['value']]
    assert names == ['batchNodeExtension']  # the service's own, on every Linux node (recorded)
    one = batch_client.get_node_extension(pool_id, node.id, 'batchNodeExtension')
    assert one.vm_extension.publisher == 'Microsoft.Azure.Extensions'
    with pytest.raises(ResourceNotFoundError):
        batch_client.get_node_extension(pool_id, node.id, 'nothing')


def test_reimage_wipes_the_node_and_boots_it_again(batch_client, pool_and_job):
    pool_id, job_id = pool_and_job
    node = wait_for_nodes(batch_client, pool_id)[0]
    batch_client.create_task(job_id, m.BatchTaskCreateOptions(id='leaves', command_line="/bin/sh -c 'echo hi'"))
    wait_for_task(batch_client, job_id, 'leaves')
    task_dir = f'workitems/{job_id}/job-1/leaves/stdout.txt'
    assert raw(batch_client, 'HEAD', f'/pools/{pool_id}/nodes/{node.id}/files/{task_dir}').status_code == 200
    reimaged = raw(batch_client, 'POST', f'/pools/{pool_id}/nodes/{node.id}/reimage')
    assert reimaged.status_code == 202 and 'ETag' not in reimaged.headers
    busy = raw(batch_client, 'POST', f'/pools/{pool_id}/nodes/{node.id}/reboot')
    assert busy.status_code == 409 and busy.json()['code'] in ('NodeBeingReimaged', 'NodeBeingStarted',
                                                               'NodeBeingCreated')
    wait_for_nodes(batch_client, pool_id)
    assert raw(batch_client, 'HEAD', f'/pools/{pool_id}/nodes/{node.id}/files/{task_dir}').status_code == 404


@pytest.mark.parametrize('option, result, retries', [
    ('terminate', 'failure', 0),       # terminated: completes with failureInfo and does not run again
    ('taskcompletion', 'success', 0),  # left to finish, then the node reboots
    ('requeue', 'success', 1),         # the default: back to the queue, runs again after the reboot
])
def test_a_reboot_does_with_the_running_task_what_its_option_says(batch_client, pool_and_job, option, result,
                                                                 retries):
    pool_id, job_id = pool_and_job
    node = wait_for_nodes(batch_client, pool_id)[0]
    batch_client.create_task(job_id, m.BatchTaskCreateOptions(
        id='busy', command_line='sleep 2'))
    eventually(lambda: batch_client.get_task(job_id, 'busy').state == 'running', message='the task runs')
    rebooted = raw(batch_client, 'POST', f'/pools/{pool_id}/nodes/{node.id}/reboot', {'nodeRebootOption': option})
    assert rebooted.status_code == 202
    assert _node_state(batch_client, pool_id, node.id)['state'] == 'rebooting'
    task = wait_for_task(batch_client, job_id, 'busy')
    assert task.execution_info.result == result
    assert task.execution_info.requeue_count + task.execution_info.retry_count == retries
    if option == 'terminate':
        assert task.execution_info.failure_info.code == 'TaskEnded'
    wait_for_nodes(batch_client, pool_id)


def test_deallocate_then_start(batch_client, pool_and_job):
    pool_id, _ = pool_and_job
    node = wait_for_nodes(batch_client, pool_id)[0]
    assert raw(batch_client, 'POST', f'/pools/{pool_id}/nodes/{node.id}/deallocate').status_code == 202
    first = _node_state(batch_client, pool_id, node.id)
    assert (first['state'], first['schedulingState']) in (('deallocating', 'disabled'), ('deallocated', 'disabled'))
    done = eventually(lambda: (body := _node_state(batch_client, pool_id, node.id))['state'] == 'deallocated'
                      and body, message='deallocated')
    assert done['stateTransitionTime'] == first['stateTransitionTime']  # recorded: kept
    for action, done_word in (('reboot', 'rebooted'), ('reimage', 'reimaged')):
        refused = raw(batch_client, 'POST', f'/pools/{pool_id}/nodes/{node.id}/{action}')
        assert (refused.status_code, refused.json()['code']) == (409, 'OperationInvalidForCurrentState')
        assert f'cannot be {done_word}.' in refused.json()['message']['value']
    assert raw(batch_client, 'POST', f'/pools/{pool_id}/nodes/{node.id}/start').status_code == 202
    node = wait_for_nodes(batch_client, pool_id)[0]
    assert node.scheduling_state == 'enabled'


def test_remove_nodes_shrinks_the_pool(batch_client, unique_id):
    pool_id = unique_id('remove')
    create_pool(batch_client, pool_id, nodes=2)
    nodes = wait_for_nodes(batch_client, pool_id, count=2)
    before = raw_json(batch_client, f'/pools/{pool_id}')
    removed = raw(batch_client, 'POST', f'/pools/{pool_id}/removenodes', {'nodeList': [nodes[0].id]})
    assert removed.status_code == 202 and removed.headers['ETag'] != before['eTag']
    pool = raw_json(batch_client, f'/pools/{pool_id}')
    assert pool['targetDedicatedNodes'] == 1
    eventually(lambda: [n.id for n in batch_client.list_nodes(pool_id)] == [nodes[1].id], message='one left')
    eventually(lambda: batch_client.get_pool(pool_id).allocation_state == 'steady', message='steady')
    unknown = raw(batch_client, 'POST', f'/pools/{pool_id}/removenodes', {'nodeList': ['tvmps_nothing_d']})
    assert (unknown.status_code, unknown.json()['code']) == (404, 'NodeNotFound')
    batch_client.begin_delete_pool(pool_id)


def test_task_and_node_files_are_deleted(batch_client, pool_and_job):
    pool_id, job_id = pool_and_job
    batch_client.create_task(job_id, m.BatchTaskCreateOptions(
        id='makes', command_line="/bin/sh -c 'mkdir -p out/deep && echo x > out/deep/a.txt'"))
    wait_for_task(batch_client, job_id, 'makes')
    files = f'/jobs/{job_id}/tasks/makes/files'
    assert raw(batch_client, 'DELETE', f'{files}/stderr.txt').status_code == 200
    assert raw(batch_client, 'HEAD', f'{files}/stderr.txt').status_code == 404
    missing = raw(batch_client, 'DELETE', f'{files}/stderr.txt')
    assert (missing.status_code, missing.json()['code']) == (404, 'FileNotFound')
    assert raw(batch_client, 'DELETE', f'{files}/wd/out').status_code == 409  # not empty: recursive needed
    deleted = raw(batch_client, 'DELETE', f'{files}/wd/out', query='api-version=2025-06-01&recursive=true')
    assert deleted.status_code == 200
    assert raw(batch_client, 'HEAD', f'{files}/wd/out/deep/a.txt').status_code == 404
    escape = raw(batch_client, 'DELETE', f'{files}/..%2F..%2F..%2Fstartup')
    assert escape.status_code == 404  # nothing outside the task's folder
    node = wait_for_nodes(batch_client, pool_id)[0]
    node_file = f'/pools/{pool_id}/nodes/{node.id}/files/workitems/{job_id}/job-1/makes/stdout.txt'
    assert raw(batch_client, 'DELETE', node_file).status_code == 200


def test_service_logs_are_uploaded_to_the_container(local_stack, unique_id):
    from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas

    environ = local_stack.environment()
    blob_service = BlobServiceClient.from_connection_string(environ['AZURE_STORAGE_CONNECTION_STRING'])
    container = unique_id('logs')
    blob_service.create_container(container)
    sas = generate_container_sas(blob_service.account_name, container, account_key=environ['AZURE_STORAGE_KEY'],
                                 permission=ContainerSasPermissions(write=True, create=True),
                                 expiry=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1))
    batch = BatchClient(local_stack.batch_endpoint, AzureNamedKeyCredential(environ['AZURE_BATCH_ACCOUNT'],
                                                                            environ['AZURE_BATCH_ACCESS_KEY']))
    pool_id = unique_id('LogsPool')
    create_pool(batch, pool_id, start_task=m.BatchStartTask(command_line="/bin/sh -c 'echo started'"))
    node = wait_for_nodes(batch, pool_id)[0]
    result = batch.upload_node_logs(pool_id, node.id, m.UploadBatchServiceLogsOptions(
        container_url=f'{blob_service.url}{container}?{sas}',
        start_time=datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)))
    account, pool_part, node_part, _ = result.virtual_directory_name.split('/')
    assert account.startswith(f"{environ['AZURE_BATCH_ACCOUNT']}-") and (pool_part, node_part) == (
        pool_id.lower(), node.id)
    assert result.number_of_files_uploaded >= 2
    names = eventually(lambda: len(found := sorted(b.name for b in blob_service.get_container_client(container)
                                                   .list_blobs())) == result.number_of_files_uploaded and found,
                       message='the logs uploaded')  # as on a node: the upload follows the answer
    assert f'{result.virtual_directory_name}/stdout.txt' in names
    batch.begin_delete_pool(pool_id)
    blob_service.delete_container(container)
    with pytest.raises(HttpResponseError):
        batch.get_node_remote_login_settings(pool_id, 'tvmps_nothing_d')


def test_a_pool_with_ipv6_public_addresses_gives_an_ipv6_remote_login_on_the_same_port(batch_client, unique_id):
    """Recorded (.NET GetRemoteLoginSettings): ipFamilies IPv4 and IPv6 -> an IPv6 address beside, same port."""
    pool_id = unique_id('ipv6')
    body = _pool(pool_id, targetDedicatedNodes=1, networkConfiguration={
        'publicIPAddressConfiguration': {'ipFamilies': ['IPv4', 'IPv6']}})
    assert raw(batch_client, 'POST', '/pools', body).status_code == 201
    try:
        node = wait_for_nodes(batch_client, pool_id)[0]
        login = raw_json(batch_client, f'/pools/{pool_id}/nodes/{node.id}/remoteloginsettings')
        assert sorted(login) == ['ipv6RemoteLoginIPAddress', 'ipv6RemoteLoginPort', 'odata.metadata',
                                 'remoteLoginIPAddress', 'remoteLoginPort']
        assert login['ipv6RemoteLoginIPAddress'] == '::1' and login['ipv6RemoteLoginPort'] == login['remoteLoginPort']
    finally:
        batch_client.begin_delete_pool(pool_id)
