"""URL -> handler. Each handler reads the request, calls the account state, writes the response.

Status codes are the service's, checked exactly by the SDK: creates 201,
addtaskcollection 200, deletes of pools and jobs 202 (then the entity reads as
``deleting`` until it is gone), task delete 200, task terminate/reactivate 204,
HEAD exists 200/404.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import mimetypes
import os
import re
from email.utils import format_datetime
from urllib.parse import quote

from aiohttp import web

from . import containers, versions, wire
from .contract import Operation, conform, is_spec_path, operations, render, resolve
from .errors import BatchServiceError, invalid_query, missing_property
from .files import TooManyFiles, inside, is_directory, list_files, read_chunks
from .odata import apply_select
from .schedule_routes import SCHEDULE_HANDLERS
from .server import MAX_JSON_DEPTH, MAX_REQUEST_BODY_BYTES, SCHEDULER, SERVICE_HEADERS, SETTINGS, STATE, json_response
from .state import MAX_LIST_RESULTS, BatchState, iso, page

MAX_TASK_COLLECTION_BYTES = 1024 * 1024


def _state(request: web.Request) -> BatchState:
    return request.app[STATE]


async def _read_limited(request: web.Request, limit: int) -> bytes:
    """The body, refused as soon as it passes ``limit`` bytes: chunked bodies (no Content-Length) too."""
    too_large = BatchServiceError('RequestBodyTooLarge', values={'MaxLimit': str(limit)})
    if (request.content_length or 0) > limit:
        raise too_large
    data = bytearray()
    async for chunk in request.content.iter_any():
        data += chunk
        if len(data) > limit:
            raise too_large
    request['body_bytes'] = bytes(data)  # for the portal's request log (redacted there)
    return bytes(data)


def _depth(value: object) -> int:
    """How deep JSON values nest (without recursion: the body may be hostile)."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if depth <= MAX_JSON_DEPTH:
                pending.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


async def _body(request: web.Request, limit: int = MAX_REQUEST_BODY_BYTES, *, parse: bool = True) -> dict:
    if not request.can_read_body:
        raise BatchServiceError('InvalidRequestBody', 'The request body is missing.')
    data = await _read_limited(request, limit)
    too_deep = BatchServiceError('InvalidRequestBody', values={
        'Reason': f'The JSON nests deeper than {MAX_JSON_DEPTH} levels.'})
    try:
        body = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BatchServiceError('InvalidRequestBody', values={'Reason': str(error)}) from None
    except RecursionError:
        raise too_deep from None
    if _depth(body) > MAX_JSON_DEPTH:
        raise too_deep
    if not isinstance(body, dict):
        raise BatchServiceError('InvalidRequestBody', values={'Reason': 'The body must be a JSON object.'})
    body = versions.read_body(request, body)  # an older api-version's names read as the current ones
    operation = request.get('operation')
    return conform(body, operation.body_schema) if parse and operation is not None else body


def _metadata(request: web.Request, entity_set: str, element: bool = True) -> str:
    return f"{request.app[SETTINGS]['base_url']}/$metadata#{entity_set}{'/@Element' if element else ''}"


def _paging(request: web.Request) -> tuple[int | None, int]:
    """maxresults and $skiptoken of a list request, checked as the service checks them."""
    query = request.query
    max_results = query.get('maxresults')
    try:
        limit = int(max_results) if max_results else None
        skip = int(query.get('$skiptoken', '0') or 0)
    except ValueError:
        raise invalid_query('maxresults', max_results or '', 'The value must be an integer.') from None
    if limit is not None and limit < 1:
        raise invalid_query('maxresults', str(limit), 'MaxResults cannot be less than 1')
    if limit is not None and limit > MAX_LIST_RESULTS:
        raise invalid_query('maxresults', str(limit), f'MaxResults cannot be more than {MAX_LIST_RESULTS}')
    return limit, skip


def _next_link(request: web.Request, next_skip: int | None) -> str | None:
    if next_skip is None:
        return None
    # The SDK does not resend $filter/$select/maxresults for the next page: the link carries them,
    # as the service does, in the caller's order and as the caller encoded them, then $skiptoken.
    carried = [part for part in request.rel_url.raw_query_string.split('&')
               if part and not part.startswith('$skiptoken=')]
    carried.append(f'$skiptoken={next_skip}')
    return f"{request.app[SETTINGS]['base_url']}{request.raw_path.partition('?')[0]}?" + '&'.join(carried)


def _list_response(request: web.Request, items: list[dict], entity_set: str) -> web.Response:
    """A list page: $filter, $select, maxresults, then odata.nextLink carrying them along."""
    limit, skip = _paging(request)
    query = request.query
    chunk, next_skip = page(items, filter_text=query.get('$filter'), select=query.get('$select'),
                            max_results=limit, skip=skip, written=_writer(request, 'value'))
    body: dict = {'odata.metadata': _metadata(request, entity_set, element=False), 'value': chunk}
    next_link = _next_link(request, next_skip)
    if next_link is not None:
        body['odata.nextLink'] = next_link
    return json_response(request, body)


def _entity_writer(request: web.Request, build, part: str | None = None, build_property=None) -> wire.Writer:
    """How this request writes entities that keep their written bodies (tasks): ``wire.py``."""
    older = not versions.is_current(request)  # an older api-version's shapes: each item written in them
    return wire.Writer(_schema(request, part), request.query.get('api-version') if older else '',
                       request.query.get('$select'), request.app[SETTINGS]['base_url'], build, build_property,
                       adapt=(lambda item: versions.write_body(request, item)) if older else None)


def _entities_list_response(request: web.Request, entities: list, build, entity_set: str,
                            build_property=None) -> web.Response:
    """``_list_response`` for entities whose bodies are kept until they change: only the page is written."""
    limit, skip = _paging(request)
    chunk, next_skip = wire.page(entities, _entity_writer(request, build, 'value', build_property),
                                 filter_text=request.query.get('$filter'),
                                 limit=min(limit or MAX_LIST_RESULTS, MAX_LIST_RESULTS), skip=skip)
    return json_response(request, wire.list_body(_metadata(request, entity_set, element=False), chunk,
                                                 _next_link(request, next_skip)))


def _schema(request: web.Request, part: str | None = None) -> dict | None:
    """The response body's spec schema (or its ``part``'s items'), if the operation has one."""
    operation: Operation | None = request.get('operation')
    schema = operation.response_schema if operation is not None else None
    if schema is not None and part is not None:
        schema = resolve(schema).get('properties', {}).get(part, {}).get('items')
    return schema


def _writer(request: web.Request, part: str | None = None):
    """What writes a response body (or its ``part``'s items) as the service does: its spec schema."""
    schema = _schema(request, part)
    return (lambda body: body) if schema is None else (lambda body: render(body, schema))


def _entity_response(request: web.Request, resource: dict, entity_set: str, etag: str | None = None,
                     last_modified: datetime.datetime | None = None) -> web.Response:
    written = _writer(request)(resource)
    body = {'odata.metadata': _metadata(request, entity_set), **apply_select(written, request.query.get('$select'))}
    return json_response(request, body, etag=etag, last_modified=last_modified)


def _kept_entity_response(request: web.Request, entity, build, entity_set: str) -> web.Response:
    """``_entity_response`` for an entity whose bodies are kept until it changes (``wire.py``)."""
    item = _entity_writer(request, build).bytes_of(entity)
    return json_response(request, wire.element_body(_metadata(request, entity_set), item), etag=entity.etag,
                         last_modified=entity.last_modified)


# ----- supported images ---------------------------------------------------------------------

async def list_supported_images(request: web.Request) -> web.Response:
    from .images import SUPPORTED_IMAGES
    return _list_response(request, [dict(image) for image in SUPPORTED_IMAGES], 'supportedimages')


# ----- applications: the emulated account has no application packages ---------------------------

async def list_applications(request: web.Request) -> web.Response:
    return _list_response(request, [], 'applications')


async def get_application(request: web.Request) -> web.Response:
    raise BatchServiceError('ApplicationNotFound', 'The specified application does not exist.', status=404)


# ----- pools ---------------------------------------------------------------------------------

async def _find_container_runtime(state: BatchState, body: dict) -> None:
    """A pool body asking for containers: the runtime is found off the event loop, once."""
    containers_wanted = (body.get('virtualMachineConfiguration') or {}).get('containerConfiguration')
    if containers_wanted and state.container_runtime is None:
        state.container_runtime = await asyncio.to_thread(containers.find_runtime, state.container_runtime_setting)


async def create_pool(request: web.Request) -> web.Response:
    state, body = _state(request), await _body(request)
    await _find_container_runtime(state, body)
    pool = state.create_pool(body)
    return json_response(request, None, status=201, etag=pool.etag, last_modified=pool.last_modified,
                         location=f"{request.app[SETTINGS]['base_url']}/pools/{pool.id}")


async def list_pools(request: web.Request) -> web.Response:
    return _list_response(request, _state(request).list_pools(), 'pools')


async def get_pool(request: web.Request) -> web.Response:
    state = _state(request)
    pool = state.get_pool(request.match_info['poolId'])
    return _entity_response(request, state.pool_resource(pool), 'pools', pool.etag, pool.last_modified)


async def pool_exists(request: web.Request) -> web.Response:
    pool = _state(request).pools.get(request.match_info['poolId'].lower())
    if pool is None:
        return web.Response(status=404)
    return json_response(request, None, etag=pool.etag, last_modified=pool.last_modified)


async def delete_pool(request: web.Request) -> web.Response:
    _state(request).delete_pool(request.match_info['poolId'])
    return json_response(request, None, status=202)


async def update_pool(request: web.Request) -> web.Response:
    state, body = _state(request), await _body(request)
    await _find_container_runtime(state, body)
    pool = state.update_pool(request.match_info['poolId'], body, replace=False)
    return json_response(request, None, etag=pool.etag, last_modified=pool.last_modified, acted=True)


async def replace_pool_properties(request: web.Request) -> web.Response:
    pool = _state(request).update_pool(request.match_info['poolId'], await _body(request), replace=True)
    return json_response(request, None, status=204, etag=pool.etag, last_modified=pool.last_modified, acted=True)


async def resize_pool(request: web.Request) -> web.Response:
    """A body without a target is refused before the pool is looked up (recorded: 400 on a missing pool)."""
    body = await _body(request)
    if body.get('targetDedicatedNodes') is None and body.get('targetLowPriorityNodes') is None:
        raise missing_property('targetDedicatedNodes and/or targetLowPriorityNodes')
    pool = _state(request).resize_pool(request.match_info['poolId'], body)
    return json_response(request, None, status=202, etag=pool.etag, last_modified=pool.last_modified, acted=True)


async def stop_resize_pool(request: web.Request) -> web.Response:
    pool = _state(request).stop_resize(request.match_info['poolId'])
    return json_response(request, None, status=202, etag=pool.etag, last_modified=pool.last_modified, acted=True)


async def enable_autoscale(request: web.Request) -> web.Response:
    pool = _state(request).enable_autoscale(request.match_info['poolId'], await _body(request))
    return json_response(request, None, etag=pool.etag, last_modified=pool.last_modified, acted=True)


async def disable_autoscale(request: web.Request) -> web.Response:
    pool = _state(request).disable_autoscale(request.match_info['poolId'])
    return json_response(request, None, etag=pool.etag, last_modified=pool.last_modified, acted=True)


async def evaluate_autoscale(request: web.Request) -> web.Response:
    formula = (await _body(request))['autoScaleFormula']
    run = await _state(request).evaluate_autoscale(request.match_info['poolId'], formula)  # off the event loop
    metadata = f"{request.app[SETTINGS]['base_url']}/$metadata#Microsoft.Azure.Batch.Protocol.Entities.AutoScaleRun"
    return json_response(request, {'odata.metadata': metadata, **_writer(request)(run)}, acted=True)  # no ETag


async def list_pool_usage_metrics(request: web.Request) -> web.Response:
    """Core hours per pool in 30-minute windows (recorded [J:pool/usage]), of the nodes the emulator runs now."""
    now = datetime.datetime.now(datetime.timezone.utc)
    start = now.replace(minute=now.minute - now.minute % 30, second=0, microsecond=0)
    items = []
    for pool in _state(request).pools.values():
        size = re.search(r'_[a-z]+?(\d+)', pool.spec['vmSize'].lower())  # standard_d2s_v3: 2 cores
        cores = int(size.group(1)) if size else 1
        hours = sum((now - max(node.allocation_time, start)).total_seconds() / 3600 for node in pool.nodes.values())
        items.append({'poolId': pool.id, 'startTime': iso(start),
                      'endTime': iso(start + datetime.timedelta(minutes=30)), 'vmSize': pool.spec['vmSize'],
                      'totalCoreHours': round(hours * cores, 6)})
    return _list_response(request, items, 'poolusagemetrics')


async def list_pool_node_counts(request: web.Request) -> web.Response:
    counts = []
    for pool in _state(request).pools.values():
        states = [node.state for node in pool.nodes.values()]
        names = ('creating', 'idle', 'offline', 'preempted', 'rebooting', 'reimaging', 'running', 'starting',
                 'startTaskFailed', 'leavingPool', 'unknown', 'unusable', 'waitingForStartTask',
                 'deallocated', 'deallocating', 'upgradingOS')
        dedicated = {name: states.count(name.lower()) for name in names}
        dedicated['total'] = len(states)
        counts.append({'poolId': pool.id, 'dedicated': dedicated,
                       'lowPriority': dict.fromkeys(dedicated, 0)})
    return _list_response(request, counts, 'poolnodecounts')


# ----- nodes ---------------------------------------------------------------------------------

async def list_nodes(request: web.Request) -> web.Response:
    return _list_response(request, _state(request).list_nodes(request.match_info['poolId']), 'nodes')


async def get_node(request: web.Request) -> web.Response:
    state = _state(request)
    pool, node = state.get_node(request.match_info['poolId'], request.match_info['nodeId'])
    return _entity_response(request, state.node_resource(pool, node), 'nodes')  # no ETag or Last-Modified


async def reboot_node(request: web.Request) -> web.Response:
    state = _state(request)
    if request.can_read_body and request.content_length:  # optional; parsed by the spec's schema all the same
        state.requeue_option(await _body(request), 'nodeRebootOption')  # (the reboot always requeues)
    pool, node = state.node_for_action(request.match_info['poolId'], request.match_info['nodeId'], 'reboot')
    if node.state not in ('idle', 'running', 'starttaskfailed', 'unusable'):
        raise BatchServiceError('OperationInvalidForCurrentState', 'The node is not in a state that allows reboot.')
    request.app[SCHEDULER].reboot_node(pool, node)
    return json_response(request, None, status=202, acted=True)  # a node action: DataServiceId only


# ----- jobs ----------------------------------------------------------------------------------

async def create_job(request: web.Request) -> web.Response:
    job = _state(request).create_job(await _body(request))
    # Recorded (section 6.1): DataServiceId and Location name .../jobs/job-1, whatever the job's id.
    return json_response(request, None, status=201, etag=job.etag, last_modified=job.last_modified,
                         location=f"{request.app[SETTINGS]['base_url']}/jobs/job-1")


async def list_jobs(request: web.Request) -> web.Response:
    return _list_response(request, _state(request).list_jobs(), 'jobs')


async def get_job(request: web.Request) -> web.Response:
    state = _state(request)
    job = state.get_job(request.match_info['jobId'])
    return _entity_response(request, state.job_resource(job), 'jobs', job.etag, job.last_modified)


async def update_job(request: web.Request) -> web.Response:
    job = _state(request).update_job(request.match_info['jobId'], await _body(request))
    return json_response(request, None, etag=job.etag, last_modified=job.last_modified, acted=True)


async def replace_job(request: web.Request) -> web.Response:
    job = _state(request).update_job(request.match_info['jobId'], await _body(request), replace=True)
    return json_response(request, None, etag=job.etag, last_modified=job.last_modified, acted=True)


async def delete_job(request: web.Request) -> web.Response:
    _state(request).delete_job(request.match_info['jobId'])
    return json_response(request, None, status=202)


async def terminate_job(request: web.Request) -> web.Response:
    body = await _body(request) if request.can_read_body and request.content_length else {}
    _state(request).terminate_job(request.match_info['jobId'], body.get('terminateReason'))
    return _job_acted(request)


async def disable_job(request: web.Request) -> web.Response:
    body = await _body(request)
    _state(request).disable_job(request.match_info['jobId'], body.get('disableTasks'))
    return _job_acted(request)


async def enable_job(request: web.Request) -> web.Response:
    _state(request).enable_job(request.match_info['jobId'])
    return _job_acted(request)


def _job_acted(request: web.Request) -> web.Response:
    """202 for a job action, with DataServiceId, ETag and Last-Modified (as recorded)."""
    job = _state(request).get_job(request.match_info['jobId'])
    return json_response(request, None, status=202, etag=job.etag, last_modified=job.last_modified, acted=True)


async def get_task_counts(request: web.Request) -> web.Response:
    return _entity_response(request, _state(request).task_counts(request.match_info['jobId']), 'taskcountsresult')


async def list_preparation_and_release_status(request: web.Request) -> web.Response:
    state = _state(request)
    job = state.get_job(request.match_info['jobId'])
    if not job.spec.get('jobPreparationTask') and not job.spec.get('jobReleaseTask'):
        raise BatchServiceError('JobPreparationTaskOrReleaseTaskNotSpecified')
    pool = state.pools.get(job.pool_id.lower())
    items = []
    for node in (pool.nodes.values() if pool else []):
        status = node.prepared_jobs.get(job.id)
        if status:
            item = {'poolId': pool.id, 'nodeId': node.id,
                    'nodeUrl': f'{state.base_url}/pools/{pool.id}/nodes/{node.id}',
                    'jobPreparationTaskExecutionInfo': status['preparation']}
            if 'release' in status:
                item['jobReleaseTaskExecutionInfo'] = status['release']
            items.append(item)
    return _list_response(request, items, 'jobpreparationandreleasetaskstatuslist')


# ----- tasks ---------------------------------------------------------------------------------

async def create_task(request: web.Request) -> web.Response:
    job_id = request.match_info['jobId']
    task = _state(request).add_task(job_id, await _body(request))
    return json_response(request, None, status=201, etag=task.etag, last_modified=task.last_modified,
                         location=f"{request.app[SETTINGS]['base_url']}/jobs/{task.job_id}/tasks/{task.id}")


_TASK_SCHEMA = {'$ref': '#/definitions/BatchTaskCreateOptions'}


async def add_task_collection(request: web.Request) -> web.Response:
    body = await _body(request, MAX_TASK_COLLECTION_BYTES, parse=False)  # each task is parsed on its own:
    results = _state(request).add_task_collection(                         # one bad task is one clienterror
        request.match_info['jobId'], body.get('value'), parse=lambda task: conform(task, _TASK_SCHEMA))
    return json_response(request, {'odata.metadata': _metadata(request, 'taskaddresult', element=False),
                                   'value': results})


async def list_tasks(request: web.Request) -> web.Response:
    state = _state(request)
    job = state.get_job(request.match_info['jobId'])
    return _entities_list_response(request, list(job.tasks.values()), state.task_resource, 'tasks',
                                   state.task_property)


async def get_task(request: web.Request) -> web.Response:
    state = _state(request)
    _, task = state.get_task(request.match_info['jobId'], request.match_info['taskId'])
    return _kept_entity_response(request, task, state.task_resource, 'tasks')


async def list_subtasks(request: web.Request) -> web.Response:
    """A multi-instance task's subtasks (ids 1 .. n-1; the primary is the task itself); none for other tasks."""
    _, task = _state(request).get_task(request.match_info['jobId'], request.match_info['taskId'])
    body = {'odata.metadata': _metadata(request, 'subtaskinfo', element=False), 'value': task.subtasks}
    return json_response(request, _writer(request)(body))  # odata.* annotations are kept by the writer


async def replace_task(request: web.Request) -> web.Response:
    task = _state(request).replace_task(request.match_info['jobId'], request.match_info['taskId'], await _body(request))
    return json_response(request, None, etag=task.etag, last_modified=task.last_modified, acted=True)


async def delete_task(request: web.Request) -> web.Response:
    _state(request).delete_task(request.match_info['jobId'], request.match_info['taskId'])
    return json_response(request, None, status=200)


async def terminate_task(request: web.Request) -> web.Response:
    state = _state(request)
    state.terminate_task(request.match_info['jobId'], request.match_info['taskId'])
    _, task = state.get_task(request.match_info['jobId'], request.match_info['taskId'])
    return json_response(request, None, status=204, etag=task.etag, last_modified=task.last_modified, acted=True)


async def reactivate_task(request: web.Request) -> web.Response:
    state = _state(request)
    state.reactivate_task(request.match_info['jobId'], request.match_info['taskId'])
    _, task = state.get_task(request.match_info['jobId'], request.match_info['taskId'])
    return json_response(request, None, status=204, etag=task.etag, last_modified=task.last_modified)  # no id


# ----- files ---------------------------------------------------------------------------------

def _task_root(request: web.Request) -> tuple[str, str]:
    """The task's folder on its node and the files URL prefix."""
    state = _state(request)
    _, task = state.get_task(request.match_info['jobId'], request.match_info['taskId'])
    if task.node is None or not task.node_info:
        raise BatchServiceError('OperationInvalidForCurrentState',
                                'The task has not been scheduled on a node, so it has no files.', status=409)
    root = os.path.join(task.node.root_dir, 'workitems', task.job_id, 'job-1', task.id)
    return root, f'{state.base_url}/jobs/{task.job_id}/tasks/{task.id}/files'


def _node_root(request: web.Request) -> tuple[str, str]:
    state = _state(request)
    pool, node = state.get_node(request.match_info['poolId'], request.match_info['nodeId'])
    return node.root_dir, f'{state.base_url}/pools/{pool.id}/nodes/{node.id}/files'


# Content types by file name, from Python's built-in table only (the machine's mime.types would make answers vary).
_CONTENT_TYPES = mimetypes.MimeTypes()


def _content_type(name: str) -> str:
    return _CONTENT_TYPES.guess_type(name)[0] or 'application/octet-stream'


def _file_properties(info: os.stat_result, name: str) -> dict:
    """As a Linux node reports a file [Go TestTask, TestNode/File]: no creationTime (Windows nodes have one),
    the type by name (``text/plain`` for .txt), the mode as ``0o100644``."""
    return {
        'lastModified': _iso(info.st_mtime),
        'contentLength': str(0 if is_directory(info) else info.st_size),  # int64 travels as a string
        'contentType': _content_type(name), 'fileMode': oct(info.st_mode & 0o777777),
    }


def _iso(timestamp: float) -> str:
    return iso(datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc))


async def _list_files(request: web.Request, root: str, url_prefix: str) -> web.Response:
    recursive = request.query.get('recursive', 'false').lower() == 'true'
    query_filter = request.query.get('$filter')
    if query_filter and not re.match(r"^\s*startswith\(\s*name\s*,\s*'[^']*'\s*\)\s*$", query_filter):
        raise invalid_query('$filter', query_filter, "Files can be filtered only with startswith(name,'prefix').")
    try:  # a task decides what its folder holds: walk it off the event loop, links not followed, bounded
        entries = await asyncio.to_thread(list_files, root, recursive)
    except TooManyFiles as error:
        raise BatchServiceError('OperationInvalidForCurrentState', f'The folder holds too many files to list '
                                                                   f'({error}).', status=409) from None
    # Recorded: a directory has no properties, a file has them [P:files, Go TestTask].
    items = [{'name': name, 'url': f'{url_prefix}/{name}', 'isDirectory': is_directory(info),
              **({} if is_directory(info) else {'properties': _file_properties(info, name)})} for name, info in entries]
    return _list_response(request, items, 'files')


def _byte_range(header: str | None, length: int) -> tuple[int, int]:
    """First and last byte of an ``ocp-range: bytes=a-b`` (or ``a-`` or ``-n``) request; the whole file without."""
    if not header:
        return 0, length - 1
    match = re.match(r'^bytes=(\d*)-(\d*)$', header.strip())
    if not match or not any(match.groups()):
        raise BatchServiceError('InvalidHeaderValue', values={'HeaderName': 'ocp-range', 'HeaderValue': header})
    first, last = match.groups()
    if first:
        return int(first), min(int(last), length - 1) if last else length - 1
    return max(0, length - int(last)), length - 1


def _file_lookup(root: str, relative: str) -> tuple[str, os.stat_result] | None:
    path = inside(root, relative)
    if path is None or path == os.path.realpath(root):
        return None
    try:
        return path, os.stat(path)
    except OSError:
        return None


async def _file_response(request: web.Request, root: str, url_prefix: str) -> web.StreamResponse:
    """A file's properties (HEAD) or content, streamed in pieces read off the event loop (ocp-range honoured)."""
    relative = request.match_info['filePath']
    found = await asyncio.to_thread(_file_lookup, root, relative)
    if found is None:
        raise BatchServiceError('FileNotFound')
    path, info = found
    properties = _file_properties(info, relative)
    directory = is_directory(info)
    length = int(properties['contentLength'])
    start, end = (0, length - 1) if directory else _byte_range(request.headers.get('ocp-range'), length)
    # As recorded from a Linux node: the whole file URL percent-encoded, the mode, no ocp-creation-time; and the
    # headers every answer has, set here because a streamed answer's headers leave before the middleware sees it.
    headers = {
        'ocp-batch-file-isdirectory': 'True' if directory else 'False',
        'ocp-batch-file-url': quote(f'{url_prefix}/{relative}', safe=''),
        'ocp-batch-file-mode': properties['fileMode'],
        'Last-Modified': format_datetime(datetime.datetime.fromtimestamp(info.st_mtime, datetime.timezone.utc),
                                         usegmt=True),
        'Content-Type': properties['contentType'],
        'DataServiceVersion': '3.0', 'request-id': request['request_id'], **SERVICE_HEADERS,
    }
    if request.method == 'HEAD':
        # aiohttp keeps an explicit Content-Length on a HEAD response without a body.
        headers['Content-Length'] = str(length)
        return web.Response(status=200, headers=headers)
    size = max(0, end - start + 1) if not directory else 0
    headers['Content-Length'] = str(size)
    response = web.StreamResponse(status=200, headers=headers)
    await response.prepare(request)
    chunks = read_chunks(path, start, size)
    try:
        while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
            await response.write(chunk)
    except OSError:  # the file went away or the client hung up: the response just ends short
        return response
    finally:
        chunks.close()
    await response.write_eof()
    return response


async def list_task_files(request: web.Request) -> web.Response:
    return await _list_files(request, *_task_root(request))


async def get_task_file(request: web.Request) -> web.StreamResponse:
    return await _file_response(request, *_task_root(request))


async def list_node_files(request: web.Request) -> web.Response:
    return await _list_files(request, *_node_root(request))


async def get_node_file(request: web.Request) -> web.StreamResponse:
    return await _file_response(request, *_node_root(request))


# ----- the route table, from the spec --------------------------------------------------------

# operation id of the spec -> handler. Every other operation of the spec answers 501 naming it.
HANDLERS = {
    'Pools_ListSupportedImages': list_supported_images,
    'Pools_ListPoolNodeCounts': list_pool_node_counts,
    'Pools_CreatePool': create_pool,
    'Pools_ListPools': list_pools,
    'Pools_GetPool': get_pool,
    'Pools_PoolExists': pool_exists,
    'Pools_UpdatePool': update_pool,
    'Pools_DeletePool': delete_pool,
    'Pools_ReplacePoolProperties': replace_pool_properties,
    'Pools_ResizePool': resize_pool,
    'Pools_StopPoolResize': stop_resize_pool,
    'Pools_EnablePoolAutoScale': enable_autoscale,
    'Pools_DisablePoolAutoScale': disable_autoscale,
    'Pools_EvaluatePoolAutoScale': evaluate_autoscale,
    'Nodes_ListNodes': list_nodes,
    'Nodes_GetNode': get_node,
    'Nodes_RebootNode': reboot_node,
    'Nodes_ListNodeFiles': list_node_files,
    'Nodes_GetNodeFile': get_node_file,
    'Nodes_GetNodeFileProperties': get_node_file,
    'Jobs_CreateJob': create_job,
    'Jobs_ListJobs': list_jobs,
    'Jobs_GetJob': get_job,
    'Jobs_UpdateJob': update_job,
    'Jobs_ReplaceJob': replace_job,
    'Applications_ListApplications': list_applications,
    'Applications_GetApplication': get_application,
    'Tasks_ListSubTasks': list_subtasks,
    'Tasks_ReplaceTask': replace_task,
    'Pools_ListPoolUsageMetrics': list_pool_usage_metrics,
    'Jobs_DeleteJob': delete_job,
    'Jobs_TerminateJob': terminate_job,
    'Jobs_DisableJob': disable_job,
    'Jobs_EnableJob': enable_job,
    'Jobs_GetJobTaskCounts': get_task_counts,
    'Jobs_ListJobPreparationAndReleaseTaskStatus': list_preparation_and_release_status,
    'Tasks_CreateTaskCollection': add_task_collection,
    'Tasks_CreateTask': create_task,
    'Tasks_ListTasks': list_tasks,
    'Tasks_GetTask': get_task,
    'Tasks_DeleteTask': delete_task,
    'Tasks_TerminateTask': terminate_task,
    'Tasks_ReactivateTask': reactivate_task,
    'Tasks_ListTaskFiles': list_task_files,
    'Tasks_GetTaskFile': get_task_file,
    'Tasks_GetTaskFileProperties': get_task_file,
    **SCHEDULE_HANDLERS,
}


from .node_routes import NODE_HANDLERS  # noqa: E402 (it uses this module's helpers)

HANDLERS.update(NODE_HANDLERS)


def _not_implemented(operation: Operation):
    async def handler(request: web.Request) -> web.Response:
        raise BatchServiceError('NotImplemented', f'The local Batch emulator does not implement '
                                                  f'{operation.operation_id} ({operation.method} {operation.path}).')
    return handler


def _for_operation(operation: Operation, handler):
    async def wrapper(request: web.Request) -> web.StreamResponse:
        request['operation'] = operation  # its body schema parses the request
        request['operation_id'] = operation.operation_id  # for the request log
        versions.check_operation(request, operation.method, operation.path)  # does the api-version have it?
        return await handler(request)
    return wrapper


async def not_in_spec(request: web.Request) -> web.Response:
    """A path of the spec with a method it does not have, or no path of the spec at all: the service's errors."""
    if is_spec_path(request.path):
        raise BatchServiceError('UnsupportedHttpVerb', values={'HttpVerb': request.method})
    if request.path.rstrip('/').lower() in ('/lifetimepoolstats', '/lifetimejobstats'):  # recorded [J:pool/lifetime]
        raise BatchServiceError('LifetimeStatsAPIRetired', 'Lifetime statistics API was retired on 04/30/2023',
                                status=400)
    raise BatchServiceError('InvalidUri', values={'RequestUri': request.path})


def add_routes(app: web.Application) -> None:
    for operation in operations():
        handler = HANDLERS.get(operation.operation_id) or _not_implemented(operation)
        app.router.add_route(operation.method, operation.route, _for_operation(operation, handler))
    for operation in versions.older_operations():  # e.g. ListNodeAgentSkus, answered from its successor
        handler = HANDLERS.get(operation.operation_id) or _not_implemented(operation)
        app.router.add_route(operation.method, operation.route, _for_operation(operation, handler))
    app.router.add_route('*', '/{tail:.*}', not_in_spec)
