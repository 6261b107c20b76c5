"""Background loops that cannot die: a pass that fails is logged, and the loop goes on.

Each of the emulator's loops (the periodic autoscale, the job schedules, the dispatch of tasks, the
reaper of orphans, the journal's flush) runs its pass through ``survive``. An exception is logged and
the pass's ``fallback`` is returned: the loop sleeps as usual and tries again. The log does not fill
up with a failure that repeats every quarter second: the first failure of a loop with an exception type
is logged with its traceback, the next ones at most once a minute, with how many there were since.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

_log = logging.getLogger('batch_emulator.common.loops')
REPEAT_SECONDS = 60.0  # the same failure of the same loop is logged at most this often
_KINDS_KEPT = 256

T = TypeVar('T')


class _Reports:
    """When each kind of failure (which loop, which exception type) was last logged, and how often since."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], tuple[float, int]] = {}

    def report(self, what: str, error: Exception) -> None:
        kind = (what, type(error).__name__)
        now = time.monotonic()
        last = self.seen.get(kind)
        if last is None:
            if len(self.seen) >= _KINDS_KEPT:
                self.seen.clear()
            self.seen[kind] = (now, 0)
            _log.error('%s failed; it goes on', what, exc_info=error)
        elif now - last[0] >= REPEAT_SECONDS:
            self.seen[kind] = (now, 0)
            _log.error('%s failed again (%d times since it was last logged; now): %s: %s', what, last[1] + 1,
                       kind[1], str(error)[:500])
        else:
            self.seen[kind] = (last[0], last[1] + 1)


_reports = _Reports()


def survive(what: str, step: Callable[[], T], fallback: T) -> T:
    """``step()``, or ``fallback`` after logging what it raised (never a BaseException: cancel still ends)."""
    try:
        return step()
    except Exception as error:  # noqa: BLE001 - any failure of one pass; the loop must go on
        _reports.report(what, error)
        return fallback


async def survive_async(what: str, step: Callable[[], Awaitable[T]], fallback: T) -> T:
    """``await step()``, or ``fallback`` after logging what it raised."""
    try:
        return await step()
    except Exception as error:  # noqa: BLE001 - any failure of one pass; the loop must go on
        _reports.report(what, error)
        return fallback
