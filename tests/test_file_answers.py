"""Files of a task as a Linux node of the service shows them (recorded by the Go SDK: azbatch TestTask,
TestNode/File): list items, properties and the headers of a file's HEAD and GET; and (.NET
PoolExists) the headers of a HEAD that finds nothing."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest
from azure.batch import models as m

from tests.test_emulator import raw, raw_json, wait_for_task

pytestmark = pytest.mark.emulator


@pytest.fixture
def finished_task(batch_client, pool_and_job) -> tuple[str, str]:
    _, job_id = pool_and_job
    batch_client.create_task(job_id, m.BatchTaskCreateOptions(
        id='answers', command_line="/bin/sh -c 'echo done > $AZ_BATCH_TASK_DIR/task.txt'"))
    wait_for_task(batch_client, job_id, 'answers')
    return job_id, 'answers'


def test_a_listed_directory_has_no_properties_and_a_file_the_linux_ones(batch_client, finished_task):
    job_id, task_id = finished_task
    items = {item['name']: item for item in raw_json(batch_client, f'/jobs/{job_id}/tasks/{task_id}/files')['value']}
    assert items['wd']['isDirectory'] is True and 'properties' not in items['wd']
    properties = items['task.txt']['properties']
    assert sorted(properties) == ['contentLength', 'contentType', 'fileMode', 'lastModified']  # no creationTime
    assert (properties['contentLength'], properties['contentType']) == ('5', 'text/plain')
    assert re.fullmatch(r'0o100[0-7]{3}', properties['fileMode'])


@pytest.mark.parametrize('method', ['HEAD', 'GET'])
def test_a_file_answer_carries_the_services_headers(batch_client, finished_task, method):
    job_id, task_id = finished_task
    response = raw(batch_client, method, f'/jobs/{job_id}/tasks/{task_id}/files/task.txt')
    assert response.status_code == 200
    headers = response.headers
    assert headers['Content-Type'] == 'text/plain'
    assert headers['DataServiceVersion'] == '3.0' and headers['request-id']
    assert headers['ocp-batch-file-isdirectory'] == 'False'
    assert re.fullmatch(r'0o100[0-7]{3}', headers['ocp-batch-file-mode'])
    assert 'ocp-creation-time' not in headers and 'ETag' not in headers
    url = headers['ocp-batch-file-url']
    assert '/' not in url and unquote(url).endswith(f'/jobs/{job_id}/tasks/{task_id}/files/task.txt')
    if method == 'GET':
        assert response.text() == 'done\n'


@pytest.mark.parametrize('path', ['/pools/no-such-pool', '/jobs/{job}/tasks/{task}/files/no-such-file.txt'])
def test_a_head_that_finds_nothing_answers_404_with_the_services_headers(batch_client, finished_task, path):
    """Recorded (.NET PoolExists: HEAD of a deleted pool): 404, no body, DataServiceVersion and request-id
    as on every answer of the service, no Content-Type."""
    job_id, task_id = finished_task
    response = raw(batch_client, 'HEAD', path.format(job=job_id, task=task_id))
    assert response.status_code == 404
    assert response.headers.get('DataServiceVersion') == '3.0' and response.headers.get('request-id')
    assert 'Content-Type' not in response.headers and response.text() == ''
