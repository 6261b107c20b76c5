"""python_tutorial_task.py: the counting is a pure function, tested on real files without mocks."""

from __future__ import annotations

import collections
import contextlib
import multiprocessing
import os
import random
import re
import shutil
import string
import subprocess
import sys
import threading

import pytest

import python_tutorial_task as task

DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'data')


def original_top_words(text: str, numwords: int) -> list[tuple[str, int]]:
    """The 2016 tutorial's algorithm, as the reference."""
    words = [word.strip(string.punctuation) for word in text.split()]
    return collections.Counter(words).most_common(numwords)


def original_counts(data: bytes) -> collections.Counter[str]:
    """The 2016 algorithm's counts of a file's bytes (decoded as the task decodes them), in insertion order."""
    text = data.decode('utf-8-sig', errors='replace')
    return collections.Counter(word.strip(string.punctuation) for word in text.split())


def count_file(path: str, numwords: int = 3) -> list[tuple[str, int]]:
    return task.top_words(task.count_file(path), numwords)


def in_chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


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
    separators = [' ', '\n', '\t', '  ', '\u00a0', '\u2003', '\u3000', '\x85', '\x1e', '\r\n', '\x0c']
    text = ''.join(rng.choice(vocabulary) + rng.choice(separators) for _ in range(rng.randint(0, 400)))
    if rng.random() < 0.5:
        text = text.rstrip()
    # Byte pieces of 1-17 bytes also cut multi-byte characters (and multi-byte whitespace) in two.
    chunks = in_chunks(text.encode('utf-8'), rng.randint(1, 17))
    numwords = rng.randint(1, 8)
    assert task.top_words(task.count_words(chunks), numwords) == original_top_words(text, numwords)


def test_a_word_split_across_chunks_is_counted_once():
    assert task.count_words([b'wor', b'd wo', b'rd', b' word']) == collections.Counter({'word': 3})


def test_a_character_or_a_space_split_across_chunks_is_read_whole():
    # 'é' is b'\xc3\xa9'; U+3000 IDEOGRAPHIC SPACE is b'\xe3\x80\x80'.
    assert task.count_words([b'caf\xc3', b'\xa9 x\xe3', b'\x80', b'\x80caf\xc3\xa9']) == collections.Counter(
        {'café': 2, 'x': 1})


def test_every_character_str_split_splits_at_separates_words_and_no_other():
    """bytes.split() knows 6 whitespace characters, str.split() 29 (U+001C-U+001F, U+0085, U+00A0, U+3000...)."""
    whitespace = [chr(code) for code in range(sys.maxunicode + 1) if chr(code).isspace()]
    assert len(whitespace) == 29
    for character in whitespace:
        assert task.count_words([f'a{character}b'.encode()]) == collections.Counter({'a': 1, 'b': 1}), repr(character)
    for character in ['\u200b', '\ufeff', '\u2014', '\x1b', '\x7f', '\u180e']:  # not whitespace to str.split()
        assert task.count_words([f'a{character}b'.encode()]) == collections.Counter({f'a{character}b': 1})


def test_text_without_ascii_whitespace_is_counted_in_pieces():
    """2.3 MB of words apart only by U+3000, in pieces of 64 KB (its peak memory: benchmarks/bench_memory.py)."""
    piece = ('word\u3000' * 8 + 'other\u3000').encode() * 1000
    counts = task.count_words(piece for _ in range(36))
    assert counts == collections.Counter({'word': 8 * 1000 * 36, 'other': 1000 * 36})


@pytest.mark.parametrize('seed', range(40))
def test_same_counts_as_the_original_for_random_invalid_utf8(seed):
    """Bytes that are not UTF-8 next to (pieces of) multi-byte whitespace decode as in one whole-file decode."""
    rng = random.Random(seed)
    pieces = [b' ', b'\n', b'\r\n', b'a', b'b,', b'.', b'\xc2', b'\xa0', b'\x85', b'\xe3', b'\x80', b'\xe2',
              b'\xff', b'\xed\xa0\x80', b'\xf0\x9f', b'\xe3\x80\x80', b'\xc2\xa0', b'\xef\xbb\xbf', b'\x1f']
    data = b''.join(rng.choice(pieces) for _ in range(rng.randint(0, 300)))
    counts = task.count_words(in_chunks(data, rng.randint(1, 9)))
    assert list(counts.items()) == list(original_counts(b'\xef\xbb\xbf' + data).items())


def random_text_file(path, rng: random.Random) -> bytes:
    """A file of words with multi-byte characters, Unicode whitespace, CRLF and many ties."""
    vocabulary = ['tie', 'Tie', 'tie,', 'éclair', '“quoted”', 'naïve.', 'a', 'b', '—', "node's", '...', '\ufffd']
    separators = [' ', '\n', '\r\n', '\t', '\u3000', '\u00a0', '\u2028', '\x1f', '  ']
    text = ''.join(rng.choice(vocabulary) + rng.choice(separators) for _ in range(rng.randint(0, 200)))
    data = rng.choice([b'', b'\xef\xbb\xbf']) + text.rstrip(rng.choice(['', ' \n'])).encode('utf-8')
    path.write_bytes(data)
    return data


@pytest.mark.parametrize('seed', range(40))
def test_counting_a_file_in_ranges_gives_the_original_counts_in_the_original_order(tmp_path, seed):
    """Ranges of a few bytes and pieces of one byte and up: every word and character crosses some boundary."""
    rng = random.Random(seed)
    data = random_text_file(tmp_path / 'in.txt', rng)
    counts = task.count_file(str(tmp_path / 'in.txt'), processes=1, range_bytes=rng.randint(1, 40),
                             chunk_bytes=rng.randint(1, 9))
    assert list(counts.items()) == list(original_counts(data).items())


def test_ranges_cover_the_file_and_end_after_ascii_whitespace(tmp_path):
    data = 'aaaa\u3000bbbb\r\ncc\u00a0dd éé ff'.encode()
    (tmp_path / 'in.txt').write_bytes(data)
    ranges = task.split_into_ranges(str(tmp_path / 'in.txt'), range_bytes=3)
    assert [end for _, end in ranges[:-1]] == [start for start, _ in ranges[1:]] and ranges[-1][1] is None
    # Each cut is after an ASCII whitespace byte: never inside U+3000, U+00A0 or 'é', nor inside a word.
    assert [data[start:end] for start, end in ranges] == [
        'aaaa\u3000bbbb\r'.encode(), '\ncc\u00a0dd '.encode(), 'éé '.encode(), b'ff']
    (tmp_path / 'one_word.txt').write_bytes(b'x' * 100)
    assert task.split_into_ranges(str(tmp_path / 'one_word.txt'), range_bytes=10) == [(0, None)]
    (tmp_path / 'empty.txt').write_bytes(b'')
    assert task.split_into_ranges(str(tmp_path / 'empty.txt'), range_bytes=10) == [(0, None)]


def test_a_pipe_is_read_to_its_end(tmp_path):
    """A pipe has no size to cut into ranges: it is read in one piece after another, like a small file."""
    pipe = tmp_path / 'pipe'
    os.mkfifo(pipe)
    writer = threading.Thread(target=pipe.write_bytes, args=('\ufeffb a b\u3000a b'.encode(),), daemon=True)
    writer.start()
    counts = task.count_file(str(pipe))
    writer.join(timeout=10)
    assert list(counts.items()) == [('b', 3), ('a', 2)]


def test_worker_processes_give_the_same_counts_as_one_process(tmp_path):
    """Two worker processes, ranges of a few bytes: same counts and order as one process and as the original."""
    rng = random.Random(99)
    files = []
    for index in range(6):
        data = random_text_file(tmp_path / f'in{index}.txt', rng)
        files.append((str(tmp_path / f'in{index}.txt'), data))
    # Ties across a range boundary: 'late' is first in the first range, 'early' only in the second.
    (tmp_path / 'ties.txt').write_bytes(b'late \r\nearly\xe3\x80\x80early late')
    files.append((str(tmp_path / 'ties.txt'), b'late \r\nearly\xe3\x80\x80early late'))
    (tmp_path / 'empty.txt').write_bytes(b'')
    files.append((str(tmp_path / 'empty.txt'), b''))
    for path, data in files:
        in_processes = task.count_file(path, processes=2, range_bytes=5, chunk_bytes=3)
        in_one_process = task.count_file(path, processes=1)
        assert list(in_processes.items()) == list(in_one_process.items()) == list(original_counts(data).items())
    assert task.top_words(task.count_file(str(tmp_path / 'ties.txt'), processes=2, range_bytes=5), 2) == [
        ('late', 2), ('early', 2)]


class RangesTaken:
    """Stands for the counter that the processes share: hands one process the range indexes given, then none."""

    def __init__(self, indexes: list[int]) -> None:
        self._indexes = iter([*indexes, sys.maxsize])

    def get_lock(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    @property
    def value(self) -> int:
        return next(self._indexes)

    @value.setter
    def value(self, _next: int) -> None:
        pass


@pytest.mark.parametrize('seed', range(30))
def test_processes_taking_ranges_in_any_interleaving_give_the_original_counts_in_the_original_order(tmp_path, seed):
    """Two or three processes each take some of the ranges (in increasing order, as from the shared counter): the
    merged counts are the original's, in first-appearance order, whoever took which range."""
    rng = random.Random(seed)
    data = random_text_file(tmp_path / 'in.txt', rng)
    ranges = task.split_into_ranges(str(tmp_path / 'in.txt'), range_bytes=rng.randint(1, 30))
    taken: list[list[int]] = [[] for _ in range(rng.randint(2, 3))]
    for index in range(len(ranges)):
        rng.choice(taken).append(index)
    results = [task.count_ranges(str(tmp_path / 'in.txt'), ranges, RangesTaken(indexes), rng.randint(1, 9))
               for indexes in taken]
    assert list(task.merge_range_counts(results).items()) == list(original_counts(data).items())


def test_a_worker_that_cannot_read_the_file_sends_its_error(tmp_path):
    receiver, sender = multiprocessing.Pipe(duplex=False)
    task._count_ranges_in_worker(str(tmp_path / 'gone.txt'), [(0, None)], RangesTaken([0]), 8, sender)
    error = receiver.recv()
    assert isinstance(error, FileNotFoundError) and error.filename == str(tmp_path / 'gone.txt')


def test_a_word_longer_than_many_pieces_is_counted_once_whole():
    word = 'é' * 5000  # 10,000 bytes, in pieces of 3: most pieces hold no whitespace, many end inside a character
    data = f'{word} x {word}\u3000{word}'.encode()
    assert task.count_words(in_chunks(data, 3)) == collections.Counter({word: 3, 'x': 1})
    assert task.count_words(in_chunks(b'  ' + data + b' ', 3)) == collections.Counter({word: 3, 'x': 1})


def zipf_text(rng: random.Random, vocabulary_size: int, words: int) -> str:
    """The benchmark's kind of text, small: a Zipf vocabulary (weight 1/rank), 5% of words capitalised, 15% with a
    trailing mark (an em dash among them), some non-ASCII letters, and a few Unicode spaces between words."""
    letters = string.ascii_lowercase + 'éßñ'
    vocabulary = [''.join(rng.choices(letters, k=rng.randint(1, 8))) for _ in range(vocabulary_size)]
    weights = [1 / rank for rank in range(1, vocabulary_size + 1)]
    marks = [',', '.', ';', '!', '?', '"', "'", ')', '\u2014']
    separators = [' '] * 90 + ['\n'] * 8 + ['\u00a0', '\u3000']
    text = []
    for word in rng.choices(vocabulary, weights, k=words):
        if rng.random() < 0.05:
            word = word.capitalize()
        if rng.random() < 0.15:
            word += rng.choice(marks)
        text.append(word + rng.choice(separators))
    return ''.join(text)


@pytest.mark.parametrize('seed', range(3))
def test_a_zipf_text_with_a_large_vocabulary_gives_the_original_counts_in_the_original_order(tmp_path, seed):
    """Thousands of distinct tokens, most of them tied at a count of 1 or 2: first-appearance order decides their
    place; counted in one pass, in pieces, and by two worker processes over ranges."""
    rng = random.Random(seed)
    data = b'\xef\xbb\xbf' + zipf_text(rng, vocabulary_size=20_000, words=60_000).encode()
    (tmp_path / 'zipf.txt').write_bytes(data)
    expected = list(original_counts(data).items())
    assert len(task.count_tokens([data])) > 8192, 'thousands of distinct tokens'
    assert list(task.count_file(str(tmp_path / 'zipf.txt'), processes=1).items()) == expected
    assert list(task.count_words(in_chunks(data[3:], rng.randint(100, 5000))).items()) == expected
    in_processes = task.count_file(str(tmp_path / 'zipf.txt'), processes=2, range_bytes=rng.randint(20_000, 90_000),
                                   chunk_bytes=rng.randint(50, 5000))
    assert list(in_processes.items()) == expected
    text = data.decode('utf-8-sig')
    assert task.top_words(in_processes, 50) == original_top_words(text, 50)


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


def run_task_measured(*arguments: str, cwd: str,
                      cpus: set[int] | None = None) -> tuple[subprocess.CompletedProcess, int, int]:
    """Runs the task script in a fresh interpreter (on ``cpus`` only, as ``taskset`` would, if given); also returns
    its peak RSS and its largest child's (KiB).

    VmHWM is the task process's own peak (getrusage would also count the pages of the large test process it
    was forked from); RUSAGE_CHILDREN is the largest worker process it started and waited for (0: none).
    """
    script = os.path.join(os.path.dirname(DATA_DIR), 'python_tutorial_task.py')
    measure = ('import re, resource, runpy, sys\n'
               'sys.argv = sys.argv[1:]\n'
               'try:\n    runpy.run_path(sys.argv[0], run_name="__main__")\n'
               'finally:\n    status = open("/proc/self/status").read()\n'
               '    print("peak_kib", re.search(r"VmHWM:\\s+(\\d+)", status).group(1), file=sys.stderr)\n'
               '    print("children_kib", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n')
    result = subprocess.run([sys.executable, '-c', measure, script, *arguments], cwd=cwd, capture_output=True,
                            text=True, timeout=300, preexec_fn=cpus and (lambda: os.sched_setaffinity(0, cpus)))
    peak_kib = int(re.search(r'peak_kib (\d+)', result.stderr).group(1))
    children_kib = int(re.search(r'children_kib (\d+)', result.stderr).group(1))
    return result, peak_kib, children_kib


def test_a_small_file_is_counted_without_starting_processes(tmp_path):
    shutil.copy(os.path.join(DATA_DIR, 'taskdata3.txt'), tmp_path / 'in.txt')
    result, _, children_kib = run_task_measured('--filepath', 'in.txt', cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[2:5] == ['a:\t12', 'the:\t12', 'and:\t9']
    assert children_kib == 0, 'a worker process was started for a 2 KB file'


def test_on_one_core_a_large_file_is_counted_without_starting_processes(tmp_path):
    """A task slot of one core (taskset -c 0): the processes follow the CPU affinity, not the machine's core count,
    so a 20 MB file is counted in the task's own process, with the original's result."""
    line = ' '.join(f'w{index % 997}' + ('.' if index % 7 == 0 else '') for index in range(20_000)) + '\n'
    repeats = 20 * 1024 * 1024 // len(line) + 1
    (tmp_path / 'big.txt').write_text(line * repeats, encoding='utf-8')
    expected = [f'{word}:\t{count * repeats}' for word, count in original_top_words(line, 3)]
    result, _, children_kib = run_task_measured('--filepath', 'big.txt', cwd=str(tmp_path),
                                                cpus={min(os.sched_getaffinity(0))})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[2:5] == expected
    assert children_kib == 0, 'worker processes were started on one core'


def test_a_file_over_100_mb_is_counted_by_worker_processes(tmp_path):
    """150 MB of text: the result matches the original algorithm, counted by worker processes (their peak RSS
    and the task's: benchmarks/bench_task.py)."""
    rng = random.Random(7)
    words = [''.join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(1, 9))) for _ in range(3000)]
    line = ' '.join(rng.choice(words) + rng.choice(['', ',', '.', '!']) for _ in range(2000)) + '\n'
    repeats = 150 * 1024 * 1024 // len(line.encode()) + 1
    path = tmp_path / 'big.txt'
    with open(path, 'w', encoding='utf-8') as file:
        for _ in range(repeats):
            file.write(line)
    expected = [(word, count * repeats) for word, count in original_top_words(line, 3)]

    result, peak_kib, children_kib = run_task_measured('--filepath', 'big.txt', cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert [tuple(line.rstrip(':').split(':\t')) for line in result.stdout.splitlines()[2:5]] == [
        (word, str(count)) for word, count in expected]
    assert children_kib > 0, 'no worker process was started for a 150 MB file'
