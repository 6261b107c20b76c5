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
- ``room``: ``Room``, what every room shares (the account's pools and jobs, the
  hooks and the journal), the id and command-line checks, and ``page``;
- ``pools``: ``PoolRoom``, pools and their nodes;
- ``nodes``: ``NodeRoom``, node actions' checks, scheduling, users, remote login, extensions;
- ``scaling``: ``AutoScaleRoom``, autoscale on pools (the formula language is ``autoscale``);
- ``jobs``: ``JobRoom``, jobs, their auto pools and when they complete;
- ``tasks``: ``TaskRoom``, tasks, their counts and what the scheduler reports
  about their runs;
- ``dependencies``: ``DependencyRoom``, task dependencies and exit conditions;
- ``schedules``: ``ScheduleRoom``, job schedules and the jobs they create.

The rooms call one another through ``self`` (a task completing may complete its
job), so only ``BatchState``, which has them all, is ever made. Everything other
modules use is importable from here.
"""

from __future__ import annotations

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
from batch_emulator.service.room import page
from batch_emulator.service.scaling import AutoScaleRoom
from batch_emulator.service.schedules import ScheduleRoom
from batch_emulator.service.tasks import TaskRoom

__all__ = [
    'MAX_LIST_RESULTS', 'MAX_TASKS_PER_COLLECTION', 'MAX_TASK_SLOTS', 'BatchState', 'Job', 'Node', 'Pool',
    'SchedulerHooks', 'Task', 'etag_for', 'iso', 'page', 'parse_iso', 'retry_delay', 'stamp',
    'utc_now',
]


class BatchState(PoolRoom, NodeRoom, AutoScaleRoom, JobRoom, TaskRoom, DependencyRoom, ScheduleRoom):
    """The account: every pool, node, job and task, and every rule about them."""
