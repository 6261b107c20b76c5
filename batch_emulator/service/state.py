"""The emulated Batch account: pools, nodes, jobs and tasks as plain data.

This module is the single source of truth and the one place where requests are
validated. Routes call its methods and serialise what they return; the
scheduler (``hooks``) is told when something happened that may let a task run,
and reports back through the ``*_started`` / ``*_finished`` methods. Nothing
here runs a process or formats an HTTP response.

Ids are case-insensitive and case-preserving, as in the service: entities are
keyed by their lower-cased id.

``BatchState`` is built from rooms, one per resource, each readable on its own:

- ``models``: the dataclasses (``Node``, ``Pool``, ``Job``, ``Task``), the
  timestamps and ETags (``utc_now``, ``iso``, ``parse_iso``, ``etag_for``,
  ``stamp``), ``retry_delay``, the limits and the ``SchedulerHooks`` protocol;
- ``room``: ``Account``, the data every room shares (the account's pools and
  jobs, the hooks and the journal), ``Room``, the id and command-line checks,
  and ``page``;
- ``pools``: ``PoolRoom``, pools and their nodes;
- ``nodes``: ``NodeRoom``, node actions' checks, scheduling, users, remote login, extensions;
- ``scaling``: ``AutoScaleRoom``, autoscale on pools (the formula language is ``autoscale``);
- ``jobs``: ``JobRoom``, jobs, their auto pools and when they complete;
- ``tasks``: ``TaskRoom``, tasks, their counts and what the scheduler reports
  about their runs;
- ``dependencies``: ``DependencyRoom``, task dependencies and exit conditions;
- ``schedules``: ``ScheduleRoom``, job schedules and the jobs they create;
- ``certificates``: ``CertificateRoom``, the certificates of the api-versions before 2025-06-01.

Each room is an object of its own: it is built on the ``Account`` and connected
to the rooms it calls, by name (``connect``), here in one place. The wire and
the runtime call the rooms' operations on ``BatchState``, which offers each
room's public methods as its own (no two rooms have a method of the same
name). Everything other modules use is importable from here.
"""

from __future__ import annotations

from batch_emulator.service.certificates import CertificateRoom
from batch_emulator.service.dependencies import DependencyRoom
from batch_emulator.service.jobs import JobRoom
from batch_emulator.service.models import (
    MAX_LIST_RESULTS,
    MAX_TASK_SLOTS,
    MAX_TASKS_PER_COLLECTION,
    Job,
    Node,
    Pool,
    SchedulerHooks,
    Task,
    etag_for,
    iso,
    parse_iso,
    retry_delay,
    stamp,
    utc_now,
)
from batch_emulator.service.nodes import NodeRoom
from batch_emulator.service.pools import PoolRoom
from batch_emulator.service.room import Account, AccountData, Room, page, shared
from batch_emulator.service.scaling import AutoScaleRoom
from batch_emulator.service.schedules import ScheduleRoom
from batch_emulator.service.tasks import TaskRoom

__all__ = [
    'MAX_LIST_RESULTS', 'MAX_TASKS_PER_COLLECTION', 'MAX_TASK_SLOTS', 'BatchState', 'Job', 'Node', 'Pool',
    'SchedulerHooks', 'Task', 'etag_for', 'iso', 'page', 'parse_iso', 'retry_delay', 'stamp',
    'utc_now',
]


class BatchState(AccountData):
    """The account: every pool, node, job and task, and every rule about them, in rooms connected here."""

    # the account's data is the Account's (AccountData); the rooms' settings and data, each room's
    active_job_quota = shared('active_job_quota', 'job_room')  # --active-job-quota
    clock_speed = shared('clock_speed', 'autoscale_room')  # --clock-speed
    job_schedules = shared('job_schedules', 'schedule_room')
    schedules_changed = shared('schedules_changed', 'schedule_room')
    schedule_clock = shared('schedule_clock', 'schedule_room')
    certificates = shared('certificates', 'certificate_room')

    def __init__(self, account_name: str, base_url: str, nodes_dir: str) -> None:
        self.account = Account(account_name, base_url, nodes_dir)
        self.pool_room = PoolRoom(self.account)
        self.node_room = NodeRoom(self.account)
        self.autoscale_room = AutoScaleRoom(self.account)
        self.job_room = JobRoom(self.account)
        self.task_room = TaskRoom(self.account)
        self.dependency_room = DependencyRoom(self.account)
        self.schedule_room = ScheduleRoom(self.account)
        self.certificate_room = CertificateRoom(self.account)  # reads the pools; calls no other room
        # who calls whom: every dependency between rooms is here
        self.pool_room.connect(autoscale_room=self.autoscale_room)
        self.node_room.connect(pool_room=self.pool_room)
        self.autoscale_room.connect(pool_room=self.pool_room)
        self.job_room.connect(pool_room=self.pool_room, task_room=self.task_room, schedule_room=self.schedule_room)
        self.task_room.connect(job_room=self.job_room, dependency_room=self.dependency_room)
        self.dependency_room.connect(job_room=self.job_room)
        self.schedule_room.connect(job_room=self.job_room)
        self._offer(self.pool_room, self.node_room, self.autoscale_room, self.job_room, self.task_room,
                    self.dependency_room, self.schedule_room, self.certificate_room)

    def _offer(self, *rooms: Room) -> None:
        """Each room's public operations become this object's: ``state.create_pool`` is the pool room's."""
        offered: dict[str, str] = {}
        for room in rooms:
            for name in vars(type(room)):
                if name.startswith('_') or not callable(getattr(type(room), name)) or name in _NOT_OFFERED:
                    continue
                if name in offered:
                    raise TypeError(f'{type(room).__name__} and {offered[name]} both have {name}')
                offered[name] = type(room).__name__
                setattr(self, name, getattr(room, name))

    def changed(self, kind: str, entity: object) -> None:
        """Something outside the rooms changed an entity (the scheduler, the portal): the account hears of it."""
        self.account.changed(kind, entity)


# what every room has and the account answers for itself
_NOT_OFFERED = frozenset({'connect', 'changed', 'noticed_change', 'noticed_removal'})
