"""Job schedules: create, update, disable, terminate and delete them; the jobs they create on time.

(Skeleton wired into BatchState, routes and the scheduler; the behaviour is being written.)
"""

from __future__ import annotations

from .room import Room


class ScheduleRoom(Room):
    """Job schedules: every rule about them."""


async def run_job_schedules(state) -> None:
    """Creates each schedule's jobs when they are due (started by the scheduler)."""
    return None
