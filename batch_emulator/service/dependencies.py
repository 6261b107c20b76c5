"""Task dependencies and exit conditions: when a dependent task may run, and what a task's end does to its job.

As the spec and Microsoft's "task dependencies" article describe them:

- A job must say ``usesTaskDependencies``; a task with ``dependsOn`` on another job is refused with
  TaskDependenciesNotSpecifiedOnJob. ``taskIds`` may total 64,000 characters
  (TaskDependencyListTooLong); ``taskIdRanges`` name the integer task ids from start to end.
- A dependent task stays ``active`` until every task it names has completed and *satisfied* it.
  A parent that does not exist yet is waited for (tasks may be added in any order); one that ended
  with a dependency action of ``block`` keeps it waiting for good (until the parent is reactivated).
  A range stands for every id in it ("start 9 and end 12 represents Tasks '9', '10', '11' and '12'",
  the spec), so an id of the range that no task has yet is waited for too; only ids that are integers
  are in a range, and leading zeros do not count (``4``, ``04`` and ``004`` are all task 4, the first
  of them to satisfy it satisfies the range: Microsoft's "task dependencies" article).
- Exit conditions choose the options of a completed task: its exit code in ``exitCodes`` or
  ``exitCodeRanges``, else ``preProcessingError`` / ``fileUploadError`` for those failures, else
  ``default`` for any failure; exit code 0 without a mapping satisfies dependents and does nothing to
  the job. The defaults: ``satisfy``/``none`` for exit code 0, ``block``/``terminate`` otherwise.
- ``jobAction`` (``none``, ``disable``, ``terminate``) applies when the job's ``onTaskFailure`` is
  ``performexitoptionsjobaction``; naming one on a job whose ``onTaskFailure`` is ``noaction`` is
  refused (InvalidPropertyValue, as the spec says).
"""

from __future__ import annotations

import bisect
import re
import weakref
from collections import defaultdict
from typing import TYPE_CHECKING

from batch_emulator.common.errors import BatchServiceError, invalid_property
from batch_emulator.service.models import Job, Task
from batch_emulator.service.room import Account, Room

if TYPE_CHECKING:  # the rooms this one is connected to (state.BatchState connects them)
    from batch_emulator.service.jobs import JobRoom

MAX_TASK_ID_CHARACTERS = 64_000
_SUCCESS = {'jobAction': 'none', 'dependencyAction': 'satisfy'}
_FAILURE = {'jobAction': 'terminate', 'dependencyAction': 'block'}
_PRE_PROCESSING = ('ResourceFileDownloadFailed', 'CommandProgramNotFound', 'CommandLineInvalid')
_INTEGER_ID = re.compile(r'-?[0-9]+')
_INT32 = 1 << 31  # range ids are int32: shifted by this into 0 .. 2**32 - 1 for the index's blocks
_LEVELS = 33  # block sizes 2**0 .. 2**32


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


def range_id(task_id: str) -> int | None:
    """The integer a task id stands for in task id ranges (None: not an integer id, so in no range)."""
    if not _INTEGER_ID.fullmatch(task_id):
        return None
    value = int(task_id)
    return value if -_INT32 <= value < _INT32 else None


def _blocks(start: int, end: int):
    """The aligned power-of-two blocks (level, index) that exactly cover the shifted ids start .. end."""
    while start <= end:
        level = min((start & -start).bit_length() - 1 if start else _LEVELS - 1, (end - start + 1).bit_length() - 1)
        yield level, start >> level
        start += 1 << level


def _merged(ranges: list[dict]) -> tuple[tuple[int, int], ...]:
    """A task's ranges as sorted, disjoint (start, end) pairs of shifted ids."""
    pairs = sorted((max(int(r['start']), -_INT32) + _INT32, min(int(r['end']), _INT32 - 1) + _INT32) for r in ranges)
    merged: list[list[int]] = []
    for start, end in pairs:
        if start > end:
            continue
        if merged and start <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return tuple((start, end) for start, end in merged)


class _RangeGroup:
    """The waiting tasks that depend on the same ranges share one count of the range ids not yet satisfied."""
    __slots__ = ('ranges', 'unmet', 'waiters')

    def __init__(self, ranges: tuple[tuple[int, int], ...], unmet: int) -> None:
        self.ranges, self.unmet = ranges, unmet
        self.waiters: set[_Waiter] = set()


class _Waiter:
    """A waiting dependent task: how many of the ids it names have not satisfied it, and its ranges' group."""
    __slots__ = ('task', 'ids', 'ids_unmet', 'group')

    def __init__(self, task: Task, ids: frozenset[str], ids_unmet: int, group: _RangeGroup | None) -> None:
        self.task, self.ids, self.ids_unmet, self.group = task, ids, ids_unmet, group

    @property
    def ready(self) -> bool:
        return self.ids_unmet == 0 and (self.group is None or self.group.unmet == 0)


class _JobDependencies:
    """One job's index: which parents satisfy, and who waits for which id or range.

    Every change costs what it touches: a parent that starts or stops satisfying visits the waiting tasks that
    name it and the range groups that cover it (found through the aligned blocks each group's ranges are cut
    into: 33 look-ups), never every task or every waiting task of the job."""

    def __init__(self) -> None:
        self.satisfying: set[str] = set()  # the lower-cased ids of the tasks that satisfy their dependents
        self.ids_satisfied: dict[int, int] = {}  # shifted range id -> how many satisfying tasks stand for it
        self.sorted_ids: list[int] = []  # the keys of ids_satisfied, sorted (to count them in a range)
        self.named: defaultdict[str, set[_Waiter]] = defaultdict(set)  # lower-cased id -> the waiters naming it
        self.groups: dict[tuple, _RangeGroup] = {}
        self.blocks: defaultdict[tuple[int, int], set[_RangeGroup]] = defaultdict(set)
        self.waiters: dict[str, _Waiter] = {}  # lower-cased id of the waiting task -> its waiter

    def satisfied_in(self, start: int, end: int) -> int:
        return bisect.bisect_right(self.sorted_ids, end) - bisect.bisect_left(self.sorted_ids, start)

    def group(self, ranges: tuple[tuple[int, int], ...]) -> _RangeGroup:
        group = self.groups.get(ranges)
        if group is None:
            unmet = sum(end - start + 1 - self.satisfied_in(start, end) for start, end in ranges)
            group = self.groups[ranges] = _RangeGroup(ranges, unmet)
            for start, end in ranges:
                for block in _blocks(start, end):
                    self.blocks[block].add(group)
        return group

    def drop_group(self, group: _RangeGroup) -> None:
        if group.waiters or self.groups.get(group.ranges) is not group:
            return
        del self.groups[group.ranges]
        for start, end in group.ranges:
            for block in _blocks(start, end):
                holders = self.blocks[block]
                holders.discard(group)
                if not holders:
                    del self.blocks[block]

    def covering(self, shifted: int) -> list[_RangeGroup]:
        if not self.blocks:
            return []
        found: list[_RangeGroup] = []
        for level in range(_LEVELS):
            found.extend(self.blocks.get((level, shifted >> level), ()))
        return found

    def forget(self, key: str) -> _Waiter | None:
        waiter = self.waiters.pop(key, None)
        if waiter is not None:
            for name in waiter.ids:
                holders = self.named[name]
                holders.discard(waiter)
                if not holders:
                    del self.named[name]
            if waiter.group is not None:
                waiter.group.waiters.discard(waiter)
                self.drop_group(waiter.group)
        return waiter

    def set_satisfying(self, task: Task, satisfying: bool) -> list[_Waiter]:
        """Records that the task now does (or no longer does) satisfy its dependents; returns the waiters that
        became ready."""
        key = task.id.lower()
        if (key in self.satisfying) == satisfying:
            return []
        delta = -1 if satisfying else 1  # on the waiters' counts of what is not met
        touched: list[_Waiter] = []
        if satisfying:
            self.satisfying.add(key)
        else:
            self.satisfying.discard(key)
        for waiter in self.named.get(key, ()):
            waiter.ids_unmet += delta
            touched.append(waiter)
        number = range_id(task.id)
        if number is not None:
            shifted = number + _INT32
            before = self.ids_satisfied.get(shifted, 0)
            after = before - delta
            if after:
                self.ids_satisfied[shifted] = after
            else:
                del self.ids_satisfied[shifted]
            if (before == 0) != (after == 0):  # the id itself became satisfied, or no longer is
                if after:
                    bisect.insort(self.sorted_ids, shifted)
                else:
                    del self.sorted_ids[bisect.bisect_left(self.sorted_ids, shifted)]
                for group in self.covering(shifted):
                    group.unmet += delta
                    if satisfying and group.unmet == 0:
                        touched.extend(group.waiters)
        return [waiter for waiter in dict.fromkeys(touched) if waiter.ready] if satisfying else []


class DependencyRoom(Room):
    """Task dependencies and exit conditions: every rule about them."""

    def __init__(self, account: Account) -> None:
        super().__init__(account)
        self._dependency_index: weakref.WeakKeyDictionary[Job, _JobDependencies] = weakref.WeakKeyDictionary()

    def connect(self, *, job_room: JobRoom) -> None:
        """The room dependencies call: jobs (an exit condition may disable or terminate the job)."""
        self.job_room = job_room

    def _index(self, job: Job) -> _JobDependencies:
        index = self._dependency_index.get(job)
        if index is None:
            index = self._dependency_index[job] = _JobDependencies()
        return index

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
        conditions = body.get('exitConditions')
        if conditions and str(job.spec.get('onTaskFailure') or 'noaction').lower() == 'noaction':
            for options in _all_exit_options(conditions):
                if options.get('jobAction') is not None:
                    raise invalid_property('jobAction', options['jobAction'],
                                           "A job action needs the job's onTaskFailure to be "
                                           'performexitoptionsjobaction.')

    def _waiter(self, job: Job, task: Task) -> _Waiter | None:
        """The task's waiter if its dependencies are not met now (not yet registered), else None."""
        index = self._index(job)
        depends_on = task.spec.get('dependsOn') or {}
        ids = frozenset(str(parent_id).lower() for parent_id in depends_on.get('taskIds') or [])
        ranges = _merged(depends_on.get('taskIdRanges') or [])
        group = index.group(ranges) if ranges else None
        waiter = _Waiter(task, ids, sum(1 for name in ids if name not in index.satisfying), group)
        if waiter.ready:
            if group is not None:
                index.drop_group(group)
            return None
        return waiter

    def dependencies_met(self, job: Job, task: Task) -> bool:
        """Has every task it depends on completed and satisfied it?"""
        waiter = self._index(job).waiters.get(task.id.lower())
        if waiter is not None:
            return waiter.ready
        return self._waiter(job, task) is None

    @staticmethod
    def _satisfies(parent: Task) -> bool:
        return (parent.state == 'completed'
                and str(exit_options(parent)['dependencyAction']).lower() == 'satisfy')

    def dependency_parent_changed(self, job: Job, task: Task) -> None:
        """A task of the job completed, left ``completed`` or went: the waiting tasks it now satisfies go to the
        queue (only those that name it or a range holding it are looked at)."""
        if not job.spec.get('usesTaskDependencies'):
            return
        index = self._index(job)
        present = job.tasks.get(task.id.lower()) is task
        ready = index.set_satisfying(task, present and self._satisfies(task))
        for waiter in ready:
            index.forget(waiter.task.id.lower())
            job.waiting.pop(waiter.task.id.lower(), None)
        pool = self.pools.get(job.pool_id.lower())
        if ready and pool is not None:
            pool.pending.extend(waiter.task for waiter in ready)
            self.hooks.work_available()

    def dependent_gone(self, job: Job, task: Task) -> None:
        """A waiting task completed (ended by request, or with its job) or was deleted: it waits no more."""
        if job.waiting.pop(task.id.lower(), None) is not None:
            self._index(job).forget(task.id.lower())

    def hold_until_dependencies_met(self, job: Job, task: Task) -> bool:
        """Keeps a dependent task out of the queue while its dependencies are not met; True if held."""
        if not task.spec.get('dependsOn'):
            return False
        index = self._index(job)
        key = task.id.lower()
        if key in index.waiters:
            return True
        waiter = self._waiter(job, task)
        if waiter is None:
            return False
        index.waiters[key] = waiter
        for name in waiter.ids:
            index.named[name].add(waiter)
        if waiter.group is not None:
            waiter.group.waiters.add(waiter)
        job.waiting[key] = task
        return True

    def apply_exit_options(self, job: Job, task: Task) -> None:
        """A completed task's job action (with onTaskFailure performexitoptionsjobaction)."""
        if str(job.spec.get('onTaskFailure') or 'noaction').lower() != 'performexitoptionsjobaction':
            return
        if job.state not in ('active', 'disabled'):
            return
        action = str(exit_options(task).get('jobAction') or 'none').lower()
        if action == 'terminate':
            self.job_room.terminate_job(job.id, 'TaskFailed')
        elif action == 'disable' and job.state == 'active':
            self.job_room.disable_job(job.id, 'requeue')
