"""Handlers of the JobSchedules_* operations (and Jobs_ListJobsFromSchedule): operation id -> handler.

Status codes and headers as recorded (recorded-service-behaviour.md §1.2, §4): create 201 with
DataServiceId/Location, ETag and Last-Modified; PUT/PATCH 200 and disable/enable 204 with
DataServiceId, ETag and Last-Modified; terminate 202 with the same; DELETE 202 with neither;
HEAD 200 with ETag and Last-Modified, or 404.
"""

from __future__ import annotations

from aiohttp import web

from batch_emulator.contract.schema import conform, resolve
from batch_emulator.service.state import BatchState
from batch_emulator.wire.respond import entity_response, list_response, read_body, state_of
from batch_emulator.wire.server import SETTINGS, json_response


def _state(request: web.Request) -> BatchState:
    return state_of(request)


def _schedule_id(request: web.Request) -> str:
    return request.match_info['jobScheduleId']


def _replace_schema() -> dict:
    """PUT sends a BatchJobSchedule, whose read-only parts (id, url, eTag, state...) the spec marks required:
    the service asks only for what it replaces with."""
    return {**resolve({'$ref': '#/definitions/BatchJobSchedule'}), 'required': ['jobSpecification']}


def _stamped(request: web.Request, schedule, status: int) -> web.Response:
    return json_response(request, None, status=status, etag=schedule.etag,
                                   last_modified=schedule.last_modified, acted=True)


async def create_job_schedule(request: web.Request) -> web.Response:
    schedule = _state(request).create_job_schedule(await read_body(request))
    return json_response(request, None, status=201, etag=schedule.etag, last_modified=schedule.last_modified,
                                location=f"{request.app[SETTINGS]['base_url']}/jobschedules/{schedule.id}")


async def list_job_schedules(request: web.Request) -> web.Response:
    return list_response(request, _state(request).list_job_schedules(), 'jobschedules')


async def get_job_schedule(request: web.Request) -> web.Response:
    state = _state(request)
    schedule = state.get_job_schedule(_schedule_id(request))
    return entity_response(request, state.job_schedule_resource(schedule), 'jobschedules',
                                      schedule.etag, schedule.last_modified)


async def job_schedule_exists(request: web.Request) -> web.Response:
    schedule = _state(request).get_job_schedule(_schedule_id(request))  # a 404 without a body (error_response)
    return json_response(request, None, etag=schedule.etag, last_modified=schedule.last_modified)


async def update_job_schedule(request: web.Request) -> web.Response:
    body = await read_body(request)
    schedule = _state(request).update_job_schedule(_schedule_id(request), body, replace=False)
    return _stamped(request, schedule, 200)


async def replace_job_schedule(request: web.Request) -> web.Response:
    body = conform(await read_body(request, parse=False), _replace_schema())
    schedule = _state(request).update_job_schedule(_schedule_id(request), body, replace=True)
    return _stamped(request, schedule, 200)


async def disable_job_schedule(request: web.Request) -> web.Response:
    return _stamped(request, _state(request).disable_job_schedule(_schedule_id(request)), 204)


async def enable_job_schedule(request: web.Request) -> web.Response:
    return _stamped(request, _state(request).enable_job_schedule(_schedule_id(request)), 204)


async def terminate_job_schedule(request: web.Request) -> web.Response:
    return _stamped(request, _state(request).terminate_job_schedule(_schedule_id(request)), 202)


async def delete_job_schedule(request: web.Request) -> web.Response:
    _state(request).delete_job_schedule(_schedule_id(request))
    return json_response(request, None, status=202)


async def list_jobs_from_schedule(request: web.Request) -> web.Response:
    return list_response(request, _state(request).list_jobs_of_schedule(_schedule_id(request)), 'jobs')


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
