"""A request is checked in the service's order: shape and required properties, types and ranges, then whether the
entity exists (404), then its state (409).

Expected answers come from the spec and the recordings, not from the emulator: the spec's body schemas say what
is required and of which type (``BatchJobDisableOptions`` requires ``disableTasks``, one of requeue/terminate/wait;
``BatchPoolEvaluateAutoScaleOptions`` requires ``autoScaleFormula``; ``BatchPoolResizeOptions``'s targets are
int32), the spec's Jobs_DisableJob says a job in any state but active, disabling or disabled answers 409, the
recordings give maxresults=-5 as 400 InvalidQueryParameterValue and a missing pool as 404 PoolNotFound (section 3),
and issue 16 gives the order: the body is refused (400) whether or not the entity it names exists.
"""

from __future__ import annotations

import pytest

from tests.conftest import eventually
from tests.test_emulator import raw

pytestmark = pytest.mark.emulator


def _answer(client, method: str, path: str, body: dict | None = None) -> tuple[int, str | None, str | None]:
    """(status, error code, the PropertyName or QueryParameterName the error names)."""
    response = raw(client, method, path, body)
    if response.status_code < 400:
        return response.status_code, None, None
    error = response.json()
    named = {entry['key']: entry.get('value') for entry in error.get('values') or []}
    return (response.status_code, error['code'],
            named.get('PropertyName') or named.get('QueryParameterName'))


@pytest.fixture
def completed_job(batch_client, pool_and_job) -> str:
    """A job that has been terminated and reads as completed."""
    job_id = pool_and_job[1]
    assert raw(batch_client, 'POST', f'/jobs/{job_id}/terminate', {}).status_code == 202
    eventually(lambda: batch_client.get_job(job_id).state == 'completed', message='job completed')
    return job_id


def test_a_body_without_a_required_property_is_400_even_for_a_missing_job(batch_client, unique_id):
    assert _answer(batch_client, 'POST', f"/jobs/{unique_id('none')}/disable", {}) == \
        (400, 'MissingRequiredProperty', 'disableTasks')


def test_a_missing_required_property_is_400_even_for_a_missing_pool(batch_client, unique_id):
    assert _answer(batch_client, 'POST', f"/pools/{unique_id('none')}/evaluateautoscale", {}) == \
        (400, 'MissingRequiredProperty', 'autoScaleFormula')


def test_a_value_of_the_wrong_type_is_400_on_a_missing_pool(batch_client, unique_id):
    assert _answer(batch_client, 'POST', f"/pools/{unique_id('none')}/resize", {'targetDedicatedNodes': 'many'}) == \
        (400, 'InvalidPropertyValue', 'targetDedicatedNodes')


def test_a_value_outside_its_enum_is_400_on_a_missing_job(batch_client, unique_id):
    assert _answer(batch_client, 'POST', f"/jobs/{unique_id('none')}/disable", {'disableTasks': 'sometimes'}) == \
        (400, 'InvalidPropertyValue', 'disableTasks')


def test_a_list_query_out_of_range_is_400_before_the_pool_is_looked_up(batch_client, unique_id):
    assert _answer(batch_client, 'GET', f"/pools/{unique_id('none')}/nodes?maxresults=-5") == \
        (400, 'InvalidQueryParameterValue', 'maxresults')


def test_a_valid_body_on_a_missing_pool_or_job_is_404(batch_client, unique_id):
    assert _answer(batch_client, 'POST', f"/pools/{unique_id('none')}/resize", {'targetDedicatedNodes': 1}) == \
        (404, 'PoolNotFound', None)
    assert _answer(batch_client, 'POST', f"/pools/{unique_id('none')}/evaluateautoscale",
                   {'autoScaleFormula': '$TargetDedicatedNodes = 1;'}) == (404, 'PoolNotFound', None)
    assert _answer(batch_client, 'POST', f"/jobs/{unique_id('none')}/disable", {'disableTasks': 'requeue'}) == \
        (404, 'JobNotFound', None)


def test_a_bad_body_on_a_job_in_the_wrong_state_is_400_and_a_valid_one_409(batch_client, completed_job):
    assert _answer(batch_client, 'POST', f'/jobs/{completed_job}/disable', {}) == \
        (400, 'MissingRequiredProperty', 'disableTasks')
    assert _answer(batch_client, 'POST', f'/jobs/{completed_job}/disable', {'disableTasks': 'sometimes'}) == \
        (400, 'InvalidPropertyValue', 'disableTasks')
    status, code, _ = _answer(batch_client, 'POST', f'/jobs/{completed_job}/disable', {'disableTasks': 'requeue'})
    assert status == 409, code
    assert batch_client.get_job(completed_job).state == 'completed'  # nothing changed by the refused requests


def test_a_task_collection_too_large_or_without_tasks_is_400_even_for_a_missing_job(batch_client, unique_id):
    """The spec's BatchTaskGroup: ``value`` is required, with at most 100 tasks."""
    tasks = [{'id': f'task-{number}', 'commandLine': 'true'} for number in range(101)]
    assert _answer(batch_client, 'POST', f"/jobs/{unique_id('none')}/addtaskcollection", {'value': tasks}) == \
        (400, 'InvalidPropertyValue', 'value')
    assert _answer(batch_client, 'POST', f"/jobs/{unique_id('none')}/addtaskcollection", {}) == \
        (400, 'MissingRequiredProperty', 'value')
    assert _answer(batch_client, 'POST', f"/jobs/{unique_id('none')}/addtaskcollection", {'value': tasks[:1]}) == \
        (404, 'JobNotFound', None)
