"""Handlers of the pool operations (and the account's images and applications): operation id -> handler.

Status codes are the service's, checked exactly by the SDK: a create is 201, a delete 202 (then the pool reads as
``deleting`` until it is gone), HEAD exists 200/404.
"""

from __future__ import annotations

import asyncio
import datetime
import re

from aiohttp import web

from batch_emulator.common.clock import utc_now
from batch_emulator.common.errors import BatchServiceError, missing_property
from batch_emulator.runtime import containers
from batch_emulator.service.state import BatchState, iso
from batch_emulator.wire.respond import (
    entity_response,
    list_response,
    read_body,
    state_of,
    writer,
)
from batch_emulator.wire.server import (
    SCHEDULER,
    SETTINGS,
    json_response,
)

# ----- supported images ---------------------------------------------------------------------

async def list_supported_images(request: web.Request) -> web.Response:
    from batch_emulator.service.images import SUPPORTED_IMAGES
    return list_response(request, [dict(image) for image in SUPPORTED_IMAGES], 'supportedimages')


# ----- applications: the emulated account has no application packages ---------------------------

async def list_applications(request: web.Request) -> web.Response:
    return list_response(request, [], 'applications')


async def get_application(request: web.Request) -> web.Response:
    raise BatchServiceError('ApplicationNotFound', 'The specified application does not exist.', status=404)


# ----- pools ---------------------------------------------------------------------------------

async def _find_container_runtime(state: BatchState, body: dict) -> None:
    """A pool body asking for containers: the runtime is found off the event loop, once."""
    containers_wanted = (body.get('virtualMachineConfiguration') or {}).get('containerConfiguration')
    if containers_wanted and state.container_runtime is None:
        state.container_runtime = await asyncio.to_thread(containers.find_runtime, state.container_runtime_setting)


async def create_pool(request: web.Request) -> web.Response:
    state, body = state_of(request), await read_body(request)
    await _find_container_runtime(state, body)
    pool = state.create_pool(body)
    return json_response(request, None, status=201, etag=pool.etag, last_modified=pool.last_modified,
                         location=f"{request.app[SETTINGS]['base_url']}/pools/{pool.id}")


async def list_pools(request: web.Request) -> web.Response:
    return list_response(request, state_of(request).list_pools(), 'pools')


async def get_pool(request: web.Request) -> web.Response:
    state = state_of(request)
    pool = state.get_pool(request.match_info['poolId'])
    return entity_response(request, state.pool_resource(pool), 'pools', pool.etag, pool.last_modified)


async def pool_exists(request: web.Request) -> web.Response:
    pool = state_of(request).get_pool(request.match_info['poolId'])  # a 404 without a body (error_response)
    return json_response(request, None, etag=pool.etag, last_modified=pool.last_modified)


async def delete_pool(request: web.Request) -> web.Response:
    state_of(request).delete_pool(request.match_info['poolId'])
    return json_response(request, None, status=202)


async def update_pool(request: web.Request) -> web.Response:
    state, body = state_of(request), await read_body(request)
    await _find_container_runtime(state, body)
    pool = state.update_pool(request.match_info['poolId'], body, replace=False)
    return json_response(request, None, etag=pool.etag, last_modified=pool.last_modified, acted=True)


async def replace_pool_properties(request: web.Request) -> web.Response:
    pool = state_of(request).update_pool(request.match_info['poolId'], await read_body(request), replace=True)
    return json_response(request, None, status=204, etag=pool.etag, last_modified=pool.last_modified, acted=True)


async def resize_pool(request: web.Request) -> web.Response:
    """A body without a target is refused before the pool is looked up (recorded: 400 on a missing pool)."""
    body = await read_body(request)
    if body.get('targetDedicatedNodes') is None and body.get('targetLowPriorityNodes') is None:
        raise missing_property('targetDedicatedNodes and/or targetLowPriorityNodes')
    pool = state_of(request).resize_pool(request.match_info['poolId'], body)
    return json_response(request, None, status=202, etag=pool.etag, last_modified=pool.last_modified, acted=True)


async def stop_resize_pool(request: web.Request) -> web.Response:
    pool = state_of(request).stop_resize(request.match_info['poolId'])
    return json_response(request, None, status=202, etag=pool.etag, last_modified=pool.last_modified, acted=True)


async def enable_autoscale(request: web.Request) -> web.Response:
    pool = state_of(request).enable_autoscale(request.match_info['poolId'], await read_body(request))
    return json_response(request, None, etag=pool.etag, last_modified=pool.last_modified, acted=True)


async def disable_autoscale(request: web.Request) -> web.Response:
    pool = state_of(request).disable_autoscale(request.match_info['poolId'])
    return json_response(request, None, etag=pool.etag, last_modified=pool.last_modified, acted=True)


async def evaluate_autoscale(request: web.Request) -> web.Response:
    formula = (await read_body(request))['autoScaleFormula']
    run = await state_of(request).evaluate_autoscale(request.match_info['poolId'], formula)  # off the event loop
    metadata = f"{request.app[SETTINGS]['base_url']}/$metadata#Microsoft.Azure.Batch.Protocol.Entities.AutoScaleRun"
    return json_response(request, {'odata.metadata': metadata, **writer(request)(run)}, acted=True)  # no ETag


async def list_pool_usage_metrics(request: web.Request) -> web.Response:
    """Core hours per pool in 30-minute windows (recorded [J:pool/usage]), of the nodes the emulator runs now."""
    now = utc_now()
    start = now.replace(minute=now.minute - now.minute % 30, second=0, microsecond=0)
    items = []
    for pool in state_of(request).pools.values():
        size = re.search(r'_[a-z]+?(\d+)', pool.spec['vmSize'].lower())  # standard_d2s_v3: 2 cores
        cores = int(size.group(1)) if size else 1
        hours = sum((now - max(node.allocation_time, start)).total_seconds() / 3600 for node in pool.nodes.values())
        items.append({'poolId': pool.id, 'startTime': iso(start),
                      'endTime': iso(start + datetime.timedelta(minutes=30)), 'vmSize': pool.spec['vmSize'],
                      'totalCoreHours': round(hours * cores, 6)})
    return list_response(request, items, 'poolusagemetrics')


async def list_pool_node_counts(request: web.Request) -> web.Response:
    counts = []
    for pool in state_of(request).pools.values():
        names = ('creating', 'idle', 'offline', 'preempted', 'rebooting', 'reimaging', 'running', 'starting',
                 'startTaskFailed', 'leavingPool', 'unknown', 'unusable', 'waitingForStartTask',
                 'deallocated', 'deallocating', 'upgradingOS')
        kinds = {}
        for key, dedicated in (('dedicated', True), ('lowPriority', False)):  # spot nodes count as lowPriority
            states = [node.state for node in pool.nodes.values() if node.dedicated is dedicated]
            kinds[key] = {name: states.count(name.lower()) for name in names} | {'total': len(states)}
        counts.append({'poolId': pool.id, **kinds})
    return list_response(request, counts, 'poolnodecounts')


# ----- nodes ---------------------------------------------------------------------------------

async def list_nodes(request: web.Request) -> web.Response:
    return list_response(request, state_of(request).list_nodes(request.match_info['poolId']), 'nodes')


async def get_node(request: web.Request) -> web.Response:
    state = state_of(request)
    pool, node = state.get_node(request.match_info['poolId'], request.match_info['nodeId'])
    return entity_response(request, state.node_resource(pool, node), 'nodes')  # no ETag or Last-Modified


async def reboot_node(request: web.Request) -> web.Response:
    state = state_of(request)
    option = 'requeue'  # the spec's default
    if request.can_read_body and request.content_length:  # optional; parsed by the spec's schema all the same
        option = state.requeue_option(await read_body(request), 'nodeRebootOption')
    pool, node = state.node_for_action(request.match_info['poolId'], request.match_info['nodeId'], 'reboot')
    if node.state not in ('idle', 'running', 'starttaskfailed', 'unusable'):
        raise BatchServiceError('OperationInvalidForCurrentState', 'The node is not in a state that allows reboot.')
    request.app[SCHEDULER].nodes.reboot_node(pool, node, option)
    return json_response(request, None, status=202, acted=True)  # a node action: DataServiceId only


POOL_HANDLERS = {  # operation id of the spec -> handler
    'Pools_ListSupportedImages': list_supported_images,
    'Pools_ListPoolNodeCounts': list_pool_node_counts,
    'Pools_CreatePool': create_pool,
    'Pools_ListPools': list_pools,
    'Pools_GetPool': get_pool,
    'Pools_PoolExists': pool_exists,
    'Pools_UpdatePool': update_pool,
    'Pools_DeletePool': delete_pool,
    'Pools_ReplacePoolProperties': replace_pool_properties,
    'Pools_ResizePool': resize_pool,
    'Pools_StopPoolResize': stop_resize_pool,
    'Pools_EnablePoolAutoScale': enable_autoscale,
    'Pools_DisablePoolAutoScale': disable_autoscale,
    'Pools_EvaluatePoolAutoScale': evaluate_autoscale,
    'Nodes_ListNodes': list_nodes,
    'Nodes_GetNode': get_node,
    'Nodes_RebootNode': reboot_node,
    'Applications_ListApplications': list_applications,
    'Applications_GetApplication': get_application,
    'Pools_ListPoolUsageMetrics': list_pool_usage_metrics,
}
