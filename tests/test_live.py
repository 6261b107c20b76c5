"""The whole tutorial on real Azure. Deselected by default; run with: python -m pytest -m live

Needs AZURE_BATCH_ACCOUNT, AZURE_BATCH_ACCESS_KEY, AZURE_BATCH_ENDPOINT and AZURE_STORAGE_ACCOUNT with
AZURE_STORAGE_KEY (or AZURE_STORAGE_CONNECTION_STRING). It creates a one-node pool with its own id, runs
the three tasks and deletes the job and the pool (a few cents).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from tests.test_end_to_end import DATA_FILES, original_top_three, top_words_in_output

pytestmark = pytest.mark.live

REQUIRED = ('AZURE_BATCH_ACCOUNT', 'AZURE_BATCH_ACCESS_KEY', 'AZURE_BATCH_ENDPOINT', 'AZURE_STORAGE_ACCOUNT')


def test_the_tutorial_runs_on_real_azure(tmp_path):
    missing = [name for name in REQUIRED if not os.environ.get(name)]
    if not (os.environ.get('AZURE_STORAGE_KEY') or os.environ.get('AZURE_STORAGE_CONNECTION_STRING')):
        missing.append('AZURE_STORAGE_KEY or AZURE_STORAGE_CONNECTION_STRING')
    if missing:
        pytest.fail('the live test needs these environment variables: ' + ', '.join(missing))
    suffix = uuid.uuid4().hex[:8]
    project_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run(
        [sys.executable, 'python_tutorial_client.py', '--yes', '--output-dir', str(tmp_path),
         '--pool-id', f'PythonTutorialPool-live-{suffix}', '--job-id', f'PythonTutorialJob-live-{suffix}',
         '--timeout', '30'],
        cwd=project_dir, capture_output=True, text=True, timeout=45 * 60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout + result.stderr
    for path in DATA_FILES:
        output = tmp_path / os.path.basename(path).replace('.txt', '_OUTPUT.txt')
        assert top_words_in_output(str(output)) == original_top_three(path)
