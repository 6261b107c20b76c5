"""Handlers of the job and task operations: operation id -> handler.

Each takes the request's ``Context`` and returns what the service answers with (``results.py``); the adapter
writes the status the spec lists: creates 201, addtaskcollection 200, a job delete 202 (then the job reads as
``deleting`` until it is gone), a task delete 200, task terminate/reactivate 204.
"""

from __future__ import annotations

from batch_emulator.common.errors import BatchServiceError
from batch_emulator.contract.schema import conform
from batch_emulator.wire.results import Body, Context, Done, Entity, KeptEntity, KeptPage, Page, stamped

# ----- jobs ----------------------------------------------------------------------------------

async def create_job(ctx: Context) -> Done:
    job = ctx.state.create_job(ctx.body)
    # Recorded (section 6.1): DataServiceId and Location name .../jobs/job-1, whatever the job's id (recorded.py).
    return Done(job.etag, job.last_modified, location=f'/jobs/{job.id}')


async def list_jobs(ctx: Context) -> Page:
    return Page(ctx.state.list_jobs(), 'jobs')


async def get_job(ctx: Context) -> Entity:
    job = ctx.state.get_job(ctx.params['jobId'])
    return Entity(ctx.state.job_resource(job), 'jobs', job.etag, job.last_modified)


async def update_job(ctx: Context) -> Done:
    return stamped(ctx.state.update_job(ctx.params['jobId'], ctx.body))


async def replace_job(ctx: Context) -> Done:
    return stamped(ctx.state.update_job(ctx.params['jobId'], ctx.body, replace=True))


async def delete_job(ctx: Context) -> Done:
    ctx.state.delete_job(ctx.params['jobId'])
    return Done()


async def terminate_job(ctx: Context) -> Done:
    ctx.state.terminate_job(ctx.params['jobId'], ctx.body.get('terminateReason'))  # the body is optional
    return _job_acted(ctx)


async def disable_job(ctx: Context) -> Done:
    ctx.state.disable_job(ctx.params['jobId'], ctx.body.get('disableTasks'))
    return _job_acted(ctx)


async def enable_job(ctx: Context) -> Done:
    ctx.state.enable_job(ctx.params['jobId'])
    return _job_acted(ctx)


def _job_acted(ctx: Context) -> Done:
    """A job action's answer carries the job's ETag and Last-Modified (as recorded)."""
    return stamped(ctx.state.get_job(ctx.params['jobId']))


async def get_task_counts(ctx: Context) -> Entity:
    return Entity(ctx.state.task_counts(ctx.params['jobId']), 'taskcountsresult')


async def list_preparation_and_release_status(ctx: Context) -> Page:
    state = ctx.state
    job = state.get_job(ctx.params['jobId'])
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
    return Page(items, 'jobpreparationandreleasetaskstatuslist')


# ----- tasks ---------------------------------------------------------------------------------

async def create_task(ctx: Context) -> Done:
    task = ctx.state.add_task(ctx.params['jobId'], ctx.body)
    return Done(task.etag, task.last_modified, location=f'/jobs/{task.job_id}/tasks/{task.id}')


_TASK_SCHEMA = {'$ref': '#/definitions/BatchTaskCreateOptions'}


async def add_task_collection(ctx: Context) -> Body:
    """Each task is parsed on its own (the body as sent, ``checks.py``): one bad task is one clienterror."""
    results = ctx.state.add_task_collection(ctx.params['jobId'], ctx.body.get('value'),
                                            parse=lambda task: conform(task, _TASK_SCHEMA))
    return Body({'value': results}, 'taskaddresult')


async def list_tasks(ctx: Context) -> KeptPage:
    job = ctx.state.get_job(ctx.params['jobId'])
    return KeptPage(list(job.tasks.values()), ctx.state.task_resource, 'tasks', ctx.state.task_property)


async def get_task(ctx: Context) -> KeptEntity:
    _, task = ctx.state.get_task(ctx.params['jobId'], ctx.params['taskId'])
    return KeptEntity(task, ctx.state.task_resource, 'tasks')


async def list_subtasks(ctx: Context) -> Body:
    """A multi-instance task's subtasks (ids 1 .. n-1; the primary is the task itself); none for other tasks."""
    _, task = ctx.state.get_task(ctx.params['jobId'], ctx.params['taskId'])
    return Body({'value': task.subtasks}, 'subtaskinfo')


async def replace_task(ctx: Context) -> Done:
    return stamped(ctx.state.replace_task(ctx.params['jobId'], ctx.params['taskId'], ctx.body))


async def delete_task(ctx: Context) -> Done:
    ctx.state.delete_task(ctx.params['jobId'], ctx.params['taskId'])
    return Done()


async def terminate_task(ctx: Context) -> Done:
    ctx.state.terminate_task(ctx.params['jobId'], ctx.params['taskId'])
    return stamped(ctx.state.get_task(ctx.params['jobId'], ctx.params['taskId'])[1])


async def reactivate_task(ctx: Context) -> Done:
    ctx.state.reactivate_task(ctx.params['jobId'], ctx.params['taskId'])
    return stamped(ctx.state.get_task(ctx.params['jobId'], ctx.params['taskId'])[1])  # no DataServiceId


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
