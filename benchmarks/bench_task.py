"""Benchmark: the task script against the 2016 tutorial's algorithm, on two large generated texts.

    .venv/bin/python benchmarks/bench_task.py [--sizes-mb 170] [--repeats 3] [--texts natural punctuated]

Two texts, generated deterministically (seeded) from a Zipf-like vocabulary, behind a UTF-8 BOM:
  natural      ASCII prose: sentences, capitals, commas, a few quotes; ~15% of words carry punctuation
  punctuated   the text this benchmark always used: ~73% of words carry a mark, one in 11 an em dash
For each text and size it runs, in fresh interpreters and interleaved --repeats times: the original
algorithm (read() the whole file, split(), strip punctuation, Counter) as the baseline,
python_tutorial_task.py, and `wc -w` on the same file as the floor (a C program that only finds the
words). It checks that the original and the task write the same top words (same counts, ties in the same
order), and prints the median wall-clock and CPU seconds (CPU: all processes, workers included) and the
peak RSS of the task's own process and of the largest worker process it starts.
Targets: speed-up >= 2.5x on both texts, every process's peak RSS <= 64 MiB, a peak that does not grow
with size. The machine is shared: the task needs every core and the original only one, so other work
lowers the speed-up; run it a few times.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import string
import subprocess
import sys
import tempfile
import time
from typing import NamedTuple

from common import PEAK_WRAPPER, PROJECT_DIR

ORIGINAL = '''
import collections, os, string, sys
path = sys.argv[sys.argv.index("--filepath") + 1]
numwords = int(sys.argv[sys.argv.index("--numwords") + 1])
with open(path, encoding="utf-8-sig") as input_file:
    words = [word.strip(string.punctuation) for word in input_file.read().split()]
word_counts = collections.Counter(words)
stem, extension = os.path.splitext(path)
with open(stem + "_BASELINE" + extension, "w", encoding="utf-8") as output_file:
    print("Word\\tCount", file=output_file)
    print("-" * 30, file=output_file)
    for word, count in word_counts.most_common(numwords):
        print(word + ":\\t" + str(count), file=output_file)
'''

def zipf_vocabulary(rng: random.Random, size: int) -> tuple[list[str], list[float]]:
    words = [''.join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(1, 10))) for _ in range(size)]
    return words, [1 / (rank + 1) for rank in range(size)]


def punctuated_block(rng: random.Random) -> str:
    """The original benchmark text: 8 of 11 words carry a mark, one mark in 11 is an em dash."""
    vocabulary, weights = zipf_vocabulary(rng, 20_000)
    marks = ['', '', '', ',', '.', ';', '!', '?', '"', "'s", '\u2014']
    return ' '.join(word + rng.choice(marks) + ('\n' if rng.random() < 0.08 else '')
                    for word in rng.choices(vocabulary, weights, k=400_000))


def natural_block(rng: random.Random) -> str:
    """ASCII prose: sentences of 4-24 words ending in . ? or !, a capital after each, commas, a few quotes,
    possessives and parentheses; lines wrapped at about 70 characters, a blank line between paragraphs."""
    vocabulary, weights = zipf_vocabulary(rng, 50_000)
    lines, line, words = [], [], 0
    while words < 400_000:
        sentence = rng.choices(vocabulary, weights, k=rng.randint(4, 24))
        sentence[0] = sentence[0].capitalize()
        for index in range(len(sentence) - 1):
            mark = rng.random()
            if mark < 0.07:
                sentence[index] += ','
            elif mark < 0.085:
                sentence[index] += "'s"
            elif mark < 0.09:
                sentence[index] = f'({sentence[index]})'
        sentence[-1] += rng.choice('....?!')
        if rng.random() < 0.05:
            sentence[0], sentence[-1] = '"' + sentence[0], sentence[-1] + '"'
        for word in sentence:
            line.append(word)
            if sum(map(len, line)) + len(line) > 70:
                lines.append(' '.join(line))
                line = []
        words += len(sentence)
        if rng.random() < 0.1:
            lines.append(' '.join(line) + '\n')
            line = []
    return '\n'.join(lines)


TEXTS = {'natural': natural_block, 'punctuated': punctuated_block}


def generate_text(path: str, kind: str, size_mb: int, seed: int = 1) -> float:
    """Writes a BOM and then one generated block repeated to ``size_mb``; returns its share of punctuated words."""
    block = TEXTS[kind](random.Random(seed))
    tokens = block.split()
    share = sum(not token.isalpha() for token in tokens) / len(tokens)
    data = block.encode('utf-8') + b'\n'
    with open(path, 'wb') as file:
        file.write(b'\xef\xbb\xbf')
        for _ in range(-(-size_mb * 1024 * 1024 // len(data))):
            file.write(data)
    return share


class Run(NamedTuple):
    seconds: float  # wall clock
    cpu_seconds: float  # user + system, of the process and every process it started
    peak_mib: float  # the process's own peak RSS
    worker_peak_mib: float  # the largest peak RSS among the processes it started (0: none)


def run_measured(command: list[str], cwd: str) -> Run:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_seconds = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if 'peak_kib' not in result.stderr:
        return Run(seconds, cpu_seconds, 0.0, 0.0)
    peak_kib = int(result.stderr.rsplit('peak_kib', 1)[1].split()[0])
    children_kib = int(result.stderr.rsplit('children_kib', 1)[1].split()[0])
    return Run(seconds, cpu_seconds, peak_kib / 1024, children_kib / 1024)


def top_lines(path: str, numwords: int) -> list[str]:
    with open(path, encoding='utf-8') as file:
        return file.read().splitlines()[2:2 + numwords]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes-mb', type=int, nargs='+', default=[170], help='file sizes to generate (MiB)')
    parser.add_argument('--texts', nargs='+', choices=list(TEXTS), default=list(TEXTS), help='which texts')
    parser.add_argument('--repeats', type=int, default=3, help='runs of each program; medians are printed')
    parser.add_argument('--numwords', type=int, default=10, help='top words compared between the two')
    args = parser.parse_args()
    task_script = os.path.join(PROJECT_DIR, 'python_tutorial_task.py')
    print(f'{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} before the first run (other work on the '
          f'machine slows the task, which needs every core, more than the one-core original); medians of '
          f"{args.repeats} interleaved runs; `wc -w` with LANG={os.environ.get('LANG', '')!r} "
          f"LC_ALL={os.environ.get('LC_ALL', '')!r}")
    print('wall clock s (medians); speed-up = original / task; floor = task / wc -w; CPU s of all processes '
          '(medians); peak RSS MiB (max): task process, largest worker process')
    print(f"{'text':>10} {'size':>5} {'punct':>6} {'original':>8} {'task':>6} {'wc -w':>6} {'speed-up':>8} "
          f"{'floor':>6} {'CPU orig':>8} {'CPU task':>8} {'RSS orig':>8} {'RSS task':>8} {'worker':>6}  same")
    task_peaks: dict[str, list[float]] = {kind: [] for kind in args.texts}
    with tempfile.TemporaryDirectory() as folder:
        baseline_script = os.path.join(folder, 'original_task.py')
        with open(baseline_script, 'w') as file:
            file.write(ORIGINAL)
        for kind in args.texts:
            for size in args.sizes_mb:
                text = os.path.join(folder, f'{kind}{size}.txt')
                share = generate_text(text, kind, size)
                flags = ['--filepath', text, '--numwords', str(args.numwords)]
                commands = {
                    'original': [sys.executable, '-c', PEAK_WRAPPER, baseline_script, *flags],
                    'task': [sys.executable, '-c', PEAK_WRAPPER, task_script, *flags],
                    'wc': ['wc', '-w', text],
                }
                runs = {name: [] for name in commands}
                for _ in range(args.repeats):
                    for name, command in commands.items():
                        runs[name].append(run_measured(command, folder))
                seconds = {name: statistics.median(run.seconds for run in results) for name, results in runs.items()}
                cpu = {name: statistics.median(run.cpu_seconds for run in results) for name, results in runs.items()}
                base_peak = max(run.peak_mib for run in runs['original'])
                task_peak = max(run.peak_mib for run in runs['task'])
                worker_peak = max(run.worker_peak_mib for run in runs['task'])
                task_peaks[kind].append(max(task_peak, worker_peak))
                same = (top_lines(text.replace('.txt', '_BASELINE.txt'), args.numwords)
                        == top_lines(text.replace('.txt', '_OUTPUT.txt'), args.numwords))
                print(f"{kind:>10} {os.path.getsize(text) / 1024 / 1024:4.0f}M {share:6.1%} "
                      f"{seconds['original']:8.2f} {seconds['task']:6.2f} {seconds['wc']:6.2f} "
                      f"{seconds['original'] / seconds['task']:7.2f}x {seconds['task'] / seconds['wc']:5.2f}x "
                      f"{cpu['original']:8.2f} {cpu['task']:8.2f} {base_peak:8.0f} {task_peak:8.1f} {worker_peak:6.1f}"
                      f'  {same}')
                os.remove(text)
    for kind, peaks in task_peaks.items():
        if len(peaks) > 1:
            print(f'{kind}: task peak RSS (any process) grows by {peaks[-1] - peaks[0]:+.1f} MiB '
                  'from the smallest to the largest file')


if __name__ == '__main__':
    main()
