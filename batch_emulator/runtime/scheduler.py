"""Which task runs on which node slot, and when.

The scheduler lives on the server's event loop. The account state tells it when
something happened (a pool was created, tasks were added, a job ended) and it
reacts: it boots nodes through creating -> starting -> waitingforstarttask ->
idle (or starttaskfailed), hands each pending task to a node with a free slot
as soon as there is one, runs job preparation tasks before a job's first task
on a node and release tasks when the job ends, and reports every outcome back
to the state. All state changes happen on the one event loop, so a task can
never be started twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Coroutine
from typing import Any

from batch_emulator.common import layout
from batch_emulator.common.clock import parse_duration
from batch_emulator.common.loops import survive
from batch_emulator.runtime import multi_instance, preemption
from batch_emulator.runtime.faults import FaultInjector
from batch_emulator.runtime.job_tokens import JobTokens
from batch_emulator.runtime.node import NodeLost, NodeRunner, failure
from batch_emulator.runtime.pool_nodes import PoolNodes, completed
from batch_emulator.service import job_manager
from batch_emulator.service.jobs import AUTO_POOL
from batch_emulator.service.scaling import run_autoscale
from batch_emulator.service.schedules import run_job_schedules
from batch_emulator.service.state import BatchState, Job, Node, Pool, Task, iso, utc_now

_log = logging.getLogger('batch_emulator.runtime.scheduler')


DEFAULT_NODE_QUOTA = 64  # dedicated nodes per account (and as many spot nodes), like a new Batch account's quota
# onAllTasksComplete=terminatejob acts this long after the last task completed, if all still are: the service
# does not act at once (a task terminated and reactivated 0.1 s apart left its job active; Go recording TestTask).
ALL_TASKS_COMPLETE_SECONDS = 1.0


class Scheduler:
    def __init__(self, state: BatchState, runner: NodeRunner, *, node_step_seconds: float = 0.2,
                 faults: FaultInjector | None = None, dedicated_node_quota: int = DEFAULT_NODE_QUOTA,
                 spot_node_quota: int = DEFAULT_NODE_QUOTA) -> None:
        self.state = state
        self.faults = faults
        self.runner = runner
        self.node_step_seconds = node_step_seconds
        self._wake = asyncio.Event()
        self._background: set[asyncio.Task] = set()
        self._task_runs: dict[Task, asyncio.Task] = {}
        self._loop_task: asyncio.Task | None = None
        self.tokens = JobTokens()  # AZ_BATCH_AUTHENTICATION_TOKEN of running tasks (authenticationTokenSettings)
        self.nodes = PoolNodes(state, runner, node_step_seconds=node_step_seconds,
                               dedicated_node_quota=dedicated_node_quota, spot_node_quota=spot_node_quota,
                               spawn=self._spawn, work_available=self.work_available)
        state.hooks = self
        runner.on_agent_lost = self.nodes.agent_lost

    # ----- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        self._loop_task = asyncio.get_running_loop().create_task(self._dispatch_loop())
        # After a restart from a location folder: every node reboots (its start task runs
        # again) and pools return to their target size.
        while self.state.pending_restart:
            pool = self.state.pending_restart.popleft()
            for node in list(pool.nodes.values()):
                self._spawn(self.nodes.reboot(pool, node))
            self._spawn(self.nodes.bring_to_target(pool))
        if self.state.journal is not None:
            self._spawn(self._flush_journal_regularly())
        self._spawn(self._reap_regularly())
        self._spawn(run_job_schedules(self.state))
        self._spawn(run_autoscale(self.state))
        self._spawn(preemption.run_spot_preemptions(self.nodes, self.faults))

    async def _flush_journal_regularly(self) -> None:
        while True:  # a pass that fails is logged and the loop goes on (loops.survive)
            await asyncio.sleep(0.25)
            survive('flushing the journal', self.state.journal.flush, None)

    async def _reap_regularly(self) -> None:
        while True:  # orphans that tasks left behind and that ended by themselves
            await asyncio.sleep(1)
            survive('reaping orphaned processes', self.runner.reap, None)

    async def stop(self) -> None:
        await self.runner.close()
        for job in list(self._background) + ([self._loop_task] if self._loop_task else []):
            job.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task:
        job = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(job)
        job.add_done_callback(self._finished_background)
        return job

    def spawn_logged(self, coroutine: Coroutine[Any, Any, Any], what: str) -> None:
        """Background work whose failure is logged as a warning (not an emulator error): e.g. a log upload."""
        async def guarded() -> None:
            try:
                await coroutine
            except Exception as error:  # noqa: BLE001 - any failure of the work itself
                _log.warning('%s failed: %s', what, error)
        self._spawn(guarded())

    def _finished_background(self, job: asyncio.Task) -> None:
        self._background.discard(job)
        if not job.cancelled() and job.exception() is not None:
            _log.error('emulator background work failed', exc_info=job.exception())

    # ----- hooks called by the state -------------------------------------------------------

    def work_available(self) -> None:
        self._wake.set()

    def pool_created(self, pool: Pool) -> None:
        self._spawn(self.nodes.bring_to_target(pool))

    def pool_deleted(self, pool: Pool) -> None:
        self._spawn(self.nodes.delete_pool(pool))

    def stop_task(self, task: Task) -> None:
        self.runner.stop(task)
        if task.spec.get('multiInstanceSettings'):
            multi_instance.stop(self, task)

    def requeue_task(self, task: Task) -> None:
        self.runner.lose(task, asked=True)  # a job disabled with requeue: the task goes back to the queue
        if task.spec.get('multiInstanceSettings'):
            multi_instance.stop(self, task)

    def job_ended(self, job: Job) -> None:
        self._spawn(self._end_job(job))

    def all_tasks_complete(self, job: Job) -> None:
        self._spawn(self._end_job_after_its_tasks(job))

    async def _end_job_after_its_tasks(self, job: Job) -> None:
        await asyncio.sleep(ALL_TASKS_COMPLETE_SECONDS)
        self.state.end_job_if_all_tasks_still_complete(job)

    # ----- dispatch ------------------------------------------------------------------------

    async def _dispatch_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            survive('dispatching tasks', self.dispatch, None)  # keep scheduling whatever one pass hit

    def dispatch(self) -> None:
        for pool in list(self.state.pools.values()):
            if pool.state == 'active' and pool.pending:
                self._dispatch_pool(pool)

    def _dispatch_pool(self, pool: Pool) -> None:
        nodes = [node for node in pool.nodes.values()
                 if node.state in ('idle', 'running') and node.scheduling_state == 'enabled']
        if not nodes:
            return
        if pool.reorder:  # the service schedules a higher-priority job's tasks first (stable within a job)
            def priority(task: Task) -> int:
                job = self.state.jobs.get(task.job_id.lower())
                return -int(job.spec.get('priority') or 0) if job else 0
            pool.pending = deque(sorted(pool.pending, key=priority))
            pool.reorder = False
        pack = (pool.spec.get('taskSchedulingPolicy') or {}).get('nodeFillType', 'spread').lower() == 'pack'
        slots = pool.slots_per_node
        waiting: list[Task] = []
        running_per_job: dict[str, int] = {}
        now = time.monotonic()
        next_retry = None  # the earliest back-off that ends after this pass
        while pool.pending:
            task = pool.pending[0]
            job = self.state.jobs.get(task.job_id.lower())
            if job is None or task.state != 'active' or job.tasks.get(task.id.lower()) is not task:
                pool.pending.popleft()
                continue
            if task.not_before > now:  # a retry waits out its back-off
                waiting.append(pool.pending.popleft())
                next_retry = min(next_retry or task.not_before, task.not_before)
                continue
            limit = int(job.spec.get('maxParallelTasks', -1))
            if limit != -1:
                running = running_per_job.setdefault(job.id, job.counts['running'])
                if running >= limit:
                    waiting.append(pool.pending.popleft())
                    continue
            if job.state != 'active' or job_manager.waits_for_manager(job, task):  # the job manager starts first
                waiting.append(pool.pending.popleft())
                continue
            if task.spec.get('dependsOn') and self.state.hold_until_dependencies_met(job, task):
                pool.pending.popleft()  # it waits for its dependencies (e.g. put back by a restart)
                continue
            if task.spec.get('multiInstanceSettings'):  # as many nodes as instances, each with a free slot
                free = [node for node in nodes if slots - node.running_slots >= task.required_slots
                        and not node.exclusive and not self._preparation_blocks(node, job)]
                wanted = multi_instance.instances(task)
                if len(free) < wanted:
                    waiting.append(pool.pending.popleft())
                    continue
                pool.pending.popleft()
                self._start_multi_instance(pool, free[:wanted], job, task)
                continue
            manager = job_manager.manager_of(job, task)
            candidates = [node for node in nodes if slots - node.running_slots >= task.required_slots
                          and not node.exclusive and not self._preparation_blocks(node, job)
                          and (manager is None or job_manager.admits(node, manager))]
            if not candidates:
                if any(slots - node.running_slots >= task.required_slots for node in nodes):
                    waiting.append(pool.pending.popleft())  # this job cannot run here; others may
                    continue
                self._preempt_for(pool, nodes, job)
                break
            node = candidates[0] if pack else min(candidates, key=lambda n: n.running_slots)
            pool.pending.popleft()
            if limit != -1:
                running_per_job[job.id] += 1
            self._start(pool, node, job, task)
        pool.pending.extendleft(reversed(waiting))
        if next_retry is not None:
            asyncio.get_running_loop().call_later(next_retry - now, self.work_available)

    def _preempt_for(self, pool: Pool, nodes: list[Node], job: Job) -> None:
        """A higher-priority job waits: a running task of a lower-priority job that allows task preemption is
        requeued to make room (one at a time per pool), as the service preempts for priority."""
        if pool.preempting:
            return
        priority = int(job.spec.get('priority') or 0)
        victims = []
        for node in nodes:
            for running in node.running.values():
                other = self.state.jobs.get(running.job_id.lower())
                if other is not None and other.spec.get('allowTaskPreemption') \
                        and int(other.spec.get('priority') or 0) < priority and running.state == 'running':
                    victims.append((int(other.spec.get('priority') or 0), running))
        if victims:
            victim = min(victims, key=lambda pair: pair[0])[1]
            pool.preempting.add(victim)
            self.runner.lose(victim)  # its run ends as if its node were lost: requeued (not counted)

    @staticmethod
    def _preparation_blocks(node: Node, job: Job) -> bool:
        preparation = node.prepared_jobs.get(job.id, {}).get('preparation', {})
        return preparation.get('result') == 'failure' and job.spec['jobPreparationTask'].get('waitForSuccess', True)

    @staticmethod
    def _occupy(node: Node, key: str, task: Task) -> None:
        """The task (or one instance of it) takes its slots on the node."""
        node.running[key] = task
        node.running_slots += task.required_slots
        node.set_state('running')

    @staticmethod
    def _release(node: Node, key: str) -> None:
        """Its run ended: the slots are free again; a node with nothing left running is idle."""
        node.running.pop(key, None)
        node.running_slots = sum(t.required_slots for t in node.running.values())
        if not node.running:
            node.exclusive = False
            if node.state == 'running':
                node.set_state('idle')

    def _start(self, pool: Pool, node: Node, job: Job, task: Task) -> None:
        self._occupy(node, task.id + '\0' + job.id, task)
        node.exclusive = job_manager.runs_exclusive(job, task)
        needs_preparation = bool(job.spec.get('jobPreparationTask')) and job.id not in node.prepared_jobs
        self.state.task_started(task, pool, node, state='preparing' if needs_preparation else 'running')
        self._task_runs[task] = self._spawn(self._run(pool, node, job, task, needs_preparation))

    def task_environment(self, pool: Pool, node: Node, job: Job, task: Task, task_dir: str,
                         extra: dict[str, str] | None = None) -> dict[str, str]:
        """A task's environment on a node: the node's, the AZ_BATCH_* of its job and task, then the job's common
        and the task's own environment settings."""
        prep_dir = layout.task_dir(node.root_dir, job.id, layout.JOB_PREPARATION)
        variables = {**self.nodes.node_variables(pool, node), 'AZ_BATCH_JOB_ID': job.id, 'AZ_BATCH_TASK_ID': task.id,
                     'AZ_BATCH_JOB_PREP_DIR': prep_dir, 'AZ_BATCH_JOB_PREP_WORKING_DIR': os.path.join(prep_dir, 'wd'),
                     **self.tokens.variables(task), **(extra or {})}
        settings = list(job.spec.get('commonEnvironmentSettings') or []) + list(
            task.spec.get('environmentSettings') or [])
        return self.runner.environment(node.root_dir, task_dir, variables, settings)

    def _start_multi_instance(self, pool: Pool, nodes: list[Node], job: Job, task: Task) -> None:
        keys = [f'{task.id}\0{job.id}\0{index}' for index in range(len(nodes))]
        for node, key in zip(nodes, keys, strict=True):
            self._occupy(node, key, task)
        self.state.task_started(task, pool, nodes[0])

        async def run() -> None:
            try:
                await multi_instance.run(self, pool, nodes, job, task)
            finally:
                self._task_runs.pop(task, None)
                for node, key in zip(nodes, keys, strict=True):
                    self._release(node, key)
                self.work_available()
        self._task_runs[task] = self._spawn(run())

    async def _run(self, pool: Pool, node: Node, job: Job, task: Task, needs_preparation: bool) -> None:
        key = task.id + '\0' + job.id
        try:
            if needs_preparation and not await self._prepare_job(pool, node, job):
                self.state.task_requeued(task)  # preparation failed here: the task waits for another node
                return
            self.state.task_running(task)
            task_dir = layout.task_dir(node.root_dir, job.id, task.id)
            env = self.task_environment(pool, node, job, task, task_dir)
            death = self.faults.node_dies() if self.faults else None
            if death is not None:
                asyncio.get_running_loop().call_later(death, self.nodes.kill_node, pool, node)
            container, mismatch = self._container_for(pool, task.spec)
            if mismatch:
                self.state.task_finished(task, None, mismatch)
                return
            try:
                exit_code, problem = await self.runner.execute(
                    task, command_line=task.spec['commandLine'], task_dir=task_dir, env=env,
                    resource_files=task.spec.get('resourceFiles') or [],
                    output_files=task.spec.get('outputFiles') or [],
                    max_wall_clock_seconds=parse_duration((task.spec.get('constraints') or {})
                                                          .get('maxWallClockTime')),
                    on_started=lambda pid, started: self._process_started(task, pid, started), container=container)
            except NodeLost as lost:
                self.state.task_requeued(task, asked=lost.asked)
                return
            if node.id not in pool.nodes:  # the node went away while the task was starting or finishing
                self.state.task_requeued(task)
                return
            node.total_tasks_run += 1
            if problem is None:
                node.total_tasks_succeeded += 1
            node.recent_tasks.append({'taskUrl': f'{self.state.base_url}/jobs/{job.id}/tasks/{task.id}',
                                      'jobId': job.id, 'taskId': task.id, 'taskState': 'completed',
                                      'executionInfo': {k: v for k, v in task.execution_info.items()}})
            self.state.task_finished(task, exit_code, problem)
        finally:
            self._task_runs.pop(task, None)
            pool.preempting.discard(task)
            self._release(node, key)
            self.work_available()

    def _container_for(self, pool: Pool, spec: dict) -> tuple[tuple | None, dict | None]:
        """(runtime and containerSettings, or None; a failure when the task and its pool disagree). The spec: a
        pool with containerConfiguration needs tasks with containerSettings, and a pool without refuses them."""
        pool_has = bool(pool.spec['virtualMachineConfiguration'].get('containerConfiguration'))
        settings = spec.get('containerSettings')
        if pool_has and settings and self.state.container_runtime:
            return (self.state.container_runtime, settings), None
        if not pool_has and not settings:
            return None, None
        reason = ('The task has containerSettings but its pool has no containerConfiguration.' if settings else
                  'The pool runs container tasks (containerConfiguration): the task needs containerSettings.')
        return None, failure('ContainerInvalidSettings', reason)  # TaskFailureInformationCodes (documented)

    def _process_started(self, task: Task, pid: int, started: int | None) -> None:
        task.process_id, task.process_start_time = pid, started
        self.state.changed('task', task)  # recorded at once, so that a restart can stop the process
        if self.state.journal is not None:
            self.state.journal.flush_soon()

    async def _prepare_job(self, pool: Pool, node: Node, job: Job) -> bool:
        """Runs the job preparation task once per node; False when it failed and must succeed first."""
        spec = job.spec['jobPreparationTask']
        status = {'state': 'running', 'startTime': iso(utc_now()), 'retryCount': 0,
                  'taskRootDirectory': layout.task_folder(job.id, layout.JOB_PREPARATION)}
        node.prepared_jobs[job.id] = {'preparation': status}
        try:
            problem = await self._run_job_level_task(pool, node, job, spec, 'jobpreparation', status)
        except NodeLost:  # it did not complete: it runs again before the job's next task here (the spec)
            node.prepared_jobs.pop(job.id, None)
            raise
        return not (problem and spec.get('waitForSuccess', True))

    async def _end_job(self, job: Job) -> None:
        """After a job ends: wait for its runs to stop, run release tasks, forget a deleted job."""
        runs = [run for task, run in self._task_runs.items() if task.job_id == job.id]
        await asyncio.gather(*runs, return_exceptions=True)
        release = job.spec.get('jobReleaseTask')
        pool = self.state.pools.get(job.pool_id.lower())
        if release and pool is not None:
            await asyncio.gather(*(self._release_job(pool, node, job, release) for node in list(pool.nodes.values())
                                   if job.id in node.prepared_jobs), return_exceptions=True)
        if job.state == 'completed':  # its auto pool's lifetime is over (a deleted job's: when it is forgotten)
            self.state.end_auto_pool(job.execution_info.get(AUTO_POOL))
        if job.state == 'deleting':
            await asyncio.sleep(self.node_step_seconds)
            self.state.forget_job(job)

    async def _release_job(self, pool: Pool, node: Node, job: Job, spec: dict) -> None:
        status = {'state': 'running', 'startTime': iso(utc_now()),
                  'taskRootDirectory': layout.task_folder(job.id, layout.JOB_RELEASE)}
        node.prepared_jobs[job.id]['release'] = status
        with contextlib.suppress(NodeLost):
            await self._run_job_level_task(pool, node, job, spec, 'jobrelease', status, default_seconds=900)

    async def _run_job_level_task(self, pool: Pool, node: Node, job: Job, spec: dict, folder: str, status: dict,
                                  default_seconds: float | None = None) -> dict | None:
        """A job preparation or release task on one node; fills in its status, returns its failure."""
        task_dir = layout.task_dir(node.root_dir, job.id, folder)
        variables = self.nodes.node_variables(pool, node) | {'AZ_BATCH_JOB_ID': job.id,
                                                        'AZ_BATCH_TASK_ID': spec.get('id', folder)}
        env = self.runner.environment(node.root_dir, task_dir, variables,
                                      list(job.spec.get('commonEnvironmentSettings') or []) +
                                      list(spec.get('environmentSettings') or []))
        limit = (spec.get('constraints') or {}).get('maxWallClockTime') or spec.get('maxWallClockTime')
        exit_code, problem = await self.runner.execute(
            (folder, job.id, node.id), command_line=spec['commandLine'], task_dir=task_dir, env=env,
            resource_files=spec.get('resourceFiles') or [],
            max_wall_clock_seconds=parse_duration(limit) or default_seconds)
        completed(status, exit_code, problem)
        return problem
