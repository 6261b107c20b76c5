"""Jobs: create, update, disable, terminate and delete them; when a job completes."""

from __future__ import annotations

from collections import deque

from .errors import BatchServiceError, invalid_property, missing_property
from .models import Job, iso, stamp
from .room import Room, _check_command_line, _check_id
from .tasks import _task_ended_failure


def _job_resource(job: Job, base_url: str) -> dict:
    """The job's state and what was sent; ``contract.render`` adds the defaults the service writes."""
    return {
        **job.spec,
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

    def _set_job_state(self, job: Job, state: str, *, touch: bool = True, remember: bool = True) -> None:
        job.set_state(state, touch=touch, remember=remember)
        self.changed('job', job)

    # ----- jobs --------------------------------------------------------------------------

    def create_job(self, body: dict) -> Job:
        job_id = _check_id(body)
        if job_id.lower() in self.jobs:
            existing = self.jobs[job_id.lower()]
            raise BatchServiceError('JobBeingDeleted' if existing.state == 'deleting' else 'JobExists')
        pool_info = body.get('poolInfo')
        if not pool_info:
            raise missing_property('poolInfo')
        if pool_info.get('autoPoolSpecification'):
            raise invalid_property('poolInfo.autoPoolSpecification', '...',
                                   'The local emulator does not create auto pools; create the pool first.')
        if not pool_info.get('poolId'):
            raise missing_property('poolInfo.poolId')
        for key in ('jobManagerTask', 'jobPreparationTask', 'jobReleaseTask'):
            _check_command_line(body.get(key), key)
        if body.get('jobReleaseTask') and not body.get('jobPreparationTask'):
            raise invalid_property('jobReleaseTask', '...', 'A job release task requires a job preparation task.')
        if body.get('jobManagerTask'):
            raise invalid_property('jobManagerTask', '...', 'The local emulator does not run job manager tasks.')
        on_complete = str(body.get('onAllTasksComplete', 'noaction')).lower()
        if on_complete not in ('noaction', 'terminatejob'):
            raise invalid_property('onAllTasksComplete', body.get('onAllTasksComplete'))
        spec = dict(body)
        spec['onAllTasksComplete'] = on_complete
        etag, now = stamp()
        job = Job(id=job_id, spec=spec, pool_id=pool_info['poolId'], etag=etag, creation_time=now,
                  last_modified=now, state_transition_time=now)
        self.jobs[job_id.lower()] = job
        self.changed('job', job)
        return job

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
        """PATCH changes what is sent; PUT (replace) resets what is not sent to its default and keeps the
        job preparation and release tasks (recorded [P:jobs])."""
        job = self._active_job(job_id)
        if not -1000 <= int(body.get('priority') or 0) <= 1000:
            raise BatchServiceError('OutOfRangePriority')
        pool_info = body.get('poolInfo')
        if pool_info and pool_info.get('poolId') and pool_info['poolId'].lower() != job.pool_id.lower():
            if job.state != 'disabled':
                raise BatchServiceError('OperationInvalidForCurrentState',
                                        'The pool of a job can be changed only while the job is disabled.')
            job.pool_id = pool_info['poolId']
        for key in ('priority', 'maxParallelTasks', 'allowTaskPreemption', 'constraints', 'metadata',
                    'onAllTasksComplete', 'poolInfo'):
            if key in body:
                job.spec[key] = str(body[key]).lower() if key == 'onAllTasksComplete' else body[key]
            elif replace and key != 'poolInfo':
                job.spec.pop(key, None)
        job.etag, job.last_modified = stamp()
        self.changed('job', job)
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
        if self.jobs.get(job.id.lower()) is job:
            del self.jobs[job.id.lower()]
            self._drop_pending(job)
            self._removed('job', job)

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
        job = self._active_job(job_id)
        mode = str(disable_tasks or '').lower()
        if mode not in ('requeue', 'terminate', 'wait'):
            raise invalid_property('disableTasks', disable_tasks, "Use 'requeue', 'terminate' or 'wait'.")
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
        job = self._active_job(job_id)
        if job.state == 'disabled':
            self._set_job_state(job, 'active')
            self.hooks.work_available()

    def _active_job(self, job_id: str) -> Job:
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
                self._complete(task, exit_code=None, failure=_task_ended_failure())
        self._drop_pending(job)
        if not any(task.state in ('running', 'preparing') for task in job.tasks.values()):
            self._finish_termination(job)

    def _finish_termination(self, job: Job) -> None:
        # Recorded: ETag unchanged, previousState still the one before terminating, endTime = the transition.
        self._set_job_state(job, 'completed', touch=False, remember=False)
        job.execution_info['endTime'] = iso(job.state_transition_time)
        self.hooks.job_ended(job)

    def check_job_completion(self, job: Job) -> None:
        if job.state == 'terminating' and not any(t.state in ('running', 'preparing') for t in job.tasks.values()):
            self._finish_termination(job)
        elif (job.state == 'active' and job.spec.get('onAllTasksComplete') == 'terminatejob' and job.tasks
              and job.counts['completed'] == len(job.tasks)):
            self._set_job_state(job, 'terminating')
            job.execution_info['terminateReason'] = 'AllTasksComplete'
            self._finish_termination(job)

    def _drop_pending(self, job: Job) -> None:
        pool = self.pools.get(job.pool_id.lower())
        if pool is not None:
            pool.pending = deque(task for task in pool.pending if task.job_id.lower() != job.id.lower())
