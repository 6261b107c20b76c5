"""Handlers of the job and task operations: operation id -> handler.

Status codes are the service's, checked exactly by the SDK: creates 201, addtaskcollection 200, a job delete 202
(then the job reads as ``deleting`` until it is gone), a task delete 200, task terminate/reactivate 204.
"""

from __future__ import annotations

from aiohttp import web

from batch_emulator.common.errors import BatchServiceError
from batch_emulator.contract.schema import conform
from batch_emulator.wire.respond import (
    MAX_TASK_COLLECTION_BYTES,
    entities_list_response,
    entity_response,
    kept_entity_response,
    list_response,
    odata_metadata,
    read_body,
    state_of,
    writer,
)
from batch_emulator.wire.server import (
    SETTINGS,
    json_response,
)

# ----- jobs ----------------------------------------------------------------------------------

async def create_job(request: web.Request) -> web.Response:
    job = state_of(request).create_job(await read_body(request))
    # Recorded (section 6.1): DataServiceId and Location name .../jobs/job-1, whatever the job's id.
    return json_response(request, None, status=201, etag=job.etag, last_modified=job.last_modified,
                         location=f"{request.app[SETTINGS]['base_url']}/jobs/job-1")


async def list_jobs(request: web.Request) -> web.Response:
    return list_response(request, state_of(request).list_jobs(), 'jobs')


async def get_job(request: web.Request) -> web.Response:
    state = state_of(request)
    job = state.get_job(request.match_info['jobId'])
    return entity_response(request, state.job_resource(job), 'jobs', job.etag, job.last_modified)


async def update_job(request: web.Request) -> web.Response:
    job = state_of(request).update_job(request.match_info['jobId'], await read_body(request))
    return json_response(request, None, etag=job.etag, last_modified=job.last_modified, acted=True)


async def replace_job(request: web.Request) -> web.Response:
    job = state_of(request).update_job(request.match_info['jobId'], await read_body(request), replace=True)
    return json_response(request, None, etag=job.etag, last_modified=job.last_modified, acted=True)


async def delete_job(request: web.Request) -> web.Response:
    state_of(request).delete_job(request.match_info['jobId'])
    return json_response(request, None, status=202)


async def terminate_job(request: web.Request) -> web.Response:
    body = await read_body(request) if request.can_read_body and request.content_length else {}
    state_of(request).terminate_job(request.match_info['jobId'], body.get('terminateReason'))
    return _job_acted(request)


async def disable_job(request: web.Request) -> web.Response:
    body = await read_body(request)
    state_of(request).disable_job(request.match_info['jobId'], body.get('disableTasks'))
    return _job_acted(request)


async def enable_job(request: web.Request) -> web.Response:
    state_of(request).enable_job(request.match_info['jobId'])
    return _job_acted(request)


def _job_acted(request: web.Request) -> web.Response:
    """202 for a job action, with DataServiceId, ETag and Last-Modified (as recorded)."""
    job = state_of(request).get_job(request.match_info['jobId'])
    return json_response(request, None, status=202, etag=job.etag, last_modified=job.last_modified, acted=True)


async def get_task_counts(request: web.Request) -> web.Response:
    return entity_response(request, state_of(request).task_counts(request.match_info['jobId']), 'taskcountsresult')


async def list_preparation_and_release_status(request: web.Request) -> web.Response:
    state = state_of(request)
    job = state.get_job(request.match_info['jobId'])
    if not job.spec.get('jobPreparationTask') and not job.spec.get('jobReleaseTask'):
        raise BatchServiceError('JobPreparationTaskOrReleaseTaskNotSpecified')
    pool = state.pools.get(job.pool_id.lower())
    items = []
    for node in (pool.nodes.values() if pool else []):
        status = node.prepared_jobs.get(job.id)
        if status:
            item = {'poolId': pool.id, 'nodeId': node.id,
                    'nodeUrl': f'{state.base_url}/pools/{pool.id}/nodes/{node.id}',
                    'jobPreparationTaskExecutionInfo': status['preparation']}
            if 'release' in status:
                item['jobReleaseTaskExecutionInfo'] = status['release']
            items.append(item)
    return list_response(request, items, 'jobpreparationandreleasetaskstatuslist')


# ----- tasks ---------------------------------------------------------------------------------

async def create_task(request: web.Request) -> web.Response:
    job_id = request.match_info['jobId']
    task = state_of(request).add_task(job_id, await read_body(request))
    return json_response(request, None, status=201, etag=task.etag, last_modified=task.last_modified,
                         location=f"{request.app[SETTINGS]['base_url']}/jobs/{task.job_id}/tasks/{task.id}")


_TASK_SCHEMA = {'$ref': '#/definitions/BatchTaskCreateOptions'}


async def add_task_collection(request: web.Request) -> web.Response:
    body = await read_body(request, MAX_TASK_COLLECTION_BYTES, parse=False)  # each task is parsed on its own:
    results = state_of(request).add_task_collection(                         # one bad task is one clienterror
        request.match_info['jobId'], body.get('value'), parse=lambda task: conform(task, _TASK_SCHEMA))
    return json_response(request, {'odata.metadata': odata_metadata(request, 'taskaddresult', element=False),
                                   'value': results})


async def list_tasks(request: web.Request) -> web.Response:
    state = state_of(request)
    job = state.get_job(request.match_info['jobId'])
    return entities_list_response(request, list(job.tasks.values()), state.task_resource, 'tasks',
                                   state.task_property)


async def get_task(request: web.Request) -> web.Response:
    state = state_of(request)
    _, task = state.get_task(request.match_info['jobId'], request.match_info['taskId'])
    return kept_entity_response(request, task, state.task_resource, 'tasks')


async def list_subtasks(request: web.Request) -> web.Response:
    """A multi-instance task's subtasks (ids 1 .. n-1; the primary is the task itself); none for other tasks."""
    _, task = state_of(request).get_task(request.match_info['jobId'], request.match_info['taskId'])
    body = {'odata.metadata': odata_metadata(request, 'subtaskinfo', element=False), 'value': task.subtasks}
    return json_response(request, writer(request)(body))  # odata.* annotations are kept by the writer


async def replace_task(request: web.Request) -> web.Response:
    body = await read_body(request)
    task = state_of(request).replace_task(request.match_info['jobId'], request.match_info['taskId'], body)
    return json_response(request, None, etag=task.etag, last_modified=task.last_modified, acted=True)


async def delete_task(request: web.Request) -> web.Response:
    state_of(request).delete_task(request.match_info['jobId'], request.match_info['taskId'])
    return json_response(request, None, status=200)


async def terminate_task(request: web.Request) -> web.Response:
    state = state_of(request)
    state.terminate_task(request.match_info['jobId'], request.match_info['taskId'])
    _, task = state.get_task(request.match_info['jobId'], request.match_info['taskId'])
    return json_response(request, None, status=204, etag=task.etag, last_modified=task.last_modified, acted=True)


async def reactivate_task(request: web.Request) -> web.Response:
    state = state_of(request)
    state.reactivate_task(request.match_info['jobId'], request.match_info['taskId'])
    _, task = state.get_task(request.match_info['jobId'], request.match_info['taskId'])
    return json_response(request, None, status=204, etag=task.etag, last_modified=task.last_modified)  # no id


JOB_HANDLERS = {  # operation id of the spec -> handler
    'Jobs_CreateJob': create_job,
    'Jobs_ListJobs': list_jobs,
    'Jobs_GetJob': get_job,
    'Jobs_UpdateJob': update_job,
    'Jobs_ReplaceJob': replace_job,
    'Tasks_ListSubTasks': list_subtasks,
    'Tasks_ReplaceTask': replace_task,
    'Jobs_DeleteJob': delete_job,
    'Jobs_TerminateJob': terminate_job,
    'Jobs_DisableJob': disable_job,
    'Jobs_EnableJob': enable_job,
    'Jobs_GetJobTaskCounts': get_task_counts,
    'Jobs_ListJobPreparationAndReleaseTaskStatus': list_preparation_and_release_status,
    'Tasks_CreateTaskCollection': add_task_collection,
    'Tasks_CreateTask': create_task,
    'Tasks_ListTasks': list_tasks,
    'Tasks_GetTask': get_task,
    'Tasks_DeleteTask': delete_task,
    'Tasks_TerminateTask': terminate_task,
    'Tasks_ReactivateTask': reactivate_task,
}
