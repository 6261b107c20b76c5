"""Multi-instance tasks driven by the real azure-batch SDK over HTTP: a primary and its subtasks on as many
nodes, the coordination command on each, the application command on the primary, the MPI variables set."""

from __future__ import annotations

from azure.batch import models as m

from tests.test_emulator import create_pool, raw, raw_json, wait_for_nodes, wait_for_task


def _file(client, pool_id: str, node_id: str, path: str) -> str:
    response = raw(client, 'GET', f'/pools/{pool_id}/nodes/{node_id}/files/{path}')
    assert response.status_code == 200, (path, response.text())
    return response.text()


def test_a_multi_instance_task_runs_on_as_many_nodes(batch_client, unique_id):
    pool_id, job_id = unique_id('mpi'), unique_id('mpi')
    create_pool(batch_client, pool_id, nodes=3)
    nodes = {node.id: node for node in wait_for_nodes(batch_client, pool_id, count=3)}
    batch_client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool_id)))
    batch_client.create_task(job_id, m.BatchTaskCreateOptions(
        id='mpi', command_line="/bin/sh -c 'echo hosts=$AZ_BATCH_HOST_LIST master=$AZ_BATCH_IS_CURRENT_NODE_MASTER; "
                               "ls $AZ_BATCH_TASK_SHARED_DIR/ready'",
        multi_instance_settings=m.MultiInstanceSettings(
            number_of_instances=3,
            coordination_command_line="/bin/sh -c 'echo $AZ_BATCH_IS_CURRENT_NODE_MASTER $AZ_BATCH_MASTER_NODE; "
                                      "touch $AZ_BATCH_TASK_SHARED_DIR/ready'")))
    task = wait_for_task(batch_client, job_id, 'mpi')
    assert task.execution_info.result == 'success', task.execution_info.failure_info
    primary = task.node_info.node_id
    stdout = _file(batch_client, pool_id, primary, f'workitems/{job_id}/job-1/mpi/stdout.txt')
    hosts = stdout.split('hosts=')[1].split()[0].split(',')
    assert hosts[0] == nodes[primary].ip_address and sorted(hosts) == sorted(n.ip_address for n in nodes.values())
    assert 'master=true' in stdout
    subtasks = raw_json(batch_client, f'/jobs/{job_id}/tasks/mpi/subtasksinfo')['value']
    assert [subtask['id'] for subtask in subtasks] == [1, 2]
    assert all(subtask['state'] == 'completed' and subtask['result'] == 'success' for subtask in subtasks)
    used = {primary} | {subtask['nodeInfo']['nodeId'] for subtask in subtasks}
    assert used == set(nodes)  # one instance per node
    master = f"{nodes[primary].ip_address}:6000"
    for subtask in subtasks:
        coordination = _file(batch_client, pool_id, subtask['nodeInfo']['nodeId'],
                             f'workitems/{job_id}/job-1/mpi/coordination/stdout.txt')
        assert coordination.split() == ['false', master]
    listed = list(batch_client.list_subtasks(job_id, 'mpi'))
    assert [subtask.id for subtask in listed] == [1, 2]
    batch_client.begin_delete_job(job_id)
    batch_client.begin_delete_pool(pool_id)


def test_it_waits_for_enough_nodes_and_a_failing_coordination_fails_it(batch_client, pool_and_job):
    _, job_id = pool_and_job  # one node
    batch_client.create_task(job_id, m.BatchTaskCreateOptions(
        id='too-big', command_line='true', multi_instance_settings=m.MultiInstanceSettings(
            number_of_instances=2, coordination_command_line='true')))
    batch_client.create_task(job_id, m.BatchTaskCreateOptions(
        id='fails', command_line='true', multi_instance_settings=m.MultiInstanceSettings(
            number_of_instances=1, coordination_command_line="/bin/sh -c 'exit 5'")))
    failed = wait_for_task(batch_client, job_id, 'fails')
    assert (failed.execution_info.result, failed.execution_info.exit_code) == ('failure', 5)
    assert batch_client.get_task(job_id, 'too-big').state == 'active'  # waits for a second node
    assert raw_json(batch_client, f'/jobs/{job_id}/tasks/fails/subtasksinfo')['value'] == []
    refused = raw(batch_client, 'POST', f'/jobs/{job_id}/tasks', {
        'id': 'huge', 'commandLine': 'true',
        'multiInstanceSettings': {'numberOfInstances': 101, 'coordinationCommandLine': 'true'}})
    assert (refused.status_code, refused.json()['code']) == (400, 'InvalidPropertyValue')
