"""Per-module summary of the last ``benchmarks/mutation.sh`` run: mutants, killed, survived, score, and each survivor.

    .venv/bin/python benchmarks/mutation_summary.py GLOB...   # the mutant-name globs the run was given

Reads mutmut's results in mutants/ (``*.meta``: an exit code per mutant). The score is killed / mutants reached by
a test (those no in-process test reaches are "no tests", counted under "other" and listed, as are timeouts); a
run cut short leaves some "not checked", counted under "other" and not listed.
"""

from __future__ import annotations

import collections
import fnmatch
import glob
import json
import os
import sys

from mutmut.stats import status_by_exit_code

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'mutants')


def main(globs: list[str]) -> int:
    by_module: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    survivors: dict[str, list[str]] = collections.defaultdict(list)
    for meta in sorted(glob.glob(os.path.join(ROOT, '**', '*.py.meta'), recursive=True)):
        with open(meta, encoding='utf-8') as file:
            exit_codes = json.load(file)['exit_code_by_key']
        for name, code in exit_codes.items():
            if globs and not any(fnmatch.fnmatch(name, pattern) for pattern in globs):
                continue
            module = name.split('.x')[0]
            status = status_by_exit_code[code]
            by_module[module][status] += 1
            if status not in ('killed', 'caught by type check', 'not checked'):
                survivors[module].append(f'{status}: {name}')
    if not by_module:
        print('no results: run benchmarks/mutation.sh first', file=sys.stderr)
        return 1
    print(f"{'module':34} {'mutants':>7} {'killed':>7} {'survived':>8} {'other':>6} {'score':>7}")
    total = collections.Counter()
    for module, counts in sorted(by_module.items()):
        total.update(counts)
        _row(module, counts)
    _row('total', total)
    for module, names in sorted(survivors.items()):
        print(f'\n{module}:')
        for name in sorted(names):
            print('  ' + name)
    return 0


def _row(module: str, counts: collections.Counter) -> None:
    mutants = sum(counts.values())
    killed = counts['killed'] + counts['caught by type check']
    survived = counts['survived']
    other = mutants - killed - survived
    reached = mutants - counts['no tests']
    score = f'{100 * killed / reached:.1f}%' if reached else '-'
    print(f'{module:34} {mutants:>7} {killed:>7} {survived:>8} {other:>6} {score:>7}')


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
