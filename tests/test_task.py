"""python_tutorial_task.py: the counting is a pure function, tested on real files without mocks."""

from __future__ import annotations

import collections
import os
import random
import re
import string
import subprocess
import sys

import pytest

import python_tutorial_task as task

DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'data')


def original_top_words(text: str, numwords: int) -> list[tuple[str, int]]:
    """The 2016 tutorial's algorithm, as the reference."""
    words = [word.strip(string.punctuation) for word in text.split()]
    return collections.Counter(words).most_common(numwords)


def count_file(path: str, numwords: int = 3) -> list[tuple[str, int]]:
    with open(path, 'rb') as file:
        return task.top_words(task.count_words(task.read_text_chunks(file)), numwords)


@pytest.mark.parametrize(('name', 'expected'), [
    ('taskdata1.txt', [('the', 21), ('is', 11), ('a', 10)]),
    ('taskdata2.txt', [('the', 16), ('a', 12), ('and', 7)]),
    # 'a' and 'the' tie: 'a' appears first, so it comes first.
    ('taskdata3.txt', [('a', 12), ('the', 12), ('and', 9)]),
])
def test_each_data_file_has_its_exact_top_three(name, expected):
    assert count_file(os.path.join(DATA_DIR, name)) == expected


@pytest.mark.parametrize('name', ['taskdata1.txt', 'taskdata2.txt', 'taskdata3.txt'])
def test_data_files_keep_the_originals_traps(name):
    with open(os.path.join(DATA_DIR, name), 'rb') as file:
        data = file.read()
    assert data.startswith(b'\xef\xbb\xbf'), 'UTF-8 byte order mark'
    assert not data.endswith(b'\n'), 'no trailing newline'
    text = data.decode('utf-8-sig')
    assert '\u2014' in text and '\u2019' in text, 'non-ASCII punctuation (em dash, right quote)'
    assert 1000 <= len(data) <= 3072


def test_a_byte_order_mark_is_not_part_of_the_first_word(tmp_path):
    path = tmp_path / 'bom.txt'
    path.write_bytes(b'\xef\xbb\xbfWord word Word')
    assert count_file(str(path), 2) == [('Word', 2), ('word', 1)]


def test_non_ascii_punctuation_stays_part_of_a_word(tmp_path):
    path = tmp_path / 'dash.txt'
    path.write_text('node’s — node, node. “node”', encoding='utf-8')
    assert count_file(str(path), 5) == [('node', 2), ('node’s', 1), ('—', 1), ('“node”', 1)]


def test_an_empty_file_gives_no_words(tmp_path):
    path = tmp_path / 'empty.txt'
    path.write_bytes(b'')
    assert count_file(str(path)) == []


def test_undecodable_bytes_do_not_stop_the_count(tmp_path):
    path = tmp_path / 'latin1.txt'
    path.write_bytes('café café thé'.encode('latin-1'))
    assert count_file(str(path)) == [('caf\ufffd', 2), ('th\ufffd', 1)]


@pytest.mark.parametrize('seed', range(25))
def test_same_result_as_the_original_algorithm_for_random_text(seed):
    rng = random.Random(seed)
    vocabulary = ['alpha', 'Alpha', 'beta,', '(gamma)', '...', '"', 'delta—', 'x', 'éclair', "it's", '--', 'a.b']
    separators = [' ', '\n', '\t', '  ', '\u00a0', '\u2003', '\r\n', '\x0c']
    text = ''.join(rng.choice(vocabulary) + rng.choice(separators) for _ in range(rng.randint(0, 400)))
    if rng.random() < 0.5:
        text = text.rstrip()
    chunk_size = rng.randint(1, 17)
    chunks = [text[i:i + chunk_size] for i in range(0, len(text), chunk_size)]
    numwords = rng.randint(1, 8)
    assert task.top_words(task.count_words(chunks), numwords) == original_top_words(text, numwords)


def test_a_word_split_across_chunks_is_counted_once():
    assert task.count_words(['wor', 'd wo', 'rd', ' word']) == collections.Counter({'word': 3})


def test_output_file_format_on_a_batch_node(tmp_path):
    environ = {'AZ_BATCH_NODE_ID': 'node-1', 'AZ_BATCH_TASK_ID': 'topNtask0', 'AZ_BATCH_JOB_ID': 'job',
               'AZ_BATCH_POOL_ID': 'pool'}
    assert task.format_output([('the', 3), ('a', 2)], environ) == (
        'Word\tCount\n' + '-' * 30 + '\nthe:\t3\na:\t2\n' + '-' * 30 + '\n'
        'Node: node-1\nTask: topNtask0\nJob:  job\nPool: pool\n')


def test_output_outside_a_batch_node_says_so():
    text = task.format_output([], {})
    assert 'Node: (not on a Batch node: AZ_BATCH_NODE_ID is not set)' in text
    assert 'Pool: (not on a Batch node: AZ_BATCH_POOL_ID is not set)' in text


def test_output_file_name_keeps_folder_and_extension():
    assert task.output_file_path('data/taskdata1.txt') == 'data/taskdata1_OUTPUT.txt'
    assert task.output_file_path('notes') == 'notes_OUTPUT'


def run_task_script(*arguments: str, cwd: str) -> subprocess.CompletedProcess:
    script = os.path.join(os.path.dirname(DATA_DIR), 'python_tutorial_task.py')
    environ = {key: value for key, value in os.environ.items() if not key.startswith('AZ_BATCH_')}
    return subprocess.run([sys.executable, script, *arguments], cwd=cwd, capture_output=True, text=True,
                          env=environ, timeout=300)


def test_without_storage_flags_it_writes_prints_and_skips_the_upload(tmp_path):
    (tmp_path / 'in.txt').write_text('b a b', encoding='utf-8')
    result = run_task_script('--filepath', 'in.txt', '--numwords', '1', cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert 'b:\t2' in result.stdout
    assert 'upload skipped' in result.stdout
    assert (tmp_path / 'in_OUTPUT.txt').read_text(encoding='utf-8').startswith('Word\tCount\n')


def test_some_storage_flags_without_the_others_is_an_error(tmp_path):
    (tmp_path / 'in.txt').write_text('b a b', encoding='utf-8')
    result = run_task_script('--filepath', 'in.txt', '--storageaccount', 'acct', cwd=str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip() == 'error: to upload the output also give --storagecontainer, --sastoken'


@pytest.mark.parametrize(('arguments', 'message'), [
    (['--filepath', 'missing.txt'], 'error: cannot read input file missing.txt: No such file or directory'),
    (['--filepath', 'in.txt', '--numwords', '0'], 'error: --numwords must be 1 or more (got 0)'),
])
def test_bad_input_gives_one_line_and_exit_code_2(tmp_path, arguments, message):
    (tmp_path / 'in.txt').write_text('x', encoding='utf-8')
    result = run_task_script(*arguments, cwd=str(tmp_path))
    assert (result.returncode, result.stderr.strip()) == (2, message)


def test_a_file_over_100_mb_is_counted_with_flat_memory(tmp_path):
    """150 MB of text: the result matches the original algorithm, the task's peak RSS stays under 64 MB."""
    rng = random.Random(7)
    words = [''.join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(1, 9))) for _ in range(3000)]
    line = ' '.join(rng.choice(words) + rng.choice(['', ',', '.', '!']) for _ in range(2000)) + '\n'
    repeats = 150 * 1024 * 1024 // len(line.encode()) + 1
    path = tmp_path / 'big.txt'
    with open(path, 'w', encoding='utf-8') as file:
        for _ in range(repeats):
            file.write(line)
    expected = [(word, count * repeats) for word, count in original_top_words(line, 3)]

    # The task runs in a fresh interpreter that reports its own peak RSS (VmHWM) when it exits; getrusage
    # would also count the pages of the (large) test process it was forked from.
    script = os.path.join(os.path.dirname(DATA_DIR), 'python_tutorial_task.py')
    measure = ('import re, runpy, sys\n'
               'sys.argv = [sys.argv[1], "--filepath", "big.txt"]\n'
               'try:\n    runpy.run_path(sys.argv[0], run_name="__main__")\n'
               'finally:\n    status = open("/proc/self/status").read()\n'
               '    print("peak_kib", re.search(r"VmHWM:\\s+(\\d+)", status).group(1), file=sys.stderr)\n')
    result = subprocess.run([sys.executable, '-c', measure, script], cwd=str(tmp_path), capture_output=True,
                            text=True, timeout=300)
    peak_kib = int(re.search(r'peak_kib (\d+)', result.stderr).group(1))
    assert result.returncode == 0, result.stderr
    assert [tuple(line.rstrip(':').split(':\t')) for line in result.stdout.splitlines()[2:5]] == [
        (word, str(count)) for word, count in expected]
    assert peak_kib < 64 * 1024, f'peak RSS {peak_kib / 1024:.0f} MiB'
