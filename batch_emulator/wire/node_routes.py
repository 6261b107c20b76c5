"""Handlers of the node operations and file deletes: operation id -> handler (merged into routes.HANDLERS).

Each takes the request's ``Context`` and returns what the service answers with (``results.py``); the adapter
writes the status and headers as recorded (section 1.2 and 5): node actions answer 202 (reboot, reimage,
deallocate, start) or 200 (scheduling) with DataServiceId only; node users 201/200/200; file deletes 200.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import uuid

from batch_emulator.common.errors import BatchServiceError, invalid_property
from batch_emulator.runtime.files import inside, node_log_files
from batch_emulator.runtime.node import _insert_blob_path, _redact
from batch_emulator.runtime.outbound import OutboundRefused
from batch_emulator.wire.file_routes import node_root, task_root
from batch_emulator.wire.results import Body, Context, Done, Entity, Page, stamped


def _ids(ctx: Context) -> tuple[str, str]:
    return ctx.params['poolId'], ctx.params['nodeId']


async def disable_scheduling(ctx: Context) -> Done:
    node, option = ctx.state.disable_scheduling(*_ids(ctx), ctx.body)  # the body is optional (JS sends none)
    ctx.scheduler.nodes.disable_scheduling(node, option)
    return Done()


async def enable_scheduling(ctx: Context) -> Done:
    ctx.state.enable_scheduling(*_ids(ctx))
    return Done()


async def reimage_node(ctx: Context) -> Done:
    option = ctx.state.requeue_option(ctx.body, 'nodeReimageOption')
    pool, node = ctx.state.node_for_action(*_ids(ctx), 'reimage')
    ctx.scheduler.nodes.reimage_node(pool, node, option)
    return Done()


async def deallocate_node(ctx: Context) -> Done:
    option = ctx.state.requeue_option(ctx.body, 'nodeDeallocateOption')
    pool, node = ctx.state.node_for_action(*_ids(ctx), 'deallocate')
    ctx.scheduler.nodes.deallocate_node(pool, node, option)
    return Done()


async def start_node(ctx: Context) -> Done:
    pool, node = ctx.state.node_for_action(*_ids(ctx), 'start')
    ctx.scheduler.nodes.start_node(pool, node)
    return Done()


async def remove_nodes(ctx: Context) -> Done:
    pool, nodes, option = ctx.state.nodes_to_remove(ctx.params['poolId'], ctx.body)
    ctx.scheduler.nodes.remove_nodes(pool, nodes, option)
    return stamped(pool)


# ----- node users, remote login, extensions --------------------------------------------------------

async def create_node_user(ctx: Context) -> Done:
    name = ctx.state.create_node_user(*_ids(ctx), ctx.body)
    return Done(location=f'{ctx.path}/{name}')  # DataServiceId + Location, no ETag


async def replace_node_user(ctx: Context) -> Done:
    ctx.state.replace_node_user(*_ids(ctx), ctx.params['userName'], ctx.body)
    return Done()  # DataServiceId: the user's URL [Go TestNode]


async def delete_node_user(ctx: Context) -> Done:
    ctx.state.delete_node_user(*_ids(ctx), ctx.params['userName'])
    return Done()


async def remote_login_settings(ctx: Context) -> Body:
    settings = ctx.state.remote_login_settings(*_ids(ctx))
    return Body(settings, 'Microsoft.Azure.Batch.Protocol.Entities.RemoteLoginSettings')


async def list_node_extensions(ctx: Context) -> Page:
    return Page(ctx.state.node_extensions(*_ids(ctx)), 'extensions')


async def get_node_extension(ctx: Context) -> Entity:
    return Entity(ctx.state.node_extension(*_ids(ctx), ctx.params['extensionName']), 'extensions')


async def upload_node_logs(ctx: Context) -> Body:
    """The node's agent logs (here: its start task's output and the emulator's record of the node) go to the
    container URL, under the virtual folder the service names (recorded [P:nodes, J:node/logs]).

    Only an http(s) URL a node may reach (``outbound.py``; otherwise 400 InvalidPropertyValue naming
    containerUrl, a choice: the service's answer is not recorded), and only the node's own log files,
    never a link a start task planted in their place (``files.node_log_files``, ``open_within``)."""
    state, body, scheduler = ctx.state, ctx.body, ctx.scheduler
    pool, node = state.get_node(*_ids(ctx))
    runner = scheduler.runner
    try:
        await runner.outbound.check_resolved(body['containerUrl'])
    except OutboundRefused as error:
        raise invalid_property('containerUrl', _redact(body['containerUrl']), str(error)) from None
    folder = f"{state.account_name}-{secrets.token_hex(8).upper()}/{pool.id.lower()}/{node.id}/{uuid.uuid4()}"
    files = await asyncio.to_thread(node_log_files, node.root_dir)
    summary = (f'node {node.id} of pool {pool.id}: state {node.state}, scheduling {node.scheduling_state}, '
               f'{node.total_tasks_run} tasks run, {node.total_tasks_succeeded} succeeded\n').encode()
    # As on a node: the answer comes at once, the agent uploads afterwards (a failure is the node's log's to show).

    def url(name: str) -> str:
        return _insert_blob_path(body['containerUrl'], f'{folder}/{name}')
    for path in files:
        scheduler.spawn_logged(runner.upload(path, url(os.path.basename(path)), [], node.root_dir),
                               f'uploading {os.path.basename(path)}')
    scheduler.spawn_logged(runner.upload_data(summary, len(summary), url('emulator-node.log')),
                           'uploading emulator-node.log')
    return Body({'virtualDirectoryName': folder, 'numberOfFilesUploaded': len(files) + 1},
                'Microsoft.Azure.Batch.Protocol.Entities.UploadBatchServiceLogsResult')


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


async def _delete_file(ctx: Context, root: str) -> Done:
    recursive = ctx.query.get('recursive', 'false').lower() == 'true'
    await asyncio.to_thread(_delete, root, ctx.params['filePath'], recursive)
    return Done()  # 200, chunked only (recorded)


async def delete_task_file(ctx: Context) -> Done:
    return await _delete_file(ctx, task_root(ctx)[0])


async def delete_node_file(ctx: Context) -> Done:
    return await _delete_file(ctx, node_root(ctx)[0])


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
