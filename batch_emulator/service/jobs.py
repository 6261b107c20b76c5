"""Jobs: create, update, disable, terminate and delete them; when a job completes; their auto pools.

A job whose ``poolInfo`` has an ``autoPoolSpecification`` runs on a pool of its own, created with it by
``create_pool``'s rules and named as the service names it (an upper-case GUID, after ``autoPoolIdPrefix_``);
the pool is deleted when the job completes or is deleted, unless ``keepAlive``. ``job.execution_info``
keeps the link (``AUTO_POOL``, never written in a response; the journal keeps it). A schedule's auto pool
of lifetime ``jobschedule`` belongs to the schedule (``schedules.py``) and the job only runs on it.

The account's quota of active jobs and job schedules (Microsoft's "Batch service quotas and limits": completed
ones do not count; 100-300 for a new account, at most 1,000 on request) is ``active_job_quota``, 300 unless
``--active-job-quota`` says otherwise; a create beyond it is refused with the service's 409
ActiveJobAndScheduleQuotaReached. The active jobs are kept in a set as they change, so the check costs O(1).
"""

from __future__ import annotations

import copy
import re
import uuid
from collections import deque
from typing import TYPE_CHECKING

from batch_emulator.common.errors import BatchServiceError, invalid_property, missing_property
from batch_emulator.service import job_manager, updates
from batch_emulator.service.models import Job, Pool, Task, iso, stamp
from batch_emulator.service.pools import pool_info_without_secrets, registry_passwords_hidden
from batch_emulator.service.room import Room, _check_command_line, _check_id
from batch_emulator.service.tasks import _task_ended_failure

if TYPE_CHECKING:  # the rooms this one is connected to (state.BatchState connects them)
    from batch_emulator.service.pools import PoolRoom
    from batch_emulator.service.schedules import ScheduleRoom
    from batch_emulator.service.tasks import TaskRoom

DEFAULT_ACTIVE_JOB_QUOTA = 300  # active jobs and job schedules per account: a new account's default (100-300)
_COUNTED_STATES = ('active', 'disabled', 'terminating')  # a job counts against the quota until it completes
AUTO_POOL = 'autoPool'  # job.execution_info[AUTO_POOL]: the job's own auto pool {poolId, keepAlive} (never written)
_AUTO_POOL_PREFIX = re.compile(r'[A-Za-z0-9_-]{1,20}')


def _pool_body(pool_id: str, auto_pool: dict) -> dict:
    """A pool create body from an auto pool specification (BatchPoolSpecification is BatchPoolCreateOptions
    without the id); a copy, so that the pool's changes never show in the job's poolInfo."""
    return {**copy.deepcopy(auto_pool['pool']), 'id': pool_id}


def _job_resource(job: Job, base_url: str) -> dict:
    """The job's state and what was sent; ``contract.render`` adds the defaults the service writes."""
    return {
        **job.spec,
        **registry_passwords_hidden(job.spec),  # a job manager's or preparation task's registry password
        **pool_info_without_secrets(job.spec.get('poolInfo')),  # an auto pool's passwords and keys: write-only
        'id': job.id,
        'url': f'{base_url}/jobs/{job.id}',
        'eTag': job.etag,
        'lastModified': iso(job.last_modified),
        'creationTime': iso(job.creation_time),
        'state': job.state,
        'stateTransitionTime': iso(job.state_transition_time),
        'previousState': job.previous_state,
        'previousStateTransitionTime': iso(job.previous_state_transition_time),
        'executionInfo': {'startTime': iso(job.creation_time), 'poolId': job.pool_id, **job.execution_info},
    }


class JobRoom(Room):
    """Jobs: every rule about them."""

    active_job_quota = DEFAULT_ACTIVE_JOB_QUOTA  # --active-job-quota
    _active_jobs: set[str] | None = None  # lower-cased ids of the jobs that count (counted once, then kept)

    def connect(self, *, pool_room: PoolRoom, task_room: TaskRoom, schedule_room: ScheduleRoom) -> None:
        """The rooms jobs call: pools (auto pools), tasks (a job's tasks), schedules (the active quota).
        The job room watches the account's changes to keep its count of active jobs."""
        self.pool_room, self.task_room, self.schedule_room = pool_room, task_room, schedule_room
        self.account.watchers.append(self)

    def noticed_change(self, kind: str, entity: object) -> None:
        if kind == 'job' and self._active_jobs is not None:
            key = entity.id.lower()  # type: ignore[attr-defined]
            if entity.state in _COUNTED_STATES and self.jobs.get(key) is entity:  # type: ignore[attr-defined]
                self._active_jobs.add(key)
            else:
                self._active_jobs.discard(key)

    def noticed_removal(self, kind: str, entity: object) -> None:
        if kind == 'job' and self._active_jobs is not None:
            self._active_jobs.discard(entity.id.lower())  # type: ignore[attr-defined]

    def check_active_quota(self) -> None:
        """Refuses a new job or job schedule once the account has as many active ones as its quota allows."""
        if self._active_jobs is None:
            self._active_jobs = {key for key, job in self.jobs.items() if job.state in _COUNTED_STATES}
        active = len(self._active_jobs) + self.schedule_room.active_schedule_count()
        if active >= self.active_job_quota:
            raise BatchServiceError(
                'ActiveJobAndScheduleQuotaReached', 'Active job and schedule quota for the account has been reached.',
                status=409, values={'Reason': f'The local emulator allows {self.active_job_quota} active jobs and '
                                              'job schedules in the account (--active-job-quota).'})

    def _set_job_state(self, job: Job, state: str, *, touch: bool = True, remember: bool = True) -> None:
        job.set_state(state, touch=touch, remember=remember)
        self.changed('job', job)

    # ----- jobs --------------------------------------------------------------------------

    def check_job_body(self, body: dict, *, in_schedule: bool = False) -> None:
        """Every rule ``create_job`` applies to a job body but its id; no side effects. ``in_schedule``: the
        body is a schedule's jobSpecification (whose auto pool may live as long as the schedule)."""
        pool_info = body.get('poolInfo')
        if not pool_info:
            raise missing_property('poolInfo')
        auto_pool = pool_info.get('autoPoolSpecification')
        if auto_pool:
            if pool_info.get('poolId'):
                raise invalid_property('poolInfo', '...', 'Specify either poolId or autoPoolSpecification, not '
                                                          'both.')
            self._check_auto_pool(auto_pool, in_schedule=in_schedule)
        elif not pool_info.get('poolId'):
            raise missing_property('poolInfo.poolId')
        for key in ('jobManagerTask', 'jobPreparationTask', 'jobReleaseTask'):
            _check_command_line(body.get(key), key)
        if body.get('jobReleaseTask') and not body.get('jobPreparationTask'):
            raise invalid_property('jobReleaseTask', '...', 'A job release task requires a job preparation task.')
        if body.get('jobManagerTask'):
            pool = self.pools.get(str(pool_info.get('poolId') or '').lower())
            slots = (auto_pool.get('pool') or {}).get('taskSlotsPerNode') if auto_pool else \
                pool.slots_per_node if pool else None
            job_manager.check(body['jobManagerTask'], int(slots) if slots else None)
        on_complete = str(body.get('onAllTasksComplete', 'noaction')).lower()
        if on_complete not in ('noaction', 'terminatejob'):
            raise invalid_property('onAllTasksComplete', body.get('onAllTasksComplete'))

    def create_job(self, body: dict, *, job_id: str | None = None, schedule_pool_id: str | None = None) -> Job:
        """A job from its body; ``job_id``: the id a job schedule names its job (``{schedule}:job-N``, which
        the id check refuses), ``schedule_pool_id``: the schedule's auto pool the job runs on (lifetime
        ``jobschedule``). An auto pool of lifetime ``job`` is created with the job."""
        if job_id is None:
            job_id = _check_id(body)
        if job_id.lower() in self.jobs:
            existing = self.jobs[job_id.lower()]
            raise BatchServiceError('JobBeingDeleted' if existing.state == 'deleting' else 'JobExists')
        self.check_job_body(body, in_schedule=schedule_pool_id is not None)
        self.check_active_quota()
        spec = dict(body)
        spec['onAllTasksComplete'] = str(body.get('onAllTasksComplete', 'noaction')).lower()
        execution_info: dict = {}
        auto_pool = body['poolInfo'].get('autoPoolSpecification')
        if not auto_pool:
            pool_id = body['poolInfo']['poolId']
        elif schedule_pool_id is not None:
            pool_id = schedule_pool_id
        else:
            pool_id = self.create_auto_pool(auto_pool).id
            execution_info[AUTO_POOL] = {'poolId': pool_id, 'keepAlive': bool(auto_pool.get('keepAlive'))}
        etag, now = stamp()
        job = Job(id=job_id, spec=spec, pool_id=pool_id, etag=etag, creation_time=now, last_modified=now,
                  state_transition_time=now, execution_info=execution_info)
        self.jobs[job_id.lower()] = job
        self.changed('job', job)
        if body.get('jobManagerTask'):  # a task of the job, started before its others (job_manager.py)
            self.task_room.add_task(job.id, job_manager.task_body(body['jobManagerTask']))
        return job

    # ----- auto pools ----------------------------------------------------------------------

    def _check_auto_pool(self, auto_pool: dict, *, in_schedule: bool) -> None:
        """An auto pool specification: its lifetime, id prefix and pool, by ``create_pool``'s own rules."""
        lifetime = str(auto_pool.get('poolLifetimeOption') or '').lower()
        if not lifetime:
            raise missing_property('poolLifetimeOption')
        if lifetime == 'jobschedule' and not in_schedule:
            raise invalid_property('poolLifetimeOption', auto_pool['poolLifetimeOption'],
                                   "The lifetime 'jobschedule' applies only to job schedules; use 'job'.")
        prefix = auto_pool.get('autoPoolIdPrefix')
        if prefix is not None and not _AUTO_POOL_PREFIX.fullmatch(str(prefix)):
            raise invalid_property('autoPoolIdPrefix', prefix, 'The prefix can contain any combination of '
                                   'alphanumeric characters including hyphens and underscores, and cannot '
                                   'contain more than 20 characters.')
        if not auto_pool.get('pool'):
            raise missing_property('pool')
        self.pool_room.check_pool_body(_pool_body('probe', auto_pool))  # create_pool's checks

    def create_auto_pool(self, auto_pool: dict) -> Pool:
        """The pool of an auto pool specification, named as the service names it: an upper-case GUID
        (recorded [P:jobs]), after ``autoPoolIdPrefix`` and an underscore when one is given."""
        prefix = auto_pool.get('autoPoolIdPrefix')
        pool_id = str(uuid.uuid4()).upper()
        return self.pool_room.create_pool(
            _pool_body(f'{prefix}_{pool_id}' if prefix else pool_id, auto_pool))

    def end_auto_pool(self, link: dict | None) -> None:
        """An auto pool's lifetime is over: deleted, unless kept alive (or already gone)."""
        if not link or link.get('keepAlive'):
            return
        pool = self.pools.get(link['poolId'].lower())
        if pool is not None and pool.state != 'deleting':
            self.pool_room.delete_pool(pool.id)

    def get_job(self, job_id: str) -> Job:
        job = self.jobs.get(job_id.lower())
        if job is None:
            raise BatchServiceError('JobNotFound')
        return job

    def job_resource(self, job: Job) -> dict:
        return _job_resource(job, self.base_url)

    def list_jobs(self) -> list[dict]:
        return [self.job_resource(job) for job in self.jobs.values()]

    def update_job(self, job_id: str, body: dict, *, replace: bool = False) -> Job:
        """PATCH changes every property of BatchJobUpdateOptions it carries; PUT replaces the writable ones of
        BatchJob (``updates``: what it leaves out goes back to its default) and keeps the rest, such as the job
        preparation and release tasks (recorded [P:jobs])."""
        job = self.active_job(job_id)
        plan = updates.update('job', replace)
        spec = updates.merged(job.spec, body, plan)
        updates.check(plan, job.spec, spec, updates.Context(job_state=job.state))
        self.check_job_body(spec, in_schedule=':' in job.id)  # the create rules ({schedule}:job-N: a schedule's)
        spec['onAllTasksComplete'] = str(spec.get('onAllTasksComplete') or 'noaction').lower()
        pool_id = (spec['poolInfo'].get('poolId') or job.pool_id) if spec.get('poolInfo') else job.pool_id
        job.spec = spec
        link = job.execution_info.get(AUTO_POOL)
        auto_pool = spec['poolInfo'].get('autoPoolSpecification') if spec.get('poolInfo') else None
        if link is not None and auto_pool is not None:
            link['keepAlive'] = bool(auto_pool.get('keepAlive'))
        if pool_id.lower() != job.pool_id.lower():  # (disabled:) its waiting tasks move to the new pool
            self._drop_pending(job)
            job.pool_id = pool_id
            pool = self.pools.get(pool_id.lower())
            if pool is not None:
                pool.pending.extend(task for task in job.tasks.values()
                                    if task.state == 'active' and task.id.lower() not in job.waiting)
        job.etag, job.last_modified = stamp()
        self.changed('job', job)
        pool = self.pools.get(job.pool_id.lower())
        if pool is not None:  # a new priority (or pool) reorders the queue of its tasks
            self.task_room.mark_priorities(pool)
        self.check_job_completion(job)
        return job

    def delete_job(self, job_id: str) -> None:
        job = self.get_job(job_id)
        if job.state == 'deleting':
            return
        self._set_job_state(job, 'deleting', touch=False)  # recorded: ETag and lastModified unchanged
        for task in job.tasks.values():
            if task.state in ('running', 'preparing'):
                self.hooks.stop_task(task)
        self.hooks.job_ended(job)

    def forget_job(self, job: Job) -> None:
        """Called by the scheduler once a deleting job's runs (and release tasks) are over; its auto pool goes."""
        if self.jobs.get(job.id.lower()) is job:
            del self.jobs[job.id.lower()]
            self._drop_pending(job)
            self._removed('job', job)
            self.end_auto_pool(job.execution_info.get(AUTO_POOL))

    def terminate_job(self, job_id: str, reason: str | None) -> None:
        job = self.get_job(job_id)
        if job.state == 'completed':
            raise BatchServiceError('JobCompleted')
        if job.state == 'deleting':
            raise BatchServiceError('JobBeingDeleted')
        if job.state == 'terminating':
            raise BatchServiceError('JobBeingTerminated')
        self._set_job_state(job, 'terminating')
        job.execution_info['terminateReason'] = reason or 'UserTerminate'
        self._end_job_tasks(job)

    def disable_job(self, job_id: str, disable_tasks: str | None) -> None:
        """No new task starts; running ones are requeued, terminated or left to finish (``wait``)."""
        job = self.active_job(job_id)
        mode = str(disable_tasks or '').lower()  # one of the spec's values: the wire checked the body (wire/checks)
        if job.state != 'active':
            return
        self._set_job_state(job, 'disabled')
        for task in job.tasks.values():
            if task.state in ('running', 'preparing') and mode != 'wait':
                if mode == 'terminate':
                    task.terminate_requested = True
                    self.hooks.stop_task(task)
                else:
                    self.hooks.requeue_task(task)

    def enable_job(self, job_id: str) -> None:
        job = self.active_job(job_id)
        if job.state == 'disabled':
            self._set_job_state(job, 'active')
            self.hooks.work_available()

    def active_job(self, job_id: str) -> Job:
        """A job that still accepts changes and tasks (not completed, terminating or being deleted)."""
        job = self.get_job(job_id)
        if job.state == 'deleting':
            raise BatchServiceError('JobBeingDeleted')
        if job.state in ('completed', 'terminating'):
            raise BatchServiceError('JobCompleted')
        return job

    def _end_job_tasks(self, job: Job) -> None:
        """Ends every unfinished task of a terminating job, then completes the job."""
        for task in list(job.tasks.values()):
            if task.state in ('running', 'preparing'):
                self.hooks.stop_task(task)
            elif task.state == 'active':
                self.task_room.complete_task(task, exit_code=None, failure=_task_ended_failure())
        self._drop_pending(job)
        if not any(task.state in ('running', 'preparing') for task in job.tasks.values()):
            self._finish_termination(job)

    def manager_completed(self, job: Job, task: Task) -> None:
        """A task completed: when it is the job manager and kills its job on completion (the default), the job
        is terminated with the reason the service gives, JMComplete, and its tasks still running are ended."""
        manager = job_manager.manager_of(job, task)
        if manager is not None and job_manager.kills_job(manager) and job.state in ('active', 'disabled'):
            self._set_job_state(job, 'terminating')
            job.execution_info['terminateReason'] = 'JMComplete'
            self._end_job_tasks(job)

    def _finish_termination(self, job: Job) -> None:
        if job.state == 'completed':  # already (the last of its tasks ended while it was being terminated)
            return
        # Recorded: ETag unchanged, previousState still the one before terminating, endTime = the transition.
        self._set_job_state(job, 'completed', touch=False, remember=False)
        job.execution_info['endTime'] = iso(job.state_transition_time)
        self.hooks.job_ended(job)  # the scheduler ends its auto pool after its release tasks have run

    def check_job_completion(self, job: Job) -> None:
        if job.state == 'terminating' and not any(t.state in ('running', 'preparing') for t in job.tasks.values()):
            self._finish_termination(job)
        elif self._all_tasks_complete_ends(job):
            # The service acts on onAllTasksComplete a moment later, not at once: a task terminated and
            # reactivated 0.1 s apart left its job active (Go recording TestTask). The scheduler calls back.
            self.hooks.all_tasks_complete(job)

    def _all_tasks_complete_ends(self, job: Job) -> bool:
        return (job.state == 'active' and job.spec.get('onAllTasksComplete') == 'terminatejob' and bool(job.tasks)
                and job.counts['completed'] == len(job.tasks))

    def end_job_if_all_tasks_still_complete(self, job: Job) -> None:
        """onAllTasksComplete=terminatejob, once the moment has passed: only if every task is still complete."""
        if self.jobs.get(job.id.lower()) is job and self._all_tasks_complete_ends(job):
            self._set_job_state(job, 'terminating')
            job.execution_info['terminateReason'] = 'AllTasksComplete'
            self._finish_termination(job)

    def _drop_pending(self, job: Job) -> None:
        pool = self.pools.get(job.pool_id.lower())
        if pool is not None:
            pool.pending = deque(task for task in pool.pending if task.job_id.lower() != job.id.lower())
