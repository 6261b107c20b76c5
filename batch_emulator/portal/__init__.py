"""The local "portal": a read-only page at / that shows the emulator's pools, nodes, jobs and tasks live.

Plain HTML, CSS and JavaScript served by the emulator itself (no build step, no CDN, works
offline; the pictures are drawn with SVG and canvas by portal.js). The page polls the small JSON
endpoints below once a second. They need no SharedKey but answer loopback clients only, and they
only read: nothing here changes the account. Everything taken from requests (ids, command lines,
file contents, request bodies) reaches the page as JSON and is inserted with textContent, never as
HTML. Secrets (SAS signatures, SharedKey signatures, account keys, passwords) are hidden.

Polling costs what changed, not what exists: ``overview`` takes the token of the previous answer
(``since``) and sends only the tasks stamped after it (every change of a task gives it a new,
strictly later ``lastModified``), and ``requests`` sends only the log entries after the last one
the page has. Two changes of a task carry no stamp, and are sent another way: a dependent task
leaving ``job.waiting`` (its dependencies met: still ``active``, now queued) is found by a digest
of the waiting tasks kept in the token (the jobs' ``waiting`` lists are sent only when it differs),
and a running multi-instance task's subtasks ending is found by sending the running multi-instance
tasks every time (a few: each holds several nodes). Pools, nodes, job schedules and the jobs'
own fields are few and always sent.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import re
import stat
import uuid
import zlib

from aiohttp import web

from batch_emulator.common import layout
from batch_emulator.common.clock import utc_now
from batch_emulator.common.errors import BatchServiceError
from batch_emulator.common.redaction import redact_secrets
from batch_emulator.runtime.files import TooManyFiles, inside, list_files
from batch_emulator.service.job_schedule import JobSchedule
from batch_emulator.service.jobs import AUTO_POOL
from batch_emulator.service.state import BatchState, Job, Pool, Task, parse_iso
from batch_emulator.wire.server import SETTINGS, STATE, public_page, shown_detail

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'static')
_STATIC_FILES = {'portal.js': 'application/javascript', 'portal.css': 'text/css'}
MAX_FILE_BYTES = 256 * 1024
MAX_REQUESTS_SENT = 500  # the request log entries a page gets at first (the newest)
_INSTANCE = uuid.uuid4().hex[:12]  # tokens of another emulator process are not this one's
MAX_DEPENDENCY_IDS_SENT = 100  # a task's dependsOn taskIds the page gets (the count says how many there are)
_SCHEDULE_JOB = re.compile(r'^(?P<schedule>.+):job-(?P<number>[0-9]+)$')  # a job id of one's own has no ':'


def redact(text: str | None) -> str | None:
    """SAS signatures, SharedKey signatures, account keys and passwords replaced by REDACTED."""
    return redact_secrets(text) if text else text


def _loopback_only(request: web.Request) -> None:
    try:
        if ipaddress.ip_address(request.remote or '').is_loopback:
            return
    except ValueError:
        pass
    raise web.HTTPForbidden(text='The local portal answers loopback clients only.')


def _page(handler):
    async def wrapper(request: web.Request) -> web.StreamResponse:
        _loopback_only(request)
        response = await handler(request)
        response.headers['Cache-Control'] = 'no-store'
        response.headers['Content-Security-Policy'] = ("default-src 'self'; style-src 'self'; script-src 'self'; "
                                                       "connect-src 'self'; img-src 'self' data:; "
                                                       "frame-ancestors 'none'")  # no page may frame it
        response.headers['X-Frame-Options'] = 'DENY'  # the same, for browsers without frame-ancestors
        response.headers['X-Content-Type-Options'] = 'nosniff'
        return response
    return public_page(wrapper)


def _state(request: web.Request) -> BatchState:
    return request.app[STATE]


async def index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(os.path.join(STATIC_DIR, 'index.html'), headers={'Content-Type': 'text/html'})


async def static(request: web.Request) -> web.StreamResponse:
    name = request.match_info['name']
    if name not in _STATIC_FILES:
        raise web.HTTPNotFound()
    return web.FileResponse(os.path.join(STATIC_DIR, name), headers={'Content-Type': _STATIC_FILES[name]})


def _epoch_ms(moment: datetime.datetime | str | None) -> float | None:
    if isinstance(moment, str):
        moment = parse_iso(moment)
    return round(moment.timestamp() * 1000, 1) if moment is not None else None


def _micros(moment: datetime.datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def _task_row(task: Task) -> dict:
    info = task.execution_info
    row = {
        'id': task.id, 'state': task.state, 'nodeId': task.node.id if task.node else None,
        'exitCode': info.get('exitCode'), 'result': info.get('result'),
        'failure': (info.get('failureInfo') or {}).get('code'), 'retryCount': info.get('retryCount', 0),
        'requeueCount': info.get('requeueCount', 0), 'created': _epoch_ms(task.creation_time),
        'start': _epoch_ms(info.get('startTime')), 'end': _epoch_ms(info.get('endTime')),
        'commandLine': redact(task.spec.get('commandLine')), 'hasFiles': task.node is not None,
    }
    depends_on = task.spec.get('dependsOn')
    if depends_on:
        task_ids = list(depends_on.get('taskIds') or [])
        row['dependsOn'] = {'taskIds': task_ids[:MAX_DEPENDENCY_IDS_SENT], 'taskIdCount': len(task_ids),
                            'taskIdRanges': [{'start': item['start'], 'end': item['end']}
                                             for item in depends_on.get('taskIdRanges') or []]}
    settings = task.spec.get('multiInstanceSettings')
    if settings:
        row['instances'] = int(settings.get('numberOfInstances') or 1)
        row['subtasks'] = [_subtask_row(subtask) for subtask in task.subtasks]
    return row


def _subtask_row(subtask: dict) -> dict:
    return {'id': subtask.get('id'), 'state': subtask.get('state'),
            'nodeId': (subtask.get('nodeInfo') or {}).get('nodeId'), 'exitCode': subtask.get('exitCode'),
            'result': subtask.get('result'), 'failure': (subtask.get('failureInfo') or {}).get('code'),
            'start': _epoch_ms(subtask.get('startTime')), 'end': _epoch_ms(subtask.get('endTime'))}


def _changed_since(task: Task, since: datetime.datetime | None) -> bool:
    """Stamped at or after ``since``; or a running multi-instance task (its subtasks end without a stamp)."""
    return (since is None or task.state_transition_time >= since or task.last_modified >= since
            or (task.state == 'running' and bool(task.subtasks)))


def _job_row(job: Job, since: datetime.datetime | None, with_waiting: bool) -> dict:
    """The job, with its tasks changed at or after ``since`` (all of them without it).

    A task's change is its lastModified (a change asked for) or its stateTransitionTime (a run starting
    or ending; the service keeps the ETag then). Times equal to ``since`` are sent again: harmless.
    ``waiting`` (the ids of the active tasks whose dependencies are not met yet) only ``with_waiting``.
    """
    changed = [task for task in job.tasks.values() if _changed_since(task, since)]
    row = {'id': job.id, 'state': job.state, 'poolId': job.pool_id, 'counts': dict(job.counts),
           'created': _epoch_ms(job.creation_time), 'generation': _micros(job.creation_time),
           'taskCount': len(job.tasks), 'usesTaskDependencies': bool(job.spec.get('usesTaskDependencies')),
           'tasks': [_task_row(task) for task in changed]}
    auto_pool = job.execution_info.get(AUTO_POOL)
    if auto_pool:
        row['autoPool'] = {'poolId': auto_pool['poolId'], 'keepAlive': bool(auto_pool.get('keepAlive'))}
    made_by = _SCHEDULE_JOB.match(job.id)
    if made_by:
        row['schedule'] = {'id': made_by['schedule'], 'number': int(made_by['number'])}
    if with_waiting:
        row['waiting'] = [task.id for task in job.waiting.values()]
    return row


def _waiting_digest(state: BatchState) -> str:
    """Which tasks wait for their dependencies, in 8 hex digits (a task leaving the list gets no stamp)."""
    digest = 0
    for job in state.jobs.values():
        if job.waiting:
            digest = zlib.crc32(f'{_micros(job.creation_time)}:{job.id}:'.encode(), digest)
            for key in sorted(job.waiting):
                digest = zlib.crc32(key.encode() + b'\0', digest)
    return f'{digest:08x}'


def _auto_pools(state: BatchState) -> dict[str, dict]:
    """Pool id (lower case) -> what it is the auto pool of: a job (lifetime job) or a job schedule."""
    owners: dict[str, dict] = {}
    for job in state.jobs.values():
        link = job.execution_info.get(AUTO_POOL)
        if link:
            owners[link['poolId'].lower()] = {'lifetime': 'job', 'jobId': job.id,
                                              'keepAlive': bool(link.get('keepAlive'))}
    for schedule in state.job_schedules.values():
        if schedule.auto_pool:
            owners[schedule.auto_pool['poolId'].lower()] = {'lifetime': 'jobschedule', 'scheduleId': schedule.id,
                                                            'keepAlive': bool(schedule.auto_pool.get('keepAlive'))}
    return owners


def _autoscale_row(pool: Pool) -> dict | None:
    """Autoscale on the pool: its formula, interval and last periodic run (None: a fixed size)."""
    if not pool.spec.get('enableAutoScale'):
        return None
    run = pool.autoscale_run
    if run is not None:
        error = run.get('error')
        run = {'time': _epoch_ms(run.get('timestamp')), 'results': run.get('results'),
               'error': {'code': error.get('code'), 'message': error.get('message'),
                         'detail': '; '.join(str(item.get('value')) for item in error.get('values') or [])}
               if error else None}
    return {'formula': pool.spec.get('autoScaleFormula'), 'interval': pool.spec.get('autoScaleEvaluationInterval'),
            'lastRun': run}


def _schedule_row(state: BatchState, schedule: JobSchedule) -> dict:
    timing = schedule.schedule
    jobs = sorted((job for job in state.jobs.values() if schedule.owns(job.id)), key=lambda job: job.creation_time)
    return {'id': schedule.id, 'state': schedule.state, 'displayName': schedule.spec.get('displayName'),
            'recurrence': timing.get('recurrenceInterval'), 'startWindow': timing.get('startWindow'),
            'doNotRunUntil': _epoch_ms(timing.get('doNotRunUntil')),
            'doNotRunAfter': _epoch_ms(timing.get('doNotRunAfter')),
            'nextRun': _epoch_ms(schedule.next_run) if schedule.state != 'completed' else None,
            'recentJob': schedule.job_id(schedule.job_count) if schedule.job_count else None,
            'jobCount': schedule.job_count, 'created': _epoch_ms(schedule.creation_time),
            'end': _epoch_ms(schedule.end_time), 'autoPoolId': (schedule.auto_pool or {}).get('poolId'),
            'jobs': [{'id': job.id, 'state': job.state} for job in jobs]}


def _pool_row(pool: Pool, auto_pool_of: dict | None) -> dict:
    nodes = [{'id': node.id, 'state': node.state, 'schedulingState': node.scheduling_state,
              'users': sorted(node.users), 'runningTasks': len(node.running),
              'runningSlots': node.running_slots, 'totalTasksRun': node.total_tasks_run,
              'startTask': {key: (node.start_task_info or {}).get(key) for key in ('state', 'result', 'exitCode')}
              if node.start_task_info else None, 'dedicated': node.dedicated,
              'preemptions': [_epoch_ms(moment) for moment in node.preemptions]} for node in pool.nodes.values()]
    return {'id': pool.id, 'state': pool.state, 'allocationState': pool.allocation_state,
            'vmSize': pool.spec.get('vmSize'), 'target': int(pool.spec.get('targetDedicatedNodes') or 0),
            'current': pool.count_nodes(dedicated=True),
            'spotTarget': int(pool.spec.get('targetLowPriorityNodes') or 0),
            'spotCurrent': pool.count_nodes(dedicated=False), 'slotsPerNode': pool.slots_per_node,
            'hasStartTask': 'startTask' in pool.spec,
            'autoScale': _autoscale_row(pool), 'autoPoolOf': auto_pool_of, 'nodes': nodes}


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def _since(token: str) -> tuple[datetime.datetime | None, str]:
    """The moment of a token from this emulator process (None: send everything), and its waiting digest."""
    instance, _, rest = token.partition('.')
    micros, _, digest = rest.partition('.')
    if instance != _INSTANCE or not micros.isdigit():
        return None, ''
    return _EPOCH + datetime.timedelta(microseconds=int(micros)), digest


async def overview(request: web.Request) -> web.Response:
    """Pools and nodes (all: a few), job schedules and jobs (all) and the tasks that changed since ``since``.

    The token is the time of this answer and the digest of the waiting tasks: every change after it is
    stamped at that time or later (the event loop runs one thing at a time). The page checks the job's
    counts against the tasks it holds and asks for everything again if they ever disagree. The jobs'
    ``waiting`` lists come when the digest changed (``waiting`` true), and the page then replaces its own.
    """
    state = _state(request)
    since, digest = _since(request.query.get('since', ''))
    now = utc_now()
    waiting_digest = _waiting_digest(state)
    with_waiting = since is None or digest != waiting_digest
    auto_pools = _auto_pools(state)
    micros = (now - _EPOCH) // datetime.timedelta(microseconds=1)
    return web.json_response({'account': state.account_name, 'endpoint': state.base_url,
                              'token': f'{_INSTANCE}.{micros}.{waiting_digest}',
                              'full': since is None, 'now': _epoch_ms(now), 'waiting': with_waiting,
                              'pools': [_pool_row(pool, auto_pools.get(pool.id.lower()))
                                        for pool in state.pools.values()],
                              'schedules': [_schedule_row(state, schedule)
                                            for schedule in state.job_schedules.values()],
                              'jobs': [_job_row(job, since, with_waiting) for job in state.jobs.values()]})


def _read_file(root: str, relative: str) -> web.Response:
    path = inside(root, relative)
    if path is None or not os.path.isfile(path):
        raise web.HTTPNotFound(text='No such file.')
    size = os.path.getsize(path)
    with open(path, 'rb') as file:
        if size > MAX_FILE_BYTES:
            file.seek(size - MAX_FILE_BYTES)
        data = file.read(MAX_FILE_BYTES)
    return web.json_response({'path': relative, 'size': size, 'truncated': size > MAX_FILE_BYTES,
                              'text': redact(data.decode('utf-8', errors='replace'))})


def _task_folder(request: web.Request) -> str:
    state = _state(request)
    try:
        _, task = state.get_task(request.query.get('job', ''), request.query.get('task', ''))
    except BatchServiceError:
        raise web.HTTPNotFound(text='No such task.') from None
    if task.node is None:
        raise web.HTTPNotFound(text='The task has not run on a node yet.')
    return layout.task_dir(task.node.root_dir, task.job_id, task.id)


def _node_folder(request: web.Request) -> str:
    try:
        _, node = _state(request).get_node(request.query.get('pool', ''), request.query.get('node', ''))
    except BatchServiceError:
        raise web.HTTPNotFound(text='No such node.') from None
    return node.root_dir


async def _regular_files(root: str, prefix: str = '') -> web.Response:
    """The regular files below a folder (walked off the event loop, links not followed, bounded)."""
    try:
        entries = await asyncio.to_thread(list_files, root, True)
    except TooManyFiles as error:
        raise web.HTTPConflict(text=f'The folder holds too many files to list ({error}).') from None
    return web.json_response({'files': [prefix + name for name, info in entries if stat.S_ISREG(info.st_mode)]})


async def task_files(request: web.Request) -> web.Response:
    return await _regular_files(_task_folder(request))


async def node_files(request: web.Request) -> web.Response:
    """The start task's files on a node (its folder: stdout.txt, stderr.txt and wd/)."""
    return await _regular_files(layout.startup_dir(_node_folder(request)), f'{layout.STARTUP}/')


async def task_file(request: web.Request) -> web.Response:
    return await asyncio.to_thread(_read_file, _task_folder(request), request.query.get('path', ''))


async def node_file(request: web.Request) -> web.Response:
    return await asyncio.to_thread(_read_file, _node_folder(request), request.query.get('path', ''))


def _summary(entry: dict) -> dict:
    return {key: value for key, value in entry.items() if key != 'detail'}


async def requests_log(request: web.Request) -> web.Response:
    """The request log entries after ``since`` (``instance.seq``), oldest first; at first the newest 500."""
    recent = request.app[SETTINGS]['recent_requests']
    instance, _, seq = request.query.get('since', '').partition('.')
    since = int(seq) if instance == recent.instance and seq.isdigit() else 0
    entries = recent.since(since, MAX_REQUESTS_SENT)
    return web.json_response({'token': f'{recent.instance}.{recent.last_seq}', 'full': since == 0,
                              'requests': [_summary(entry) for entry in entries]})


async def request_detail(request: web.Request) -> web.Response:
    """One entry with its headers and bodies, every secret replaced by REDACTED."""
    recent = request.app[SETTINGS]['recent_requests']
    seq = request.query.get('seq', '')
    entry = recent.find(int(seq)) if seq.isdigit() else None
    if entry is None:
        raise web.HTTPNotFound(text='That request is no longer kept (the log keeps the latest 500 to 1,000).')
    return web.json_response(shown_detail(entry, request.app[SETTINGS]['account_key']))


async def storage(request: web.Request) -> web.Response:
    connection_string = request.app[SETTINGS].get('storage_connection_string')
    if not connection_string:
        return web.json_response({'connected': False, 'containers': []})
    from azure.core.exceptions import AzureError
    from azure.storage.blob.aio import BlobServiceClient
    containers = []
    try:
        async with BlobServiceClient.from_connection_string(connection_string) as service:
            async for container in service.list_containers():
                blobs = []
                async for blob in service.get_container_client(container.name).list_blobs():
                    blobs.append({'name': blob.name, 'size': blob.size})
                    if len(blobs) >= 500:
                        break
                containers.append({'name': container.name, 'blobs': blobs})
    except AzureError as error:
        return web.json_response({'connected': False, 'error': redact(str(error).splitlines()[0]),
                                  'containers': []})
    return web.json_response({'connected': True, 'endpoint': redact(service.url), 'containers': containers})


async def favicon(request: web.Request) -> web.Response:
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get('/', _page(index), allow_head=False)
    r.add_get('/favicon.ico', _page(favicon), allow_head=False)
    r.add_get('/portal/static/{name}', _page(static), allow_head=False)
    r.add_get('/portal/api/overview', _page(overview), allow_head=False)
    r.add_get('/portal/api/task-files', _page(task_files), allow_head=False)
    r.add_get('/portal/api/task-file', _page(task_file), allow_head=False)
    r.add_get('/portal/api/node-file', _page(node_file), allow_head=False)
    r.add_get('/portal/api/node-files', _page(node_files), allow_head=False)
    r.add_get('/portal/api/requests', _page(requests_log), allow_head=False)
    r.add_get('/portal/api/request', _page(request_detail), allow_head=False)
    r.add_get('/portal/api/storage', _page(storage), allow_head=False)
