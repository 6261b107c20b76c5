"""Runs inside an old azure-batch's own venv (tests/test_sdk_eras.py): one tutorial-shaped run, unmodified SDK calls.

    python sdk_era_client.py ENDPOINT ACCOUNT KEY BLOB_URL PREFIX

Lists the images (list_node_agent_skus before 9.0, list_supported_images after), creates a pool whose
start task downloads BLOB_URL (blobSource before 6.0, httpUrl after), a job, two tasks with
add_collection, waits for them, lists them and their files, reads a task's stdout, deletes the job
and the pool. Prints what it saw as one JSON line. Stdlib and the SDK only: it runs on the old venv.
"""

from __future__ import annotations

import json
import sys
import time

import azure.batch.models as m
from azure.batch import BatchServiceClient
from azure.batch.batch_auth import SharedKeyCredentials

endpoint, account, key, blob_url, prefix = sys.argv[1:6]
credentials = SharedKeyCredentials(account, key)
try:
    client = BatchServiceClient(credentials, batch_url=endpoint)
except TypeError:  # before 5.0 the endpoint was base_url
    client = BatchServiceClient(credentials, base_url=endpoint)
seen: dict = {'api_version': client.api_version}

if hasattr(client.account, 'list_node_agent_skus'):
    skus = list(client.account.list_node_agent_skus())
    seen['images'] = sorted(f'{image.publisher}:{image.offer}:{image.sku}|{sku.id}' for sku in skus
                            for image in sku.verified_image_references)
else:
    seen['images'] = sorted(f'{image.image_reference.publisher}:{image.image_reference.offer}:'
                            f'{image.image_reference.sku}|{image.node_agent_sku_id}'
                            for image in client.account.list_supported_images())


def resource_file(url: str, path: str) -> m.ResourceFile:
    fields = m.ResourceFile._attribute_map
    return m.ResourceFile(file_path=path, **({'http_url': url} if 'http_url' in fields else {'blob_source': url}))


pool_id, job_id = f'{prefix}-pool', f'{prefix}-job'
client.pool.add(m.PoolAddParameter(
    id=pool_id, vm_size='STANDARD_D2S_V3', target_dedicated_nodes=1,
    virtual_machine_configuration=m.VirtualMachineConfiguration(
        image_reference=m.ImageReference(publisher='canonical', offer='ubuntu-24_04-lts', sku='server'),
        node_agent_sku_id='batch.node.ubuntu 24.04'),
    start_task=m.StartTask(command_line='/bin/sh -c "cp input.txt $AZ_BATCH_NODE_SHARED_DIR/"',
                           resource_files=[resource_file(blob_url, 'input.txt')], wait_for_success=True)))
pool = client.pool.get(pool_id)
stored = pool.start_task.resource_files[0]
seen['pool_resource_file'] = {name: getattr(stored, name, None) for name in ('blob_source', 'http_url', 'file_path')}

client.job.add(m.JobAddParameter(id=job_id, pool_info=m.PoolInformation(pool_id=pool_id)))
tasks = [m.TaskAddParameter(id=f'task{number}', command_line=f'/bin/sh -c "cat input.txt; echo task{number}"',
                            resource_files=[resource_file(blob_url, 'input.txt')]) for number in (1, 2)]
added = client.task.add_collection(job_id, tasks)
seen['added'] = sorted((result.task_id, str(result.status).rsplit('.', 1)[-1]) for result in added.value)

deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    listed = list(client.task.list(job_id))
    if listed and all(str(task.state).endswith('completed') for task in listed):
        break
    time.sleep(0.2)
seen['tasks'] = sorted((task.id, str(task.state).rsplit('.', 1)[-1], task.execution_info.exit_code)
                       for task in client.task.list(job_id))
seen['files'] = sorted(node_file.name for node_file in client.file.list_from_task(job_id, 'task1'))
seen['stdout'] = b''.join(client.file.get_from_task(job_id, 'task1', 'stdout.txt')).decode()

client.job.delete(job_id)
client.pool.delete(pool_id)
seen['pool_deleting'] = str(client.pool.get(pool_id).state).rsplit('.', 1)[-1] if client.pool.exists(pool_id) \
    else 'gone'
print(json.dumps(seen))
