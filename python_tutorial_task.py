"""
FILE: python_tutorial_task.py

DESCRIPTION:
    The program that runs on an Azure Batch compute node, once per task of the
    tutorial's job. It finds the N most common words of one input file, writes
    them to ``<name>_OUTPUT<ext>`` and uploads that file to a Blob Storage
    container using a container shared access signature (SAS) that the client
    passed on the command line, so the task never needs the storage account key.

    1. Count the words of the input file (streamed: memory stays flat however
       large the file is).
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
import io
import os
import string
import sys
from collections.abc import Iterable
from typing import BinaryIO

# Characters stripped from both ends of every word: the ASCII punctuation of the
# original tutorial (non-ASCII marks such as an em dash stay part of a word).
_PUNCTUATION = string.punctuation

# Characters decoded per read. Large enough that the per-read overhead vanishes,
# small enough that memory stays flat for a file of any size.
_CHUNK_CHARACTERS = 1 << 18

_SEPARATOR = '-' * 30


def count_words(chunks: Iterable[str]) -> collections.Counter[str]:
    """Counts the words of a text given as consecutive pieces.

    A word is what ``str.split()`` finds, with ASCII punctuation stripped from
    both ends; words are case-sensitive. This gives exactly the counts of the
    2016 tutorial's ``Counter(w.strip(punctuation) for w in text.split())``,
    including its insertion order (first appearance), which decides ties, but
    never holds the whole text in memory.
    """
    raw_token_counts: collections.Counter[str] = collections.Counter()
    unfinished_token = ''
    for chunk in chunks:
        if not chunk:
            continue
        text = unfinished_token + chunk
        tokens = text.split()
        # A token touching the end of the piece may continue in the next one.
        if tokens and not text[-1].isspace():
            unfinished_token = tokens.pop()
        else:
            unfinished_token = ''
        raw_token_counts.update(tokens)
    if unfinished_token:
        raw_token_counts.update([unfinished_token])

    # Stripping once per distinct token instead of once per occurrence is what
    # makes this fast. Raw tokens are kept in first-appearance order, so each
    # stripped word is inserted at its own first appearance, as in the original.
    word_counts: collections.Counter[str] = collections.Counter()
    for token, count in raw_token_counts.items():
        word = token.strip(_PUNCTUATION)
        word_counts[word] = word_counts.get(word, 0) + count
    return word_counts


def top_words(word_counts: collections.Counter[str], numwords: int) -> list[tuple[str, int]]:
    """The ``numwords`` most common words; ties keep first-appearance order."""
    return word_counts.most_common(numwords)


def read_text_chunks(binary_file: BinaryIO) -> Iterable[str]:
    """Decodes a file as UTF-8 piece by piece.

    A leading byte order mark is dropped, and bytes that are not UTF-8 become
    U+FFFD instead of stopping the task.
    """
    text_file = io.TextIOWrapper(binary_file, encoding='utf-8-sig', errors='replace', newline='')
    while True:
        chunk = text_file.read(_CHUNK_CHARACTERS)
        if not chunk:
            return
        yield chunk


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
        with open(args.filepath, 'rb') as input_file:
            word_counts = count_words(read_text_chunks(input_file))
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
