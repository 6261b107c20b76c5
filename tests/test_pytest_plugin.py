"""The emulator as a tool people install: `pip install .` gives `batch-emulator`, and the pytest plugin
(entry point pytest11) gives a user's own tests a running emulator and a BatchClient for it.

The users' tests run in a pytest of their own (pytester, in a subprocess), with the real azure-batch SDK.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import psutil
import pytest
from azure.batch import BatchClient
from azure.core.credentials import AzureNamedKeyCredential

from batch_emulator import DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME

pytest_plugins = ['pytester']

PROJECT_DIR = Path(__file__).resolve().parent.parent

# The README's example, word for word ("Use it in your own tests").
README_EXAMPLE = '''\
import time
from azure.batch import models as m

def test_hello_task_runs(batch_emulator_client):
    client = batch_emulator_client
    image = m.BatchVmImageReference(publisher='canonical', offer='ubuntu-24_04-lts', sku='server')
    vm = m.VirtualMachineConfiguration(image_reference=image, node_agent_sku_id='batch.node.ubuntu 24.04')
    client.create_pool(m.BatchPoolCreateOptions(id='pool', vm_size='standard_d2s_v3', target_dedicated_nodes=1,
                                                virtual_machine_configuration=vm))
    client.create_job(m.BatchJobCreateOptions(id='job', pool_info=m.BatchPoolInfo(pool_id='pool')))
    client.create_task('job', m.BatchTaskCreateOptions(id='hello', command_line="/bin/sh -c 'echo hello'"))
    deadline = time.monotonic() + 30
    while (task := client.get_task('job', 'hello')).state != 'completed' and time.monotonic() < deadline:
        time.sleep(0.1)
    assert task.execution_info.exit_code == 0
    assert b''.join(client.download_task_file('job', 'hello', 'stdout.txt')) == b'hello\\n'
'''


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
def users_pytest(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A user's project: its own folder and pytest, with this checkout's plugin loaded as the entry point would."""
    monkeypatch.setenv('PYTHONPATH', os.pathsep.join(filter(None, [str(PROJECT_DIR), os.environ.get('PYTHONPATH')])))
    monkeypatch.delenv('PYTEST_ADDOPTS', raising=False)
    return pytester


def test_the_readme_example_runs_a_task_and_the_emulator_is_gone_after_the_session(users_pytest):
    users_pytest.makepyfile(test_readme_example=README_EXAMPLE, test_what_else_it_gives='''
        import os
        import time
        from azure.batch import BatchClient, models as m
        from azure.core.credentials import AzureNamedKeyCredential

        def test_a_task_still_running_at_the_end(batch_emulator, batch_emulator_client):
            with open('emulator.pid', 'w') as record:
                record.write(str(batch_emulator.process.pid))
            pool_info = m.BatchPoolInfo(pool_id='pool')
            batch_emulator_client.create_job(m.BatchJobCreateOptions(id='long', pool_info=pool_info))
            # Still running when the session ends: stopping the emulator must end it too.
            command = "/bin/sh -c 'echo $$ > %s/task.pid; exec sleep 300'" % os.getcwd()
            batch_emulator_client.create_task('long', m.BatchTaskCreateOptions(id='sleeper', command_line=command))
            deadline = time.monotonic() + 30
            while not os.path.exists('task.pid') and time.monotonic() < deadline:
                time.sleep(0.05)
            assert batch_emulator_client.get_task('long', 'sleeper').state == 'running'

        def test_endpoint_account_key_and_environment(batch_emulator, batch_emulator_environment):
            assert batch_emulator.endpoint.startswith('http://127.0.0.1:')
            assert os.environ['AZURE_BATCH_ENDPOINT'] == batch_emulator.endpoint
            client = BatchClient(os.environ['AZURE_BATCH_ENDPOINT'], AzureNamedKeyCredential(
                os.environ['AZURE_BATCH_ACCOUNT'], os.environ['AZURE_BATCH_ACCESS_KEY']))
            assert [pool.id for pool in client.list_pools()] == ['pool']  # the session shares one emulator
            assert any(entry['method'] == 'POST' and entry['path'] == '/pools' and entry['status'] == 201
                       for entry in batch_emulator.requests())

        def test_an_emulator_of_its_own(batch_emulator):
            from batch_emulator.pytest_plugin import start_batch_emulator
            with start_batch_emulator(None, '--dedicated-node-quota', '0') as own:
                assert own.endpoint != batch_emulator.endpoint
                client = own.client()
                assert list(client.list_pools()) == []
                image = m.BatchVmImageReference(publisher='canonical', offer='ubuntu-24_04-lts', sku='server')
                vm = m.VirtualMachineConfiguration(node_agent_sku_id='batch.node.ubuntu 24.04', image_reference=image)
                client.create_pool(m.BatchPoolCreateOptions(id='none', vm_size='standard_d2s_v3',
                                                            target_dedicated_nodes=1, virtual_machine_configuration=vm))
                deadline = time.monotonic() + 30
                while not (pool := client.get_pool('none')).resize_errors and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert pool.resize_errors[0].code == 'AccountCoreQuotaReached'
            assert own.process.poll() is not None and not own.location.exists()
    ''')
    result = users_pytest.runpytest_subprocess('-p', 'batch_emulator.pytest_plugin')
    result.assert_outcomes(passed=4)
    emulator_pid = int((users_pytest.path / 'emulator.pid').read_text())
    task_pid = int((users_pytest.path / 'task.pid').read_text())
    assert gone(emulator_pid), 'the emulator outlived the session'
    assert gone(task_pid), "the emulator's task process outlived the session"


def test_settings_from_the_ini_file_and_the_command_line_reach_the_emulator(users_pytest):
    users_pytest.makeini('''
        [pytest]
        batch_emulator_args = --dedicated-node-quota 1
        batch_emulator_node_step_seconds = 0.01
    ''')
    users_pytest.makepyfile('''
        import time
        import psutil
        from azure.batch import models as m

        def test_quota_and_node_step(batch_emulator, batch_emulator_client):
            command_line = psutil.Process(batch_emulator.process.pid).cmdline()
            assert command_line[command_line.index('--node-step-seconds') + 1] == '3600.0'  # the command line wins
            image = m.BatchVmImageReference(publisher='canonical', offer='ubuntu-24_04-lts', sku='server')
            vm = m.VirtualMachineConfiguration(image_reference=image, node_agent_sku_id='batch.node.ubuntu 24.04')
            batch_emulator_client.create_pool(m.BatchPoolCreateOptions(
                id='two', vm_size='standard_d2s_v3', target_dedicated_nodes=2, virtual_machine_configuration=vm))
            deadline = time.monotonic() + 30
            while not (nodes := list(batch_emulator_client.list_nodes('two'))) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(nodes) == 1  # --dedicated-node-quota 1 from the ini file
            assert nodes[0].state in ('creating', 'starting')  # an hour per node state
    ''')
    result = users_pytest.runpytest_subprocess('-p', 'batch_emulator.pytest_plugin',
                                               '--batch-emulator-node-step-seconds', '3600')
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize('option, message', [
    (['--batch-emulator-args', '--port 8080'], '--port is set by the batch_emulator fixture itself'),
    (['--batch-emulator-node-step-seconds', 'soon'], 'must be a positive number of seconds'),
])
def test_bad_settings_are_one_clear_usage_error(users_pytest, option, message):
    users_pytest.makepyfile('def test_nothing(): pass')
    result = users_pytest.runpytest_subprocess('-p', 'batch_emulator.pytest_plugin', *option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()
    assert 'Traceback' not in result.stderr.str()



def test_an_emulator_that_cannot_start_is_an_error_saying_why(users_pytest):
    users_pytest.makepyfile('def test_uses_it(batch_emulator): pass')
    result = users_pytest.runpytest_subprocess('-p', 'batch_emulator.pytest_plugin',
                                               '--batch-emulator-args', '--clock-speed 0')
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(['*the Batch emulator exited with code 2 before it listened*',
                                 "*--clock-speed: '0' is not a speed-up factor*"])


def test_a_session_that_does_not_ask_for_the_emulator_does_not_load_it(users_pytest):
    # pytest loads the plugin in every session of an environment that installed it: only a session whose tests
    # ask for the fixture pays for importing the emulator (aiohttp and all), in the emulator's own process.
    users_pytest.makepyfile('''
        import sys

        PLUGIN = {'batch_emulator', 'batch_emulator.pytest_plugin', 'batch_emulator.common',
                  'batch_emulator.common.account'}

        def test_nothing_of_the_emulator_is_loaded():
            loaded = sorted(name for name in sys.modules if name.split('.')[0] == 'aiohttp'
                            or name.split('.')[0] == 'batch_emulator' and name not in PLUGIN)
            assert loaded == []
    ''')
    result = users_pytest.runpytest_subprocess('-p', 'batch_emulator.pytest_plugin')
    result.assert_outcomes(passed=1)


def build_backend_pin() -> str:
    pyproject = (PROJECT_DIR / 'pyproject.toml').read_text(encoding='utf-8')
    return re.search(r'^requires = \["setuptools==([^"]+)"\]', pyproject, re.MULTILINE).group(1)


def test_pip_install_gives_a_batch_emulator_command_and_the_pytest_plugin(tmp_path):
    pinned = build_backend_pin()
    assert importlib.metadata.version('setuptools') == pinned, (
        f'pyproject.toml builds with setuptools=={pinned}; requirements-dev.txt must pin the same, so that '
        'pip install --no-build-isolation . works offline')
    source = tmp_path / 'source'  # a copy: building writes build/ and *.egg-info next to pyproject.toml
    source.mkdir()
    shutil.copy(PROJECT_DIR / 'pyproject.toml', source)
    shutil.copy(PROJECT_DIR / 'README.md', source)
    shutil.copytree(PROJECT_DIR / 'batch_emulator', source / 'batch_emulator',
                    ignore=shutil.ignore_patterns('__pycache__'))
    venv = tmp_path / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(venv)], check=True)
    python = venv / 'bin' / 'python'
    venv_site = subprocess.run([python, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                               check=True, capture_output=True, text=True).stdout.strip()
    # The dependencies (and pip, setuptools) come from this environment: nothing is downloaded.
    site_folders = [path for path in sys.path if Path(path).name in ('site-packages', 'dist-packages')]
    Path(venv_site, 'dependencies.pth').write_text(''.join(f'{path}\n' for path in site_folders))
    clean = {name: value for name, value in os.environ.items() if not name.startswith(('PYTHON', 'PIP_'))}
    install = subprocess.run([python, '-m', 'pip', 'install', '--quiet', '--disable-pip-version-check',
                              '--no-deps', '--no-build-isolation', '--no-index', str(source)],
                             cwd=tmp_path, env=clean, capture_output=True, text=True)
    assert install.returncode == 0, install.stdout + install.stderr

    installed = subprocess.run(
        [python, '-c', 'import importlib.metadata as md, batch_emulator; print(batch_emulator.__file__); '
                       'print(*md.files("azure-batch-python-tutorial"), sep="\\n")'],
        cwd=tmp_path, env=clean, check=True, capture_output=True, text=True).stdout.splitlines()
    assert installed[0].startswith(venv_site), f'batch_emulator imported from {installed[0]}'
    files = {name for name in installed[1:] if not name.endswith('.pyc')}
    wanted = {path.relative_to(source).as_posix() for path in (source / 'batch_emulator').rglob('*')
              if path.is_file() and path.name != 'README.md'}
    assert {'batch_emulator/contract/spec/BatchService.json', 'batch_emulator/portal/static/portal.js'} <= wanted
    assert wanted <= files, f'not installed: {sorted(wanted - files)}'
    top_level = {name.split('/')[0] for name in files if not name.startswith('..')}
    assert top_level == {'batch_emulator', 'azure_batch_python_tutorial-1.0.0.dist-info'}  # no tests, no tutorial

    plugin_help = subprocess.run([python, '-m', 'pytest', '--help', '-p', 'no:cacheprovider'], cwd=tmp_path,
                                 env=clean, capture_output=True, text=True)
    assert '--batch-emulator-node-step-seconds' in plugin_help.stdout, plugin_help.stdout + plugin_help.stderr

    command = venv / 'bin' / 'batch-emulator'
    process = subprocess.Popen([command, '--port', '0', '--location', str(tmp_path / 'location')], cwd=tmp_path,
                               env=clean, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    try:
        first_line = process.stdout.readline()
        match = re.search(r'listening on (http://127\.0\.0\.1:\d+)', first_line)
        assert match, f'batch-emulator did not start: {first_line!r}'
        endpoint = match.group(1)
        client = BatchClient(endpoint, AzureNamedKeyCredential(DEFAULT_ACCOUNT_NAME, DEFAULT_ACCOUNT_KEY))
        assert list(client.list_pools()) == []
        assert any(image.node_agent_sku_id == 'batch.node.ubuntu 24.04' for image in client.list_supported_images())
        with urllib.request.urlopen(f'{endpoint}/') as page:  # the local portal, from the installed static files
            assert b'portal.js' in page.read()
        with urllib.request.urlopen(f'{endpoint}/portal/static/portal.js') as script:
            assert script.status == 200 and len(script.read()) > 1000
    finally:
        process.terminate()
        process.wait(15)
        process.stdout.close()
    assert process.returncode == 0


@pytest.mark.parametrize('readme', ['README.md', 'README.zh-CN.md'])
def test_the_readmes_show_the_example_this_file_runs(readme):
    text = (PROJECT_DIR / readme).read_text(encoding='utf-8')
    assert f'```python\n{README_EXAMPLE}```' in text
    assert 'pip install .' in text and 'batch-emulator --port' in text
