"""A pool's nodes from allocation to removal: booting toward the target within the quotas, start tasks, node actions.

The scheduler owns one ``PoolNodes`` (``scheduler.nodes``): it boots nodes through creating -> starting ->
waitingforstarttask -> idle (or starttaskfailed), runs the pool's start task (again after a reboot), and carries
out the node actions whose checks are the state's (``service/nodes.py``): reboot, reimage, deallocate, start,
remove, disable scheduling. Background work goes through the scheduler's ``spawn``; a node that becomes free
tells it through ``work_available``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import Callable, Coroutine
from typing import Any

from batch_emulator.common import layout
from batch_emulator.common.clock import parse_duration
from batch_emulator.runtime import node_start
from batch_emulator.runtime.node import NodeLost, NodeRunner
from batch_emulator.service.state import BatchState, Node, Pool, iso, retry_delay, utc_now

_log = logging.getLogger('batch_emulator.runtime.scheduler')
SPOT_RESTORE_SECONDS = 60.0  # how long a preempted Spot node stays preempted (--spot-restore-seconds)
_REMOVABLE = ('idle', 'starttaskfailed', 'unusable', 'preempted')  # the states a resize down removes nodes in


class PoolNodes:
    spot_restore_seconds = SPOT_RESTORE_SECONDS  # set by --spot-restore-seconds (runtime/preemption.py)

    def __init__(self, state: BatchState, runner: NodeRunner, *, node_step_seconds: float,
                 dedicated_node_quota: int, spot_node_quota: int,
                 spawn: Callable[[Coroutine[Any, Any, Any]], asyncio.Task], work_available: Callable[[], None]) -> None:
        self.state = state
        self.runner = runner
        self.node_step_seconds = node_step_seconds
        self.dedicated_node_quota = dedicated_node_quota
        self.spot_node_quota = spot_node_quota
        self.spawn = spawn
        self.work_available = work_available
        self._pulls: dict[int, asyncio.Task] = {}  # id(node) -> its image pull while it starts


    def _node_root(self, pool: Pool, node_id: str) -> str:
        return os.path.join(self.state.nodes_dir, pool.id, node_id)

    def _quota_errors(self, pool: Pool) -> tuple[dict[bool, int], list[dict]]:
        """How many dedicated (key True) and spot (key False) nodes the pool may have within the account's quotas,
        and the resize errors if fewer than its targets."""
        reachable, errors = {}, []
        for dedicated, name, quota, code, kind, flag in (
                (True, 'targetDedicatedNodes', self.dedicated_node_quota, 'AccountCoreQuotaReached', 'dedicated',
                 '--dedicated-node-quota'),
                (False, 'targetLowPriorityNodes', self.spot_node_quota, 'AccountLowPriorityCoreQuotaReached',
                 'spot/low-priority', '--spot-node-quota')):
            target = int(pool.spec.get(name) or 0)
            others = sum(other.count_nodes(dedicated=dedicated) for other in self.state.pools.values()
                         if other is not pool)
            allowed = max(0, quota - others)
            if target > allowed:
                errors.append(_quota_error(code, kind, quota, flag))
            reachable[dedicated] = min(target, max(allowed, pool.count_nodes(dedicated=dedicated)))
        return reachable, errors

    async def bring_to_target(self, pool: Pool) -> None:
        """Boots or removes nodes of each kind until the pool has its targets (within the quotas)."""
        targets, errors = self._quota_errors(pool)
        boots = []
        for dedicated, target in targets.items():
            while pool.count_nodes(dedicated=dedicated) < target and pool.state == 'active':
                node = self.state.new_node(pool, lambda node_id: self._node_root(pool, node_id), dedicated=dedicated)
                boots.append(self.spawn(self.boot(pool, node)))
            # A resize down removes idle nodes first, preempted spot nodes first of all.
            spare = sorted((n for n in pool.nodes.values() if n.dedicated is dedicated and n.state in _REMOVABLE),
                           key=lambda n: n.state != 'preempted')
            for node in spare:
                if pool.count_nodes(dedicated=dedicated) <= target:
                    break
                self.remove_node(pool, node)
        await asyncio.sleep(self.node_step_seconds)
        self.state.update_allocation_state(pool, sum(targets.values()), errors)
        await asyncio.gather(*boots, return_exceptions=True)

    def stop_node_work(self, node: Node) -> None:
        """Kills what runs on a node: its tasks go back to the queue, its start task ends, its orphans die."""
        for task in list(node.running.values()):
            self.runner.lose(task)
        pull = self._pulls.pop(id(node), None)
        if pull is not None:
            pull.cancel()  # the runtime's pull is killed, the credentials' folder removed
        self.runner.stop(('start', node.id))
        self.runner.stop_node(node.root_dir)

    def remove_node(self, pool: Pool, node: Node) -> None:
        self.stop_node_work(node)
        pool.nodes.pop(node.id, None)
        self.state.changed('pool', pool)
        shutil.rmtree(node.root_dir, ignore_errors=True)

    async def boot(self, pool: Pool, node: Node) -> None:
        self.runner.prepare_node(node.root_dir)
        await asyncio.sleep(self.node_step_seconds)
        node.set_state('starting')
        await asyncio.sleep(self.node_step_seconds)
        node.last_boot_time = utc_now()
        if await self._pull_images(pool, node):  # containerImageNames; else the node is unusable
            await self.run_start_task(pool, node)

    async def _pull_images(self, pool: Pool, node: Node) -> bool:
        """The node's image pull, stopped (with its registry credentials' folder) when the node's work stops."""
        pull = asyncio.ensure_future(node_start.pull_images(self.state, pool, node))
        self._pulls[id(node)] = pull
        try:
            return await pull
        finally:
            if self._pulls.get(id(node)) is pull:
                del self._pulls[id(node)]

    async def run_start_task(self, pool: Pool, node: Node) -> None:
        """Runs the pool's start task on a node (again after a reboot), honouring waitForSuccess and retries."""
        start_task = pool.spec.get('startTask')
        if not start_task:
            node.set_state('idle')
            self.work_available()
            return
        wait = bool(start_task.get('waitForSuccess', True))
        node.set_state('waitingforstarttask' if wait else 'idle')
        if not wait:
            self.work_available()
        max_retries = int(start_task.get('maxTaskRetryCount', 0))
        retry_count = 0
        task_dir = layout.startup_dir(node.root_dir)
        container, refused = await node_start.start_task_container(self.state, pool, start_task)
        while True:
            info = {'state': 'running', 'startTime': iso(utc_now()), 'retryCount': retry_count}
            if retry_count:
                info['lastRetryTime'] = info['startTime']
            node.start_task_info = info
            env = self.runner.environment(node.root_dir, task_dir, self.node_variables(pool, node),
                                          start_task.get('environmentSettings') or [])
            try:
                exit_code, problem = (None, refused) if refused else await self.runner.execute(
                    ('start', node.id), command_line=start_task['commandLine'], task_dir=task_dir, env=env,
                    resource_files=start_task.get('resourceFiles') or [],
                    max_wall_clock_seconds=parse_duration((start_task.get('constraints') or {})
                                                          .get('maxWallClockTime')), container=container)
            except NodeLost:
                return
            if pool.state == 'deleting' or node.id not in pool.nodes:
                return
            if problem is None or refused or retry_count >= max_retries != -1:  # a refusal is not retried
                break
            retry_count += 1
            await asyncio.sleep(retry_delay(retry_count))
        completed(info, exit_code, problem)
        if problem and wait:
            node.set_state('starttaskfailed')
        elif node.state == 'waitingforstarttask':
            node.set_state('idle')
        self.work_available()

    def node_variables(self, pool: Pool, node: Node) -> dict[str, str]:
        return {'AZ_BATCH_POOL_ID': pool.id, 'AZ_BATCH_NODE_ID': node.id,
                'AZ_BATCH_NODE_IS_DEDICATED': 'true' if node.dedicated else 'false'}

    async def delete_pool(self, pool: Pool) -> None:
        for node in list(pool.nodes.values()):
            self.stop_node_work(node)
        await asyncio.sleep(self.node_step_seconds)
        for node in list(pool.nodes.values()):
            self.remove_node(pool, node)
        self.state.forget_pool(pool)

    def kill_node(self, pool: Pool, node: Node) -> None:
        """Fault injection: the node dies; its tasks are requeued and a new node replaces it."""
        if node.id in pool.nodes and pool.state == 'active':
            _log.info('node %s of pool %s dies (injected)', node.id, pool.id)
            self.remove_node(pool, node)
            self.spawn(self.bring_to_target(pool))

    # ----- node actions (the checks are the state's: service/nodes.py) ------------------------


    async def end_node_tasks(self, node: Node, option: str) -> None:
        """What happens to a node's running tasks when it leaves work: requeued, terminated, or left to finish."""
        if option in ('taskcompletion', 'retaineddata'):
            while node.running:
                await asyncio.sleep(self.node_step_seconds)
            return
        ending = list(node.running.values())
        for task in ending:
            if option == 'terminate':
                task.terminate_requested = True
                self.runner.stop(task)
            else:
                self.runner.lose(task, asked=True)  # the user's option: the task's requeueCount counts it
        if option == 'terminate':  # their runs end as terminated before the node's work stops (which would requeue)
            ids = {id(task) for task in ending}
            while any(id(task) in ids for task in node.running.values()):
                await asyncio.sleep(self.node_step_seconds)

    def disable_scheduling(self, node: Node, option: str) -> None:
        if option != 'taskcompletion':
            self.spawn(self.end_node_tasks(node, option))

    def reimage_node(self, pool: Pool, node: Node, option: str) -> None:
        """Reimage: tasks handled by the option, the node's disk wiped, then a fresh boot and start task."""
        node.set_state('reimaging')
        self.spawn(self._reimage(pool, node, option))

    async def _reimage(self, pool: Pool, node: Node, option: str) -> None:
        await self.end_node_tasks(node, option)
        self.stop_node_work(node)
        shutil.rmtree(node.root_dir, ignore_errors=True)
        node.start_task_info, node.prepared_jobs = None, {}
        await self.boot(pool, node)

    def deallocate_node(self, pool: Pool, node: Node, option: str) -> None:
        node.set_state('deallocating')
        node.scheduling_state = 'disabled'  # recorded [J:node/dealloc]
        self.spawn(self._deallocate(pool, node, option))

    async def _deallocate(self, pool: Pool, node: Node, option: str) -> None:
        await self.end_node_tasks(node, option)
        self.stop_node_work(node)
        await asyncio.sleep(self.node_step_seconds)
        node.set_state('deallocated', keep_time=True)  # recorded: the same stateTransitionTime
        self.state.changed('pool', pool)

    def start_node(self, pool: Pool, node: Node) -> None:
        node.set_state('starting')
        node.scheduling_state = 'enabled'
        self.spawn(self.reboot(pool, node))

    def remove_nodes(self, pool: Pool, nodes: list[Node], option: str) -> None:
        for node in nodes:
            node.scheduling_state = 'disabled'
        self.spawn(self._remove_nodes(pool, nodes, option))

    async def _remove_nodes(self, pool: Pool, nodes: list[Node], option: str) -> None:
        await asyncio.gather(*(self.end_node_tasks(node, option) for node in nodes))
        await asyncio.sleep(self.node_step_seconds)
        for node in nodes:
            node.set_state('leavingpool')
            self.remove_node(pool, node)
        self.state.update_allocation_state(pool, len(pool.nodes), [])

    def agent_lost(self) -> None:
        """The node agent was lost (its runs end as if their nodes were lost): every node that has booted reboots,
        as the service reboots an unhealthy node, so its start task runs again and its tasks are retried (not
        counted against maxTaskRetryCount, as the spec says of recovery operations). A node still booting runs its
        start task with the new agent anyway."""
        for pool in list(self.state.pools.values()):
            for node in list(pool.nodes.values()):
                if node.state in ('idle', 'running', 'waitingforstarttask', 'starttaskfailed', 'unusable'):
                    self.reboot_node(pool, node, 'requeue')

    def reboot_node(self, pool: Pool, node: Node, option: str = 'requeue') -> None:
        """Reboot: running tasks requeued, terminated or left to finish (``nodeRebootOption``, requeue by default),
        then the node restarts and its start task runs again (as on a real node)."""
        node.set_state('rebooting')
        self.spawn(self._reboot_after_tasks(pool, node, option))

    async def _reboot_after_tasks(self, pool: Pool, node: Node, option: str) -> None:
        await self.end_node_tasks(node, option)
        self.stop_node_work(node)
        await self.reboot(pool, node)

    async def reboot(self, pool: Pool, node: Node) -> None:
        await asyncio.sleep(self.node_step_seconds)
        node.set_state('starting')  # recorded: rebooting -> starting (lastBootTime not yet changed) -> idle
        await asyncio.sleep(self.node_step_seconds)
        node.last_boot_time = utc_now()
        if await self._pull_images(pool, node):  # what the disk has is not pulled again
            await self.run_start_task(pool, node)


def _quota_error(code: str, kind: str, quota: int, flag: str) -> dict:
    return {'code': code, 'message': f'The specified account has reached its {kind} core quota',
            'values': [{'name': 'Reason', 'value': f'The local emulator allows {quota} {kind} nodes in the account '
                                                   f'(python -m batch_emulator {flag} N).'}]}


def completed(info: dict, exit_code: int | None, problem: dict | None) -> None:
    """Fills in the execution info of a start, preparation or release task that ended."""
    info.update({'state': 'completed', 'endTime': iso(utc_now()), 'result': 'failure' if problem else 'success'})
    if exit_code is not None:
        info['exitCode'] = exit_code
    if problem:
        info['failureInfo'] = problem
