"""Handlers of the JobSchedules_* operations (and Jobs_ListJobsFromSchedule): operation id -> handler."""

from __future__ import annotations

SCHEDULE_HANDLERS: dict = {}
