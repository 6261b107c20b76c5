"""run.sh test, in a copy of the project whose setup is already done (stubs for .venv's python and az).

Only what run.sh itself says is checked: the one line about the browser tests when Chromium or
chromedriver is missing (only .ci/run installs them).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_DIR

SKIPPED = ('The browser tests (tests/test_portal.py) are skipped: Chromium or chromedriver is missing '
           '(sudo apt-get install chromium chromium-driver, or run .ci/run, which installs them)')
FAILING_IN_CI = ('Chromium or chromedriver is missing: the browser tests (tests/test_portal.py) fail, since CI is set '
                 '(.ci/run installs them)')


def _executable(path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)


def run_sh_test(tmp_path, commands: list[str], environment: dict[str, str] | None = None, node_major: str = '22'):
    """./run.sh test -q in a set-up copy, with only ``commands`` (and what run.sh needs) on PATH, and a ``node``
    that says it is version ``node_major`` (empty: none on PATH)."""
    project = tmp_path / 'project'
    project.mkdir()
    shutil.copy(os.path.join(PROJECT_DIR, 'run.sh'), project / 'run.sh')
    pinned = b''
    for name in ('requirements.txt', 'requirements-dev.txt', 'package.json', 'package-lock.json'):
        (project / name).write_text(name)
        pinned += name.encode()
    (project / '.venv').mkdir()
    (project / '.venv' / '.installed').write_text(hashlib.sha256(pinned).hexdigest() + '\n')
    _executable(project / '.venv' / 'bin' / 'python', '#!/bin/sh\necho "pytest ran: $*"\n')
    _executable(project / '.cache' / 'azure-cli-2.91.0' / 'bin' / 'az', '#!/bin/sh\n')
    script = (project / 'run.sh').read_text()  # the old azure-batch eras, installed as run.sh stamps them
    pins = re.search(r'^sdk_era_pins="([^"]*)"', script, re.MULTILINE).group(1)
    for era in re.search(r'^for sdk_era in ([^;]*);', script, re.MULTILINE).group(1).split():
        (project / '.cache' / f'azure-batch-{era}').mkdir(parents=True)
        (project / '.cache' / f'azure-batch-{era}' / '.installed').write_text(pins + '\n')
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    for command in ('bash', 'dirname', 'cat', 'sha256sum', 'cut'):
        found = shutil.which(command)
        if found is None:
            pytest.fail(f'{command} is needed to run run.sh')
        os.symlink(found, bin_dir / command)
    for command in commands:
        _executable(bin_dir / command, '#!/bin/sh\n')
    if node_major:  # what run.sh asks of node: its major version
        _executable(bin_dir / 'node', f'#!/bin/sh\n[ "$1" = -p ] && echo {node_major}\n')
    environ = {'PATH': str(bin_dir), 'PYTHON': sys.executable, 'HOME': str(tmp_path)} | (environment or {})
    return subprocess.run(['./run.sh', 'test', '-q'], cwd=project, env=environ, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize('commands', [[], ['chromium'], ['chromedriver'], ['chromium-browser']])
def test_without_chromium_or_chromedriver_one_line_says_the_browser_tests_are_skipped(tmp_path, commands):
    result = run_sh_test(tmp_path, commands)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [SKIPPED, 'pytest ran: -m pytest -q']
    assert result.stderr == ''


def test_with_ci_set_the_line_says_they_fail(tmp_path):
    result = run_sh_test(tmp_path, [], {'CI': 'true'})
    assert result.stdout.splitlines() == ['pytest ran: -m pytest -q']
    assert result.stderr.splitlines() == [FAILING_IN_CI]


@pytest.mark.parametrize('commands', [['chromium', 'chromedriver'], ['chromium-browser', 'chromium-driver']])
def test_with_chromium_and_chromedriver_nothing_is_said(tmp_path, commands):
    result = run_sh_test(tmp_path, commands)
    assert (result.returncode, result.stdout, result.stderr) == (0, 'pytest ran: -m pytest -q\n', '')


@pytest.mark.parametrize('node_major', ['', '18', 'oops'])
def test_without_node_20_or_later_one_line_says_so_and_nothing_runs(tmp_path, node_major):
    result = run_sh_test(tmp_path, ['chromium', 'chromedriver'], node_major=node_major)
    assert (result.returncode, result.stdout) == (2, '')
    assert result.stderr.splitlines() == ['error: Node.js 20 or later is needed for Azurite, 22 or later is best '
                                          '(Debian/Ubuntu: sudo apt-get install nodejs npm)']


def test_on_node_20_a_warning_names_the_version_and_the_tests_run(tmp_path):
    result = run_sh_test(tmp_path, ['chromium', 'chromedriver'], node_major='20')
    assert (result.returncode, result.stdout) == (0, 'pytest ran: -m pytest -q\n')
    assert result.stderr.splitlines() == ['warning: Azurite 3.36 asks for Node.js 21 or later and this is Node.js 20; '
                                          'the tests pass on Node.js 20, but it is past its end of life: Node.js 22 or '
                                          'later is the one to install']
