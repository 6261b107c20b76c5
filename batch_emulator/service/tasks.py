"""Tasks: add, terminate, reactivate and delete them, and what the scheduler reports about their runs."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from batch_emulator.common import layout
from batch_emulator.common.errors import BatchServiceError, invalid_property
from batch_emulator.contract.schema import ABSENT
from batch_emulator.service import job_manager, updates
from batch_emulator.service.models import (
    MAX_TASK_SLOTS,
    Job,
    Node,
    Pool,
    Task,
    iso,
    retry_delay,
    stamp,
    utc_now,
)
from batch_emulator.service.pools import registry_passwords_hidden
from batch_emulator.service.room import Room, _check_command_line, _check_id

if TYPE_CHECKING:  # the rooms this one is connected to (state.BatchState connects them)
    from batch_emulator.service.dependencies import DependencyRoom
    from batch_emulator.service.jobs import JobRoom

_log = logging.getLogger('batch_emulator.service.tasks')

# The properties a task's state gives; the others are what was sent (its spec).
_TASK_PROPERTIES: dict[str, Callable[[Task, str], object]] = {
    'id': lambda task, base_url: task.id,
    'url': lambda task, base_url: f'{base_url}/jobs/{task.job_id}/tasks/{task.id}',
    'eTag': lambda task, base_url: task.etag,
    'creationTime': lambda task, base_url: iso(task.creation_time),
    'lastModified': lambda task, base_url: iso(task.last_modified),
    'state': lambda task, base_url: task.state,
    'stateTransitionTime': lambda task, base_url: iso(task.state_transition_time),
    'previousState': lambda task, base_url: task.previous_state,
    'previousStateTransitionTime': lambda task, base_url: iso(task.previous_state_transition_time),
    'executionInfo': lambda task, base_url: task.execution_info,
    'nodeInfo': lambda task, base_url: task.node_info,
}


def _task_resource(task: Task, base_url: str) -> dict:
    """The task's state and what was sent; ``contract.render`` adds the defaults the service writes."""
    return {**task.spec, **registry_passwords_hidden(task.spec),
            **{name: value(task, base_url) for name, value in _TASK_PROPERTIES.items()}}


def task_property(task: Task, base_url: str, name: str) -> object:
    """One property of ``_task_resource(task, base_url)`` (``contract.ABSENT`` when it has none), without the rest."""
    value = _TASK_PROPERTIES.get(name)
    if value is not None:
        return value(task, base_url)
    return registry_passwords_hidden({name: task.spec[name]}).get(name, task.spec[name]) if name in task.spec \
        else ABSENT


class TaskRoom(Room):
    """Tasks, their counts and their runs: every rule about them."""

    def connect(self, *, job_room: JobRoom, dependency_room: DependencyRoom) -> None:
        """The rooms tasks call: jobs (a task's job, its completion), dependencies (what a task waits for,
        what its exit does)."""
        self.job_room, self.dependency_room = job_room, dependency_room

    # ----- tasks -------------------------------------------------------------------------

    def _most_slots(self, job: Job) -> int:
        """The most slots a task of the job may require: its pool's taskSlotsPerNode (the pool may be gone)."""
        pool = self.pools.get(job.pool_id.lower())
        return pool.slots_per_node if pool else MAX_TASK_SLOTS

    def _validated_task(self, job: Job, body: dict, most_slots: int) -> Task:
        if not isinstance(body, dict):
            raise invalid_property('task', body)
        task_id = _check_id(body)
        _check_command_line(body, '')
        job_manager.check_output_files(body)
        job_manager.check_required_slots(body.get('requiredSlots', 1), most_slots)
        settings = body.get('multiInstanceSettings')
        if settings and not 1 <= int(settings.get('numberOfInstances') or 1) <= 100:  # the service's range
            raise invalid_property('numberOfInstances', settings.get('numberOfInstances'),
                                   'The value must be between 1 and 100.')
        self.dependency_room.check_dependencies(job, body)
        etag, now = stamp()
        return Task.new(id=task_id, job_id=job.id, spec=dict(body), etag=etag, creation_time=now,
                        last_modified=now, state_transition_time=now)

    def add_task(self, job_id: str, body: dict) -> Task:
        job = self.job_room.active_job(job_id)
        task = self._validated_task(job, body, self._most_slots(job))
        if task.id.lower() in job.tasks:
            raise BatchServiceError('TaskExists')
        self._enqueue_new(job, [task])
        return task

    def add_task_collection(self, job_id: str, bodies: list,
                            parse: Callable[[dict], dict] = lambda body: body) -> list[dict]:
        """Adds up to 100 tasks (each parsed by ``parse``); returns the per-task results (success or clienterror)."""
        job = self.job_room.active_job(job_id)  # the collection's shape and size: checked by the wire first
        most_slots, base_url = self._most_slots(job), self.base_url
        results, added, added_ids = [], [], set()
        for body in bodies:
            try:
                task = self._validated_task(job, parse(body), most_slots)
                key = task.id.lower()
                if key in job.tasks or key in added_ids:
                    raise BatchServiceError('TaskExists')
            except BatchServiceError as error:
                task_id = body.get('id') if isinstance(body, dict) else None
                results.append({'status': 'clienterror', 'taskId': task_id or '', 'error': error.body(base_url)})
                continue
            added.append(task)
            added_ids.add(key)
            results.append({'status': 'success', 'taskId': task.id, 'eTag': task.etag,
                            'lastModified': iso(task.last_modified),
                            'location': f'{base_url}/jobs/{job.id}/tasks/{task.id}'})
        self._enqueue_new(job, added)
        return results

    def _enqueue_new(self, job: Job, tasks: list[Task]) -> None:
        for task in tasks:
            job.tasks[task.id.lower()] = task
            self.changed('task', task)
            job.counts['active'] += 1
            job.slot_counts['active'] += task.required_slots
        ready = [task for task in tasks if not self.dependency_room.hold_until_dependencies_met(job, task)]
        pool = self.pools.get(job.pool_id.lower())
        if pool is not None and ready:
            pool.pending.extend(ready)
            self.mark_priorities(pool)
            self.hooks.work_available()

    def mark_priorities(self, pool: Pool) -> None:
        """Higher-priority jobs' tasks go first: when the pool's jobs differ in priority, reorder its queue."""
        priorities = {int(job.spec.get('priority') or 0) for job in self.jobs.values()
                      if job.pool_id.lower() == pool.id.lower() and job.state in ('active', 'disabled')}
        if len(priorities) > 1:
            pool.reorder = True

    def get_task(self, job_id: str, task_id: str) -> tuple[Job, Task]:
        job = self.job_room.get_job(job_id)
        task = job.tasks.get(task_id.lower())
        if task is None:
            raise BatchServiceError('TaskNotFound')
        return job, task

    def task_resource(self, task: Task) -> dict:
        return _task_resource(task, self.base_url)

    def task_property(self, task: Task, name: str) -> object:
        return task_property(task, self.base_url, name)

    def task_counts(self, job_id: str) -> dict:
        job = self.job_room.get_job(job_id)
        return {'taskCounts': dict(job.counts), 'taskSlotCounts': dict(job.slot_counts)}

    def replace_task(self, job_id: str, task_id: str, body: dict) -> Task:
        """PUT: the writable properties of BatchTask (its constraints) replaced (``updates``; recorded: 200, a new
        ETag and lastModified [J:task/update])."""
        _, task = self.get_task(job_id, task_id)
        if task.state == 'completed':
            raise BatchServiceError('TaskCompleted')
        task.spec = updates.merged(task.spec, body, updates.update('task', True))
        task.etag, task.last_modified = stamp()
        self.changed('task', task)
        return task

    def delete_task(self, job_id: str, task_id: str) -> Task:
        job, task = self.get_task(job_id, task_id)
        if task.state in ('running', 'preparing'):
            self.hooks.stop_task(task)
        self._count(job, task, task.state, None)
        del job.tasks[task.id.lower()]
        self.dependency_room.dependent_gone(job, task)
        self.dependency_room.dependency_parent_changed(job, task)  # a parent that goes is waited for again
        self._removed('task', task)
        pool = self.pools.get(job.pool_id.lower())
        if pool is not None and task.state == 'active':
            pool.pending = deque(t for t in pool.pending if t is not task)
        task.state = 'deleted'
        self.job_room.check_job_completion(job)
        return task

    def terminate_task(self, job_id: str, task_id: str) -> None:
        job, task = self.get_task(job_id, task_id)
        if task.state == 'completed':
            return
        task.etag, task.last_modified = stamp()  # a change asked for: answered with the new ETag
        if task.state in ('running', 'preparing'):
            task.terminate_requested = True
            self.hooks.stop_task(task)
        else:
            pool = self.pools.get(job.pool_id.lower())
            if pool is not None:
                pool.pending = deque(t for t in pool.pending if t is not task)
            self.complete_task(task, exit_code=None, failure=_task_ended_failure())

    def reactivate_task(self, job_id: str, task_id: str) -> None:
        job, task = self.get_task(job_id, task_id)
        if task.state != 'completed' or task.execution_info.get('result') != 'failure':
            raise BatchServiceError('OperationInvalidForCurrentState',
                                    'Only a completed task that failed can be reactivated.')
        task.etag, task.last_modified = stamp()
        self._requeue(task, count_as='retryCount', reset=True)

    # ----- what the scheduler reports --------------------------------------------------------

    def _count(self, job: Job, task: Task, old: str | None, new: str | None) -> None:
        buckets = {'active': 'active', 'preparing': 'running', 'running': 'running', 'completed': 'completed'}
        for state, delta in ((old, -1), (new, 1)):
            bucket = buckets.get(state or '')
            if bucket:
                job.counts[bucket] += delta
                job.slot_counts[bucket] += delta * task.required_slots
        if new == 'completed' or old == 'completed':
            outcome = 'failed' if task.execution_info.get('result') == 'failure' else 'succeeded'
            delta = 1 if new == 'completed' else -1
            job.counts[outcome] += delta
            job.slot_counts[outcome] += delta * task.required_slots

    def count_restored(self, job: Job, task: Task) -> None:
        self._count(job, task, None, task.state)
        if task.state == 'completed':
            self.dependency_room.dependency_parent_changed(job, task)

    def set_task_state(self, task: Task, state: str) -> None:
        job = self.jobs.get(task.job_id.lower())
        if job is None or job.tasks.get(task.id.lower()) is not task or task.state == state:
            return
        # Completed-outcome counts must see the old result, so count before changing it.
        self._count(job, task, task.state, None)
        task.previous_state, task.previous_state_transition_time = task.state, task.state_transition_time
        task.state, task.state_transition_time = state, utc_now()  # recorded: the ETag stays (active ->
        self._count(job, task, None, state)                         # running -> completed) [P:files, J:task/uid]
        self.changed('task', task)

    def task_started(self, task: Task, pool: Pool, node: Node, state: str = 'running') -> None:
        task.node = node
        task.node_info = {
            'affinityId': f'TVM:{node.id}', 'nodeUrl': f'{self.base_url}/pools/{pool.id}/nodes/{node.id}',
            'poolId': pool.id, 'nodeId': node.id,
            'taskRootDirectory': layout.task_folder(task.job_id, task.id),
            'taskRootDirectoryUrl': f'{self.base_url}/pools/{pool.id}/nodes/{node.id}/files/'
                                    + layout.task_folder(task.job_id, task.id)}
        self.set_task_state(task, state)

    def task_running(self, task: Task) -> None:
        task.execution_info['startTime'] = iso(utc_now())
        if task.execution_info.get('retryCount'):
            task.execution_info['lastRetryTime'] = task.execution_info['startTime']
        self.changed('task', task)  # also when it was already running (no preparation): its startTime is new
        self.set_task_state(task, 'running')

    def task_finished(self, task: Task, exit_code: int | None, failure: dict | None) -> None:
        """A run ended: retry it while retries remain, else complete it."""
        if task.state not in ('running', 'preparing'):
            return
        max_retries = int((task.spec.get('constraints') or {}).get('maxTaskRetryCount', 0))
        job = self.jobs.get(task.job_id.lower())
        terminated, task.terminate_requested = task.terminate_requested, False
        ended = terminated or job is None or job.state in ('terminating', 'deleting')
        if failure and not ended and (max_retries == -1 or task.execution_info['retryCount'] < max_retries):
            task.execution_info['exitCode'] = exit_code
            self._requeue(task, count_as='retryCount')
            return
        if ended:
            failure = _task_ended_failure()  # killed because the task or its job was ended
        self.complete_task(task, exit_code, failure)

    def task_requeued(self, task: Task, *, asked: bool = False) -> None:
        """The task's run was taken from its node: the service puts the task back in the queue. Only a requeue a
        user asked for (a node action's or a pool shrink's requeue option, a job disabled with requeue) counts
        in requeueCount, as the spec defines it; one of the service's own (a node lost or preempted, a task
        preempted for a higher-priority job) does not."""
        if task.state in ('running', 'preparing'):
            # the service's "task requeue event", in the emulator's log (--verbose)
            _log.info('task %s of job %s is requeued %s', task.id, task.job_id,
                      'as a user asked' if asked else 'by the service (its run was taken from its node)')
            self._requeue(task, count_as='requeueCount' if asked else None)

    def _requeue(self, task: Task, *, count_as: str | None, reset: bool = False) -> None:
        task.node = None
        self.set_task_state(task, 'active')  # counts first: they read the previous result
        if reset:
            task.execution_info = {'retryCount': 0, 'requeueCount': 0}
            task.not_before = 0.0
        else:
            info = task.execution_info
            if count_as is not None:
                info[count_as] = info.get(count_as, 0) + 1
            if count_as == 'requeueCount':
                info['lastRequeueTime'] = iso(utc_now())
            for key in ('result', 'failureInfo', 'endTime'):
                info.pop(key, None)
            if count_as == 'retryCount':
                task.not_before = time.monotonic() + retry_delay(info['retryCount'])
        job = self.jobs.get(task.job_id.lower())
        if job is not None and task.previous_state == 'completed':
            # reactivated: it satisfies its dependents no more
            self.dependency_room.dependency_parent_changed(job, task)
        pool = self.pools.get(job.pool_id.lower()) if job else None
        if pool is not None:
            pool.pending.appendleft(task)  # first in line again, after higher-priority jobs' tasks
            self.mark_priorities(pool)
            self.hooks.work_available()

    def complete_task(self, task: Task, exit_code: int | None, failure: dict | None) -> None:
        info = task.execution_info
        info['endTime'] = iso(utc_now())
        info.setdefault('startTime', info['endTime'])
        if exit_code is not None:
            info['exitCode'] = exit_code
        info['result'] = 'failure' if failure else 'success'
        if failure:
            info['failureInfo'] = failure
        else:
            info.pop('failureInfo', None)
        self.set_task_state(task, 'completed')
        job = self.jobs.get(task.job_id.lower())
        if job is not None:
            self.dependency_room.dependent_gone(job, task)
            self.dependency_room.apply_exit_options(job, task)
            self.dependency_room.dependency_parent_changed(job, task)
            self.job_room.manager_completed(job, task)
            self.job_room.check_job_completion(job)


def _task_ended_failure() -> dict:
    return {'category': 'usererror', 'code': 'TaskEnded', 'message': 'Task Was Ended by User Request'}
