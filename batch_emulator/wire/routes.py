"""URL -> handler: the route table, from the spec's operations (and each older api-version's own).

The handlers are in ``pool_routes``, ``job_routes``, ``file_routes``, ``node_routes``, ``schedule_routes`` and
``certificate_routes`` (the older api-versions' certificate operations, ``contract/certificates.py``);
each takes a ``results.Context`` (state, path parameters, query, checked body) and returns a result, and
``adapter.wrap`` does the HTTP around it. An operation of the spec without a handler answers 501 naming it;
a path outside the spec gets the service's InvalidUri.
"""

from __future__ import annotations

from aiohttp import web

from batch_emulator.common.errors import BatchServiceError
from batch_emulator.contract import versions
from batch_emulator.contract.schema import Operation, is_spec_path, operations
from batch_emulator.wire.adapter import wrap
from batch_emulator.wire.certificate_routes import CERTIFICATE_HANDLERS
from batch_emulator.wire.file_routes import FILE_HANDLERS
from batch_emulator.wire.job_routes import JOB_HANDLERS
from batch_emulator.wire.node_routes import NODE_HANDLERS
from batch_emulator.wire.pool_routes import POOL_HANDLERS
from batch_emulator.wire.results import Context, Result
from batch_emulator.wire.schedule_routes import SCHEDULE_HANDLERS

# operation id of the spec -> handler. Every other operation of the spec answers 501 naming it.
HANDLERS = {**POOL_HANDLERS, **JOB_HANDLERS, **FILE_HANDLERS, **NODE_HANDLERS, **SCHEDULE_HANDLERS,
            **CERTIFICATE_HANDLERS}


def _not_implemented(operation: Operation):
    async def handler(ctx: Context) -> Result:
        raise BatchServiceError('NotImplemented', f'The local Batch emulator does not implement '
                                                  f'{operation.operation_id} ({operation.method} {operation.path}).')
    return handler


async def not_in_spec(request: web.Request) -> web.Response:
    """A path of the spec with a method it does not have, or no path of the spec at all: the service's errors."""
    if is_spec_path(request.path) or versions.is_older_path(request):
        raise BatchServiceError('UnsupportedHttpVerb', values={'HttpVerb': request.method})
    if request.path.rstrip('/').lower() in ('/lifetimepoolstats', '/lifetimejobstats'):  # recorded [J:pool/lifetime]
        raise BatchServiceError('LifetimeStatsAPIRetired', 'Lifetime statistics API was retired on 04/30/2023',
                                status=400)
    raise BatchServiceError('InvalidUri', values={'RequestUri': request.path})


def add_routes(app: web.Application) -> None:
    for operation in operations():
        handler = HANDLERS.get(operation.operation_id) or _not_implemented(operation)
        app.router.add_route(operation.method, operation.route, wrap(operation, handler))
    for operation in versions.older_operations():  # ListNodeAgentSkus (from its successor), the certificates
        handler = HANDLERS.get(operation.operation_id) or _not_implemented(operation)
        app.router.add_route(operation.method, operation.route, wrap(operation, handler))
    app.router.add_route('*', '/{tail:.*}', not_in_spec)
