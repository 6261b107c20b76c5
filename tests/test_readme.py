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
