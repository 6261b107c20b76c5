"""Handlers of the node operations and file deletes: operation id -> handler (merged into routes.HANDLERS).

Status codes and headers as recorded (section 1.2 and 5): node actions answer 202 (reboot, reimage,
deallocate, start) or 200 (scheduling) with DataServiceId only; node users 201/200/200; file deletes 200.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import uuid

from aiohttp import web

from batch_emulator.common.errors import BatchServiceError, invalid_property
from batch_emulator.runtime.files import inside, node_log_files
from batch_emulator.runtime.node import _insert_blob_path, _redact
from batch_emulator.runtime.outbound import OutboundRefused
from batch_emulator.wire.file_routes import node_root, task_root
from batch_emulator.wire.respond import entity_response, list_response, read_body, state_of, writer
from batch_emulator.wire.server import SCHEDULER, SETTINGS, json_response


async def _optional_body(request: web.Request) -> dict:
    """A body the SDKs may leave out (the JS SDK sends disablescheduling with none: 200)."""
    if not request.can_read_body or (request.content_length == 0):
        return {}
    return await read_body(request)


def _ids(request: web.Request) -> tuple[str, str]:
    return request.match_info['poolId'], request.match_info['nodeId']


async def disable_scheduling(request: web.Request) -> web.Response:
    node, option = state_of(request).disable_scheduling(*_ids(request), await _optional_body(request))
    request.app[SCHEDULER].nodes.disable_scheduling(node, option)
    return json_response(request, None, acted=True)


async def enable_scheduling(request: web.Request) -> web.Response:
    state_of(request).enable_scheduling(*_ids(request))
    return json_response(request, None, acted=True)


async def reimage_node(request: web.Request) -> web.Response:
    state = state_of(request)
    option = state.requeue_option(await _optional_body(request), 'nodeReimageOption')
    pool, node = state.node_for_action(*_ids(request), 'reimage')
    request.app[SCHEDULER].nodes.reimage_node(pool, node, option)
    return json_response(request, None, status=202, acted=True)


async def deallocate_node(request: web.Request) -> web.Response:
    state = state_of(request)
    option = state.requeue_option(await _optional_body(request), 'nodeDeallocateOption')
    pool, node = state.node_for_action(*_ids(request), 'deallocate')
    request.app[SCHEDULER].nodes.deallocate_node(pool, node, option)
    return json_response(request, None, status=202, acted=True)


async def start_node(request: web.Request) -> web.Response:
    pool, node = state_of(request).node_for_action(*_ids(request), 'start')
    request.app[SCHEDULER].nodes.start_node(pool, node)
    return json_response(request, None, status=202, acted=True)


async def remove_nodes(request: web.Request) -> web.Response:
    pool, nodes, option = state_of(request).nodes_to_remove(request.match_info['poolId'], await read_body(request))
    request.app[SCHEDULER].nodes.remove_nodes(pool, nodes, option)
    return json_response(request, None, status=202, etag=pool.etag, last_modified=pool.last_modified, acted=True)


# ----- node users, remote login, extensions --------------------------------------------------------

async def create_node_user(request: web.Request) -> web.Response:
    name = state_of(request).create_node_user(*_ids(request), await read_body(request))
    url = f"{request.app[SETTINGS]['base_url']}{request.path}/{name}"
    return json_response(request, None, status=201, location=url)  # DataServiceId + Location, no ETag


async def replace_node_user(request: web.Request) -> web.Response:
    state_of(request).replace_node_user(*_ids(request), request.match_info['userName'], await read_body(request))
    return json_response(request, None, acted=True)  # DataServiceId: the user's URL [Go TestNode]


async def delete_node_user(request: web.Request) -> web.Response:
    state_of(request).delete_node_user(*_ids(request), request.match_info['userName'])
    return json_response(request, None)


async def remote_login_settings(request: web.Request) -> web.Response:
    settings = state_of(request).remote_login_settings(*_ids(request))
    metadata = f"{request.app[SETTINGS]['base_url']}/$metadata#Microsoft.Azure.Batch.Protocol.Entities." \
               'RemoteLoginSettings'
    return json_response(request, {'odata.metadata': metadata, **writer(request)(settings)}, acted=True)


async def list_node_extensions(request: web.Request) -> web.Response:
    return list_response(request, state_of(request).node_extensions(*_ids(request)), 'extensions')


async def get_node_extension(request: web.Request) -> web.Response:
    extension = state_of(request).node_extension(*_ids(request), request.match_info['extensionName'])
    return entity_response(request, extension, 'extensions')


async def upload_node_logs(request: web.Request) -> web.Response:
    """The node's agent logs (here: its start task's output and the emulator's record of the node) go to the
    container URL, under the virtual folder the service names (recorded [P:nodes, J:node/logs]).

    Only an http(s) URL a node may reach (``outbound.py``; otherwise 400 InvalidPropertyValue naming
    containerUrl, a choice: the service's answer is not recorded), and only the node's own log files,
    never a link a start task planted in their place (``files.node_log_files``, ``open_within``)."""
    state = state_of(request)
    body = await read_body(request)
    pool, node = state.get_node(*_ids(request))
    runner = request.app[SCHEDULER].runner
    try:
        await runner.outbound.check_resolved(body['containerUrl'])
    except OutboundRefused as error:
        raise invalid_property('containerUrl', _redact(body['containerUrl']), str(error)) from None
    folder = f"{state.account_name}-{secrets.token_hex(8).upper()}/{pool.id.lower()}/{node.id}/{uuid.uuid4()}"
    files = await asyncio.to_thread(node_log_files, node.root_dir)
    summary = (f'node {node.id} of pool {pool.id}: state {node.state}, scheduling {node.scheduling_state}, '
               f'{node.total_tasks_run} tasks run, {node.total_tasks_succeeded} succeeded\n').encode()
    # As on a node: the answer comes at once, the agent uploads afterwards (a failure is the node's log's to show).
    scheduler = request.app[SCHEDULER]

    def url(name: str) -> str:
        return _insert_blob_path(body['containerUrl'], f'{folder}/{name}')
    for path in files:
        scheduler.spawn_logged(runner.upload(path, url(os.path.basename(path)), [], node.root_dir),
                               f'uploading {os.path.basename(path)}')
    scheduler.spawn_logged(runner.upload_data(summary, len(summary), url('emulator-node.log')),
                           'uploading emulator-node.log')
    metadata = f"{request.app[SETTINGS]['base_url']}/$metadata#Microsoft.Azure.Batch.Protocol.Entities." \
               'UploadBatchServiceLogsResult'
    return json_response(request, {'odata.metadata': metadata, 'virtualDirectoryName': folder,
                                   'numberOfFilesUploaded': len(files) + 1})


# ----- file deletes ---------------------------------------------------------------------------------

def _delete(root: str, relative: str, recursive: bool) -> None:
    path = inside(root, relative)
    if path is None or path == os.path.realpath(root) or not os.path.lexists(path):
        raise BatchServiceError('FileNotFound')
    if os.path.isdir(path) and not os.path.islink(path):
        if os.listdir(path) and not recursive:
            raise BatchServiceError('OperationInvalidForCurrentState', 'The directory is not empty; delete it with '
                                                                       'recursive=true.')
        shutil.rmtree(path)
    else:
        os.remove(path)


async def _delete_file(request: web.Request, root: str) -> web.Response:
    recursive = request.query.get('recursive', 'false').lower() == 'true'
    await asyncio.to_thread(_delete, root, request.match_info['filePath'], recursive)
    return json_response(request, None)  # 200, chunked only (recorded)


async def delete_task_file(request: web.Request) -> web.Response:
    return await _delete_file(request, task_root(request)[0])


async def delete_node_file(request: web.Request) -> web.Response:
    return await _delete_file(request, node_root(request)[0])


NODE_HANDLERS = {
    'Nodes_DisableNodeScheduling': disable_scheduling,
    'Nodes_EnableNodeScheduling': enable_scheduling,
    'Nodes_ReimageNode': reimage_node,
    'Nodes_DeallocateNode': deallocate_node,
    'Nodes_StartNode': start_node,
    'Pools_RemoveNodes': remove_nodes,
    'Nodes_CreateNodeUser': create_node_user,
    'Nodes_ReplaceNodeUser': replace_node_user,
    'Nodes_DeleteNodeUser': delete_node_user,
    'Nodes_GetNodeRemoteLoginSettings': remote_login_settings,
    'Nodes_ListNodeExtensions': list_node_extensions,
    'Nodes_GetNodeExtension': get_node_extension,
    'Nodes_UploadNodeLogs': upload_node_logs,
    'Tasks_DeleteTaskFile': delete_task_file,
    'Nodes_DeleteNodeFile': delete_node_file,
}
