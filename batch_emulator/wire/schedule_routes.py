"""Handlers of the JobSchedules_* operations (and Jobs_ListJobsFromSchedule): operation id -> handler.

Each takes the request's ``Context`` and returns what the service answers with (``results.py``); the adapter
writes it as recorded (recorded-service-behaviour.md §1.2, §4): create 201 with DataServiceId/Location, ETag and
Last-Modified; PUT/PATCH 200 and disable/enable 204 with DataServiceId, ETag and Last-Modified; terminate 202
with the same; DELETE 202 with neither; HEAD 200 with ETag and Last-Modified, or 404. A PUT's body is checked
against what the service asks of it (``checks.py``).
"""

from __future__ import annotations

from batch_emulator.wire.results import Context, Done, Entity, Page, stamped


def _schedule_id(ctx: Context) -> str:
    return ctx.params['jobScheduleId']


async def create_job_schedule(ctx: Context) -> Done:
    schedule = ctx.state.create_job_schedule(ctx.body)
    return Done(schedule.etag, schedule.last_modified, location=f'/jobschedules/{schedule.id}')


async def list_job_schedules(ctx: Context) -> Page:
    return Page(ctx.state.list_job_schedules(), 'jobschedules')


async def get_job_schedule(ctx: Context) -> Entity:
    schedule = ctx.state.get_job_schedule(_schedule_id(ctx))
    return Entity(ctx.state.job_schedule_resource(schedule), 'jobschedules', schedule.etag, schedule.last_modified)


async def job_schedule_exists(ctx: Context) -> Done:
    return stamped(ctx.state.get_job_schedule(_schedule_id(ctx)))  # a 404 without a body (error_response)


async def update_job_schedule(ctx: Context) -> Done:
    return stamped(ctx.state.update_job_schedule(_schedule_id(ctx), ctx.body, replace=False))


async def replace_job_schedule(ctx: Context) -> Done:
    return stamped(ctx.state.update_job_schedule(_schedule_id(ctx), ctx.body, replace=True))


async def disable_job_schedule(ctx: Context) -> Done:
    return stamped(ctx.state.disable_job_schedule(_schedule_id(ctx)))


async def enable_job_schedule(ctx: Context) -> Done:
    return stamped(ctx.state.enable_job_schedule(_schedule_id(ctx)))


async def terminate_job_schedule(ctx: Context) -> Done:
    return stamped(ctx.state.terminate_job_schedule(_schedule_id(ctx)))


async def delete_job_schedule(ctx: Context) -> Done:
    ctx.state.delete_job_schedule(_schedule_id(ctx))
    return Done()


async def list_jobs_from_schedule(ctx: Context) -> Page:
    return Page(ctx.state.list_jobs_of_schedule(_schedule_id(ctx)), 'jobs')


SCHEDULE_HANDLERS: dict = {
    'JobSchedules_ListJobSchedules': list_job_schedules,
    'JobSchedules_CreateJobSchedule': create_job_schedule,
    'JobSchedules_GetJobSchedule': get_job_schedule,
    'JobSchedules_ReplaceJobSchedule': replace_job_schedule,
    'JobSchedules_UpdateJobSchedule': update_job_schedule,
    'JobSchedules_DeleteJobSchedule': delete_job_schedule,
    'JobSchedules_JobScheduleExists': job_schedule_exists,
    'JobSchedules_DisableJobSchedule': disable_job_schedule,
    'JobSchedules_EnableJobSchedule': enable_job_schedule,
    'JobSchedules_TerminateJobSchedule': terminate_job_schedule,
    'Jobs_ListJobsFromSchedule': list_jobs_from_schedule,
}
