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
import codecs
import collections
import itertools
import operator
import os
import re
import string
import sys
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:  # multiprocessing is imported only when a large file is counted on several cores
    import multiprocessing.connection
    from multiprocessing.sharedctypes import Synchronized

# Characters stripped from both ends of every word: the ASCII punctuation of the
# original tutorial (non-ASCII marks such as an em dash stay part of a word).
_PUNCTUATION = string.punctuation

# The file is read as bytes, in pieces of this size. Small pieces are faster than
# large ones: the tokens of one piece (about 5,000 objects) stay in the CPU cache
# while Counter adds them up.
_CHUNK_BYTES = 1 << 15

# A file up to this size is counted right here: starting a process would cost
# more than it saves.
_SMALL_FILE_BYTES = 16 << 20

# A larger file is cut into ranges of about this size, handed out one at a time to
# the processes that count them: a process slowed down by other work on the node
# simply takes fewer of them.
_RANGE_BYTES = 4 << 20

_BYTE_ORDER_MARK = b'\xef\xbb\xbf'

# Where a range may end: after one of the ASCII whitespace bytes. Such a byte is never
# part of a multi-byte UTF-8 character, so no word and no character is cut in two.
_ASCII_WHITESPACE = re.compile(rb'[ \t\n\r\x0b\x0c]')

_SEPARATOR = '-' * 30


def count_tokens(chunks: Iterable[bytes],
                 token_counts: collections.Counter[str] | None = None) -> collections.Counter[str]:
    """Counts the tokens that ``str.split()`` finds in UTF-8 text given as consecutive pieces of bytes.

    Each piece is decoded (an incremental decoder keeps a character cut between two
    pieces for the next one, and decodes invalid bytes to U+FFFD exactly as decoding
    the whole text would), split and counted: split() and Counter run in C, so no
    Python code runs per token. The counts are added to ``token_counts`` (a new
    Counter if None), whose keys keep first-appearance order.
    """
    if token_counts is None:
        token_counts = collections.Counter()
    add_tokens = token_counts.update
    pending: list[str] = []  # the pieces of a token that may go on in the next piece of text
    for text in _decoded(chunks):
        if not text:  # (a piece that held only the start of a character)
            continue
        tokens = text.split()
        if len(tokens) == 1 and len(tokens[0]) == len(text):  # no whitespace at all: the token goes on
            pending.append(text)
            continue
        if pending:  # the pending token ends at the first whitespace of this text
            if tokens and not text[0].isspace():
                tokens[0] = ''.join(pending) + tokens[0]
            else:
                tokens.insert(0, ''.join(pending))
            pending = []
        if tokens and not text[-1].isspace():  # the last token may go on in the next piece
            pending.append(tokens.pop())
        add_tokens(tokens)
    if pending:
        token_counts[''.join(pending)] += 1
    return token_counts


def _decoded(chunks: Iterable[bytes]) -> Iterator[str]:
    """UTF-8 pieces of bytes as text; a character cut between two pieces comes whole with the second."""
    decode = codecs.getincrementaldecoder('utf-8')(errors='replace').decode
    for chunk in chunks:
        yield decode(chunk)
    yield decode(b'', True)  # the end: an unfinished character becomes U+FFFD


def add_counts(total: collections.Counter, keys: Iterable, counts: Iterable[int]) -> None:
    """Adds ``counts[i]`` to ``total[keys[i]]`` in order, in C; a key new to ``total`` goes last.

    A key may come more than once: dict.update takes one pair at a time from the lazy
    maps, so each sum reads what the pairs before it wrote.
    """
    sums = map(operator.add, counts, map(total.get, keys, itertools.repeat(0)))
    dict.update(total, zip(keys, sums, strict=True))


def words_of_tokens(token_counts: dict[str, int]) -> collections.Counter[str]:
    """The 2016 tutorial's word counts from the token counts: each distinct token is stripped once.

    Tokens that strip to the same word ('word', 'word,', '"word') add up; a word takes
    the place of its first token, so words keep first-appearance order, which decides ties.
    """
    word_counts: collections.Counter[str] = collections.Counter()
    add_counts(word_counts, list(map(str.strip, token_counts, itertools.repeat(_PUNCTUATION))),
               token_counts.values())
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
    return words_of_tokens(count_tokens(chunks))


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


def usable_cores() -> int:
    """The cores this process may run on: one under ``taskset -c 0`` or in a one-core slot."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# What one process found: its words in the order it met them, their counts, and for each range
# it counted, (the range's index, how many of its words it had met before that range).
RangeCounts = tuple[list[str], list[int], list[tuple[int, int]]]


def count_ranges(path: str, ranges: list[tuple[int, int | None]], next_range: Synchronized,
                 chunk_bytes: int = _CHUNK_BYTES) -> RangeCounts:
    """Counts the ranges that this process takes, one after another, until none is left.

    Every process adds all its ranges up in one Counter, so that each distinct token is
    stripped once per process, and sends back one list of words, however many ranges it took.
    """
    token_counts: collections.Counter[str] = collections.Counter()
    token_starts = []  # (range index, tokens met before it)
    while True:
        with next_range.get_lock():
            index = next_range.value
            next_range.value = index + 1
        if index >= len(ranges):
            break
        token_starts.append((index, len(token_counts)))
        count_tokens(read_byte_range(path, ranges[index], chunk_bytes), token_counts)
    # The words, range by range: a word belongs to the range of its first token here.
    word_counts: collections.Counter[str] = collections.Counter()
    word_starts = []
    tokens, counts = iter(token_counts), iter(token_counts.values())
    for index, start, end in _parts(token_starts, len(token_counts)):
        word_starts.append((index, len(word_counts)))
        add_counts(word_counts, list(map(str.strip, itertools.islice(tokens, end - start),
                                         itertools.repeat(_PUNCTUATION))), itertools.islice(counts, end - start))
    return list(word_counts), list(word_counts.values()), word_starts


def _parts(starts: list[tuple[int, int]], total: int) -> Iterator[tuple[int, int, int]]:
    """``(range index, start, end)`` of each range's part of a list from ``(range index, start)`` pairs."""
    for (index, start), (_, end) in itertools.pairwise([*starts, (-1, total)]):
        yield index, start, end


def _count_ranges_in_worker(path: str, ranges: list[tuple[int, int | None]], next_range: Synchronized,
                            chunk_bytes: int, results: multiprocessing.connection.Connection) -> None:
    """What a worker process runs: count_ranges, its result (or its error) sent back through a pipe."""
    try:
        result: RangeCounts | BaseException = count_ranges(path, ranges, next_range, chunk_bytes)
    except Exception as error:  # shown by the task process, which exits with a one-line message
        result = error
    results.send(result)
    results.close()


def merge_range_counts(results: list[RangeCounts]) -> collections.Counter[str]:
    """Adds up what the processes found, range by range in file order: first appearances keep their order.

    A process met its ranges in increasing order, so the words it first met in range i are
    the words of range i that were not in its earlier ranges, in the order of range i; adding
    those of range 0, then of range 1... inserts each word where it first appears in the file.
    """
    parts = []
    for words, counts, starts in results:
        parts += [(index, words, counts, start, end) for index, start, end in _parts(starts, len(words))]
    word_counts: collections.Counter[str] = collections.Counter()
    for _, words, counts, start, end in sorted(parts, key=operator.itemgetter(0)):
        add_counts(word_counts, words[start:end], counts[start:end])
    return word_counts


def count_file(path: str, processes: int | None = None, range_bytes: int | None = None,
               chunk_bytes: int = _CHUNK_BYTES) -> collections.Counter[str]:
    """The word counts of a file.

    With one usable core, or for a small file or a pipe, the file is read here in one
    pass. Otherwise it is cut into ranges of ``range_bytes`` that this process and one
    worker process per other core take one at a time; the counts are added up in file
    order, so that first appearances keep their order.
    """
    processes = processes or usable_cores()
    size = os.path.getsize(path)
    if range_bytes is None:
        range_bytes = size if processes == 1 or size <= _SMALL_FILE_BYTES else _RANGE_BYTES
    ranges = split_into_ranges(path, range_bytes)
    if processes == 1 or len(ranges) == 1:
        token_counts: collections.Counter[str] = collections.Counter()
        for byte_range in ranges:
            count_tokens(read_byte_range(path, byte_range, chunk_bytes), token_counts)
        return words_of_tokens(token_counts)
    import multiprocessing  # (here: a task on one core, or with a small file, starts faster without it)

    context = multiprocessing.get_context()
    next_range = context.Value('q', 0)  # the index of the next range to count, shared by all processes
    workers, pipes = [], []
    for _ in range(min(processes, len(ranges)) - 1):
        receiver, sender = context.Pipe(duplex=False)
        workers.append(context.Process(target=_count_ranges_in_worker, daemon=True,
                                       args=(path, ranges, next_range, chunk_bytes, sender)))
        workers[-1].start()
        sender.close()
        pipes.append(receiver)
    try:
        results = [count_ranges(path, ranges, next_range, chunk_bytes)]  # this process counts too
        for worker, receiver in zip(workers, pipes, strict=True):
            try:
                result = receiver.recv()
            except EOFError:
                worker.join()
                raise RuntimeError(f'a worker process ended without its counts (exit code {worker.exitcode})') \
                    from None
            if isinstance(result, BaseException):
                raise result
            results.append(result)
    except BaseException:
        for worker in workers:
            worker.terminate()  # (one may wait to send counts that nobody will read)
        raise
    finally:
        for worker in workers:
            worker.join()
    return merge_range_counts(results)


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
