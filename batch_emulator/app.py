"""One place that puts an emulator together: the account, the scheduler and its nodes, the HTTP application.

``create_app`` is what ``python -m batch_emulator`` serves (``__main__``), what ``local.py`` and the pytest
plugin start (as that process), and what in-process tests build. The layers it joins are in
``pyproject.toml`` (``[tool.importlinter]``): the wire (``wire/``) in front, the runtime (``runtime/``) running
what the service (``service/``) decides, and the portal reading the account.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from aiohttp import web

from batch_emulator import portal
from batch_emulator.runtime.faults import FaultInjector
from batch_emulator.runtime.node import NodeRunner
from batch_emulator.runtime.scheduler import DEFAULT_NODE_QUOTA, Scheduler
from batch_emulator.service.state import BatchState
from batch_emulator.wire import control_routes, routes
from batch_emulator.wire.connections import DEFAULT_BODY_TIMEOUT, ConnectionGuard, default_max_connections
from batch_emulator.wire.server import (
    DEFAULT_ACCOUNT_KEY,
    DEFAULT_ACCOUNT_NAME,
    GUARD,
    MAX_REQUEST_BODY_BYTES,
    SCHEDULER,
    SETTINGS,
    STATE,
    RecentRequests,
    allowed_hosts,
    browser_guard_middleware,
    error_middleware,
    request_log_middleware,
    service_middleware,
)


def create_app(*, data_dir: str, account_name: str = DEFAULT_ACCOUNT_NAME,
               account_key: str = DEFAULT_ACCOUNT_KEY, base_url: str = 'http://127.0.0.1',
               request_log_path: str | None = None, node_step_seconds: float = 0.2,
               storage_connection_string: str | None = None,
               faults: FaultInjector | None = None, persist: bool = False,
               pass_environment: Iterable[str] = (), dedicated_node_quota: int = DEFAULT_NODE_QUOTA,
               spot_node_quota: int = DEFAULT_NODE_QUOTA, max_connections: int | None = None,
               body_timeout: float = DEFAULT_BODY_TIMEOUT) -> web.Application:
    """The application; ``serve_app`` runs it with its connections bounded (``connections.py``)."""
    guard = ConnectionGuard(max_connections or default_max_connections(), body_timeout)
    # The guard inside the error handler: a body cut short is a 408 in the log, not an unexpected error.
    middlewares = [request_log_middleware, error_middleware, guard.middleware, browser_guard_middleware,
                   service_middleware]
    if faults is not None:
        middlewares.insert(4, faults.middleware)  # after the error handler: injected errors get the service's body
    app = web.Application(middlewares=middlewares, client_max_size=MAX_REQUEST_BODY_BYTES)
    nodes_dir = os.path.join(data_dir, 'nodes')
    image_bin = os.path.join(data_dir, 'image', 'bin')
    os.makedirs(nodes_dir, mode=0o700, exist_ok=True)
    NodeRunner.install_image(image_bin)
    state = BatchState(account_name, base_url, nodes_dir)
    if persist:
        from batch_emulator.runtime.persistence import Journal, restore
        state.journal = Journal(data_dir)
        restore(state, state.journal)
    runner = NodeRunner(image_bin, account_name, base_url, pass_environment)
    app[STATE] = state
    app[GUARD] = guard
    app[SCHEDULER] = Scheduler(state, runner, node_step_seconds=node_step_seconds, faults=faults,
                               dedicated_node_quota=dedicated_node_quota, spot_node_quota=spot_node_quota)
    app[SETTINGS] = {'account_name': account_name, 'account_key': account_key, 'base_url': base_url,
                     'allowed_hosts': allowed_hosts(base_url),
                     'request_log_path': request_log_path, 'recent_requests': RecentRequests(500),
                     'storage_connection_string': storage_connection_string}
    portal.add_routes(app)
    control_routes.add_routes(app)  # /_emulator/...: before the Batch routes' catch-all
    routes.add_routes(app)
    app.on_startup.append(_start)
    app.on_cleanup.append(_stop)
    return app


async def _start(app: web.Application) -> None:
    settings = app[SETTINGS]
    if settings['request_log_path']:
        settings['request_log_file'] = open(settings['request_log_path'], 'a', encoding='utf-8',  # noqa: SIM115
                                            opener=lambda path, flags: os.open(path, flags, 0o600))
    app[SCHEDULER].start()


async def _stop(app: web.Application) -> None:
    await app[SCHEDULER].stop()
    if app[STATE].journal is not None:
        app[STATE].journal.close()
    log_file = app[SETTINGS].pop('request_log_file', None)
    if log_file is not None:
        log_file.close()
