"""Injected faults: the emulator can fail some requests on purpose, reproducibly.

``--fault-rate R`` (with ``--fault-seed S``) answers a share R of the Batch REST requests with
a 500 or 503, or drops the connection without an answer — either *before* acting (nothing
happened) or *after* acting (the request took effect but its response is lost, so a create can
succeed while the client sees an error). Clients must survive both, as they must against the
real service. ``--node-failure-rate R`` makes a node "die" while it runs a task: the process
is killed, the task is requeued as the service does, and a new node replaces the old one.
``--spot-preemption-rate R`` preempts each Spot node R times a minute on average (``runtime/preemption.py``).
The portal's pages and the emulator's control endpoints (``/_emulator/...``) are never failed.
"""

from __future__ import annotations

import logging
import math
import random

from aiohttp import web

from batch_emulator.common.errors import BatchServiceError

_log = logging.getLogger('batch_emulator.runtime.faults')
KINDS = ('500-before', '503-before', 'drop-before', '500-after', 'drop-after')


class FaultInjector:
    def __init__(self, rate: float, seed: int | None = None, node_failure_rate: float = 0.0,
                 spot_preemption_rate: float = 0.0) -> None:
        if not 0 <= rate <= 1 or not 0 <= node_failure_rate <= 1:
            raise ValueError('fault rates are shares between 0 and 1')
        if not 0 <= spot_preemption_rate < float('inf'):
            raise ValueError('the spot preemption rate is a number of preemptions per minute, 0 or more')
        self.rate = rate
        self.node_failure_rate = node_failure_rate
        self.spot_preemption_rate = spot_preemption_rate
        # Three streams: which requests fail does not change which task runs lose their node, nor which
        # spot nodes are preempted.
        self._random = random.Random(seed)
        self._node_random = random.Random(None if seed is None else seed + 1_000_003)
        self._spot_random = random.Random(None if seed is None else seed + 2_000_003)

    def choose(self) -> str | None:
        """The fault for the next request, or None."""
        if self.rate and self._random.random() < self.rate:
            return self._random.choice(KINDS)
        return None

    def node_dies(self) -> float | None:
        """Seconds into a task run after which its node dies, or None (most runs)."""
        if self.node_failure_rate and self._node_random.random() < self.node_failure_rate:
            return self._node_random.uniform(0.0, 0.2)
        return None

    def spot_preempted(self, seconds: float) -> bool:
        """Is a spot node preempted within the next ``seconds``? (a Poisson process of the rate per minute)"""
        chance = 1.0 - math.exp(-self.spot_preemption_rate * seconds / 60.0)
        return bool(self.spot_preemption_rate) and self._spot_random.random() < chance

    @web.middleware
    async def middleware(self, request: web.Request, handler) -> web.StreamResponse:
        matched = request.match_info.handler
        if getattr(matched, 'public_page', False) or getattr(matched, 'emulator_control', False):
            return await handler(request)
        kind = self.choose()
        if kind is None:
            return await handler(request)
        _log.info('injecting %s into %s %s', kind, request.method, request.path)
        if kind.endswith('-after'):
            await handler(request)  # it takes effect; the client will not hear about it
        if kind.startswith('drop'):
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=500)  # never reaches the client: the connection is gone
        status = 503 if kind.startswith('503') else 500
        raise BatchServiceError('ServerBusy' if status == 503 else 'InternalError', status=status)
