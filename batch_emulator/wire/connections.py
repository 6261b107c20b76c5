"""Connections bounded: what a client that connects and then trickles, idles or floods can hold.

- **Headers**: a connection has ``header_timeout`` seconds, from its start or its last answer, to send
  a whole request line and headers (aiohttp's keep-alive timer, which trickled bytes do not reset);
  an idle keep-alive connection is closed after the same time.
- **Bodies**: a request's body must have arrived ``body_timeout`` seconds after its headers; otherwise
  the connection is closed (the request is logged with 408).
- **How many**: at most ``max_connections`` at once. One more makes room by closing the connection
  that has waited longest without a request under way (idle, or still sending its headers); if every
  one is busy, the new connection is closed at once. So idle connections cannot keep an ordinary
  request out, and the process never runs out of file descriptors for them.
- **The log**: each kind of event (and any message that repeats, "Too many open files" included) is
  logged once per interval, with a count of the ones left out (``FloodFilter``).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import resource
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

DEFAULT_HEADER_TIMEOUT = 30.0
DEFAULT_BODY_TIMEOUT = 60.0
LOG_INTERVAL = 60.0
_log = logging.getLogger('batch_emulator.wire.connections')
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def default_max_connections() -> int:
    """A quarter of the file descriptors this process may open (the rest: tasks, files, the journal), 64 to 1000."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 1000 if soft == resource.RLIM_INFINITY else max(64, min(1000, soft // 4))


class ConnectionGuard:
    """Counts the server's connections, evicts idle ones beyond the cap, cuts bodies that do not arrive."""

    def __init__(self, max_connections: int, body_timeout: float) -> None:
        self.max_connections = max_connections
        self.body_timeout = body_timeout
        self._open: collections.OrderedDict = collections.OrderedDict()  # handler -> transport, oldest first
        self._busy: collections.Counter = collections.Counter()  # handler -> requests under way

        @web.middleware
        async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            return await self._guarded(request, handler)
        self.middleware = middleware

    def attach(self, server: web.Server) -> None:
        """Wraps the low-level server's connection bookkeeping (called by every connection it makes or loses)."""
        made, lost = server.connection_made, server.connection_lost

        def connection_made(handler, transport) -> None:
            made(handler, transport)
            self._open[handler] = transport
            if len(self._open) > self.max_connections:
                self._make_room(handler)

        def connection_lost(handler, exc=None) -> None:
            self._open.pop(handler, None)
            self._busy.pop(handler, None)
            lost(handler, exc)

        server.connection_made = connection_made  # type: ignore[method-assign]
        server.connection_lost = connection_lost  # type: ignore[method-assign]

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def _make_room(self, newcomer) -> None:
        idle = next((handler for handler in self._open if handler is not newcomer and not self._busy[handler]), None)
        victim = idle if idle is not None else newcomer
        _log.warning('%d connections open (the limit, --max-connections %d): closed %s', len(self._open) - 1,
                     self.max_connections, 'the longest idle one' if idle is not None else 'a new one: all are busy')
        _close(victim, self._open.pop(victim))

    async def _guarded(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Marks the connection busy while its request is handled; cuts it if the body does not arrive in time."""
        protocol = request.protocol
        self._busy[protocol] += 1
        watchdog = None
        cut: list[bool] = []
        if request.body_exists and not request.content.is_eof():
            def too_slow() -> None:
                if not request.content.is_eof() and request.transport is not None:
                    cut.append(True)
                    _log.warning('a request body did not arrive within %g s (--body-timeout): connection closed',
                                 self.body_timeout)
                    _close(protocol, request.transport)
            watchdog = asyncio.get_running_loop().call_later(self.body_timeout, too_slow)
        try:
            return await handler(request)
        except Exception:
            if cut:
                raise web.HTTPRequestTimeout() from None  # logged as 408; the client is gone
            raise
        finally:
            if watchdog is not None:
                watchdog.cancel()
            if protocol in self._busy:
                self._busy[protocol] -= 1


def _close(handler, transport) -> None:
    handler.force_close()
    transport.close()


class FloodFilter(logging.Filter):
    """Lets each kind of warning or error (logger, text, exception type, errno) through once per interval.

    The next one after the interval says how many were left out. A hostile client that makes the
    emulator log an error per connection fills no disk and hides nothing else.
    """

    def __init__(self, interval: float = LOG_INTERVAL, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval = interval
        self.clock = clock
        self._seen: dict[tuple, list] = {}  # kind -> [time let through, left out since]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True  # --verbose diagnostics are asked for: all of them
        exc_type = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else None
        kind = (record.name, str(record.msg)[:200], exc_type, _errno_of(record))
        now = self.clock()
        seen = self._seen.get(kind)
        if seen is not None and now - seen[0] < self.interval:
            seen[1] += 1
            return False
        if seen is not None and seen[1]:
            record.msg = f'{record.msg} ({seen[1]} more like this in the last {self.interval:g} s not logged)'
        self._seen[kind] = [now, 0]
        if len(self._seen) > 10_000:  # kinds are few; never let the table itself grow without bound
            self._seen.clear()
        return True


def _errno_of(record: logging.LogRecord) -> object:
    error = record.exc_info[1] if record.exc_info else None
    return getattr(error, 'errno', None)
