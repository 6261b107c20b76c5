"""The READMEs say what is true: the operations list is the route table's, and every step link lands on its code."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_DIR


def _read(name: str) -> str:
    with open(os.path.join(PROJECT_DIR, name), encoding='utf-8') as file:
        return file.read()


def test_the_operations_list_is_generated_from_the_route_table():
    table = subprocess.run([sys.executable, '-m', 'batch_emulator', '--operations'], cwd=PROJECT_DIR,
                           capture_output=True, text=True, check=True).stdout
    listed = re.search(r'<!-- operations:start -->\n(.*)<!-- operations:end -->', _read('README.md'), re.S)
    assert listed and listed.group(1) == table


@pytest.mark.parametrize('readme', ['README.md', 'README.zh-CN.md'])
def test_every_step_link_lands_on_its_function(readme):
    lines = _read('python_tutorial_client.py').splitlines()
    links = re.findall(r'\[`?([\w]+)`?\]\(python_tutorial_client\.py#L(\d+)\)', _read(readme))
    assert len(links) >= 15
    for name, number in links:
        line = lines[int(number) - 1]
        if name == 'main':
            assert 'Step 1' in line, (name, number, line)
        elif re.fullmatch(r'L\d+', name):
            assert 'Step 8' in line, (name, number, line)
        else:
            assert line.startswith(f'def {name}(') or line.startswith(f'class {name}'), (name, number, line)


def test_what_is_not_emulated_is_listed_with_its_reason_in_both_readmes():
    from batch_emulator.__main__ import NOT_EMULATED
    printed = subprocess.run([sys.executable, '-m', 'batch_emulator', '--operations'], cwd=PROJECT_DIR,
                             capture_output=True, text=True, check=True).stdout
    section = printed.split('### What is not emulated', 1)[1]
    assert 'Windows images' in section and 'Real VM timings' in section  # what issue 20 asks to be said
    chinese = _read('README.zh-CN.md').split('**未模拟的内容**', 1)[1].split('\n\n', 2)[1]
    rows = [line for line in chinese.splitlines() if line.startswith('| ') and not line.startswith('| 服务')]
    assert len(rows) == len(NOT_EMULATED)  # the translation has every row of the list
    for (what, why), row in zip(NOT_EMULATED, rows, strict=True):
        assert why and re.findall(r'`[^`]+`', what) == re.findall(r'`[^`]+`', row.split(' | ')[0])
