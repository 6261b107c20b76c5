"""The account's plain data: nodes, pools, jobs and tasks.

The dataclasses hold the state; the rules about it are in the rooms (``pools``, ``jobs``, ``tasks``).
The clock they are stamped with (``iso``, ``parse_iso``, ``stamp``) is
``common.clock``. ``SchedulerHooks`` is what the account tells the scheduler.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections import deque
from collections.abc import Callable
from typing import Protocol

from batch_emulator.common.clock import etag_for, iso, parse_iso, stamp, utc_now  # noqa: F401 (the rooms' names)

MAX_TASKS_PER_COLLECTION = 100
MAX_LIST_RESULTS = 1000
MAX_TASK_SLOTS = 256  # taskSlotsPerNode: at most 4 x the VM's cores and never more than 256 (the spec)


def duration_text(seconds: float) -> str:
    """A duration as the service writes it back (.NET's XmlConvert): PT06M00S -> PT6M, 86400 s -> P1D."""
    whole, fraction = divmod(round(seconds * 10_000_000), 10_000_000)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = 'P' + (f'{days}D' if days else '')
    clock = (f'{hours}H' if hours else '') + (f'{minutes}M' if minutes else '')
    if secs or fraction:
        clock += f'{secs}' + (f'.{fraction:07d}'.rstrip('0') if fraction else '') + 'S'
    return text + ('T' + clock if clock else '') if (days or clock) else 'PT0S'


def retry_delay(retry_count: int) -> float:
    """The back-off before a failed task's (or start task's) next try: 0.1 s, doubling, at most 30 s."""
    return min(0.1 * 2 ** max(retry_count - 1, 0), 30.0)


class SchedulerHooks(Protocol):
    def pool_created(self, pool: Pool) -> None: ...
    def pool_deleted(self, pool: Pool) -> None: ...
    def work_available(self) -> None: ...
    def stop_task(self, task: Task) -> None: ...
    def requeue_task(self, task: Task) -> None: ...
    def job_ended(self, job: Job) -> None: ...
    def all_tasks_complete(self, job: Job) -> None: ...


class _NoHooks:
    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None


@dataclasses.dataclass(eq=False)
class Node:
    id: str
    pool_id: str
    root_dir: str
    ip_address: str
    state: str = 'creating'
    state_transition_time: datetime.datetime = dataclasses.field(default_factory=utc_now)
    allocation_time: datetime.datetime = dataclasses.field(default_factory=utc_now)
    last_boot_time: datetime.datetime | None = None
    scheduling_state: str = 'enabled'
    start_task_info: dict | None = None
    running: dict[str, Task] = dataclasses.field(default_factory=dict)
    running_slots: int = 0
    exclusive: bool = False  # a job manager with runExclusive runs here: no other task starts
    total_tasks_run: int = 0
    total_tasks_succeeded: int = 0
    recent_tasks: deque = dataclasses.field(default_factory=lambda: deque(maxlen=5))
    prepared_jobs: dict[str, dict] = dataclasses.field(default_factory=dict)  # job key -> prep/release status
    errors: list[dict] = dataclasses.field(default_factory=list)
    users: dict[str, dict] = dataclasses.field(default_factory=dict)  # node user name -> its settings
    dedicated: bool = True  # False: a Spot/low-priority node (isDedicated false; it can be preempted)
    preemptions: deque = dataclasses.field(default_factory=lambda: deque(maxlen=20))  # when (the portal shows them)

    def set_state(self, state: str, *, keep_time: bool = False) -> None:
        if state != self.state:
            self.state = state
            if not keep_time:
                self.state_transition_time = utc_now()


@dataclasses.dataclass(eq=False)
class Pool:
    id: str
    spec: dict
    etag: str
    creation_time: datetime.datetime
    last_modified: datetime.datetime
    state: str = 'active'
    state_transition_time: datetime.datetime = dataclasses.field(default_factory=utc_now)
    allocation_state: str = 'resizing'
    allocation_state_transition_time: datetime.datetime = dataclasses.field(default_factory=utc_now)
    nodes: dict[str, Node] = dataclasses.field(default_factory=dict)
    resize_errors: list[dict] = dataclasses.field(default_factory=list)
    pending: deque = dataclasses.field(default_factory=deque)  # tasks waiting for a slot, in order
    reorder: bool = False  # jobs of different priorities wait here: order the queue (higher first) before use
    preempting: set = dataclasses.field(default_factory=set)  # running tasks being preempted for a higher job
    # Autoscale: the last periodic run (GET shows it), when the next is due and when it was last enabled
    # (monotonic seconds), and the sampled histories its formula reads ($PendingTasks, ...).
    autoscale_run: dict | None = None
    autoscale_due: float = 0.0
    autoscale_enabled_at: float | None = None
    samples: dict[str, deque] = dataclasses.field(default_factory=dict)

    def count_nodes(self, *, dedicated: bool) -> int:
        """currentDedicatedNodes or currentLowPriorityNodes (the spot count includes preempted nodes)."""
        return sum(node.dedicated is dedicated for node in self.nodes.values())

    @property
    def slots_per_node(self) -> int:
        return int(self.spec.get('taskSlotsPerNode') or 1)

    def touch(self) -> None:
        self.etag, self.last_modified = stamp()


@dataclasses.dataclass(eq=False)
class TaskFields:
    """A task's fields. The account holds ``Task``s: they drop their kept bodies when a field is set."""

    id: str
    job_id: str
    spec: dict
    etag: str
    creation_time: datetime.datetime
    last_modified: datetime.datetime
    state: str = 'active'
    state_transition_time: datetime.datetime = dataclasses.field(default_factory=utc_now)
    previous_state: str | None = None
    previous_state_transition_time: datetime.datetime | None = None
    execution_info: dict = dataclasses.field(default_factory=lambda: {'retryCount': 0, 'requeueCount': 0})
    node_info: dict | None = None
    node: Node | None = None
    terminate_requested: bool = False
    process_id: int | None = None  # of the running process (its group), so a restarted emulator can stop it
    process_start_time: int | None = None  # the process's start time: a reused process id is never touched
    not_before: float = 0.0  # monotonic time before which a retry does not start (its back-off)
    subtasks: list[dict] = dataclasses.field(default_factory=list)  # a multi-instance task's, ids 1 .. n-1
    # Its bodies as last written (``wire.py``), until it changes: any attribute set here drops them, and so
    # does ``Room.changed`` (which every change of its dicts in place is followed by).
    written: dict | None = dataclasses.field(default=None, repr=False)


class Task(TaskFields):
    def __setattr__(self, name: str, value: object) -> None:
        attributes = self.__dict__  # plain attributes: no slots, no descriptors among the fields
        attributes[name] = value
        if name != 'written' and attributes.get('written') is not None:
            attributes['written'] = None

    @classmethod
    def new(cls, **fields: object) -> Task:
        """``Task(**fields)`` in 1.0 µs against 2.5 (``python -m timeit``): a new task has no bodies to drop, so its
        fields are set as a plain dataclass sets them (without the ``__setattr__`` above), and then it is a Task."""
        task = TaskFields(**fields)  # type: ignore[arg-type]
        task.__class__ = cls
        return task  # type: ignore[return-value]

    @property
    def required_slots(self) -> int:
        return int(self.spec.get('requiredSlots') or 1)


@dataclasses.dataclass(eq=False)
class Job:
    id: str
    spec: dict
    pool_id: str
    etag: str
    creation_time: datetime.datetime
    last_modified: datetime.datetime
    state: str = 'active'
    state_transition_time: datetime.datetime = dataclasses.field(default_factory=utc_now)
    previous_state: str | None = None
    previous_state_transition_time: datetime.datetime | None = None
    execution_info: dict = dataclasses.field(default_factory=dict)
    tasks: dict[str, Task] = dataclasses.field(default_factory=dict)
    waiting: dict[str, Task] = dataclasses.field(default_factory=dict)  # active tasks whose dependencies wait
    counts: dict[str, int] = dataclasses.field(
        default_factory=lambda: {'active': 0, 'running': 0, 'completed': 0, 'succeeded': 0, 'failed': 0})
    slot_counts: dict[str, int] = dataclasses.field(
        default_factory=lambda: {'active': 0, 'running': 0, 'completed': 0, 'succeeded': 0, 'failed': 0})

    def set_state(self, state: str, *, touch: bool = True, remember: bool = True) -> None:
        """A new state; ``touch``: a new ETag too; ``remember``: the old state becomes previousState.

        Recorded [P:jobs]: disable and enable touch; terminating -> completed and deleting do not, and
        a completed job's previousState is still the state before terminating."""
        if state != self.state:
            if remember:
                self.previous_state, self.previous_state_transition_time = self.state, self.state_transition_time
            self.state, self.state_transition_time = state, utc_now()
            if touch:
                self.etag, self.last_modified = stamp()
