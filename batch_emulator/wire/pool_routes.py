"""Handlers of the pool operations (and the account's images and applications): operation id -> handler.

Each takes the request's ``Context`` and returns what the service answers with (``results.py``); the adapter
writes it: a create 201 with Location, a delete 202 (then the pool reads as ``deleting`` until it is gone), HEAD
exists 200/404, the status and headers the spec lists for each operation.
"""

from __future__ import annotations

import asyncio
import datetime
import re

from batch_emulator.common.clock import utc_now
from batch_emulator.common.errors import BatchServiceError
from batch_emulator.runtime import containers
from batch_emulator.service.state import BatchState, iso
from batch_emulator.wire.results import Body, Context, Done, Entity, Page, stamped

# ----- supported images ---------------------------------------------------------------------

async def list_supported_images(ctx: Context) -> Page:
    from batch_emulator.service.images import SUPPORTED_IMAGES
    return Page([dict(image) for image in SUPPORTED_IMAGES], 'supportedimages')


# ----- applications: the emulated account has no application packages ---------------------------

async def list_applications(ctx: Context) -> Page:
    return Page([], 'applications')


async def get_application(ctx: Context) -> Entity:
    raise BatchServiceError('ApplicationNotFound', 'The specified application does not exist.', status=404)


# ----- pools ---------------------------------------------------------------------------------

async def _find_container_runtime(state: BatchState, body: dict) -> None:
    """A pool body asking for containers: the runtime is found off the event loop, once."""
    containers_wanted = (body.get('virtualMachineConfiguration') or {}).get('containerConfiguration')
    if containers_wanted and state.container_runtime is None:
        state.container_runtime = await asyncio.to_thread(containers.find_runtime, state.container_runtime_setting)


async def create_pool(ctx: Context) -> Done:
    await _find_container_runtime(ctx.state, ctx.body)
    pool = ctx.state.create_pool(ctx.body)
    return Done(pool.etag, pool.last_modified, location=f'/pools/{pool.id}')


async def list_pools(ctx: Context) -> Page:
    return Page(ctx.state.list_pools(), 'pools')


async def get_pool(ctx: Context) -> Entity:
    pool = ctx.state.get_pool(ctx.params['poolId'])
    return Entity(ctx.state.pool_resource(pool), 'pools', pool.etag, pool.last_modified)


async def pool_exists(ctx: Context) -> Done:
    return stamped(ctx.state.get_pool(ctx.params['poolId']))  # a 404 without a body (error_response)


async def delete_pool(ctx: Context) -> Done:
    ctx.state.delete_pool(ctx.params['poolId'])
    return Done()


async def update_pool(ctx: Context) -> Done:
    await _find_container_runtime(ctx.state, ctx.body)
    return stamped(ctx.state.update_pool(ctx.params['poolId'], ctx.body, replace=False))


async def replace_pool_properties(ctx: Context) -> Done:
    return stamped(ctx.state.update_pool(ctx.params['poolId'], ctx.body, replace=True))


async def resize_pool(ctx: Context) -> Done:
    """A body without a target was refused before the pool is looked up (``checks.py``; recorded: 400 on a
    missing pool)."""
    return stamped(ctx.state.resize_pool(ctx.params['poolId'], ctx.body))


async def stop_resize_pool(ctx: Context) -> Done:
    return stamped(ctx.state.stop_resize(ctx.params['poolId']))


async def enable_autoscale(ctx: Context) -> Done:
    return stamped(ctx.state.enable_autoscale(ctx.params['poolId'], ctx.body))


async def disable_autoscale(ctx: Context) -> Done:
    return stamped(ctx.state.disable_autoscale(ctx.params['poolId']))


async def evaluate_autoscale(ctx: Context) -> Body:
    run = await ctx.state.evaluate_autoscale(ctx.params['poolId'], ctx.body['autoScaleFormula'])  # off the loop
    return Body(run, 'Microsoft.Azure.Batch.Protocol.Entities.AutoScaleRun')  # no ETag


async def list_pool_usage_metrics(ctx: Context) -> Page:
    """Core hours per pool in 30-minute windows (recorded [J:pool/usage]), of the nodes the emulator runs now."""
    now = utc_now()
    start = now.replace(minute=now.minute - now.minute % 30, second=0, microsecond=0)
    items = []
    for pool in ctx.state.pools.values():
        size = re.search(r'_[a-z]+?(\d+)', pool.spec['vmSize'].lower())  # standard_d2s_v3: 2 cores
        cores = int(size.group(1)) if size else 1
        hours = sum((now - max(node.allocation_time, start)).total_seconds() / 3600 for node in pool.nodes.values())
        items.append({'poolId': pool.id, 'startTime': iso(start),
                      'endTime': iso(start + datetime.timedelta(minutes=30)), 'vmSize': pool.spec['vmSize'],
                      'totalCoreHours': round(hours * cores, 6)})
    return Page(items, 'poolusagemetrics')


async def list_pool_node_counts(ctx: Context) -> Page:
    counts = []
    for pool in ctx.state.pools.values():
        names = ('creating', 'idle', 'offline', 'preempted', 'rebooting', 'reimaging', 'running', 'starting',
                 'startTaskFailed', 'leavingPool', 'unknown', 'unusable', 'waitingForStartTask',
                 'deallocated', 'deallocating', 'upgradingOS')
        kinds = {}
        for key, dedicated in (('dedicated', True), ('lowPriority', False)):  # spot nodes count as lowPriority
            states = [node.state for node in pool.nodes.values() if node.dedicated is dedicated]
            kinds[key] = {name: states.count(name.lower()) for name in names} | {'total': len(states)}
        counts.append({'poolId': pool.id, **kinds})
    return Page(counts, 'poolnodecounts')


# ----- nodes ---------------------------------------------------------------------------------

async def list_nodes(ctx: Context) -> Page:
    return Page(ctx.state.list_nodes(ctx.params['poolId']), 'nodes')


async def get_node(ctx: Context) -> Entity:
    pool, node = ctx.state.get_node(ctx.params['poolId'], ctx.params['nodeId'])
    return Entity(ctx.state.node_resource(pool, node), 'nodes')  # no ETag or Last-Modified


async def reboot_node(ctx: Context) -> Done:
    state = ctx.state
    option = state.requeue_option(ctx.body, 'nodeRebootOption')  # the body is optional: requeue without one
    pool, node = state.node_for_action(ctx.params['poolId'], ctx.params['nodeId'], 'reboot')
    if node.state not in ('idle', 'running', 'starttaskfailed', 'unusable'):
        raise BatchServiceError('OperationInvalidForCurrentState', 'The node is not in a state that allows reboot.')
    ctx.scheduler.nodes.reboot_node(pool, node, option)
    return Done()  # a node action: DataServiceId only


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
