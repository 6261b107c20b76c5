"""Benchmark: the task script against the 2016 tutorial's algorithm, on large generated texts.

    .venv/bin/python benchmarks/bench_task.py [--sizes-mb 150 300]

For each size it runs, in fresh interpreters, the original algorithm (read() the whole
file, split(), strip punctuation, Counter) as the baseline and python_tutorial_task.py,
checks that both write the same top words, and prints times, the speed-up and peak memory.
Targets: speed-up >= 1.6x, task peak RSS <= 64 MiB, and a peak that does not grow with size.
"""

from __future__ import annotations

import argparse
import os
import random
import string
import tempfile

from common import PROJECT_DIR, run_python_measured

ORIGINAL = '''
import collections, os, string, sys
path = sys.argv[sys.argv.index("--filepath") + 1]
with open(path, encoding="utf-8-sig") as input_file:
    words = [word.strip(string.punctuation) for word in input_file.read().split()]
word_counts = collections.Counter(words)
stem, extension = os.path.splitext(path)
with open(stem + "_BASELINE" + extension, "w", encoding="utf-8") as output_file:
    print("Word\\tCount", file=output_file)
    print("-" * 30, file=output_file)
    for word, count in word_counts.most_common(3):
        print(word + ":\\t" + str(count), file=output_file)
'''


def generate_text(path: str, size_mb: int, seed: int = 1) -> None:
    """Natural-looking text: a Zipf-like vocabulary of 20,000 words with punctuation, in varied lines."""
    rng = random.Random(seed)
    vocabulary = [''.join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(1, 10)))
                  for _ in range(20_000)]
    weights = [1 / (rank + 1) for rank in range(len(vocabulary))]
    block_words = rng.choices(vocabulary, weights, k=400_000)
    marks = ['', '', '', ',', '.', ';', '!', '?', '"', "'s", '\u2014']
    block = ' '.join(word + rng.choice(marks) + ('\n' if rng.random() < 0.08 else '') for word in block_words)
    data = block.encode('utf-8')
    with open(path, 'wb') as file:
        file.write(b'\xef\xbb\xbf')
        written = 0
        while written < size_mb * 1024 * 1024:
            file.write(data)
            written += len(data)


def top_lines(path: str) -> list[str]:
    with open(path, encoding='utf-8') as file:
        return file.read().splitlines()[:5]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--sizes-mb', type=int, nargs='+', default=[150, 300])
    args = parser.parse_args()
    task_script = os.path.join(PROJECT_DIR, 'python_tutorial_task.py')
    peaks = []
    print(f"{'size':>8} {'original s':>11} {'task s':>8} {'speed-up':>9} {'original MiB':>13} {'task MiB':>9}")
    with tempfile.TemporaryDirectory() as folder:
        baseline_script = os.path.join(folder, 'original_task.py')
        with open(baseline_script, 'w') as file:
            file.write(ORIGINAL)
        for size in args.sizes_mb:
            text = os.path.join(folder, f'text{size}.txt')
            generate_text(text, size)
            actual_mb = os.path.getsize(text) / 1024 / 1024
            base_seconds, base_peak, _ = run_python_measured(baseline_script, ['--filepath', text], folder)
            task_seconds, task_peak, _ = run_python_measured(task_script, ['--filepath', text], folder)
            same = top_lines(text.replace('.txt', '_BASELINE.txt')) == top_lines(text.replace('.txt', '_OUTPUT.txt'))
            peaks.append(task_peak)
            print(f'{actual_mb:7.0f}M {base_seconds:11.2f} {task_seconds:8.2f} {base_seconds / task_seconds:8.2f}x '
                  f'{base_peak:13.0f} {task_peak:9.1f}  same top words: {same}')
            os.remove(text)
    print(f'task peak RSS grows by {peaks[-1] - peaks[0]:+.1f} MiB from the smallest to the largest file')


if __name__ == '__main__':
    main()
