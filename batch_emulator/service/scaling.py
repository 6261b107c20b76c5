"""Autoscale: enable, disable and evaluate a pool's formula, and the periodic runs that resize it.

The formula language is ``autoscale/formula.py`` (parsed with Lark); this room holds the rules around it,
as the service applies them (recorded [P:scale_pools, J:as/*]): enable answers 200 with a new ETag
and evaluates at once (the targets are already the formula's when the call returns); evaluate
answers 200 with an AutoScaleRun, formula evaluation errors inside it, and changes nothing;
disable keeps the targets. Every ``autoScaleEvaluationInterval`` the formula runs again against
the samples the emulator records from its own tasks and nodes, and the pool is resized.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import os
import time
from collections import deque
from typing import TYPE_CHECKING

from batch_emulator import autoscale
from batch_emulator.common.clock import parse_duration
from batch_emulator.common.errors import BatchServiceError, invalid_property, missing_property
from batch_emulator.common.loops import survive, survive_async
from batch_emulator.service.models import Pool, duration_text, iso, utc_now
from batch_emulator.service.room import Room

if TYPE_CHECKING:  # the rooms this one is connected to (state.BatchState connects them)
    from batch_emulator.service.pools import PoolRoom

SAMPLE_SECONDS = 5.0  # how often the sampled variables are recorded (the service: every 30 s)
_KEPT_SAMPLES = 25 * 60 * 60 // int(SAMPLE_SECONDS)  # a day's history and an hour more
_MIN_INTERVAL, _MAX_INTERVAL = 5 * 60, 168 * 3600  # the spec's bounds of autoScaleEvaluationInterval
_ENABLE_SPACING = 30.0  # enable requests for one pool at least this far apart (TooManyEnableAutoScaleRequests)


def _checked_formula(formula: str) -> str:
    problem = autoscale.validate(formula)
    if problem is not None:
        raise BatchServiceError(problem.code, problem.message, values=dict(problem.values) or None)
    return formula


def _checked_interval(text: str | None) -> str:
    seconds = parse_duration(text or 'PT15M')
    if seconds is None or not _MIN_INTERVAL <= seconds <= _MAX_INTERVAL:
        raise invalid_property('autoScaleEvaluationInterval', text,
                               'The value must be between 5 minutes and 168 hours.')
    return duration_text(seconds)


class AutoScaleRoom(Room):
    """Autoscale on pools: every rule about it."""

    clock_speed = 1.0  # >1 runs evaluation intervals faster (for tests); set by --clock-speed

    def connect(self, *, pool_room: PoolRoom) -> None:
        """The room autoscale calls: pools (the pool a formula sizes)."""
        self.pool_room = pool_room

    def check_autoscale_on_create(self, body: dict) -> None:
        """A pool created with enableAutoScale: a formula and no fixed targets (the spec's rules)."""
        if not body.get('enableAutoScale'):
            return
        if not body.get('autoScaleFormula'):
            raise missing_property('autoScaleFormula')
        for name in ('targetDedicatedNodes', 'targetLowPriorityNodes'):
            if body.get(name) is not None:
                raise invalid_property(name, body[name], 'The property cannot be specified when enableAutoScale '
                                                         'is true.')
        _checked_formula(body['autoScaleFormula'])
        body['autoScaleEvaluationInterval'] = _checked_interval(body.get('autoScaleEvaluationInterval'))

    def evaluate_pool_formula(self, pool: Pool) -> autoscale.AutoScaleResult:
        """The pool's own formula on the pool as it is (at create: before the pool is stored)."""
        return self._evaluate(pool, pool.spec['autoScaleFormula'])

    def start_autoscale(self, pool: Pool, result: autoscale.AutoScaleResult, *, created: bool = False) -> None:
        """The first evaluation, at create or enable, evaluated before anything about the pool changed: the
        targets are the formula's at once. A create's run is the pool's autoScaleRun, stamped with its
        creation [N:AutoScale]; an enable's is not shown: a pool enabled later has none [P:scale_pools, J:as/*]
        and one created with autoscale keeps its creation's [N:AutoScale]."""
        if created:
            pool.autoscale_run = {'timestamp': iso(pool.creation_time), **result.to_json()}
        self._schedule_next(pool)
        self._apply(pool, result)

    def enable_autoscale(self, pool_id: str, body: dict) -> Pool:
        pool = self.pool_room.active_pool(pool_id)
        enabled = bool(pool.spec.get('enableAutoScale'))
        if not enabled and pool.allocation_state != 'steady':
            raise BatchServiceError('PoolBeingResized')
        if pool.autoscale_enabled_at is not None and time.monotonic() - pool.autoscale_enabled_at < _ENABLE_SPACING:
            raise BatchServiceError('TooManyEnableAutoScaleRequests')
        formula = body.get('autoScaleFormula') or (pool.spec.get('autoScaleFormula') if enabled else None)
        if not formula:
            raise missing_property('autoScaleFormula')
        interval = _checked_interval(body.get('autoScaleEvaluationInterval')
                                     or (pool.spec.get('autoScaleEvaluationInterval') if enabled else None))
        result = self._evaluate(pool, _checked_formula(formula))  # before the pool changes
        # The spacing counts enable requests only: one 11 s after a create with autoscale succeeded [N:AutoScale].
        pool.autoscale_enabled_at = time.monotonic()
        pool.spec.update(enableAutoScale=True, autoScaleFormula=formula, autoScaleEvaluationInterval=interval)
        pool.touch()
        self.start_autoscale(pool, result)
        self.changed('pool', pool)
        return pool

    def disable_autoscale(self, pool_id: str) -> Pool:
        pool = self.pool_room.active_pool(pool_id)
        for key in ('autoScaleFormula', 'autoScaleEvaluationInterval'):
            pool.spec.pop(key, None)
        pool.spec['enableAutoScale'] = False
        pool.autoscale_run = None
        pool.touch()
        pool.allocation_state_transition_time = pool.last_modified  # recorded: bumped, though still steady
        self.changed('pool', pool)
        return pool

    async def evaluate_autoscale(self, pool_id: str, formula: str) -> dict:
        """The AutoScaleRun of ``formula`` on the pool as it is now; nothing is applied.

        Evaluated off the event loop: other requests are answered meanwhile.
        """
        pool = self.pool_room.get_pool(pool_id)
        if not pool.spec.get('enableAutoScale'):
            raise BatchServiceError('OperationInvalidForCurrentState',
                                    'Autoscale must be enabled on the pool to evaluate a formula.')
        return self._run(await self._evaluate_off_loop(pool, _checked_formula(formula)))

    # ----- the periodic runs -----------------------------------------------------------------

    def record_samples(self) -> None:
        """One sample of every variable the emulator can measure, for each autoscale pool."""
        now = utc_now()
        load = min(100.0, os.getloadavg()[0] / (os.cpu_count() or 1) * 100)
        for pool in self.pools.values():
            if not pool.spec.get('enableAutoScale'):
                continue
            jobs = [job for job in self.jobs.values() if job.pool_id.lower() == pool.id.lower()]
            counts = {name: sum(job.counts[name] for job in jobs)
                      for name in ('active', 'running', 'succeeded', 'failed')}
            usable = sum(node.state in ('idle', 'running') for node in pool.nodes.values())
            values = {'$ActiveTasks': counts['active'], '$RunningTasks': counts['running'],
                      '$PendingTasks': counts['active'] + counts['running'],
                      '$SucceededTasks': counts['succeeded'], '$FailedTasks': counts['failed'],
                      '$SampleNodeCount': len(pool.nodes), '$UsableNodeCount': usable,
                      '$PreemptedNodeCount': sum(node.state == 'preempted' for node in pool.nodes.values()),
                      '$CPUPercent': load if pool.nodes else 0.0}
            for name, value in values.items():
                pool.samples.setdefault(name, deque(maxlen=_KEPT_SAMPLES)).append((now, float(value)))

    async def run_due_autoscale(self) -> None:
        """Evaluates the formula of every pool whose evaluation interval has passed, and resizes it.

        Each pool's run is evaluated off the event loop and applied only if the pool still has that formula;
        a run that fails for any reason is logged and the other pools' runs go on.
        """
        for pool in list(self.pools.values()):
            if pool.spec.get('enableAutoScale') and pool.state == 'active' and time.monotonic() >= pool.autoscale_due:
                self._schedule_next(pool)
                formula = pool.spec['autoScaleFormula']
                result = await survive_async(f'the autoscale run of pool {pool.id}',  # the others' go on
                                             functools.partial(self._evaluate_off_loop, pool, formula), None)
                if result is not None and self.pools.get(pool.id.lower()) is pool and pool.state == 'active' and \
                        pool.spec.get('enableAutoScale') and pool.spec.get('autoScaleFormula') == formula:
                    pool.autoscale_run = self._run(result)
                    self._apply(pool, result)

    def _schedule_next(self, pool: Pool) -> None:
        interval = parse_duration(pool.spec.get('autoScaleEvaluationInterval')) or 15 * 60
        pool.autoscale_due = time.monotonic() + interval / self.clock_speed

    def _context(self, pool: Pool) -> autoscale.AutoScaleContext:
        """The pool as a formula sees it, copied (the samples go on being recorded meanwhile)."""
        return autoscale.AutoScaleContext(
            now=utc_now(), current_dedicated_nodes=pool.count_nodes(dedicated=True),
            current_low_priority_nodes=pool.count_nodes(dedicated=False),  # preempted nodes included (the docs)
            target_dedicated_nodes=int(pool.spec.get('targetDedicatedNodes') or 0),
            target_low_priority_nodes=int(pool.spec.get('targetLowPriorityNodes') or 0),
            task_slots_per_node=pool.slots_per_node, samples={name: list(history) for name, history in
                                                              pool.samples.items()},
            sample_period=datetime.timedelta(seconds=sample_seconds(self.clock_speed)))

    def _evaluate(self, pool: Pool, formula: str) -> autoscale.AutoScaleResult:
        """On the event loop: only at create and enable, where the budgets of ``autoscale`` bound it."""
        return autoscale.evaluate(formula, self._context(pool))

    async def _evaluate_off_loop(self, pool: Pool, formula: str) -> autoscale.AutoScaleResult:
        """Parsed here (quick, and Lark's parser stays on one thread), evaluated in a worker thread."""
        try:
            parsed = autoscale.parse(formula)
        except autoscale.FormulaSyntaxError:
            return self._evaluate(pool, formula)  # answers the syntax error at once
        return await asyncio.to_thread(autoscale.evaluate, parsed, self._context(pool))

    @staticmethod
    def _run(result: autoscale.AutoScaleResult) -> dict:
        return {'timestamp': iso(utc_now()), **result.to_json()}

    def _apply(self, pool: Pool, result: autoscale.AutoScaleResult) -> None:
        """The formula's targets become the pool's; a change starts a resize (allocation state only)."""
        if result.error is not None:
            return
        targets = {'targetDedicatedNodes': result.target_dedicated_nodes,
                   'targetLowPriorityNodes': result.target_low_priority_nodes}
        if all(int(pool.spec.get(key) or 0) == value for key, value in targets.items()):
            return
        pool.spec.update(targets)
        pool.resize_errors = []
        pool.allocation_state, pool.allocation_state_transition_time = 'resizing', pool.last_modified
        self.changed('pool', pool)
        self.hooks.pool_created(pool)  # the scheduler brings the node count to the new target


def sample_seconds(clock_speed: float) -> float:
    """Seconds between two samples: SAMPLE_SECONDS, shorter with --clock-speed, never below a quarter second."""
    return max(0.25, SAMPLE_SECONDS / clock_speed)


async def run_autoscale(state: AutoScaleRoom) -> None:
    """Records samples every few seconds and runs each autoscale pool's formula when it is due.

    A pass that fails is logged and the loop goes on (``loops``).
    """
    while True:
        await asyncio.sleep(sample_seconds(state.clock_speed))
        survive('recording autoscale samples', state.record_samples, None)
        await survive_async('the periodic autoscale runs', state.run_due_autoscale, None)
