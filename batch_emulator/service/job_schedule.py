"""A job schedule's own data: its schedule's times read as the service reads them, and its journal record.

``check_schedule`` reads a schedule's ``doNotRunUntil``, ``doNotRunAfter``, ``startWindow`` and
``recurrenceInterval`` (ISO 8601 durations of years to fractions of a second; an interval or window too long to
end never ends); ``JobSchedule`` is the schedule's state; the rules about it are the room's (``schedules.py``).
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import math
import os
import re

from batch_emulator.common.errors import invalid_property
from batch_emulator.service.models import duration_text, iso, parse_iso, stamp, utc_now

_log = logging.getLogger('batch_emulator.service.schedules')

CLOCK_ENVIRONMENT = 'BATCH_EMULATOR_SCHEDULE_CLOCK'
MINIMUM_INTERVAL = datetime.timedelta(minutes=1)  # recurrenceInterval and startWindow (the spec)
FOREVER = datetime.timedelta(days=100 * 365)  # a longer interval or window never ends (TimeSpan.MaxValue...)
ACTIVE_JOB_STATES = ('active', 'disabled', 'terminating')

_DURATION = re.compile(r'^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?'
                       r'(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$')
_DATE_TIME = re.compile(r'^(\d{4}-\d{2}-\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}:\d{2})$',
                        re.IGNORECASE)


def clock_factor() -> float:
    """How many times faster than real time schedule intervals pass (``BATCH_EMULATOR_SCHEDULE_CLOCK``)."""
    text = os.environ.get(CLOCK_ENVIRONMENT, '').strip()
    try:
        factor = float(text) if text else 1.0
    except ValueError:
        factor = 1.0
    return factor if math.isfinite(factor) and factor > 0 else 1.0


def plus(moment: datetime.datetime, span: datetime.timedelta, times: int = 1) -> datetime.datetime:
    """``moment + span * times``, or the end of time past the last date (year 9999)."""
    try:
        return moment + span * times
    except OverflowError:
        return datetime.datetime.max.replace(tzinfo=datetime.timezone.utc)


def earliest(*moments: datetime.datetime | None) -> datetime.datetime | None:
    return min((moment for moment in moments if moment is not None), default=None)


def timespan(text: str) -> datetime.timedelta:
    """An ISO 8601 duration as .NET reads it (a year 365 days, a month 30 days)."""
    match = _DURATION.match(text.upper())
    if not match:
        raise ValueError(text)
    years, months, weeks, days, hours, minutes, seconds = (float(part or 0) for part in match.groups())
    return datetime.timedelta(days=365 * years + 30 * months + 7 * weeks + days, hours=hours, minutes=minutes,
                              seconds=seconds)


def moment(text: str) -> datetime.datetime:
    """An ISO 8601 date-time with its offset, in UTC (Python 3.10's fromisoformat reads neither Z nor 7 digits)."""
    match = _DATE_TIME.match(text)
    if not match:
        raise ValueError(text)
    day, hour, minute, second, fraction, zone = match.groups()
    moment = datetime.datetime.strptime(f'{day}T{hour}:{minute}:{second or "00"}', '%Y-%m-%dT%H:%M:%S')
    moment = moment.replace(microsecond=int(((fraction or '') + '000000')[:6]))
    offset = datetime.timedelta(0)
    if zone.upper() != 'Z':
        sign = -1 if zone[0] == '-' else 1
        offset = sign * datetime.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    return (moment - offset).replace(tzinfo=datetime.timezone.utc)


def check_schedule(schedule: dict | None) -> dict:
    """The schedule as the service keeps it: durations normalised (PT05H00M00S -> PT5H), times in UTC."""
    kept: dict = {}
    for name, value in (schedule or {}).items():
        if name in ('doNotRunUntil', 'doNotRunAfter'):
            try:
                kept[name] = iso(moment(value))
            except (ValueError, OverflowError):
                raise invalid_property(name, value) from None
        elif name in ('startWindow', 'recurrenceInterval'):
            try:
                span = timespan(value)
            except (ValueError, OverflowError):
                raise invalid_property(name, value) from None
            if span < MINIMUM_INTERVAL:
                raise invalid_property(name, value, 'The value must be at least 1 minute.')
            kept[name] = duration_text(span.total_seconds())
        else:
            kept[name] = value
    return kept


@dataclasses.dataclass(eq=False)
class JobSchedule:
    id: str
    spec: dict  # displayName, schedule, jobSpecification, metadata: as sent (the schedule normalised)
    etag: str
    creation_time: datetime.datetime
    last_modified: datetime.datetime
    state: str = 'active'
    state_transition_time: datetime.datetime = dataclasses.field(default_factory=utc_now)
    previous_state: str | None = None
    previous_state_transition_time: datetime.datetime | None = None
    next_run: datetime.datetime | None = None  # the next slot (None: no slot left)
    last_run: datetime.datetime | None = None  # the slot the last job was created for
    job_count: int = 0  # jobs created so far: the next is {id}:job-{job_count + 1}
    end_time: datetime.datetime | None = None
    auto_pool: dict | None = None  # the pool of lifetime 'jobschedule' its jobs share: {poolId, keepAlive}

    @property
    def schedule(self) -> dict:
        return self.spec.get('schedule') or {}

    def set_state(self, state: str, *, touch: bool = True) -> None:
        if state != self.state:
            self.previous_state, self.previous_state_transition_time = self.state, self.state_transition_time
            self.state, self.state_transition_time = state, utc_now()
        if touch:
            self.etag, self.last_modified = stamp()

    def job_id(self, number: int) -> str:
        return f'{self.id}:job-{number}'

    def owns(self, job_id: str) -> bool:
        """Is this one of the schedule's jobs? (A job id of one's own cannot hold ':'.)"""
        return job_id.lower().startswith(f'{self.id.lower()}:job-')


# ----- persistence (the --location journal) ------------------------------------------------------

def schedule_record(schedule: JobSchedule) -> dict:
    return {'id': schedule.id, 'spec': schedule.spec, 'etag': schedule.etag,
            'creationTime': iso(schedule.creation_time), 'lastModified': iso(schedule.last_modified),
            'state': schedule.state, 'stateTransitionTime': iso(schedule.state_transition_time),
            'previousState': schedule.previous_state,
            'previousStateTransitionTime': iso(schedule.previous_state_transition_time),
            'nextRun': iso(schedule.next_run), 'lastRun': iso(schedule.last_run), 'jobCount': schedule.job_count,
            'endTime': iso(schedule.end_time), 'autoPool': schedule.auto_pool}


def schedule_from_record(record: dict) -> JobSchedule:
    return JobSchedule(id=record['id'], spec=record['spec'], etag=record['etag'],
                       creation_time=parse_iso(record['creationTime']),
                       last_modified=parse_iso(record['lastModified']), state=record['state'],
                       state_transition_time=parse_iso(record['stateTransitionTime']),
                       previous_state=record['previousState'],
                       previous_state_transition_time=parse_iso(record['previousStateTransitionTime']),
                       next_run=parse_iso(record['nextRun']), last_run=parse_iso(record['lastRun']),
                       job_count=record['jobCount'], end_time=parse_iso(record['endTime']),
                       auto_pool=record.get('autoPool'))
