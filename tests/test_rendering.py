"""Responses written as the real service writes them: the spec's properties, the recorded defaults,
spellings and key order (recorded-service-behaviour.md section 2), nulls and unknown properties left out."""

from __future__ import annotations

from azure.batch import models as m

from tests.conftest import eventually
from tests.test_emulator import _pool, raw, raw_json, validate, wait_for_task

VM = {'imageReference': {'publisher': 'canonical', 'offer': 'ubuntu-24_04-lts', 'sku': 'server'},
      'nodeAgentSKUId': 'batch.node.ubuntu 24.04'}


def test_a_pool_reads_back_in_the_services_key_order_spelling_and_defaults(batch_client, unique_id):
    pool_id = unique_id('render')
    sent = _pool(pool_id, vmSize='Standard_D2s_v3', metadata=[{'name': 'a', 'value': 'b'}],
                 startTask={'commandLine': 'true'}, resourceTags={'team': 'x'},
                 taskSchedulingPolicy={'nodeFillType': 'pack', 'jobDefaultOrder': 'CreationTime'},
                 networkConfiguration={'publicIPAddressConfiguration': {'provision': 'batchmanaged',
                                                                        'ipFamilies': ['IPv6', 'IPv4']},
                                       'endpointConfiguration': {'inboundNATPools': [{
                                           'name': 'ssh', 'protocol': 'tcp', 'backendPort': 22,
                                           'frontendPortRangeStart': 15000, 'frontendPortRangeEnd': 15100,
                                           'networkSecurityGroupRules': [{'priority': 150, 'access': 'allow',
                                                                          'sourceAddressPrefix': '*'}]}]}},
                 virtualMachineConfiguration={**VM, 'osDisk': {'caching': 'readwrite'},
                                              'dataDisks': [{'lun': 1, 'diskSizeGB': 10}],
                                              'securityProfile': {'securityType': 'confidentialVM',
                                                                  'encryptionAtHost': True},
                                              'nodePlacementConfiguration': {'policy': 'zonal'}})
    assert raw(batch_client, 'POST', '/pools', sent).status_code == 201
    # Read once the pool has settled, so that the GET and the list below see the same pool (a resize between
    # them would change allocationState and its transition time, which this test does not look at).
    pool = eventually(lambda: (p := raw_json(batch_client, f'/pools/{pool_id}'))['allocationState'] == 'steady' and p,
                      message='the pool steady')
    assert list(pool)[:16] == [
        'odata.metadata', 'id', 'url', 'eTag', 'lastModified', 'creationTime', 'state', 'stateTransitionTime',
        'allocationState', 'allocationStateTransitionTime', 'vmSize', 'resizeTimeout', 'currentDedicatedNodes',
        'targetDedicatedNodes', 'currentLowPriorityNodes', 'targetLowPriorityNodes']
    assert list(pool)[16:] == ['enableAutoScale', 'enableInterNodeCommunication', 'startTask', 'metadata',
                               'taskSlotsPerNode', 'taskSchedulingPolicy', 'virtualMachineConfiguration',
                               'networkConfiguration']  # resourceTags: not a property of a pool read back
    assert pool['vmSize'] == 'standard_d2s_v3'
    assert pool['taskSchedulingPolicy'] == {'nodeFillType': 'Pack', 'jobDefaultOrder': 'creationtime'}
    vm = pool['virtualMachineConfiguration']
    assert list(vm) == ['imageReference', 'osDisk', 'nodeAgentSKUId', 'dataDisks', 'nodePlacementConfiguration',
                        'securityProfile']
    assert vm['osDisk'] == {'ephemeralOSDiskSettings': {}, 'caching': 'ReadWrite',
                            'managedDisk': {'storageAccountType': 'standard_lrs'}}
    assert vm['dataDisks'] == [{'lun': 1, 'caching': 'none', 'diskSizeGB': 10,
                                'managedDisk': {'storageAccountType': 'standard_lrs'}}]
    assert list(vm['dataDisks'][0]) == ['lun', 'caching', 'diskSizeGB', 'managedDisk']
    assert vm['securityProfile'] == {'securityType': 'confidentialvm', 'encryptionAtHost': True}
    assert vm['nodePlacementConfiguration'] == {'policy': 'Zonal'}
    network = pool['networkConfiguration']
    assert (network['dynamicVNetAssignmentScope'], network['enableAcceleratedNetworking']) == ('none', False)
    assert network['publicIPAddressConfiguration'] == {'provision': 'BatchManaged', 'ipFamilies': ['IPv4', 'IPv6']}
    rule = network['endpointConfiguration']['inboundNATPools'][0]['networkSecurityGroupRules'][0]
    assert rule['sourcePortRanges'] == ['*']
    validate(pool, 'BatchPool')
    # A list writes its items the same way, and $filter sees what is written (the defaults included).
    listed = raw_json(batch_client, f"/pools?$filter=id eq '{pool_id}'")['value']
    assert [{k: v for k, v in item.items()} for item in listed] == [{k: v for k, v in pool.items()
                                                                     if k != 'odata.metadata'}]
    response = raw(batch_client, 'GET', '/pools', query="api-version=2025-06-01&$filter=taskSlotsPerNode eq 1")
    assert pool_id in [item['id'] for item in response.json()['value']]
    batch_client.begin_delete_pool(pool_id)


def test_a_job_and_its_tasks_read_back_as_recorded(batch_client, pool_and_job, unique_id):
    pool_id, _ = pool_and_job
    job_id = unique_id('render')
    raw(batch_client, 'POST', '/jobs', {'id': job_id, 'poolInfo': {'poolId': pool_id},
                                       'onTaskFailure': 'PerformExitOptionsJobAction'})
    job = raw_json(batch_client, f'/jobs/{job_id}')
    assert list(job) == ['odata.metadata', 'id', 'url', 'eTag', 'lastModified', 'creationTime', 'state',
                         'stateTransitionTime', 'priority', 'maxParallelTasks', 'usesTaskDependencies',
                         'allowTaskPreemption', 'constraints', 'poolInfo', 'executionInfo', 'onAllTasksComplete',
                         'onTaskFailure']
    assert job['constraints'] == {'maxWallClockTime': 'P10675199DT2H48M5.4775807S', 'maxTaskRetryCount': 0}
    assert job['onTaskFailure'] == 'performexitoptionsjobaction'
    assert 'previousState' not in job  # null: not written
    raw(batch_client, 'POST', f'/jobs/{job_id}/tasks', {
        'id': 't1', 'commandLine': "/bin/sh -c 'exit 3'", 'applicationPackageReferences': [{'applicationId': 'MyApp'}],
        'outputFiles': [{'filePattern': '*.txt', 'uploadOptions': {'uploadCondition': 'taskCompletion'},
                         'destination': {'container': {'containerUrl': 'http://127.0.0.1:1/c?sv=x'}}}]})
    created = raw_json(batch_client, f'/jobs/{job_id}/tasks/t1')
    assert list(created)[:7] == ['odata.metadata', 'id', 'url', 'eTag', 'creationTime', 'lastModified', 'state']
    assert created['outputFiles'][0]['uploadOptions'] == {'uploadCondition': 'TaskCompletion'}
    assert created['applicationPackageReferences'] == [{'applicationId': 'myapp'}]
    assert (created['requiredSlots'], created['executionInfo']) == (1, {'retryCount': 0, 'requeueCount': 0})
    assert created['constraints'] == {'maxWallClockTime': 'P10675199DT2H48M5.4775807S', 'retentionTime': 'P7D',
                                      'maxTaskRetryCount': 0}
    validate(created, 'BatchTask')
    wait_for_task(batch_client, job_id, 't1')
    task = raw_json(batch_client, f'/jobs/{job_id}/tasks/t1')
    info = task['executionInfo']
    assert list(info)[:3] == ['startTime', 'endTime', 'exitCode']
    assert list(info).index('result') < list(info).index('retryCount')
    assert info['failureInfo']['category'] == 'UserError'
    assert list(task['nodeInfo']) == ['affinityId', 'nodeUrl', 'poolId', 'nodeId', 'taskRootDirectory',
                                      'taskRootDirectoryUrl']
    batch_client.begin_delete_job(job_id)


def test_a_node_reads_back_without_what_the_service_leaves_out(batch_client, pool_and_job):
    pool_id, job_id = pool_and_job
    batch_client.create_task(job_id, m.BatchTaskCreateOptions(id='warm', command_line='true'))
    wait_for_task(batch_client, job_id, 'warm')
    node = eventually(lambda: raw_json(batch_client, f'/pools/{pool_id}/nodes')['value'], message='a node')[0]
    assert list(node)[:11] == ['id', 'url', 'state', 'schedulingState', 'stateTransitionTime', 'lastBootTime',
                               'allocationTime', 'ipAddress', 'affinityId', 'vmSize', 'totalTasksRun']
    for absent in ('ipv6Address', 'endpointConfiguration', 'eTag', 'lastModified', 'errors'):
        assert absent not in node  # no IPv6 outside dual-stack pools, no inbound NAT pools, nodes have no ETag
    assert node['vmSize'] == 'standard_d2s_v3'
    assert node['nodeAgentInfo']['lastUpdateTime'] == node['lastBootTime']
    assert node['virtualMachineInfo']['imageReference']['exactVersion'] == 'latest'
    counts = raw_json(batch_client, '/nodecounts')['value']
    assert list(next(item for item in counts if item['poolId'] == pool_id)['dedicated']) == [
        'creating', 'deallocated', 'deallocating', 'idle', 'leavingPool', 'offline', 'preempted', 'rebooting',
        'reimaging', 'running', 'starting', 'startTaskFailed', 'unusable', 'unknown', 'upgradingOS',
        'waitingForStartTask', 'total']
