"""Ctrl-C typed in a real pseudo-terminal: twice, the second time at the "Delete job?" prompt.

The client runs in a subprocess whose controlling terminal is a pty, with mocked Batch and Blob
clients (no services needed). Ctrl-C is the byte 0x03 written to the pty: its line discipline sends
a real SIGINT to the client, as a terminal does.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time

import pytest

from tests.test_client_main import GOOD_ENVIRONMENT, KEY

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 60.0

# Runs python_tutorial_client.run_from_command_line() with mocked service clients whose tasks never
# finish, so the run waits for the tasks until Ctrl-C. argv: project folder, output folder, key.
DRIVER = '''
import argparse, fcntl, signal, sys, termios
from unittest import mock

# Ctrl-C raises KeyboardInterrupt, as in a program an interactive shell starts, even when the tests were started in
# the background (`./run.sh test &`): a non-interactive shell's background job ignores SIGINT, and so its children.
signal.signal(signal.SIGINT, signal.default_int_handler)

fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # the pty becomes this session's terminal: Ctrl-C there sends SIGINT here
sys.path.insert(0, sys.argv[1])
import python_tutorial_client as client
from azure.batch import models as batchmodels

blob_service = mock.MagicMock(account_name='mystorage')
blob_service.get_blob_client.side_effect = lambda container, blob: mock.MagicMock(
    url=f'https://mystorage.blob.core.windows.net/{container}/{blob}')
blob_service.get_container_client.return_value.list_blobs.return_value = [
    argparse.Namespace(name='taskdata1_OUTPUT.txt')]
batch = mock.MagicMock()
batch.list_supported_images.return_value = [batchmodels.BatchSupportedImage(
    node_agent_sku_id='batch.node.ubuntu 24.04', os_type='linux', verification_type='verified',
    image_reference=batchmodels.BatchVmImageReference(publisher='canonical', offer='ubuntu-24_04-lts', sku='server'))]
batch.get_job_task_counts.return_value = batchmodels.BatchTaskCountsResult(task_counts=batchmodels.BatchTaskCounts(
    active=2, running=1, completed=0, succeeded=0, failed=0))
with mock.patch.object(client, 'create_service_clients', return_value=(blob_service, batch, sys.argv[3])):
    sys.exit(client.run_from_command_line(['--output-dir', sys.argv[2]]))
'''


class Terminal:
    """The parent's side of the pty: what the client printed so far, read until a text appears."""

    def __init__(self, master_fd: int, deadline: float) -> None:
        self.master_fd = master_fd
        self.deadline = deadline
        self.output = ''

    def read_until(self, text: str | None) -> str:
        """Reads until ``text`` has been printed (None: until the client closes the terminal)."""
        while text is None or text not in self.output:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f'{text!r} not printed within {TIMEOUT} s; the client printed:\n{self.output}')
            if select.select([self.master_fd], [], [], remaining)[0]:
                try:
                    data = os.read(self.master_fd, 4096)
                except OSError:  # EIO: every process holding the terminal has exited
                    data = b''
                if not data:
                    if text is None:
                        break
                    pytest.fail(f'the client exited before printing {text!r}; it printed:\n{self.output}')
                self.output += data.decode('utf-8', errors='replace').replace('\r\n', '\n')
        return self.output

    def wait_until_reading(self, pid: int) -> None:
        """Returns once the client sleeps in its read of the terminal (Linux; elsewhere at once).

        A prompt is printed just before input() reads: a Ctrl-C that came in between would only be
        seen after the next line typed. Nothing else blocks between the two, so a sleeping client is
        a reading one.
        """
        stat_path = f'/proc/{pid}/stat'
        while os.path.exists(stat_path) and time.monotonic() < self.deadline:
            with open(stat_path, encoding='ascii') as stat:
                if stat.read().rsplit(')', 1)[1].split()[0] == 'S':
                    return
            select.select([], [], [], 0.005)

    def ctrl_c(self) -> None:
        os.write(self.master_fd, b'\x03')


@pytest.mark.skipif(not sys.platform.startswith(('linux', 'darwin')), reason='needs a POSIX pseudo-terminal')
def test_ctrl_c_twice_in_a_terminal_lists_what_is_left_and_how_to_delete_it_then_exits_130(tmp_path):
    master_fd, slave_fd = pty.openpty()
    environment = {key: value for key, value in os.environ.items() if not key.startswith('AZURE_')}
    process = subprocess.Popen(
        [sys.executable, '-c', DRIVER, PROJECT_DIR, str(tmp_path / 'out'), KEY], cwd=PROJECT_DIR,
        env=environment | GOOD_ENVIRONMENT, stdin=slave_fd, stdout=slave_fd, stderr=slave_fd, start_new_session=True)
    os.close(slave_fd)
    terminal = Terminal(master_fd, time.monotonic() + TIMEOUT)
    try:
        terminal.read_until("Monitoring all tasks for 'Completed' state")
        terminal.ctrl_c()  # the first Ctrl-C, while the tasks run: the client cleans up
        terminal.read_until('Delete job? [Y/n] ')
        terminal.wait_until_reading(process.pid)
        terminal.ctrl_c()  # the second, at the prompt
        out = terminal.read_until(None)
        exit_code = process.wait(timeout=max(1.0, terminal.deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master_fd)

    assert exit_code == 130, out
    assert 'Interrupted: cleaning up.' in out
    summary = out[out.index('Interrupted: clean-up stopped.\n'):].splitlines()[1:]
    batch_account = ' --account-name mybatch --account-endpoint https://mybatch.eastus.batch.azure.com'
    expiry = re.search(r'one that starts after (\d{4}-\d\d-\d\d \d\d:\d\d UTC)', out).group(1)
    assert summary == [
        # The job is left with unfinished tasks: the containers they need are left with it.
        'Kept container [application]: the unfinished tasks of job [PythonTutorialJob] need the task script in it '
        '(their nodes download it from there).',
        'Kept container [input]: the unfinished tasks of job [PythonTutorialJob] download their input files from it.',
        'Kept container [output]: the unfinished tasks of job [PythonTutorialJob] upload their results to it.',
        'Job [PythonTutorialJob] is left: its unfinished tasks keep running on pool [PythonTutorialPool]; one that '
        f'starts after {expiry} cannot download its input file (the link to it expires then).',
        'Pool [PythonTutorialPool] is left running: its nodes are billed until you delete it.',
        'To delete what is left (Azure CLI):',
        '  az storage container delete --name application --account-name mystorage',
        '  az storage container delete --name input --account-name mystorage',
        '  az storage container delete --name output --account-name mystorage',
        '  az batch job delete --job-id PythonTutorialJob --yes' + batch_account,
        '  az batch pool delete --pool-id PythonTutorialPool --yes' + batch_account,
    ], out
    assert 'Delete pool?' not in out and 'Traceback' not in out
    assert KEY not in out and 'sig=' not in out
