"""Job schedules: create, update, disable, terminate and delete them; the jobs they create on time.

A schedule's *slots* are the moments a job is due: its anchor (``doNotRunUntil``, or its creation time)
and, when it recurs, every ``recurrenceInterval`` after that. At a slot the schedule creates the job
``{id}:job-N`` through the job room's own rules, as soon as it may: while the schedule is active,
while no job of it is still active (at most one at a time), and before ``doNotRunAfter``. A slot
that cannot be served within its start window is lost (a recurring schedule's window never reaches
past its next slot). A schedule with no slot left, or past ``doNotRunAfter``, completes once its
last job has.

Auto pools: with ``poolLifetimeOption`` ``jobschedule`` the schedule's first job creates one pool that
every job of the schedule runs on (``JobSchedule.auto_pool``); it is deleted, unless ``keepAlive``, once
the schedule has completed (or is deleted) and no job of it still runs. With ``job`` each job gets a pool
of its own, as any job does (``jobs.py``).

``run_job_schedules`` serves the slots: it sleeps until the next one is due, or until a schedule or a
schedule's job changes (``schedules_changed``, set by the room), never polling. Each pass looks only at the
schedules that are due (a heap of their next moments) or whose job changed, and a schedule finds its jobs
by their ids (``{id}:job-1`` .. ``{id}:job-{N}``, the active one being the last), so a pass, a create or an
idle moment costs the same with 10 schedules as with 2,000.

The clock: ``BATCH_EMULATOR_SCHEDULE_CLOCK`` (a factor, default 1) makes every recurrence interval
and start window last 1/factor of its length, so that tests need not wait minutes; the times the
schedule shows (``nextRunTime``) are the real moments its jobs are created.
"""

from __future__ import annotations

import asyncio
import datetime
import heapq
import logging
import math
from typing import TYPE_CHECKING

from batch_emulator.common.errors import BatchServiceError
from batch_emulator.common.loops import survive
from batch_emulator.service import updates
from batch_emulator.service.job_schedule import (
    ACTIVE_JOB_STATES,
    FOREVER,
    JobSchedule,
    check_schedule,
    clock_factor,
    earliest,
    plus,
    timespan,
)
from batch_emulator.service.models import Job, iso, parse_iso, stamp, utc_now
from batch_emulator.service.pools import pool_info_without_secrets, registry_passwords_hidden
from batch_emulator.service.room import Account, Room, _check_id

if TYPE_CHECKING:  # the rooms this one is connected to (state.BatchState connects them)
    from batch_emulator.service.jobs import JobRoom

_log = logging.getLogger('batch_emulator.service.schedules')

_RETRY_SECONDS = 1.0  # after a pass of the schedule loop failed (logged), the next one tries again
_LONGEST_SLEEP = 60.0  # seconds: re-reads the wall clock at least this often (it may be set while we sleep)

class ScheduleRoom(Room):
    """Job schedules: every rule about them."""

    def __init__(self, account: Account) -> None:
        super().__init__(account)
        self.job_schedules: dict[str, JobSchedule] = {}
        self.schedules_changed = asyncio.Event()  # wakes run_job_schedules
        self.schedule_clock = clock_factor()
        self._to_serve: set[str] = set()  # schedules (lower-cased ids) the next pass looks at
        self._serve_all = True  # the first pass looks at every schedule (restored ones too)
        self._due: list[tuple[datetime.datetime, str]] = []  # heap of (moment, schedule): when to look again
        self._wake: dict[str, datetime.datetime] = {}  # schedule -> its moment in the heap (others are stale)
        self._active_schedules: set[str] | None = None  # active and disabled schedules (counted once, then kept)

    def connect(self, *, job_room: JobRoom) -> None:
        """The room schedules call: jobs (a schedule's jobs). The schedule room watches the account's
        changes: a schedule's job ending (or going) may let the schedule create its next job, complete, or
        finish being deleted."""
        self.job_room = job_room
        self.account.watchers.append(self)

    def noticed_change(self, kind: str, entity: object) -> None:
        if kind == 'job' and ':' in entity.id:  # type: ignore[attr-defined]
            self._look_at(entity.id.split(':', 1)[0])  # type: ignore[attr-defined]
        elif kind == 'schedule' and self._active_schedules is not None:
            key = entity.id.lower()  # type: ignore[attr-defined]
            if entity.state in ('active', 'disabled') and self.job_schedules.get(key) is entity:  # type: ignore
                self._active_schedules.add(key)
            else:
                self._active_schedules.discard(key)

    def noticed_removal(self, kind: str, entity: object) -> None:
        if kind == 'job' and ':' in entity.id:  # type: ignore[attr-defined]
            self._look_at(entity.id.split(':', 1)[0])  # type: ignore[attr-defined]
        elif kind == 'schedule' and self._active_schedules is not None:
            self._active_schedules.discard(entity.id.lower())  # type: ignore[attr-defined]

    def _look_at(self, schedule_id: str) -> None:
        """The next pass of run_job_schedules looks at this schedule."""
        self._to_serve.add(schedule_id.lower())
        self.schedules_changed.set()

    def active_schedule_count(self) -> int:
        """Active and disabled job schedules (they count against the account's quota; completed ones do not)."""
        if self._active_schedules is None:
            self._active_schedules = {key for key, schedule in self.job_schedules.items()
                                      if schedule.state in ('active', 'disabled')}
        return len(self._active_schedules)

    # ----- the REST operations -----------------------------------------------------------------

    def create_job_schedule(self, body: dict) -> JobSchedule:
        schedule_id = _check_id(body)
        existing = self.job_schedules.get(schedule_id.lower())
        if existing is not None:
            raise BatchServiceError('JobScheduleBeingDeleted' if existing.state == 'deleting' else 'JobScheduleExists')
        spec = {key: value for key, value in body.items() if key != 'id'}
        spec['schedule'] = check_schedule(body.get('schedule'))
        self._check_job_specification(spec['jobSpecification'])
        self.job_room.check_active_quota()
        etag, now = stamp()  # recorded: lastModified = creationTime = stateTransitionTime
        schedule = JobSchedule(id=schedule_id, spec=spec, etag=etag, creation_time=now, last_modified=now,
                               state_transition_time=now)
        schedule.next_run = self._anchor(schedule)
        self.job_schedules[schedule_id.lower()] = schedule
        self.changed('schedule', schedule)
        self._serve_now(schedule)  # recorded: the first job exists at once
        return schedule

    def get_job_schedule(self, schedule_id: str) -> JobSchedule:
        schedule = self.job_schedules.get(schedule_id.lower())
        if schedule is None:
            raise BatchServiceError('JobScheduleNotFound')
        return schedule

    def job_schedule_resource(self, schedule: JobSchedule) -> dict:
        execution: dict = {}
        if schedule.next_run is not None and schedule.state != 'completed':
            execution['nextRunTime'] = iso(schedule.next_run)  # recorded: back again while deleting
        if schedule.job_count:
            recent = schedule.job_id(schedule.job_count)
            execution['recentJob'] = {'url': f'{self.base_url}/jobs/{recent}', 'id': recent}
        if schedule.state == 'completed' and schedule.end_time is not None:
            execution['endTime'] = iso(schedule.end_time)
        job_specification = schedule.spec.get('jobSpecification')
        hidden = ({**registry_passwords_hidden(job_specification),
                   **pool_info_without_secrets(job_specification.get('poolInfo'))} if job_specification else {})
        return {
            **schedule.spec,
            **({'jobSpecification': {**job_specification, **hidden}} if hidden else {}),  # write-only secrets
            'id': schedule.id,
            'url': f'{self.base_url}/jobschedules/{schedule.id}',
            'eTag': schedule.etag,
            'lastModified': iso(schedule.last_modified),
            'creationTime': iso(schedule.creation_time),
            'state': schedule.state,
            'stateTransitionTime': iso(schedule.state_transition_time),
            'previousState': schedule.previous_state,
            'previousStateTransitionTime': iso(schedule.previous_state_transition_time),
            'executionInfo': execution,
        }

    def list_job_schedules(self) -> list[dict]:
        return [self.job_schedule_resource(schedule) for schedule in self.job_schedules.values()]

    def list_jobs_of_schedule(self, schedule_id: str) -> list[dict]:
        schedule = self.get_job_schedule(schedule_id)
        return [self.job_room.job_resource(job) for job in self._jobs_of(schedule)]

    def update_job_schedule(self, schedule_id: str, body: dict, *, replace: bool) -> JobSchedule:
        """PATCH changes every property of BatchJobScheduleUpdateOptions it carries; PUT replaces the writable
        ones of BatchJobSchedule (``updates``), what it leaves out going back to its default (recorded)."""
        schedule = self._changeable(schedule_id)
        spec = updates.merged(schedule.spec, body, updates.update('schedule', replace))
        spec['schedule'] = check_schedule(spec.get('schedule'))
        self._check_job_specification(spec['jobSpecification'])
        schedule.spec = spec
        schedule.etag, schedule.last_modified = stamp()
        schedule.next_run = self._next_slot(schedule)
        self.changed('schedule', schedule)
        self._serve_now(schedule)
        return schedule

    def disable_job_schedule(self, schedule_id: str) -> JobSchedule:
        schedule = self._changeable(schedule_id)
        schedule.set_state('disabled')
        self.changed('schedule', schedule)
        return schedule

    def enable_job_schedule(self, schedule_id: str) -> JobSchedule:
        schedule = self._changeable(schedule_id)
        schedule.set_state('active')
        self.changed('schedule', schedule)
        self._serve_now(schedule)
        return schedule

    def terminate_job_schedule(self, schedule_id: str) -> JobSchedule:
        """Completed at once (recorded: no 'terminating' seen), its active job terminated."""
        schedule = self._changeable(schedule_id)
        for job in self._jobs_of(schedule):
            if job.state in ('active', 'disabled'):
                self.job_room.terminate_job(job.id, 'UserTerminate')
        self._complete_schedule(schedule, touch=True)
        return schedule

    def delete_job_schedule(self, schedule_id: str) -> None:
        """'deleting' (ETag kept, recorded) until every job of the schedule is gone, then gone too."""
        schedule = self.get_job_schedule(schedule_id)
        if schedule.state == 'deleting':
            return
        schedule.set_state('deleting', touch=False)
        self.changed('schedule', schedule)
        for job in self._jobs_of(schedule):
            self.job_room.delete_job(job.id)
        self._look_at(schedule.id)

    # ----- the rules ----------------------------------------------------------------------------

    def _changeable(self, schedule_id: str) -> JobSchedule:
        schedule = self.get_job_schedule(schedule_id)
        if schedule.state == 'deleting':
            raise BatchServiceError('JobScheduleBeingDeleted')
        if schedule.state in ('completed', 'terminating'):
            raise BatchServiceError('JobScheduleCompleted')
        return schedule

    def _check_job_specification(self, job_specification: dict) -> None:
        """The job room's rules for a job, applied when the schedule is sent, not when its first job is due."""
        self.job_room.check_job_body(job_specification, in_schedule=True)

    def _create_schedule_job(self, schedule: JobSchedule, job_id: str) -> Job:
        """``create_job`` under the id the schedule names its job, ``{schedule}:job-N``."""
        return self.job_room.create_job(schedule.spec['jobSpecification'], job_id=job_id,
                               schedule_pool_id=self._schedule_pool_id(schedule))

    def _schedule_pool_id(self, schedule: JobSchedule) -> str | None:
        """The schedule's own auto pool (lifetime ``jobschedule``), created with its first job; None when its
        jobs have a pool of their own (a pool id, or lifetime ``job``)."""
        auto_pool = (schedule.spec['jobSpecification'].get('poolInfo') or {}).get('autoPoolSpecification')
        if not auto_pool or str(auto_pool.get('poolLifetimeOption')).lower() != 'jobschedule':
            return None
        if schedule.auto_pool is None:
            pool = self.job_room.create_auto_pool(auto_pool)
            schedule.auto_pool = {'poolId': pool.id, 'keepAlive': bool(auto_pool.get('keepAlive'))}
            self.changed('schedule', schedule)
        return schedule.auto_pool['poolId']

    def _end_schedule_pool(self, schedule: JobSchedule) -> None:
        """A completed (or deleted) schedule's auto pool goes once none of its jobs still runs."""
        if schedule.auto_pool is not None and not self._active_job_of(schedule):
            self.job_room.end_auto_pool(schedule.auto_pool)

    def _jobs_of(self, schedule: JobSchedule) -> list[Job]:
        """Its jobs, found by their ids: ``{id}:job-1`` .. ``{id}:job-{job_count}`` (those not deleted)."""
        found = (self.jobs.get(schedule.job_id(number).lower()) for number in range(1, schedule.job_count + 1))
        return [job for job in found if job is not None]

    def _active_job_of(self, schedule: JobSchedule) -> Job | None:
        """Its active job: only ever the last one, since it creates the next only when none is active."""
        job = self.jobs.get(schedule.job_id(schedule.job_count).lower()) if schedule.job_count else None
        return job if job is not None and job.state in ACTIVE_JOB_STATES else None

    def _scaled(self, text: str | None) -> datetime.timedelta | None:
        """A duration of the schedule on the emulator's clock; None when absent or beyond any date (unlimited)."""
        span = timespan(text) / self.schedule_clock if text else None
        return span if span is not None and span < FOREVER else None

    def _interval(self, schedule: JobSchedule) -> datetime.timedelta | None:
        return self._scaled(schedule.schedule.get('recurrenceInterval'))

    def _window(self, schedule: JobSchedule) -> datetime.timedelta | None:
        """How long after its slot a job may still be created (None: for ever)."""
        window, interval = self._scaled(schedule.schedule.get('startWindow')), self._interval(schedule)
        if interval is not None:  # a due job is never carried into the next recurrence
            window = interval if window is None else min(window, interval)
        return window

    def _anchor(self, schedule: JobSchedule) -> datetime.datetime:
        until = schedule.schedule.get('doNotRunUntil')
        return parse_iso(until) if until else schedule.creation_time

    def _next_slot(self, schedule: JobSchedule) -> datetime.datetime | None:
        """The first slot after the one last served (recorded: PATCHing the interval to 5 h makes the next run
        creationTime + 5 h)."""
        anchor, interval = self._anchor(schedule), self._interval(schedule)
        if schedule.last_run is None or schedule.last_run < anchor:
            return anchor
        if interval is None:
            return None
        return plus(anchor, interval, math.floor((schedule.last_run - anchor) / interval) + 1)

    def _catch_up(self, schedule: JobSchedule, now: datetime.datetime) -> None:
        """Past the due slot's window: that chance is lost; the next slot is the one now falls in (if its window
        is still open) or the one after."""
        anchor, interval, window = self._anchor(schedule), self._interval(schedule), self._window(schedule)
        if interval is None:
            schedule.next_run = None
            return
        slot = plus(anchor, interval, math.floor((now - anchor) / interval))
        if (schedule.last_run is not None and slot <= schedule.last_run) or (window is not None
                                                                             and now > plus(slot, window)):
            slot = plus(slot, interval)
        schedule.next_run = slot

    def _complete_schedule(self, schedule: JobSchedule, *, touch: bool) -> None:
        schedule.set_state('completed', touch=touch)
        schedule.end_time = schedule.state_transition_time  # recorded: endTime = stateTransitionTime
        self.changed('schedule', schedule)
        self._end_schedule_pool(schedule)

    def _serve(self, schedule: JobSchedule, now: datetime.datetime) -> datetime.datetime | None:
        """Creates the schedule's due job, or completes it; returns when it next needs looking at (None: when
        something changes)."""
        if schedule.state not in ('active', 'disabled'):
            return None
        after = schedule.schedule.get('doNotRunAfter')
        deadline = parse_iso(after) if after else None
        while True:
            active_job = self._active_job_of(schedule)
            if (deadline is not None and now >= deadline) or schedule.next_run is None:
                if active_job is None:
                    self._complete_schedule(schedule, touch=False)
                    return None
                return None  # completes when its job does
            slot, window = schedule.next_run, self._window(schedule)
            if now < slot:
                return earliest(slot, deadline)
            if window is not None and now > plus(slot, window):
                self._catch_up(schedule, now)
                self.changed('schedule', schedule)
                continue
            if schedule.state == 'disabled' or active_job is not None:  # waits for the job, or the enable
                return earliest(plus(slot, window) if window is not None else None, deadline)
            self._create_due_job(schedule, slot)

    def _create_due_job(self, schedule: JobSchedule, slot: datetime.datetime) -> None:
        number = schedule.job_count + 1
        try:
            self._create_schedule_job(schedule, schedule.job_id(number))
            schedule.job_count = number
        except BatchServiceError as error:  # checked when sent; a job of that id made by hand, say
            _log.warning('job schedule %s: job %s not created: %s', schedule.id, schedule.job_id(number), error)
        schedule.last_run = slot
        schedule.next_run = self._next_slot(schedule)
        self.changed('schedule', schedule)

    def _serve_now(self, schedule: JobSchedule) -> None:
        """Serves a schedule at once (a create, update or enable) and keeps when it next needs looking at."""
        self._wake_at(schedule.id.lower(), self._serve(schedule, utc_now()))
        self.schedules_changed.set()  # the loop's sleep may end earlier now

    def _wake_at(self, key: str, moment: datetime.datetime | None) -> None:
        if moment is None or self._wake.get(key) == moment:
            return
        self._wake[key] = moment
        heapq.heappush(self._due, (moment, key))
        if len(self._due) > 2 * len(self._wake) + 64:  # drop the stale entries now and then
            self._due = [(when, name) for name, when in self._wake.items()]
            heapq.heapify(self._due)

    def _serve_key(self, key: str, now: datetime.datetime) -> None:
        schedule = self.job_schedules.get(key)
        if schedule is None:
            return
        if schedule.state == 'deleting':
            if not self._jobs_of(schedule):
                del self.job_schedules[key]
                self._wake.pop(key, None)
                self._removed('schedule', schedule)
                self._end_schedule_pool(schedule)
            return
        if schedule.state == 'completed':  # its pool waited for its last job to end
            self._end_schedule_pool(schedule)
            return
        self._wake_at(key, self._serve(schedule, now))

    def serve_job_schedules(self) -> float | None:
        """Serves the schedules that are due or whose jobs changed; finishes deleting those whose jobs are gone.
        Seconds until the next due time (None: nothing is due)."""
        now = utc_now()
        while self._due and self._due[0][0] <= now:
            moment, key = heapq.heappop(self._due)
            if self._wake.get(key) == moment:
                del self._wake[key]
                self._to_serve.add(key)
        keys = set(self.job_schedules) if self._serve_all else self._to_serve
        self._to_serve, self._serve_all = set(), False
        try:
            for key in list(keys):
                self._serve_key(key, now)
                keys.discard(key)
        finally:
            self._to_serve |= keys  # a pass that failed (logged by the loop) leaves the rest for the next
        while self._due and self._wake.get(self._due[0][1]) != self._due[0][0]:
            heapq.heappop(self._due)  # stale
        if not self._due:
            return None
        return max(0.0, (self._due[0][0] - utc_now()).total_seconds())


async def run_job_schedules(state) -> None:
    """Creates each schedule's jobs when they are due (started by the scheduler)."""
    while True:
        state.schedules_changed.clear()
        delay = survive('serving job schedules', state.serve_job_schedules, _RETRY_SECONDS)  # logged; goes on
        delay = _LONGEST_SLEEP if delay is None else min(delay, _LONGEST_SLEEP)
        try:
            await asyncio.wait_for(state.schedules_changed.wait(), timeout=delay)
        except asyncio.TimeoutError:
            pass
