"""Task dependencies and exit conditions: when a dependent task may run, and what a task's end does to its job.

As the spec and Microsoft's "task dependencies" article describe them:

- A job must say ``usesTaskDependencies``; a task with ``dependsOn`` on another job is refused with
  TaskDependenciesNotSpecifiedOnJob. ``taskIds`` may total 64,000 characters
  (TaskDependencyListTooLong); ``taskIdRanges`` name the integer task ids from start to end.
- A dependent task stays ``active`` until every task it names has completed and *satisfied* it.
  A parent that does not exist yet is waited for (tasks may be added in any order); one that ended
  with a dependency action of ``block`` keeps it waiting for good (until the parent is reactivated).
- Exit conditions choose the options of a completed task: its exit code in ``exitCodes`` or
  ``exitCodeRanges``, else ``preProcessingError`` / ``fileUploadError`` for those failures, else
  ``default`` for any failure; exit code 0 without a mapping satisfies dependents and does nothing to
  the job. The defaults: ``satisfy``/``none`` for exit code 0, ``block``/``terminate`` otherwise.
- ``jobAction`` (``none``, ``disable``, ``terminate``) applies when the job's ``onTaskFailure`` is
  ``performexitoptionsjobaction``; naming one on a job whose ``onTaskFailure`` is ``noaction`` is
  refused (InvalidPropertyValue, as the spec says).
"""

from __future__ import annotations

from .errors import BatchServiceError, invalid_property
from .models import Job, Task
from .room import Room

MAX_TASK_ID_CHARACTERS = 64_000
_SUCCESS = {'jobAction': 'none', 'dependencyAction': 'satisfy'}
_FAILURE = {'jobAction': 'terminate', 'dependencyAction': 'block'}
_PRE_PROCESSING = ('ResourceFileDownloadFailed', 'CommandProgramNotFound', 'CommandLineInvalid')


def exit_options(task: Task) -> dict:
    """The exit options the task's end chose (only meaningful once it has completed)."""
    info = task.execution_info
    conditions = task.spec.get('exitConditions') or {}
    exit_code = info.get('exitCode')
    failure_code = (info.get('failureInfo') or {}).get('code')
    chosen = None
    if exit_code is not None:
        for mapping in conditions.get('exitCodes') or []:
            if mapping.get('code') == exit_code:
                chosen = mapping.get('exitOptions')
                break
        else:
            for mapping in conditions.get('exitCodeRanges') or []:
                if mapping.get('start', 0) <= exit_code <= mapping.get('end', -1):
                    chosen = mapping.get('exitOptions')
                    break
    if chosen is None and failure_code in _PRE_PROCESSING:
        chosen = conditions.get('preProcessingError')
    if chosen is None and failure_code == 'FileUploadError':
        chosen = conditions.get('fileUploadError')
    failed = info.get('result') == 'failure'
    if chosen is None and failed:
        chosen = conditions.get('default')
    return {**(_FAILURE if failed else _SUCCESS), **(chosen or {})}


def _all_exit_options(conditions: dict) -> list[dict]:
    found = [mapping.get('exitOptions') or {} for mapping in
             list(conditions.get('exitCodes') or []) + list(conditions.get('exitCodeRanges') or [])]
    found += [conditions[name] for name in ('preProcessingError', 'fileUploadError', 'default')
              if isinstance(conditions.get(name), dict)]
    return found


class DependencyRoom(Room):
    """Task dependencies and exit conditions: every rule about them."""

    def check_dependencies(self, job: Job, body: dict) -> None:
        """The checks at add task (the spec's errors)."""
        depends_on = body.get('dependsOn')
        if depends_on:
            if not job.spec.get('usesTaskDependencies'):
                raise BatchServiceError('TaskDependenciesNotSpecifiedOnJob')
            if sum(len(task_id) for task_id in depends_on.get('taskIds') or []) > MAX_TASK_ID_CHARACTERS:
                raise BatchServiceError('TaskDependencyListTooLong', status=400,
                                        message='The dependency list of the task is too long.')
            for task_range in depends_on.get('taskIdRanges') or []:
                if task_range['start'] > task_range['end']:
                    raise invalid_property('taskIdRanges', f"{task_range['start']}-{task_range['end']}",
                                           'The start of a task id range must not be after its end.')
        if str(job.spec.get('onTaskFailure') or 'noaction').lower() == 'noaction':
            for options in _all_exit_options(body.get('exitConditions') or {}):
                if options.get('jobAction') is not None:
                    raise invalid_property('jobAction', options['jobAction'],
                                           "A job action needs the job's onTaskFailure to be "
                                           'performexitoptionsjobaction.')

    def dependencies_met(self, job: Job, task: Task) -> bool:
        """Has every task it depends on completed and satisfied it?"""
        depends_on = task.spec.get('dependsOn') or {}
        for parent_id in depends_on.get('taskIds') or []:
            parent = job.tasks.get(parent_id.lower())
            if parent is None or not self._satisfies(parent):
                return False
        for task_range in depends_on.get('taskIdRanges') or []:
            start, end = task_range['start'], task_range['end']
            if end - start < len(job.tasks):  # walk the range, or the job's tasks, whichever is shorter
                parents = [job.tasks.get(str(number)) for number in range(start, end + 1)]
            else:
                parents = [t for t in job.tasks.values() if t.id.isdigit() and str(int(t.id)) == t.id
                           and start <= int(t.id) <= end]
            if any(parent is None or not self._satisfies(parent) for parent in parents):
                return False
        return True

    @staticmethod
    def _satisfies(parent: Task) -> bool:
        return parent.state == 'completed' and exit_options(parent)['dependencyAction'] == 'satisfy'

    def release_dependents(self, job: Job) -> None:
        """After a task of the job ended: the waiting tasks whose dependencies are now met go to the queue."""
        if not job.waiting:
            return
        ready = [task for task in job.waiting.values() if self.dependencies_met(job, task)]
        if not ready:
            return
        for task in ready:
            del job.waiting[task.id.lower()]
        pool = self.pools.get(job.pool_id.lower())
        if pool is not None:
            pool.pending.extend(ready)
            self.hooks.work_available()

    def hold_until_dependencies_met(self, job: Job, task: Task) -> bool:
        """Keeps a dependent task out of the queue while its dependencies are not met; True if held."""
        if not task.spec.get('dependsOn') or self.dependencies_met(job, task):
            return False
        job.waiting[task.id.lower()] = task
        return True

    def apply_exit_options(self, job: Job, task: Task) -> None:
        """A completed task's job action (with onTaskFailure performexitoptionsjobaction)."""
        if str(job.spec.get('onTaskFailure') or 'noaction').lower() != 'performexitoptionsjobaction':
            return
        if job.state not in ('active', 'disabled'):
            return
        action = str(exit_options(task).get('jobAction') or 'none').lower()
        if action == 'terminate':
            self.terminate_job(job.id, 'TaskFailed')
        elif action == 'disable' and job.state == 'active':
            self.disable_job(job.id, 'requeue')
