"""Files on a node and of a task: lists, and reads with ranges, as the service answers them.

The handlers find the file and the range asked for (``ocp-range``) and return a ``results.File``; the adapter
writes its headers and streams its bytes.
"""

from __future__ import annotations

import asyncio
import datetime
import mimetypes
import os
import re
from urllib.parse import quote

from batch_emulator.common import layout
from batch_emulator.common.errors import BatchServiceError, invalid_query
from batch_emulator.runtime.files import TooManyFiles, inside, is_directory, list_files
from batch_emulator.service.state import iso
from batch_emulator.wire.results import Context, File, Page

# ----- files ---------------------------------------------------------------------------------

def task_root(ctx: Context) -> tuple[str, str]:
    """The task's folder on its node and the files URL prefix."""
    state = ctx.state
    _, task = state.get_task(ctx.params['jobId'], ctx.params['taskId'])
    if task.node is None or not task.node_info:
        raise BatchServiceError('OperationInvalidForCurrentState',
                                'The task has not been scheduled on a node, so it has no files.', status=409)
    root = layout.task_dir(task.node.root_dir, task.job_id, task.id)
    return root, f'{state.base_url}/jobs/{task.job_id}/tasks/{task.id}/files'


def node_root(ctx: Context) -> tuple[str, str]:
    state = ctx.state
    pool, node = state.get_node(ctx.params['poolId'], ctx.params['nodeId'])
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


async def _list_files(ctx: Context, root: str, url_prefix: str) -> Page:
    recursive = ctx.query.get('recursive', 'false').lower() == 'true'
    query_filter = ctx.query.get('$filter')
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
    return Page(items, 'files')


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


async def _file(ctx: Context, root: str, url_prefix: str) -> File:
    """A file's properties and the bytes asked for (``ocp-range``; none for a folder), found off the event loop."""
    relative = ctx.params['filePath']
    found = await asyncio.to_thread(_file_lookup, root, relative)
    if found is None:
        raise BatchServiceError('FileNotFound')
    path, info = found
    properties = _file_properties(info, relative)
    directory = is_directory(info)
    length = int(properties['contentLength'])
    start, end = (0, length - 1) if directory else _byte_range(ctx.headers.get('ocp-range'), length)
    return File(path, length, start, 0 if directory else max(0, end - start + 1), directory,
                quote(f'{url_prefix}/{relative}', safe=''), properties['fileMode'], properties['contentType'],
                datetime.datetime.fromtimestamp(info.st_mtime, datetime.timezone.utc))


async def list_task_files(ctx: Context) -> Page:
    return await _list_files(ctx, *task_root(ctx))


async def get_task_file(ctx: Context) -> File:
    return await _file(ctx, *task_root(ctx))


async def list_node_files(ctx: Context) -> Page:
    return await _list_files(ctx, *node_root(ctx))


async def get_node_file(ctx: Context) -> File:
    return await _file(ctx, *node_root(ctx))


FILE_HANDLERS = {  # operation id of the spec -> handler
    'Nodes_ListNodeFiles': list_node_files,
    'Nodes_GetNodeFile': get_node_file,
    'Nodes_GetNodeFileProperties': get_node_file,
    'Tasks_ListTaskFiles': list_task_files,
    'Tasks_GetTaskFile': get_task_file,
    'Tasks_GetTaskFileProperties': get_task_file,
}
