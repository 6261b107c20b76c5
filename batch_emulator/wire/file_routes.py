"""Files on a node and of a task: lists, and reads with ranges, as the service answers them."""

from __future__ import annotations

import asyncio
import datetime
import mimetypes
import os
import re
from email.utils import format_datetime
from urllib.parse import quote

from aiohttp import web

from batch_emulator.common import layout
from batch_emulator.common.errors import BatchServiceError, invalid_query
from batch_emulator.runtime.files import TooManyFiles, inside, is_directory, list_files, read_chunks
from batch_emulator.service.state import iso
from batch_emulator.wire.respond import (
    list_response,
    state_of,
)
from batch_emulator.wire.server import (
    SERVICE_HEADERS,
)

# ----- files ---------------------------------------------------------------------------------

def task_root(request: web.Request) -> tuple[str, str]:
    """The task's folder on its node and the files URL prefix."""
    state = state_of(request)
    _, task = state.get_task(request.match_info['jobId'], request.match_info['taskId'])
    if task.node is None or not task.node_info:
        raise BatchServiceError('OperationInvalidForCurrentState',
                                'The task has not been scheduled on a node, so it has no files.', status=409)
    root = layout.task_dir(task.node.root_dir, task.job_id, task.id)
    return root, f'{state.base_url}/jobs/{task.job_id}/tasks/{task.id}/files'


def node_root(request: web.Request) -> tuple[str, str]:
    state = state_of(request)
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
    return list_response(request, items, 'files')


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
    return await _list_files(request, *task_root(request))


async def get_task_file(request: web.Request) -> web.StreamResponse:
    return await _file_response(request, *task_root(request))


async def list_node_files(request: web.Request) -> web.Response:
    return await _list_files(request, *node_root(request))


async def get_node_file(request: web.Request) -> web.StreamResponse:
    return await _file_response(request, *node_root(request))


FILE_HANDLERS = {  # operation id of the spec -> handler
    'Nodes_ListNodeFiles': list_node_files,
    'Nodes_GetNodeFile': get_node_file,
    'Nodes_GetNodeFileProperties': get_node_file,
    'Tasks_ListTaskFiles': list_task_files,
    'Tasks_GetTaskFile': get_task_file,
    'Tasks_GetTaskFileProperties': get_task_file,
}
