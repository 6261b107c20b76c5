"""Multi-instance tasks (MPI and the like): one primary and numberOfInstances - 1 subtasks on as many nodes.

As Microsoft's "Use multi-instance tasks to run MPI applications" describes the run: the task waits
until that many nodes have a free slot; every node downloads ``commonResourceFiles`` into the task's
shared folder (``AZ_BATCH_TASK_SHARED_DIR``) and runs the ``coordinationCommandLine``; once it has
exited on every node, the primary alone downloads the task's ``resourceFiles`` and runs its
``commandLine``. Every instance sees ``AZ_BATCH_HOST_LIST`` (the nodes' addresses),
``AZ_BATCH_MASTER_NODE`` (the primary's address and port) and ``AZ_BATCH_IS_CURRENT_NODE_MASTER``.
A coordination command that fails fails the task; the task's exit code is the primary's. The
subtasks (ids 1 … n-1) are listed by Tasks_ListSubTasks. On a pool with containerConfiguration both
commands run in the task's container, with the protections of every container task (``containers.py``).
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING

from batch_emulator.common import layout
from batch_emulator.common.clock import parse_duration
from batch_emulator.runtime.node import NodeLost
from batch_emulator.service.models import Job, Node, Pool, Task, iso, utc_now

if TYPE_CHECKING:
    from batch_emulator.runtime.scheduler import Scheduler

MASTER_PORT = 6000  # the port AZ_BATCH_MASTER_NODE names, as in Microsoft's examples


def instances(task: Task) -> int:
    return int((task.spec.get('multiInstanceSettings') or {}).get('numberOfInstances') or 1)


def instance_key(task: Task, index: int) -> object:
    """The runner's key of an instance's process: the primary's application is the task itself."""
    return (task, index)


async def run(scheduler: Scheduler, pool: Pool, nodes: list[Node], job: Job, task: Task) -> None:
    state, runner = scheduler.state, scheduler.runner
    settings = task.spec['multiInstanceSettings']
    task_dir_on = {node.id: layout.task_dir(node.root_dir, job.id, task.id) for node in nodes}
    hosts = ','.join(node.ip_address for node in nodes)
    primary = nodes[0]
    state.task_running(task)
    container, mismatch = scheduler._container_for(pool, task.spec)
    if mismatch:
        state.task_finished(task, None, mismatch)
        return
    task.subtasks = [{'id': index, 'state': 'running', 'stateTransitionTime': iso(utc_now()),
                      'startTime': iso(utc_now()), 'nodeInfo': _node_info(state.base_url, pool, node, job, task)}
                     for index, node in enumerate(nodes) if index > 0]

    def environment(node: Node, index: int) -> dict[str, str]:
        return scheduler.task_environment(pool, node, job, task, task_dir_on[node.id], {
            'AZ_BATCH_HOST_LIST': hosts, 'AZ_BATCH_NODE_LIST': hosts.replace(',', ';'),
            'AZ_BATCH_MASTER_NODE': f'{primary.ip_address}:{MASTER_PORT}',
            'AZ_BATCH_IS_CURRENT_NODE_MASTER': 'true' if index == 0 else 'false',
            'AZ_BATCH_TASK_SHARED_DIR': task_dir_on[node.id]})

    async def coordinate(index: int, node: Node) -> tuple[int | None, dict | None]:
        os.makedirs(task_dir_on[node.id], mode=0o700, exist_ok=True)
        problem = await runner._download_resource_files(settings.get('commonResourceFiles') or [],
                                                        task_dir_on[node.id])
        if problem:
            return None, problem
        command = settings.get('coordinationCommandLine')
        if not command:
            return 0, None
        return await runner.execute(instance_key(task, index), command_line=command,
                                    task_dir=os.path.join(task_dir_on[node.id], 'coordination'),
                                    env=environment(node, index), resource_files=[], container=container)

    try:
        results = await asyncio.gather(*(coordinate(index, node) for index, node in enumerate(nodes)))
        for subtask, (exit_code, problem) in zip(task.subtasks, results[1:], strict=True):
            subtask.update({'state': 'completed', 'stateTransitionTime': iso(utc_now()), 'endTime': iso(utc_now()),
                            'exitCode': exit_code, 'result': 'failure' if problem else 'success',
                            'previousState': 'running', 'previousStateTransitionTime': subtask['startTime']})
            if problem:
                subtask['failureInfo'] = problem
        failed = next(((code, problem) for code, problem in results if problem), None)
        if failed is not None:
            exit_code, problem = failed
        else:
            exit_code, problem = await runner.execute(
                task, command_line=task.spec['commandLine'], task_dir=task_dir_on[primary.id],
                env=environment(primary, 0), resource_files=task.spec.get('resourceFiles') or [],
                output_files=task.spec.get('outputFiles') or [],
                max_wall_clock_seconds=parse_duration((task.spec.get('constraints') or {}).get('maxWallClockTime')),
                on_started=lambda pid, started: scheduler._process_started(task, pid, started), container=container)
    except NodeLost as lost:
        state.task_requeued(task, asked=lost.asked)
        return
    if any(node.id not in pool.nodes for node in nodes):
        state.task_requeued(task)
        return
    for node in nodes:
        node.total_tasks_run += 1
        node.total_tasks_succeeded += problem is None
    state.task_finished(task, exit_code, problem)


def stop(scheduler: Scheduler, task: Task) -> None:
    """Terminating or losing a multi-instance task stops every instance's coordination command too."""
    for index in range(instances(task)):
        scheduler.runner.stop(instance_key(task, index))


def _node_info(base_url: str, pool: Pool, node: Node, job: Job, task: Task) -> dict:
    return {'affinityId': f'TVM:{node.id}', 'nodeUrl': f'{base_url}/pools/{pool.id}/nodes/{node.id}',
            'poolId': pool.id, 'nodeId': node.id, 'taskRootDirectory': layout.task_folder(job.id, task.id),
            'taskRootDirectoryUrl': f'{base_url}/pools/{pool.id}/nodes/{node.id}/files/'
                                    + layout.task_folder(job.id, task.id)}
