"""Spot nodes preempted: on demand (``POST /_emulator/.../preempt``) or at a seeded rate (``--spot-preemption-rate``).

As the service describes it (BatchNodeState ``preempted``, and "Use Spot VMs with Batch workloads"): a Spot
node can be taken back at any time; the tasks running on it are requeued and run again on another node
(neither ``retryCount`` nor ``requeueCount`` grows: the spec's requeueCount counts the requeues a user
asked for); the node stays in the pool's list in state ``preempted``,
counted in ``currentLowPriorityNodes`` and ``$PreemptedNodeCount``, and Azure may later restore it. Here the
node stays preempted ``spot_restore_seconds`` (``--spot-restore-seconds``, default 60), then boots again with a
fresh disk (an evicted VM keeps nothing) and its start task runs again: the pool is back at its target.
"""

from __future__ import annotations

import asyncio
import logging
import shutil

from batch_emulator.common.errors import BatchServiceError
from batch_emulator.common.loops import survive
from batch_emulator.runtime.faults import FaultInjector
from batch_emulator.runtime.pool_nodes import PoolNodes
from batch_emulator.service.state import Node, Pool

_log = logging.getLogger('batch_emulator.runtime.preemption')
PREEMPTIBLE = ('idle', 'running', 'waitingforstarttask', 'starttaskfailed', 'unusable')  # a VM that is up
TICK_SECONDS = 0.5  # how often the rate is applied


def check_preemptible(pool: Pool, node: Node) -> None:
    """A 409 unless the node is a Spot node that is up (booting, rebooting or already preempted: not now)."""
    if pool.state == 'deleting':
        raise BatchServiceError('PoolBeingDeleted')
    if node.dedicated:
        raise BatchServiceError('NodeNotSpot', 'The node is a dedicated node (isDedicated: true): only Spot/'
                                               'low-priority nodes are preempted.', status=409,
                                values={'NodeId': node.id})
    if node.state not in PREEMPTIBLE:
        raise BatchServiceError('NodeNotPreemptible', f'The node is {node.state}: only a Spot node that is '
                                                      f'{", ".join(PREEMPTIBLE)} can be preempted.', status=409,
                                values={'NodeId': node.id, 'NodeState': node.state})


def preempt(nodes: PoolNodes, pool: Pool, node: Node) -> None:
    """The node is taken back: state ``preempted``, its tasks requeued, restored after ``spot_restore_seconds``."""
    check_preemptible(pool, node)
    _log.info('spot node %s of pool %s is preempted', node.id, pool.id)
    node.set_state('preempted')
    node.exclusive = False
    node.preemptions.append(node.state_transition_time)
    nodes.stop_node_work(node)  # running tasks end as on a lost node: requeued, not counted (no user asked)
    nodes.state.changed('pool', pool)
    nodes.spawn(_restore_later(nodes, pool, node))


async def _restore_later(nodes: PoolNodes, pool: Pool, node: Node) -> None:
    await asyncio.sleep(nodes.spot_restore_seconds)
    if pool.state != 'active' or pool.nodes.get(node.id) is not node or node.state != 'preempted':
        return  # removed, or its pool deleted, meanwhile
    shutil.rmtree(node.root_dir, ignore_errors=True)  # a restored VM starts with a fresh disk
    node.start_task_info, node.prepared_jobs = None, {}
    node.set_state('starting')
    nodes.state.changed('pool', pool)
    await nodes.boot(pool, node)


def preempt_at_random(nodes: PoolNodes, faults: FaultInjector, seconds: float) -> None:
    """One pass of the rate: each Spot node that is up is preempted with the chance of ``seconds`` at the rate."""
    for pool in list(nodes.state.pools.values()):
        if pool.state != 'active':
            continue
        for node in list(pool.nodes.values()):
            if not node.dedicated and node.state in PREEMPTIBLE and faults.spot_preempted(seconds):
                preempt(nodes, pool, node)


async def run_spot_preemptions(nodes: PoolNodes, faults: FaultInjector | None) -> None:
    """``--spot-preemption-rate``: preempts Spot nodes at random (seeded by ``--fault-seed``) until stopped."""
    if faults is None or not faults.spot_preemption_rate:
        return
    while True:
        await asyncio.sleep(TICK_SECONDS)
        survive('preempting spot nodes', lambda: preempt_at_random(nodes, faults, TICK_SECONDS), None)
