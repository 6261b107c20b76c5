"""Faults the emulator injects, and that the client and the emulator survive: lost requests, dying nodes, restarts."""

from __future__ import annotations

import json
import os
import signal

import pytest
from azure.batch import models as m
from azure.core.rest import HttpRequest

import python_tutorial_client as client
from batch_emulator import DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME
from batch_emulator.local import local_services
from tests.conftest import eventually
from tests.hostile import batch_client_for, start_emulator, stop_emulator
from tests.test_end_to_end import DATA_FILES, original_top_three, top_words_in_output

pytestmark = pytest.mark.e2e

UBUNTU = m.VirtualMachineConfiguration(
    image_reference=m.BatchVmImageReference(publisher='canonical', offer='ubuntu-24_04-lts', sku='server'),
    node_agent_sku_id='batch.node.ubuntu 24.04')


_CREATES = [('POST', '/pools', 201), ('POST', '/jobs', 201), ('POST', '/jobs/PythonTutorialJob/addtaskcollection', 200)]


@pytest.mark.parametrize(('rate', 'seed', 'posts'), [
    ('0.05', '1', _CREATES),
    ('0.25', '4', [_CREATES[0], ('POST', '/jobs', 500), *_CREATES[1:]]),  # the job's create failed once, repeated
])
def test_the_tutorial_completes_despite_lost_requests_and_dying_nodes(tmp_path, mocker, capsys, rate, seed, posts):
    """500s, 503s and dropped connections, before and after acting; nodes die mid-task. Seeded: reproducible.

    The emulator draws each request's fault in the order requests arrive. The client sends its creates one at a
    time before it polls anything, so which of them fail is the seed's alone, not the machine's speed: the
    POSTs are asserted exactly. Which polls fail varies with how many polls a run makes.
    """
    with local_services(emulator_arguments=['--node-step-seconds', '0.05', '--fault-rate', rate, '--verbose',
                                            '--node-failure-rate', '0.3', '--fault-seed', seed]) as services:
        mocker.patch.object(client, 'query_yes_no', return_value='no')  # keep the job to inspect its tasks
        settings = client.load_settings(client.parse_arguments(['--output-dir', str(tmp_path)]),
                                        services.environment())
        blob_service, batch, sas_key = client.create_service_clients(settings)

        assert client.main(settings, blob_service, batch, sas_key) == 0, capsys.readouterr().err

        for path in DATA_FILES:
            output = tmp_path / os.path.basename(path).replace('.txt', '_OUTPUT.txt')
            assert top_words_in_output(str(output)) == original_top_three(path)
        tasks = list(batch.list_tasks(settings.job_id))
        # No duplicate task, and they were added in the order of the input files (the list is in that order).
        assert [t.id for t in tasks] == ['topNtask0', 'topNtask1', 'topNtask2']
        assert all(t.state == 'completed' and t.execution_info.result == 'success' for t in tasks)
        with open(services.request_log, encoding='utf-8') as log:
            entries = [json.loads(line) for line in log]
        faults = [entry for entry in entries if entry['status'] >= 500]
        assert faults, 'faults were injected'
        assert [(entry['method'], entry['path'], entry['status']) for entry in entries
                if entry['method'] == 'POST'] == posts
        # A node died under a task: the emulator's log has the service's requeue event. The task's counts do not
        # show it: requeueCount counts the requeues a user asked for (the spec), retryCount the failed runs.
        with open(os.path.join(services.data_dir, 'batch-emulator.log'), encoding='utf-8') as log:
            assert 'is requeued by the service (its run was taken from its node)' in log.read()
        assert all((t.execution_info.requeue_count, t.execution_info.retry_count) == (0, 0) for t in tasks)


@pytest.mark.parametrize(('lost', 'path', 'statuses'), [
    ('create_pool', '/pools', [201, 409]),  # the repeat finds the pool: this run's own (its run id)
    ('create_job', '/jobs', [201, 409]),
    ('add_tasks', '/addtaskcollection', [200, 200]),  # the repeat answers TaskExists for each: added
])
def test_a_create_whose_answer_is_lost_after_it_acted_is_repeated_and_recognised(emulator, mocker, unique_id, lost,
                                                                                    path, statuses):
    """The service acts, then the connection drops before its answer: the client's Batch client sends the POST
    again, and the run carries on with what the first request made, made once."""
    import http.client

    import requests
    from urllib3.exceptions import ProtocolError
    environ = {'AZURE_BATCH_ACCOUNT': DEFAULT_ACCOUNT_NAME, 'AZURE_BATCH_ACCESS_KEY': DEFAULT_ACCOUNT_KEY,
               'AZURE_BATCH_ENDPOINT': emulator.endpoint, 'AZURE_STORAGE_ACCOUNT': 'devstoreaccount1',
               'AZURE_STORAGE_KEY': DEFAULT_ACCOUNT_KEY}
    settings = client.load_settings(client.parse_arguments(['--pool-id', unique_id('pool'), '--job-id',
                                                            unique_id('job')]), environ)
    _, batch, _ = client.create_service_clients(settings)
    real_send = requests.Session.send
    dropped = []

    def send(session, request, **kwargs):
        response = real_send(session, request, **kwargs)
        if request.method == 'POST' and request.path_url.split('?')[0].endswith(path) and not dropped:
            dropped.append(request.path_url)
            raise requests.exceptions.ConnectionError(ProtocolError('Connection aborted.',
                                                                    http.client.RemoteDisconnected()))
        return response
    mocker.patch.object(requests.Session, 'send', new=send)
    with open(emulator.request_log, encoding='utf-8') as log:
        logged_before = len(log.readlines())
    inputs = [m.ResourceFile(http_url=f'http://127.0.0.1:9/input/f{i}.txt', file_path=f'f{i}.txt') for i in range(3)]
    try:
        assert client.create_pool(batch, settings.pool_id, [], 'standard_d2s_v3', 1) is False  # made, not reused
        client.create_job(batch, settings.job_id, settings.pool_id)
        assert client.add_tasks(batch, settings.job_id, inputs, 'output', 'sig', numwords=3,
                                storage_account_name='a', blob_endpoint='http://127.0.0.1:9') == 3

        assert dropped, 'an answer was lost'
        assert [t.id for t in batch.list_tasks(settings.job_id)] == ['topNtask0', 'topNtask1', 'topNtask2']
        with open(emulator.request_log, encoding='utf-8') as log:
            posts = [entry for entry in map(json.loads, log.readlines()[logged_before:])
                     if entry['method'] == 'POST' and entry['path'].endswith(path)]
        assert [entry['status'] for entry in posts] == statuses
    finally:
        batch.begin_delete_job(settings.job_id)
        batch.begin_delete_pool(settings.pool_id)


def test_a_task_whose_node_dies_is_requeued_on_a_new_node(tmp_path):
    process, endpoint = start_emulator(str(tmp_path), '--node-failure-rate', '0.5', '--fault-seed', '1')
    try:
        batch = batch_client_for(endpoint)
        batch.create_pool(m.BatchPoolCreateOptions(id='pool', vm_size='standard_d2s_v3', target_dedicated_nodes=1,
                                                   virtual_machine_configuration=UBUNTU))
        batch.create_job(m.BatchJobCreateOptions(id='job', pool_info=m.BatchPoolInfo(pool_id='pool')))
        batch.create_tasks('job', [m.BatchTaskCreateOptions(id=f't{i}', command_line='sleep 0.3') for i in range(6)])
        eventually(lambda: batch.get_job_task_counts('job').task_counts.completed == 6, timeout=60,
                   message='all tasks completed')
        tasks = list(batch.list_tasks('job'))
        assert all(t.execution_info.result == 'success' for t in tasks)
        # the service's own requeue is counted neither as a retry nor as a requeue a user asked for (the spec)
        assert all((t.execution_info.requeue_count, t.execution_info.retry_count) == (0, 0) for t in tasks)
        nodes = list(batch.list_nodes('pool'))
        assert len(nodes) == 1  # the dead node was replaced: tasks finished on more than one node
        assert len({t.node_info.node_id for t in tasks}) > 1
    finally:
        process.terminate()
        process.wait(15)


def test_a_restart_from_the_location_folder_loses_nothing(tmp_path):
    """The emulator is killed mid-run and started again on the same folder: everything is still there."""
    location = str(tmp_path / 'location')
    gate = tmp_path / 'gate'
    process, endpoint = start_emulator(location)
    batch = batch_client_for(endpoint)
    batch.create_pool(m.BatchPoolCreateOptions(
        id='pool', vm_size='standard_d2s_v3', target_dedicated_nodes=1, virtual_machine_configuration=UBUNTU,
        task_slots_per_node=2, start_task=m.BatchStartTask(command_line="/bin/sh -c 'echo booted'")))
    batch.create_job(m.BatchJobCreateOptions(id='job', pool_info=m.BatchPoolInfo(pool_id='pool')))
    batch.create_task('job', m.BatchTaskCreateOptions(id='done', command_line="/bin/sh -c 'echo finished'"))
    waits_for_gate = f"/bin/sh -c 'for i in $(seq 1200); do [ -f {gate} ] && exit 0; sleep 0.05; done; exit 1'"
    batch.create_task('job', m.BatchTaskCreateOptions(id='running', command_line=waits_for_gate))
    eventually(lambda: batch.get_task('job', 'done').state == 'completed' and
               batch.get_task('job', 'running').state == 'running', message='one done, one running')
    node_id = batch.get_task('job', 'running').node_info.node_id
    orphan = _pid_working_in(os.path.join(location, 'nodes', 'pool', node_id, 'workitems', 'job', 'job-1', 'running',
                                          'wd'))
    batch.create_task('job', m.BatchTaskCreateOptions(id='added-last', command_line='true'))  # acknowledged
    process.send_signal(signal.SIGKILL)  # no chance to save anything more
    process.wait(15)

    process, endpoint = start_emulator(location)
    try:
        batch = batch_client_for(endpoint)
        assert batch.get_pool('pool').id == 'pool' and batch.get_job('job').state == 'active'
        assert [n.id for n in batch.list_nodes('pool')] == [node_id]
        done = batch.get_task('job', 'done')
        assert (done.state, done.execution_info.exit_code) == ('completed', 0)
        assert b''.join(batch.download_task_file('job', 'done', 'stdout.txt')) == b'finished\n'
        requeued = batch.get_task('job', 'running')
        assert (requeued.state, requeued.execution_info.requeue_count) in (('active', 0), ('running', 0))
        assert not _alive(orphan), 'the process of the interrupted run was stopped'
        eventually(lambda: batch.get_task('job', 'running').state == 'running', message='running again')
        gate.touch()
        for task_id in ('running', 'added-last'):
            eventually(lambda task_id=task_id: batch.get_task('job', task_id).state == 'completed',
                       message=f'{task_id} completed')
            assert batch.get_task('job', task_id).execution_info.exit_code == 0
        counts = batch.get_job_task_counts('job').task_counts
        assert (counts.completed, counts.succeeded, counts.active, counts.running) == (3, 3, 0, 0)
    finally:
        process.terminate()
        process.wait(15)


def test_values_the_fast_journal_encoder_cannot_write_survive_a_restart(tmp_path):
    """The journal writes records with orjson, and what orjson refuses (a lone surrogate, an integer beyond 64
    bits: JSON a request may carry) with the json module: the add is acknowledged, and after a restart the task
    reads as it was sent, non-ASCII text included."""
    location = str(tmp_path / 'location')
    process, endpoint = start_emulator(location)
    values = {'TEXT': '中文 ünïcode', 'SURROGATE': '\ud800', 'BOTH': 'a\udfff中'}
    try:
        batch = batch_client_for(endpoint)
        batch.create_pool(m.BatchPoolCreateOptions(id='pool', vm_size='standard_d2s_v3', target_dedicated_nodes=0,
                                                   virtual_machine_configuration=UBUNTU))
        batch.create_job(m.BatchJobCreateOptions(id='job', pool_info=m.BatchPoolInfo(pool_id='pool')))
        # a property the spec does not have is kept as sent (never shown): here an integer beyond 64 bits
        body = json.dumps({'id': 'kept', 'commandLine': 'true', 'notInTheSpec': 10 ** 30,
                           'environmentSettings': [{'name': name, 'value': value} for name, value in values.items()]})
        added = batch.send_request(HttpRequest('POST', f'{endpoint}/jobs/job/tasks?api-version=2025-06-01',
                                               content=body, headers={'Content-Type': 'application/json'}))
        assert added.status_code == 201, added.text()
    finally:
        stop_emulator(process)
    process, endpoint = start_emulator(location)
    try:
        batch = batch_client_for(endpoint)
        task = batch.send_request(HttpRequest('GET', f'{endpoint}/jobs/job/tasks/kept?api-version=2025-06-01'))
        assert task.status_code == 200, task.text()
        assert {setting['name']: setting['value'] for setting in task.json()['environmentSettings']} == values
    finally:
        stop_emulator(process)


def _alive(pid: int) -> bool:
    try:
        with open(f'/proc/{pid}/stat', encoding='utf-8') as stat:
            return stat.read().rsplit(')', 1)[1].split()[0] != 'Z'  # a zombie has ended, only not yet reaped
    except OSError:
        return False


def _pid_working_in(folder: str) -> int:
    """The process whose working directory is ``folder`` (a task's wd)."""
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                if os.path.realpath(os.readlink(f'/proc/{entry}/cwd')) == os.path.realpath(folder):
                    return int(entry)
            except OSError:
                continue
    raise AssertionError(f'no process runs in {folder}')
