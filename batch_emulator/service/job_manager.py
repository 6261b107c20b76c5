"""Job manager tasks: what a job's ``jobManagerTask`` is, as the service has it (the spec's BatchJobManagerTask).

The job manager is a task of its job: created with the job, under the id it was given, it shows in the job's
task list and task counts like any task, and runs under the task rules (constraints, retries, requeues). What
sets it apart:

- it runs first: no other task of its job starts before it has started once (``waits_for_manager``);
- ``runExclusive`` (default true): it starts only on a node with nothing running, and nothing else starts on
  that node while it runs; ``allowLowPriorityNode`` false (default true): a dedicated node only
  (``admits``, used by the scheduler);
- ``killJobOnCompletion`` (default true): when it completes, successful or not, the job is terminated with
  terminateReason ``JMComplete`` and its tasks still running are ended (the spec's BatchJobExecutionInfo);
  false: the job goes on and ends as ``onAllTasksComplete`` / ``onTaskFailure`` say.

Its ``authenticationTokenSettings`` (any task's, in fact) give it a token for the job's operations
(``runtime/job_tokens.py``).
"""

from __future__ import annotations

from batch_emulator.common.errors import invalid_property, missing_property
from batch_emulator.service.models import MAX_TASK_SLOTS, Job, Node, Task
from batch_emulator.service.room import _check_id

# The properties a job manager shares with the task it becomes (BatchJobManagerTask and BatchTask both have them).
_TASK_PROPERTIES = ('id', 'displayName', 'commandLine', 'containerSettings', 'resourceFiles', 'outputFiles',
                    'environmentSettings', 'constraints', 'requiredSlots', 'userIdentity',
                    'applicationPackageReferences', 'authenticationTokenSettings')


def check_output_files(body: dict, prefix: str = '') -> None:
    """A task's (or job manager's) output files name a pattern, a container URL and an upload condition."""
    for index, output_file in enumerate(body.get('outputFiles') or []):
        where = f'{prefix}outputFiles[{index}]'
        container = (output_file.get('destination') or {}).get('container') or {}
        if not output_file.get('filePattern'):
            raise missing_property(f'{where}.filePattern')
        if not container.get('containerUrl'):
            raise missing_property(f'{where}.destination.container.containerUrl')
        if not (output_file.get('uploadOptions') or {}).get('uploadCondition'):
            raise missing_property(f'{where}.uploadOptions.uploadCondition')


def check_required_slots(slots: object, most: int) -> None:
    if not isinstance(slots, int) or isinstance(slots, bool) or not 1 <= slots <= most:
        raise invalid_property('requiredSlots', slots, "The value must be at least 1 and at most the pool's "
                                                       'taskSlotsPerNode.')


def check(manager: dict | None, slots_per_node: int | None) -> None:
    """A job body's jobManagerTask (its command line and resource files are checked with the job's other tasks);
    ``slots_per_node``: the taskSlotsPerNode of the pool it will run on, when known."""
    if manager is None:
        return
    _check_id(manager)
    check_output_files(manager, 'jobManagerTask.')
    check_required_slots(manager.get('requiredSlots', 1), slots_per_node or MAX_TASK_SLOTS)


def task_body(manager: dict) -> dict:
    """The body of the task the job manager is (what GET task shows of it)."""
    return {name: manager[name] for name in _TASK_PROPERTIES if name in manager}


def manager_of(job: Job, task: Task) -> dict | None:
    """The job's jobManagerTask when ``task`` is it, else None."""
    manager = job.spec.get('jobManagerTask')
    return manager if manager and task.id.lower() == str(manager.get('id', '')).lower() else None


def kills_job(manager: dict) -> bool:
    return manager.get('killJobOnCompletion', True) is not False


def runs_exclusive(job: Job, task: Task) -> bool:
    manager = manager_of(job, task)
    return manager is not None and manager.get('runExclusive', True) is not False


def waits_for_manager(job: Job, task: Task) -> bool:
    """Another task of a job whose manager has not started yet waits: the job manager runs first."""
    manager = job.spec.get('jobManagerTask')
    if not manager or task.id.lower() == str(manager.get('id', '')).lower():
        return False
    manager_task = job.tasks.get(str(manager.get('id', '')).lower())
    return (manager_task is not None and manager_task.state == 'active'
            and 'startTime' not in manager_task.execution_info)


def admits(node: Node, manager: dict) -> bool:
    """Can the job manager start on this node (which has its slots free)? ``runExclusive``: only on a node with
    nothing running; ``allowLowPriorityNode`` false: only on a dedicated node."""
    if manager.get('runExclusive', True) is not False and node.running:
        return False
    return manager.get('allowLowPriorityNode', True) is not False or node.dedicated
