"""A task's body is written once per change and kept until the next (batch_emulator/wire/bodies.py): whatever form
a client read it in before (a GET, a list page, with $select, through a $filter), it reads the change after."""

from __future__ import annotations

from urllib.parse import quote

from tests.test_emulator import _pool, raw, raw_json


def _without_metadata(body: dict) -> dict:
    return {key: value for key, value in body.items() if key != 'odata.metadata'}


def _forms(client, job_id: str, task_id: str) -> dict:
    task, tasks = f'/jobs/{job_id}/tasks/{task_id}', f'/jobs/{job_id}/tasks'
    active, completed = quote("state eq 'active'"), quote("state eq 'completed'")
    return {
        'get': _without_metadata(raw_json(client, task)),
        'get selected': _without_metadata(raw_json(client, f'{task}?$select=id,eTag,state,constraints')),
        'list': raw_json(client, tasks)['value'],
        'list selected': raw_json(client, f'{tasks}?$select=id,state')['value'],
        'active': raw_json(client, f'{tasks}?$filter={active}')['value'],
        'completed': raw_json(client, f'{tasks}?$filter={completed}')['value'],
    }


def test_a_changed_task_reads_back_changed_in_every_form_it_was_read_in(batch_client, unique_id):
    pool_id, job_id, task_id = unique_id('wire'), unique_id('wire'), 'kept'
    assert raw(batch_client, 'POST', '/pools', _pool(pool_id)).status_code == 201  # no nodes: the task waits
    try:
        assert raw(batch_client, 'POST', '/jobs', {'id': job_id, 'poolInfo': {'poolId': pool_id}}).status_code == 201
        assert raw(batch_client, 'POST', f'/jobs/{job_id}/tasks',
                   {'id': task_id, 'commandLine': 'true'}).status_code == 201
        before = _forms(batch_client, job_id, task_id)
        assert before['get']['state'] == 'active' and before['get']['constraints']['maxTaskRetryCount'] == 0
        assert before['list'] == [before['get']]
        assert before['list selected'] == [{'id': task_id, 'state': 'active'}]
        assert [t['id'] for t in before['active']] == [task_id] and before['completed'] == []

        # A change asked for (new constraints: a new ETag), then one the task goes through (terminated).
        replaced = raw(batch_client, 'PUT', f'/jobs/{job_id}/tasks/{task_id}',
                       {'constraints': {'maxTaskRetryCount': 2}})
        assert replaced.status_code == 200
        changed = _forms(batch_client, job_id, task_id)
        assert changed['get']['eTag'] == replaced.headers['ETag'] != before['get']['eTag']
        assert changed['get']['constraints']['maxTaskRetryCount'] == 2
        assert changed['get selected'] == {key: changed['get'][key] for key in ('id', 'eTag', 'state', 'constraints')}
        assert changed['list'] == [changed['get']] and changed['active'] == [changed['get']]

        assert raw(batch_client, 'POST', f'/jobs/{job_id}/tasks/{task_id}/terminate').status_code == 204
        ended = _forms(batch_client, job_id, task_id)
        assert ended['get']['state'] == 'completed' and ended['get']['executionInfo']['result'] == 'failure'
        assert ended['get selected']['state'] == 'completed'
        assert ended['list'] == [ended['get']] and ended['completed'] == [ended['get']] and ended['active'] == []
        assert ended['list selected'] == [{'id': task_id, 'state': 'completed'}]
    finally:
        raw(batch_client, 'DELETE', f'/jobs/{job_id}')
        raw(batch_client, 'DELETE', f'/pools/{pool_id}')
