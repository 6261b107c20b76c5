"""The HTTP side of the emulator: an aiohttp application on 127.0.0.1.

Every request passes, in order: the request log, the error handler (a
BatchServiceError becomes the service's JSON error body), the browser guard
(``Host`` must name this emulator, an ``Origin`` must be its own: a web page,
even one whose name resolves to 127.0.0.1, cannot reach the API), the
api-version check and SharedKey authentication (with the request's date); then
``adapter.py`` checks the request, calls the operation's handler and writes the
answer (with ``json_response`` and ``service_headers`` here). The scheduler
shares the same event loop.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from email.utils import format_datetime
from urllib.parse import urlsplit

from aiohttp import web

from batch_emulator.common.account import DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME  # noqa: F401 (also the wire's names)
from batch_emulator.common.errors import BatchServiceError, invalid_query
from batch_emulator.common.redaction import redact_authorization, redact_query, redact_secrets
from batch_emulator.contract import versions
from batch_emulator.contract.schema import Operation
from batch_emulator.runtime.scheduler import Scheduler
from batch_emulator.service.state import BatchState
from batch_emulator.wire import auth
from batch_emulator.wire.connections import (
    DEFAULT_HEADER_TIMEOUT,
    ConnectionGuard,
)

# The data-plane versions the service still answers: Microsoft's API status page says every version newer
# than September 2017 is available, and 2017-09-01.6.0 and older were removed in 2020-2021 (their requests
# fail). The emulator answers each in its own shapes (versions.py, from the derived versions.json).
SUPPORTED_API_VERSIONS = ('2025-06-01', '2024-07-01.20.0', '2024-02-01.19.0', '2023-11-01.18.0', '2023-05-01.17.0',
                          '2022-10-01.16.0', '2022-01-01.15.0', '2021-06-01.14.0', '2020-09-01.12.0',
                          '2020-03-01.11.0', '2019-08-01.10.0', '2019-06-01.9.0', '2018-12-01.8.0',
                          '2018-08-01.7.0', '2018-03-01.6.1')

LOOPBACK_NAMES = ('127.0.0.1', 'localhost', '[::1]')
JSON_CONTENT_TYPE = 'application/json; odata=minimalmetadata'
# On every response of the service (the recordings' section 1.1).
SERVICE_HEADERS = {'Server': 'Microsoft-HTTPAPI/2.0', 'X-Content-Type-Options': 'nosniff',
                   'Strict-Transport-Security': 'max-age=31536000; includeSubDomains'}
MAX_REQUEST_BODY_BYTES = 4 * 1024 * 1024  # far above any Batch entity; parsing more would stall the loop
MAX_JSON_DEPTH = 64  # no entity of the spec nests half as deep

_log = logging.getLogger('batch_emulator')

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

STATE = web.AppKey('state', BatchState)
SCHEDULER = web.AppKey('scheduler', Scheduler)
SETTINGS = web.AppKey('settings', dict)
GUARD = web.AppKey('guard', ConnectionGuard)
# What a request carries from one step of its answer to the next.
REQUEST_ID = web.RequestKey('request_id', str)
OPERATION = web.RequestKey('operation', Operation)  # the spec's operation (its response schema writes the body)
OLDER_OPERATION = web.RequestKey('older_operation', str)  # the older operation's key an older api-version calls
BODY_BYTES = web.RequestKey('body_bytes', bytes)  # the request body read, for the portal's log (redacted there)


def service_headers(request: web.Request) -> dict[str, str]:
    """On every answer: the service's fixed headers, the request's id, and its client-request-id when the client
    asks for it back (return-client-request-id: true; otherwise the service does not echo it)."""
    headers = {**SERVICE_HEADERS, 'request-id': request[REQUEST_ID]}
    if request.headers.get('return-client-request-id', '').lower() == 'true' and \
            'client-request-id' in request.headers:
        headers['client-request-id'] = request.headers['client-request-id']
    return headers


def json_response(request: web.Request, body: dict | bytes | None, *, status: int = 200, etag: str | None = None,
                  last_modified=None, location: str | None = None, acted: bool = False,
                  headers: dict[str, str] | None = None) -> web.Response:
    """An answer with a JSON body or none. ``headers``: those the adapter wrote (``adapter.headers_of``); without
    them, ``acted`` (an update or action: DataServiceId naming the URL it was sent to), ``etag``, ``last_modified``
    and ``location`` make them.

    ``body``: a dict, written in the request's api-version's shapes, or bytes already written so (``bodies.py``)."""
    if headers is None:
        headers = {'DataServiceVersion': '3.0'}
        if acted:
            headers['DataServiceId'] = request.app[SETTINGS]['base_url'] + request.path
        if etag:
            headers['ETag'] = etag
        if last_modified is not None:
            headers['Last-Modified'] = format_datetime(last_modified, usegmt=True)
        if location:
            headers['Location'] = location
            headers['DataServiceId'] = location
    if not isinstance(body, bytes):  # bytes were written in those shapes already
        body = versions.write_body(request, body, request.get(OLDER_OPERATION))  # the api-version's shapes
    if body is None:
        return web.Response(status=status, headers=headers)
    headers['Content-Type'] = JSON_CONTENT_TYPE
    data = body if isinstance(body, bytes) else json.dumps(body, separators=(',', ':')).encode()
    return web.Response(status=status, headers=headers, body=data)


def error_response(request: web.Request, error: BatchServiceError) -> web.Response:
    base_url = request.app[SETTINGS]['base_url']
    body = error.body(base_url, request.get(REQUEST_ID))
    if request.method == 'HEAD':  # no body, but the headers every answer of the service carries
        return web.Response(status=error.status, headers={'DataServiceVersion': '3.0', **service_headers(request)})
    return web.Response(status=error.status, body=json.dumps(body).encode(),
                        headers={'Content-Type': JSON_CONTENT_TYPE, 'DataServiceVersion': '3.0',
                                 **service_headers(request)})


@web.middleware
async def request_log_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[REQUEST_ID] = str(uuid.uuid4())
    started = time.perf_counter()
    status = 500
    response: web.StreamResponse | None = None
    try:
        response = await handler(request)
        status = response.status
        if 'request-id' not in response.headers:  # the adapter's and the errors' answers have them already
            response.headers.update(service_headers(request))
        return response
    except web.HTTPException as error:
        status = error.status
        raise
    finally:
        if not getattr(request.match_info.handler, 'public_page', False):  # the portal's own polling is not logged
            _log_request(request, status, started, response)


# What the request log keeps of each request for the portal's detail view: these headers, and the start of
# each body. They are redacted when the portal asks for them (shown_detail): every secret replaced by REDACTED,
# never shown. Redacting when they are asked for, not for every request, keeps it off the requests' path.
LOGGED_REQUEST_HEADERS = ('Content-Type', 'Content-Length', 'ocp-date', 'Date', 'client-request-id',
                          'return-client-request-id', 'If-Match', 'If-None-Match', 'If-Modified-Since',
                          'If-Unmodified-Since', 'User-Agent', 'Authorization')
LOGGED_RESPONSE_HEADERS = ('Content-Type', 'ETag', 'Last-Modified', 'Location', 'DataServiceId', 'request-id',
                           'client-request-id')
MAX_LOGGED_BODY_CHARS = 16 * 1024


def _kept_body(data: bytes | None) -> tuple[int, bytes] | None:
    """The body's size and its start (a little beyond the cut, so that no secret is cut in two when redacted)."""
    return (len(data), data[:MAX_LOGGED_BODY_CHARS + 512]) if data else None


def _shown_body(kept: tuple[int, bytes] | None, account_key: str) -> dict | None:
    if kept is None:
        return None
    size, start = kept
    return {'size': size, 'truncated': size > MAX_LOGGED_BODY_CHARS,
            'text': redact_secrets(start.decode('utf-8', errors='replace'), account_key)[:MAX_LOGGED_BODY_CHARS]}


def shown_detail(entry: dict, account_key: str) -> dict:
    """A request log entry as the portal shows it: its headers and bodies with every secret REDACTED."""
    kept = entry['detail']
    detail = {**kept, 'requestBody': _shown_body(kept['requestBody'], account_key),
              'responseBody': _shown_body(kept['responseBody'], account_key),
              'requestHeaders': {name: redact_authorization(value) if name == 'Authorization'
                                 else redact_secrets(value, account_key)
                                 for name, value in kept['requestHeaders'].items()},
              'responseHeaders': {name: redact_secrets(value, account_key)
                                  for name, value in kept['responseHeaders'].items()}}
    return {**entry, 'detail': detail}


def _kept_headers(headers, names: tuple[str, ...]) -> dict:
    return {name: headers[name] for name in names if name in headers}


def _log_request(request: web.Request, status: int, started: float,
                 response: web.StreamResponse | None = None) -> None:
    settings = request.app[SETTINGS]
    entry = {'time': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()), 'method': request.method,
             'path': request.path, 'query': redact_query(dict(request.query), settings['account_key']),
             'operation': operation.operation_id if (operation := request.get(OPERATION)) else None,
             'status': status,
             'ms': round((time.perf_counter() - started) * 1000, 2)}
    log_file = settings.get('request_log_file')
    if log_file is not None:
        log_file.write(json.dumps(entry) + '\n')
        log_file.flush()
    response_body = getattr(response, 'body', None)  # a web.Response's bytes; a streamed file has none
    entry['detail'] = {
        'requestId': request.get(REQUEST_ID),
        'requestHeaders': _kept_headers(request.headers, LOGGED_REQUEST_HEADERS),
        # The routes read the body as a stream; they leave its bytes here when they keep them (see _read_limited).
        'requestBody': _kept_body(request.get(BODY_BYTES)),
        'requestBodyLength': request.content_length,
        'responseHeaders': _kept_headers(response.headers, LOGGED_RESPONSE_HEADERS) if response else {},
        'responseBody': _kept_body(response_body if isinstance(response_body, bytes) else None),
    }
    settings['recent_requests'].append(entry)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except BatchServiceError as error:
        return error_response(request, error)
    except web.HTTPException:
        raise
    except Exception:
        _log.exception('unexpected error handling %s %s', request.method, request.path)
        return error_response(request, BatchServiceError('InternalError'))


def allowed_hosts(base_url: str) -> frozenset[str]:
    """The Host values that name this emulator: its bound address and the loopback names, with its port."""
    parts = urlsplit(base_url)
    host = parts.hostname or '127.0.0.1'
    names = set(LOOPBACK_NAMES) | {f'[{host}]' if ':' in host else host}
    hosts = {f'{name}:{parts.port}' for name in names} if parts.port else set()
    if parts.port in (None, 80):
        hosts |= names
    return frozenset(hosts)


_LABEL = re.compile(r'[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?')


def names_this_emulator(host: str, settings: dict) -> bool:
    """Host names this emulator: a loopback name, or the account's own name under ``.localhost``.

    ``{account}.localhost`` and ``{account}.{anything}.localhost`` (RFC 6761: names under localhost
    are loopback, and browsers and systemd-resolved never ask DNS for them) address the account as
    ``https://{account}.{region}.batch.azure.com`` does on Azure, for clients that read the account
    from the endpoint's first label. No DNS answer can give a page such a name, so DNS rebinding stays shut.
    """
    host = host.lower()
    if host in settings['allowed_hosts']:
        return True
    port = urlsplit(settings['base_url']).port
    name, colon, given_port = host.rpartition(':')
    if not colon:
        name = host
    if given_port != (str(port) if port else '') and not (not colon and port in (None, 80)):
        return False
    labels = name.split('.')
    return (len(labels) >= 2 and labels[-1] == 'localhost' and labels[0] == settings['account_name'].lower()
            and all(_LABEL.fullmatch(label) for label in labels[1:-1]))


@web.middleware
async def browser_guard_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Only requests addressed to this emulator, and none that a web page of another origin made.

    DNS rebinding gives a hostile page a name that resolves to 127.0.0.1: its requests then
    carry that name in Host, and are refused. A page of another origin adds Origin (or
    Sec-Fetch-Site: cross-site), and is refused as well; the local portal is its own origin.
    """
    settings = request.app[SETTINGS]
    host = request.headers.get('Host', '')
    if not names_this_emulator(host, settings):
        raise BatchServiceError('InvalidHeaderValue', values={
            'HeaderName': 'Host', 'HeaderValue': host[:200],
            'Reason': 'The local emulator answers requests addressed to ' + ', '.join(sorted(settings['allowed_hosts']))
            + f" or {settings['account_name']}.localhost (and {settings['account_name']}.*.localhost) only."})
    origin = request.headers.get('Origin')
    if origin is not None and not (origin.lower().startswith('http://')
                                   and names_this_emulator(origin[len('http://'):], settings)) \
            or request.headers.get('Sec-Fetch-Site', '').lower() == 'cross-site':
        raise BatchServiceError('AuthorizationFailure', values={
            'Reason': f'Requests made by web pages of other origins ({(origin or "cross-site")[:200]}) are refused.'})
    return await handler(request)


@web.middleware
async def service_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """api-version and SharedKey (or a task's job token), for every Batch REST call (the portal pages skip both)."""
    if getattr(handler, 'public_page', False) or getattr(handler, 'emulator_control', False):
        return await handler(request)  # the portal's pages; the control endpoints check SharedKey themselves
    version = request.query.get('api-version')
    if version is None:
        raise BatchServiceError('MissingRequiredQueryParameter', values={'QueryParameterName': 'api-version'})
    if version not in SUPPORTED_API_VERSIONS:
        raise invalid_query('api-version', version, 'The specified api-version is not supported. Supported: '
                            + ', '.join(SUPPORTED_API_VERSIONS))
    settings = request.app[SETTINGS]
    scheme, _, token = request.headers.get('Authorization', '').partition(' ')
    if scheme == 'Bearer':  # a task's AZ_BATCH_AUTHENTICATION_TOKEN, for its job's operations (runtime/job_tokens)
        request.app[SCHEDULER].tokens.check(token.strip(), request.path)
    else:
        auth.verify_shared_key(request.method, request.raw_path, request.headers, settings['account_name'],
                               settings['account_key'])
    response = await handler(request)
    journal = request.app[STATE].journal
    if journal is not None and request.method not in ('GET', 'HEAD'):
        journal.flush()  # an acknowledged change survives the emulator being killed
    return response


def public_page(handler: Handler) -> Handler:
    """Marks a handler that needs no api-version or SharedKey (the read-only local portal)."""
    handler.public_page = True  # type: ignore[attr-defined]
    return handler


class RecentRequests(list):
    """The last N request log entries, newest last (the portal shows them).

    Each entry gets ``seq``, counting from 1 in this process: the portal asks for the entries after the
    last one it has (``since``), so its polling costs what is new, not the whole log.
    """

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.last_seq = 0
        self.instance = uuid.uuid4().hex[:12]  # a restarted emulator counts again from 1

    def append(self, entry: dict) -> None:
        self.last_seq += 1
        entry['seq'] = self.last_seq
        super().append(entry)
        if len(self) > self.limit * 2:
            del self[:len(self) - self.limit]

    def since(self, seq: int, limit: int) -> list[dict]:
        """The entries after ``seq``, oldest first; at most the newest ``limit`` of them."""
        if not self or seq >= self.last_seq:
            return []
        first = max(0, len(self) - (self.last_seq - seq), len(self) - limit)
        return self[first:]

    def find(self, seq: int) -> dict | None:
        index = len(self) - 1 - (self.last_seq - seq)
        return self[index] if 0 <= index < len(self) else None


def app_runner(app: web.Application, header_timeout: float = DEFAULT_HEADER_TIMEOUT) -> web.AppRunner:
    """The runner to serve ``app`` with: a connection has ``header_timeout`` seconds (from its start or its last
    answer) to send a request's headers, idle ones included; call ``bound_connections`` after its setup."""
    return web.AppRunner(app, access_log=None, handle_signals=False, keepalive_timeout=header_timeout)


def bound_connections(app: web.Application, runner: web.AppRunner) -> None:
    """After ``runner.setup()``: the connection cap and the body timeout apply to the runner's server."""
    app[GUARD].attach(runner.server)


def set_base_url(app: web.Application, base_url: str) -> None:
    """Once the real port is known: the URLs the emulator returns point at it."""
    app[SETTINGS]['base_url'] = base_url
    app[SETTINGS]['allowed_hosts'] = allowed_hosts(base_url)
    app[STATE].base_url = base_url
    app[SCHEDULER].runner.account_url = base_url
