"""
FILE: python_tutorial_task.py

DESCRIPTION:
    The program that runs on an Azure Batch compute node, once per task of the
    tutorial's job. It finds the N most common words of one input file, writes
    them to ``<name>_OUTPUT<ext>`` and uploads that file to a Blob Storage
    container using a container shared access signature (SAS) that the client
    passed on the command line, so the task never needs the storage account key.

    1. Count the words of the input file (streamed: memory stays flat however
       large the file is; a large file is counted by one process per core the
       task may use).
    2. Write the output file (the 2016 tutorial's format).
    3. Upload the output file to the output container with the container SAS.

USAGE:
    python python_tutorial_task.py --filepath FILE [--numwords N]
        [--storageaccount NAME --storagecontainer NAME --sastoken SAS]
        [--blobendpoint URL]

    Without the three storage flags the output file is written and printed and
    the upload is skipped. On a Batch node, the AZ_BATCH_NODE_ID,
    AZ_BATCH_TASK_ID, AZ_BATCH_JOB_ID and AZ_BATCH_POOL_ID environment variables
    (set by the Batch service) name where the task ran.
"""

from __future__ import annotations

import argparse
import collections
import functools
import itertools
import multiprocessing
import operator
import os
import re
import string
import sys
from collections.abc import Iterable, Iterator
from typing import BinaryIO

# Characters stripped from both ends of every word: the ASCII punctuation of the
# original tutorial (non-ASCII marks such as an em dash stay part of a word).
_PUNCTUATION = string.punctuation

# The file is read as bytes, in pieces of this size. Small pieces are faster than
# large ones (measured: 256 KiB pieces cost about 15% more): the tokens of one piece
# (about 5,000 objects) stay in the CPU cache while Counter adds them up.
_CHUNK_BYTES = 1 << 15

# A file up to this size is counted right here: starting processes would cost
# more than they save.
_SMALL_FILE_BYTES = 16 << 20

# A larger file is cut into this many ranges per process, so that a process slowed
# down by other work on the node gets fewer of them, and none smaller than this.
_RANGES_PER_PROCESS = 4
_MIN_RANGE_BYTES = 4 << 20

# Distinct tokens are decoded this many at a time.
_TOKENS_PER_BATCH = 1 << 13

_BYTE_ORDER_MARK = b'\xef\xbb\xbf'

# str.split() splits at 29 whitespace characters, bytes.split() only at the 6 ASCII
# ones (space \t \n \r \v \f). This finds the UTF-8 bytes of the other 23 (U+001C to
# U+001F, U+0085, U+00A0 ... U+3000 IDEOGRAPHIC SPACE).
_OTHER_WHITESPACE = re.compile(b'|'.join(
    re.escape(c.encode()) for c in map(chr, range(0x3001)) if c.isspace() and not c.encode().isspace()))

# Where a range may end: after one of the bytes bytes.split() splits at.
_ASCII_WHITESPACE = re.compile(rb'[ \t\n\r\x0b\x0c]')

_SEPARATOR = '-' * 30


def count_raw_tokens(chunks: Iterable[bytes],
                     raw_token_counts: collections.Counter[bytes] | None = None) -> collections.Counter[bytes]:
    """Counts the tokens of text given as consecutive pieces of bytes, split at ASCII whitespace.

    bytes.split() and Counter run in C, and no token is decoded here: an ASCII byte is
    never part of a multi-byte character, even in bytes that are not valid UTF-8. The
    counts are added to ``raw_token_counts`` (a new Counter if None), whose keys keep
    first-appearance order.
    """
    if raw_token_counts is None:
        raw_token_counts = collections.Counter()
    add_tokens = raw_token_counts.update
    unfinished_token = b''
    for chunk in chunks:
        text = unfinished_token + chunk if unfinished_token else chunk
        tokens = text.split()
        # The last token may continue in the next piece (it may end in half a character).
        unfinished_token = tokens.pop() if tokens and not text[-1:].isspace() else b''
        add_tokens(tokens)
        if len(unfinished_token) > len(chunk):
            # A whole piece without ASCII whitespace (words apart only by, say, U+3000):
            # split it where str.split() would, so that memory stays flat.
            *tokens, unfinished_token = _OTHER_WHITESPACE.split(unfinished_token)
            add_tokens(token for token in tokens if token)
    if unfinished_token:
        raw_token_counts[unfinished_token] += 1
    return raw_token_counts


def add_counts(total: collections.Counter, keys: Iterable, counts: Iterable[int]) -> None:
    """Adds ``counts[i]`` to ``total[keys[i]]`` in order, in C; a key new to ``total`` goes last.

    A key may come more than once: dict.update takes one pair at a time from the lazy
    maps, so each sum reads what the pairs before it wrote.
    """
    sums = map(operator.add, counts, map(total.get, keys, itertools.repeat(0)))
    dict.update(total, zip(keys, sums, strict=True))


def words_of_raw_tokens(raw_token_counts: dict[bytes, int]) -> collections.Counter[str]:
    """The 2016 tutorial's word counts, from the counts of the raw tokens (in first-appearance order).

    Each distinct token is decoded, split and stripped once, however often it occurs,
    and all of that runs in C. str.split() splits the few tokens that hold other
    whitespace (U+00A0, U+3000...). Words are inserted in the order of their first
    appearance, which decides ties.
    """
    word_counts: collections.Counter[str] = collections.Counter()
    all_tokens, all_counts = iter(raw_token_counts), iter(raw_token_counts.values())
    while batch := list(itertools.islice(all_tokens, _TOKENS_PER_BATCH)):  # (a batch at a time: flat memory)
        # Decoding the tokens joined by b'\n' gives what decoding each one gives: no token
        # holds b'\n', and an ASCII byte ends any invalid sequence before it.
        tokens = b'\n'.join(batch).decode('utf-8', errors='replace').split('\n')
        words_per_token = list(map(str.split, tokens))
        words = list(map(str.strip, itertools.chain.from_iterable(words_per_token), itertools.repeat(_PUNCTUATION)))
        counts = itertools.islice(all_counts, len(batch))
        add_counts(word_counts, words, itertools.chain.from_iterable(
            map(itertools.repeat, counts, map(len, words_per_token))))
    return word_counts


def count_words(chunks: Iterable[bytes]) -> collections.Counter[str]:
    """Counts the words of UTF-8 text given as consecutive pieces of bytes.

    A word is what ``str.split()`` finds, with ASCII punctuation stripped from
    both ends; words are case-sensitive; bytes that are not UTF-8 become U+FFFD.
    This gives exactly the counts of the 2016 tutorial's
    ``Counter(w.strip(punctuation) for w in text.split())``, including its
    insertion order (first appearance), which decides ties, but never holds the
    whole text in memory.
    """
    return words_of_raw_tokens(count_raw_tokens(chunks))


def read_byte_range(path: str, byte_range: tuple[int, int | None],
                    chunk_bytes: int = _CHUNK_BYTES) -> Iterator[bytes]:
    """Reads a file from ``start`` to ``end`` (``None``: to its end), piece by piece.

    A byte order mark at the start of the file is dropped. The first range is
    read without seeking, so a pipe works too.
    """
    start, end = byte_range
    remaining = sys.maxsize if end is None else end - start
    with open(path, 'rb') as file:
        if start:
            file.seek(start)
        else:
            head = file.read(min(len(_BYTE_ORDER_MARK), remaining))
            remaining -= len(head)
            yield head.removeprefix(_BYTE_ORDER_MARK)
        while remaining > 0 and (chunk := file.read(min(chunk_bytes, remaining))):
            remaining -= len(chunk)
            yield chunk


def split_into_ranges(path: str, range_bytes: int) -> list[tuple[int, int | None]]:
    """Cuts a file into ``(start, end)`` ranges of about ``range_bytes``, each ending after whitespace.

    No word (and no character) is then cut in two, so the ranges can be counted
    separately. The last range reads to the end of the file.
    """
    starts = [0]
    size = os.path.getsize(path)  # 0 for a pipe
    if size > range_bytes:  # (a small file, or a pipe, is not even opened here)
        with open(path, 'rb') as file:
            while (start := _after_next_whitespace(file, starts[-1] + range_bytes)) < size:
                starts.append(start)
    return list(zip(starts, [*starts[1:], None], strict=True))


def _after_next_whitespace(file: BinaryIO, position: int) -> int:
    """The position just after the first ASCII whitespace byte at or after ``position`` (or the end)."""
    file.seek(position)
    while block := file.read(1 << 16):
        if space := _ASCII_WHITESPACE.search(block):
            return position + space.end()
        position += len(block)
    return position


def count_range(path: str, byte_range: tuple[int, int | None],
                chunk_bytes: int = _CHUNK_BYTES) -> collections.Counter[str]:
    """The word counts of one range of a file (what each worker process runs)."""
    return count_words(read_byte_range(path, byte_range, chunk_bytes))


def usable_cores() -> int:
    """The cores this process may run on: one under ``taskset -c 0`` or in a one-core slot."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def count_file(path: str, processes: int | None = None, range_bytes: int | None = None,
               chunk_bytes: int = _CHUNK_BYTES) -> collections.Counter[str]:
    """The word counts of a file.

    With one usable core, or for a small file or a pipe, the file is read here in one
    pass. Otherwise it is cut into ``range_bytes`` ranges (by default a few per core)
    that one process per core counts; their word counts are added up in file order,
    so that first appearances keep their order.
    """
    processes = processes or usable_cores()
    size = os.path.getsize(path)
    if range_bytes is None:
        if processes == 1 or size <= _SMALL_FILE_BYTES:
            range_bytes = size
        else:
            range_bytes = max(_MIN_RANGE_BYTES, -(-size // (processes * _RANGES_PER_PROCESS)))
    ranges = split_into_ranges(path, range_bytes)
    if processes == 1 or len(ranges) == 1:
        raw_token_counts: collections.Counter[bytes] = collections.Counter()
        for byte_range in ranges:
            count_raw_tokens(read_byte_range(path, byte_range, chunk_bytes), raw_token_counts)
        return words_of_raw_tokens(raw_token_counts)
    word_counts: collections.Counter[str] = collections.Counter()
    count_one_range = functools.partial(count_range, path, chunk_bytes=chunk_bytes)
    with multiprocessing.Pool(min(processes, len(ranges))) as pool:
        for range_counts in pool.imap(count_one_range, ranges):  # imap answers in file order
            add_counts(word_counts, range_counts.keys(), range_counts.values())
        pool.close()  # let the workers exit and be waited for (rather than be terminated)
        pool.join()
    return word_counts


def top_words(word_counts: collections.Counter[str], numwords: int) -> list[tuple[str, int]]:
    """The ``numwords`` most common words; ties keep first-appearance order."""
    return word_counts.most_common(numwords)


def format_output(top: list[tuple[str, int]], environ: dict[str, str] | os._Environ) -> str:
    """The output file's text, in the 2016 tutorial's format."""
    lines = ['Word\tCount', _SEPARATOR]
    lines += [f'{word}:\t{count}' for word, count in top]
    lines.append(_SEPARATOR)
    for label, variable in (('Node: ', 'AZ_BATCH_NODE_ID'), ('Task: ', 'AZ_BATCH_TASK_ID'),
                            ('Job:  ', 'AZ_BATCH_JOB_ID'), ('Pool: ', 'AZ_BATCH_POOL_ID')):
        lines.append(label + environ.get(variable, f'(not on a Batch node: {variable} is not set)'))
    return '\n'.join(lines) + '\n'


def output_file_path(input_path: str) -> str:
    """``data/taskdata1.txt`` -> ``data/taskdata1_OUTPUT.txt``."""
    stem, extension = os.path.splitext(input_path)
    return f'{stem}_OUTPUT{extension}'


def upload_output_file(file_path: str, blob_endpoint: str, container_name: str, sas_token: str) -> str:
    """Uploads the output file with a container SAS; returns the blob name.

    The SAS grants write/create on the output container only: the node can
    add its result but cannot read, list or delete anything.
    """
    # Imported here so that counting words needs only the standard library.
    from azure.storage.blob import ContainerClient

    container_url = f"{blob_endpoint.rstrip('/')}/{container_name}?{sas_token.lstrip('?')}"
    blob_name = os.path.basename(file_path)
    with ContainerClient.from_container_url(container_url) as container_client, \
            open(file_path, 'rb') as data:
        container_client.upload_blob(blob_name, data, overwrite=True)
    return blob_name


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Top-N words of one file (Azure Batch tutorial task).')
    parser.add_argument('--filepath', required=True, help='the input file to analyse')
    parser.add_argument('--numwords', type=int, default=3, help='how many of the most common words to write')
    parser.add_argument('--storageaccount', help='storage account that holds the output container')
    parser.add_argument('--storagecontainer', help='container that receives the output file')
    parser.add_argument('--sastoken', help='SAS token with write access to that container')
    parser.add_argument('--blobendpoint',
                        help='blob service URL (default https://ACCOUNT.blob.core.windows.net; '
                             'Azure China: https://ACCOUNT.blob.core.chinacloudapi.cn)')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    if args.numwords < 1:
        print(f'error: --numwords must be 1 or more (got {args.numwords})', file=sys.stderr)
        return 2
    storage_flags = {'--storageaccount': args.storageaccount, '--storagecontainer': args.storagecontainer,
                     '--sastoken': args.sastoken}
    missing = [flag for flag, value in storage_flags.items() if not value]
    if 0 < len(missing) < len(storage_flags):
        print(f"error: to upload the output also give {', '.join(missing)}", file=sys.stderr)
        return 2

    # 1. Count the words.
    try:
        word_counts = count_file(args.filepath)
    except OSError as error:
        print(f'error: cannot read input file {args.filepath}: {error.strerror}', file=sys.stderr)
        return 2

    # 2. Write the output file next to the input file.
    output_path = output_file_path(args.filepath)
    output_text = format_output(top_words(word_counts, args.numwords), os.environ)
    with open(output_path, 'w', encoding='utf-8', errors='replace') as output_file:
        output_file.write(output_text)

    # 3. Upload it with the container SAS.
    if missing:
        sys.stdout.write(output_text)
        print(f'Wrote {output_path}; upload skipped (no --storageaccount/--storagecontainer/--sastoken).')
        return 0
    blob_endpoint = args.blobendpoint or f'https://{args.storageaccount}.blob.core.windows.net'
    blob_name = upload_output_file(output_path, blob_endpoint, args.storagecontainer, args.sastoken)
    print(f'Uploaded {output_path} to container [{args.storagecontainer}] as [{blob_name}].')
    return 0


if __name__ == '__main__':
    sys.exit(main())
