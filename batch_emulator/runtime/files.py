"""A node's files as the service exposes them, safe against what a task leaves in its folders.

A task decides what its folders hold: symbolic links to ``/``, dangling links,
millions of files, a 200 MB stdout.txt. Everything here is therefore bounded
and never follows a link out of the folder it was asked about:

- ``inside`` resolves a path below a root, or refuses it;
- ``list_files`` walks a folder without following links, up to ``MAX_LISTED``
  entries, describing links by the link itself (``lstat``);
- ``find_output_files`` matches an ``outputFiles`` pattern (``*``, ``**``, ``?``,
  ``[abc]``, ``[!abc]``; a leading ``.`` only matched explicitly, as the service
  documents) without following links, visiting at most ``MAX_VISITED`` entries;
- ``read_chunks`` reads a byte range piece by piece, for a streamed response;
- ``open_within`` opens a regular file for the emulator's own reading or writing
  (uploads, downloads) folder by folder with ``O_NOFOLLOW``, so that a link a task
  planted is neither read nor written through;
- ``node_log_files`` are the node's own log files, those a log upload sends.

These functions block (they touch the disk): the server calls them through
``asyncio.to_thread`` so that no task's folder can stall the event loop.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import stat
from collections.abc import Iterator

from batch_emulator.common import layout

MAX_LISTED = 100_000     # entries a file listing walks (the service pages lists; a node holds far fewer)
MAX_VISITED = 100_000    # entries an output file pattern may visit
MAX_MATCHED = 10_000     # files one output file pattern may upload
CHUNK_BYTES = 256 * 1024


class TooManyFiles(Exception):
    """A walk met more entries than its limit allows."""


def inside(root: str, relative: str) -> str | None:
    """The absolute path of ``relative`` below ``root`` (links resolved), or None if it would leave root."""
    root = os.path.realpath(root)
    path = os.path.realpath(os.path.join(root, relative))
    return path if path == root or path.startswith(root + os.sep) else None


def _walk(base: str, limit: int, recursive: bool = True) -> Iterator[tuple[str, os.stat_result]]:
    """(relative name with '/', lstat) of the entries below base (or in it only), folders first, links not followed."""
    count = 0
    for directory, folders, files in os.walk(base, followlinks=False):
        folders.sort()
        listed = folders + sorted(files)
        if not recursive:
            folders.clear()  # os.walk descends no further
        for name in listed:
            count += 1
            if count > limit:
                raise TooManyFiles(f'more than {limit} files and folders')
            path = os.path.join(directory, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue  # gone since the folder was read
            yield os.path.relpath(path, base).replace(os.sep, '/'), info


def list_files(root: str, recursive: bool, limit: int = MAX_LISTED) -> list[tuple[str, os.stat_result]]:
    """(name relative to root, lstat) of the files and folders below root; a link is listed, not followed."""
    base = os.path.realpath(root)
    if not os.path.isdir(base):
        return []
    return list(_walk(base, limit, recursive))


def is_directory(info: os.stat_result) -> bool:
    return stat.S_ISDIR(info.st_mode)


def _pattern_base(working_dir: str, pattern: str) -> tuple[str, list[str]]:
    """The folder a pattern starts from (``../std*.txt`` -> the task folder) and its wildcard segments."""
    segments = pattern.replace('\\', '/').split('/')
    fixed: list[str] = []
    for index, segment in enumerate(segments):
        if any(character in segment for character in '*?['):
            return os.path.normpath(os.path.join(working_dir, *fixed) if fixed else working_dir), segments[index:]
        fixed.append(os.sep if index == 0 and not segment else segment)  # '' first: an absolute pattern
    return os.path.normpath(os.path.join(working_dir, *fixed)), []


def _segment_matches(name: str, pattern: str) -> bool:
    if name.startswith('.') and not pattern.startswith('.'):
        return False  # hidden files are matched only by a pattern that names the dot
    return fnmatch.fnmatchcase(name, pattern)


def _path_matches(parts: list[str], patterns: list[str]) -> bool:
    """Does a relative path (split in parts) match the wildcard segments? ``**`` spans any number of folders."""
    def spread(reachable: list[bool]) -> list[bool]:  # '**' may also match no folder at all
        for index, segment in enumerate(patterns):
            if segment == '**' and reachable[index]:
                reachable[index + 1] = True
        return reachable

    reachable = spread([True] + [False] * len(patterns))  # reachable[j]: the parts so far match patterns[:j]
    for part in parts:
        following = [False] * (len(patterns) + 1)
        for index, segment in enumerate(patterns):
            if not reachable[index]:
                continue
            if segment == '**':
                following[index] = not part.startswith('.')
            elif _segment_matches(part, segment):
                following[index + 1] = True
        reachable = spread(following)
    return reachable[-1]


def find_output_files(working_dir: str, pattern: str, *, visit_limit: int = MAX_VISITED,
                      match_limit: int = MAX_MATCHED) -> list[tuple[str, str]]:
    """(absolute path, name relative to the pattern's base) of the regular files a pattern matches.

    Relative patterns start in the working folder and may name its parent (``../stdout.txt``);
    absolute ones are allowed, as on a node. Links are never followed while walking, and a
    link to a file counts only if it resolves inside the task's folder (the working folder's parent).
    """
    base, wildcards = _pattern_base(working_dir, pattern)
    task_dir = os.path.dirname(os.path.realpath(working_dir))
    if not os.path.isabs(pattern) and inside(task_dir, os.path.relpath(base, task_dir)) is None:
        return []  # a relative pattern that leads out of the task's folder, through '..' or a link
    if not wildcards:
        return [(base, os.path.basename(base))] if _regular_file_within(base, task_dir) else []
    if not os.path.isdir(base):
        return []
    matches = []
    for name, info in _walk(base, visit_limit):
        if stat.S_ISDIR(info.st_mode) or not _path_matches(name.split('/'), wildcards):
            continue
        path = os.path.join(base, name)
        if stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode) and _regular_file_within(path, task_dir):
            matches.append((path, name))
            if len(matches) > match_limit:
                raise TooManyFiles(f'the pattern {pattern} matches more than {match_limit} files')
    return matches


def _regular_file_within(path: str, task_dir: str) -> bool:
    """A regular file; when reached through a link, only if the link stays inside the task's folder."""
    try:
        if not os.path.islink(path):
            return stat.S_ISREG(os.lstat(path).st_mode)
        target = os.path.realpath(path)
        return target.startswith(task_dir + os.sep) and stat.S_ISREG(os.stat(target).st_mode)
    except OSError:
        return False


def read_chunks(path: str, start: int, length: int) -> Iterator[bytes]:
    """``length`` bytes of a file from ``start``, in pieces of at most CHUNK_BYTES."""
    with open(path, 'rb') as file:
        file.seek(start)
        while length > 0:
            data = file.read(min(CHUNK_BYTES, length))
            if not data:
                return
            length -= len(data)
            yield data


def open_within(path: str, root: str, flags: int = os.O_RDONLY, mode: int = 0o600) -> int:
    """A descriptor of the regular file ``path``, which must lie below ``root``; never opened through a link.

    The path is walked from ``root`` one folder at a time, each opened with ``O_NOFOLLOW`` relative
    to the one before, so a link anywhere below ``root`` — planted before or swapped in meanwhile — is
    refused, not followed. ``O_NONBLOCK``: a FIFO planted in a file's place fails at once instead of
    blocking the emulator.
    """
    root = os.path.realpath(root)
    relative = os.path.relpath(path, root)
    parts = relative.split(os.sep)
    if not os.path.isabs(path) or relative == os.curdir or os.pardir in parts:
        raise OSError(errno.EXDEV, 'not below its folder', path)
    cloexec = getattr(os, 'O_CLOEXEC', 0)
    folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY | cloexec)
    try:
        for part in parts[:-1]:
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | cloexec, dir_fd=folder)
            os.close(folder)
            folder = inner
        descriptor = os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_NONBLOCK | cloexec, mode, dir_fd=folder)
    finally:
        os.close(folder)
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise OSError(errno.EINVAL, 'not a regular file', path)
        os.set_blocking(descriptor, True)
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def node_log_files(root_dir: str) -> list[str]:
    """The node's own logs (its start task's stdout.txt and stderr.txt): regular files, not links, in place."""
    startup = layout.startup_dir(os.path.realpath(root_dir))
    found = []
    for name in ('stdout.txt', 'stderr.txt'):
        path = os.path.join(startup, name)
        try:
            if not os.path.islink(startup) and stat.S_ISREG(os.lstat(path).st_mode):
                found.append(path)
        except OSError:
            continue
    return found
