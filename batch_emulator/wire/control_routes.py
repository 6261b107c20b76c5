"""The emulator's own control endpoints, under ``/_emulator/``: what a test asks of Azure, not of Batch.

Like Azurite's and LocalStack's internal endpoints, they live under a path prefix of their own that no Batch
REST path has, so one is never mistaken for a Batch operation (and none is in the spec's route table):

``POST /_emulator/pools/{poolId}/nodes/{nodeId}/preempt``
    Azure takes the Spot node back (``runtime/preemption.py``): 200 with ``{"poolId", "nodeId", "state"}``;
    404 ``PoolNotFound`` / ``NodeNotFound``; 409 ``NodeNotSpot`` for a dedicated node, ``NodeNotPreemptible``
    for one that is not up (creating, starting, rebooting, already preempted...).

They pass the same checks as the Batch operations (``Host`` names this emulator, no other origin's page,
SharedKey signed with the account key) but need no ``api-version``. Any other path under ``/_emulator/``
gets 404 ``EmulatorEndpointNotFound`` naming the endpoints there are. The fault middleware never fails them.
"""

from __future__ import annotations

from aiohttp import web

from batch_emulator.common.errors import BatchServiceError
from batch_emulator.runtime import preemption
from batch_emulator.wire import auth
from batch_emulator.wire.server import SCHEDULER, SETTINGS, STATE

PREFIX = '/_emulator'
ENDPOINTS = ('POST /_emulator/pools/{poolId}/nodes/{nodeId}/preempt',)


def _control(handler):
    """SharedKey first (a Batch operation's Bearer job token is no key to these), then the handler."""
    async def checked(request: web.Request) -> web.StreamResponse:
        settings = request.app[SETTINGS]
        auth.verify_shared_key(request.method, request.raw_path, request.headers, settings['account_name'],
                               settings['account_key'])
        return await handler(request)
    checked.emulator_control = True  # type: ignore[attr-defined]  # service_middleware and faults pass it by
    return checked


async def preempt_node(request: web.Request) -> web.Response:
    pool, node = request.app[STATE].get_node(request.match_info['pool_id'], request.match_info['node_id'])
    preemption.preempt(request.app[SCHEDULER].nodes, pool, node)
    return web.json_response({'poolId': pool.id, 'nodeId': node.id, 'state': node.state})


async def unknown_endpoint(request: web.Request) -> web.Response:
    raise BatchServiceError('EmulatorEndpointNotFound', f'The local emulator has no control endpoint '
                                                        f'{request.method} {request.path[:200]}; it has: '
                                                        + ', '.join(ENDPOINTS) + '.', status=404)


def add_routes(app: web.Application) -> None:
    """Before the Batch routes: their catch-all would answer these paths with InvalidUri."""
    app.router.add_route('POST', PREFIX + '/pools/{pool_id}/nodes/{node_id}/preempt', _control(preempt_node))
    app.router.add_route('*', PREFIX + '/{tail:.*}', _control(unknown_endpoint))
