"""Each served api-version is answered in its own shapes (batch_emulator/contract/versions.py), over raw signed HTTP.

The names are the ones each version's SDK sends and reads: azure-batch 4.1.3 (2018-03-01.6.1) calls
``GET /nodeagentskus`` and sends ResourceFile ``blobSource``; 2024-07-01.20.0 has no
``taskSchedulingPolicy.jobDefaultOrder``.
"""

from __future__ import annotations

import json

import pytest

from tests.hostile import send

pytestmark = pytest.mark.emulator

OLD = 'api-version=2018-03-01.6.1'
CURRENT = 'api-version=2025-06-01'


def _pool(pool_id: str) -> bytes:
    return json.dumps({
        'id': pool_id, 'vmSize': 'standard_d2s_v3', 'targetDedicatedNodes': 0,
        'virtualMachineConfiguration': {'imageReference': {'publisher': 'canonical', 'offer': 'ubuntu-24_04-lts',
                                                           'sku': 'server'},
                                        'nodeAgentSKUId': 'batch.node.ubuntu 24.04'},
        'startTask': {'commandLine': '/bin/true', 'resourceFiles': [
            {'blobSource': 'http://127.0.0.1:1/container/input.txt', 'filePath': 'input.txt'}]}}).encode()


def test_list_node_agent_skus_answers_at_the_versions_that_had_it(emulator):
    answer = send(emulator.endpoint, 'GET', f'/nodeagentskus?{OLD}')
    assert answer.status == 200, answer.body
    body = answer.json()
    assert body['odata.metadata'].endswith('$metadata#nodeagentskus')
    skus = {sku['id']: sku for sku in body['value']}
    ubuntu = skus['batch.node.ubuntu 24.04']
    assert ubuntu['osType'] == 'linux'
    assert {'publisher': 'canonical', 'offer': 'ubuntu-24_04-lts', 'sku': 'server', 'version': 'latest'} in \
        ubuntu['verifiedImageReferences']
    # Removed in 2019-06-01.9.0 (ListSupportedImages replaced it): unknown there and in the current version.
    for version in ('2019-06-01.9.0', '2025-06-01'):
        answer = send(emulator.endpoint, 'GET', f'/nodeagentskus?api-version={version}')
        assert (answer.status, answer.code) == (400, 'InvalidUri'), version


def test_an_operation_added_later_is_unknown_to_an_older_version(emulator):
    answer = send(emulator.endpoint, 'GET', f'/supportedimages?{OLD}')
    assert (answer.status, answer.code) == (400, 'InvalidUri')
    assert send(emulator.endpoint, 'GET', '/supportedimages?api-version=2019-06-01.9.0').status == 200


def test_resource_files_keep_their_versions_names(emulator, unique_id):
    pool_id = unique_id('oldpool')
    created = send(emulator.endpoint, 'POST', f'/pools?{OLD}', _pool(pool_id))
    assert created.status == 201, created.body
    try:
        old = send(emulator.endpoint, 'GET', f'/pools/{pool_id}?{OLD}').json()
        assert old['startTask']['resourceFiles'] == [
            {'blobSource': 'http://127.0.0.1:1/container/input.txt', 'filePath': 'input.txt'}]
        current = send(emulator.endpoint, 'GET', f'/pools/{pool_id}?{CURRENT}').json()
        assert current['startTask']['resourceFiles'] == [
            {'httpUrl': 'http://127.0.0.1:1/container/input.txt', 'filePath': 'input.txt'}]
        # Properties 2018-03-01.6.1 does not have are not in its answers (taskSlotsPerNode came in 2020-09-01.12.0).
        assert 'taskSlotsPerNode' in current and 'taskSlotsPerNode' not in old
    finally:
        send(emulator.endpoint, 'DELETE', f'/pools/{pool_id}?{CURRENT}')


def test_job_default_order_is_not_in_2024_07_01_answers(emulator, unique_id):
    pool_id = unique_id('orderpool')
    body = json.loads(_pool(pool_id))
    del body['startTask']
    body['taskSchedulingPolicy'] = {'nodeFillType': 'pack'}
    assert send(emulator.endpoint, 'POST', f'/pools?{CURRENT}', json.dumps(body).encode()).status == 201
    try:
        current = send(emulator.endpoint, 'GET', f'/pools/{pool_id}?{CURRENT}').json()
        older = send(emulator.endpoint, 'GET', f'/pools/{pool_id}?api-version=2024-07-01.20.0').json()
        assert 'jobDefaultOrder' in current['taskSchedulingPolicy']
        assert older['taskSchedulingPolicy'] == {'nodeFillType': 'Pack'}
    finally:
        send(emulator.endpoint, 'DELETE', f'/pools/{pool_id}?{CURRENT}')


def test_task_counts_before_task_slots_are_the_counts_themselves(emulator, unique_id):
    job_id = unique_id('countjob')
    job = json.dumps({'id': job_id, 'poolInfo': {'poolId': 'no-such-pool'}}).encode()
    assert send(emulator.endpoint, 'POST', f'/jobs?{CURRENT}', job).status == 201
    try:
        old = send(emulator.endpoint, 'GET', f'/jobs/{job_id}/taskcounts?{OLD}').json()
        assert {key: old[key] for key in ('active', 'running', 'completed', 'succeeded', 'failed')} == \
            {'active': 0, 'running': 0, 'completed': 0, 'succeeded': 0, 'failed': 0}
        assert 'taskCounts' not in old
        assert 'taskCounts' in send(emulator.endpoint, 'GET', f'/jobs/{job_id}/taskcounts?{CURRENT}').json()
    finally:
        send(emulator.endpoint, 'DELETE', f'/jobs/{job_id}?{CURRENT}')


def test_every_served_older_version_has_its_derived_contract():
    from batch_emulator.contract import versions
    from batch_emulator.wire.server import SUPPORTED_API_VERSIONS

    table = versions.table()
    assert table['current'] == SUPPORTED_API_VERSIONS[0]
    assert set(table['versions']) == set(SUPPORTED_API_VERSIONS[1:])
    # What the SDKs of those versions show: 4.1.3 sends blobSource, 6.0.1 (2018-12-01.8.0) httpUrl; the
    # node agent SKU list went away in 2019-06-01.9.0 when the supported images came.
    assert table['versions']['2018-08-01.7.0']['renamed'] == {'httpUrl': 'blobSource'}
    assert table['versions']['2018-12-01.8.0']['renamed'] == {}
    assert 'GET /nodeagentskus' in table['versions']['2018-12-01.8.0']['operations_extra']
    assert 'GET /nodeagentskus' not in table['versions']['2019-06-01.9.0']['operations_extra']
