"""State sequences as the real service goes through them (recorded-service-behaviour.md section 4):
which states follow an action, which timestamps move, and which changes leave the ETag alone.

States that last one node step (a pool ``resizing`` or ``stopping``, a node ``rebooting`` or ``starting``)
are read on an emulator run in this process whose node steps the test holds and lets go one at a time:
what is read between two steps does not depend on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import threading
import types
from collections.abc import Iterator

import pytest
from aiohttp import web

from tests.conftest import eventually
from tests.hostile import batch_client_for
from tests.test_emulator import _pool, create_pool, raw, raw_json, wait_for_nodes, wait_for_task

pytestmark = pytest.mark.filterwarnings('ignore:It is recommended to use web.RequestKey')  # the emulator's, here

STEP_SECONDS = 0.0371  # the emulator's node step: only the scheduler's sleeps of exactly this are held


class Steps:
    """The scheduler's node steps, held by the test: ``hold()``, then each ``step()`` lets the steps that are
    waiting end (one step of every node and pool), ``release()`` lets them all run freely again."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.held = False
        self.generation = 0
        self.changed = asyncio.Event()
        self.waiting = 0

    async def sleep(self, seconds: float, *args, **kwargs) -> None:
        if seconds != STEP_SECONDS or not self.held:
            return await asyncio.sleep(seconds, *args, **kwargs)
        started = self.generation
        self.waiting += 1
        try:
            while self.held and self.generation == started:
                self.changed.clear()
                await self.changed.wait()
        finally:
            self.waiting -= 1

    def _in_loop(self, change) -> None:
        async def apply() -> None:  # in the emulator's loop, not this thread
            change()
            self.changed.set()
        asyncio.run_coroutine_threadsafe(apply(), self.loop).result(30)

    def hold(self) -> None:
        self._in_loop(lambda: setattr(self, 'held', True))

    def step(self) -> None:
        """Ends the steps under way (after waiting until one is: the action's own step)."""
        eventually(lambda: self.waiting > 0, message='a node step under way')
        self._in_loop(lambda: setattr(self, 'generation', self.generation + 1))

    def release(self) -> None:
        self._in_loop(lambda: setattr(self, 'held', False))


@pytest.fixture(scope='module')
def stepped(tmp_path_factory) -> Iterator[tuple[object, Steps]]:
    """(a Batch client, the emulator's steps): the emulator served over HTTP from a thread of this process."""
    from batch_emulator import create_app
    from batch_emulator.runtime import pool_nodes, processes, scheduler
    from batch_emulator.wire import server
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    steps = Steps(loop)
    with pytest.MonkeyPatch.context() as patch:
        held = types.SimpleNamespace(**{**vars(asyncio), 'sleep': steps.sleep})
        patch.setattr(scheduler, 'asyncio', held)  # the scheduler's steps and its nodes' (pool_nodes)
        patch.setattr(pool_nodes, 'asyncio', held)
        patch.setattr(processes, 'become_subreaper', lambda: False)  # pytest's process stays as it is

        async def start() -> tuple[web.AppRunner, str]:
            app = create_app(data_dir=str(tmp_path_factory.mktemp('stepped')), node_step_seconds=STEP_SECONDS)
            runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await runner.setup()
            site = web.TCPSite(runner, '127.0.0.1', 0)
            await site.start()
            endpoint = f'http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}'
            server.set_base_url(app, endpoint)
            return runner, endpoint

        runner, endpoint = asyncio.run_coroutine_threadsafe(start(), loop).result(60)
        try:
            yield batch_client_for(endpoint), steps
        finally:
            steps.release()
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(60)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(60)
            loop.close()


def test_a_pool_is_created_resized_stopped_and_deleted_as_recorded(stepped, unique_id):
    batch, steps = stepped
    pool_id = unique_id('sequence')
    steps.hold()
    try:
        created = raw(batch, 'POST', '/pools', _pool(pool_id))
        pool = raw_json(batch, f'/pools/{pool_id}')
        assert (pool['state'], pool['allocationState']) == ('active', 'resizing')
        assert pool['stateTransitionTime'] == pool['creationTime']
        assert pool['eTag'] == created.headers['ETag']
        steps.step()
        steady = eventually(lambda: (body := raw_json(batch, f'/pools/{pool_id}'))['allocationState'] == 'steady'
                            and body, message='steady')
        assert steady['eTag'] == pool['eTag']  # allocation-state changes touch neither ETag nor lastModified
        assert steady['allocationStateTransitionTime'] > pool['allocationStateTransitionTime']

        resized = raw(batch, 'POST', f'/pools/{pool_id}/resize', {'targetDedicatedNodes': 2})
        assert resized.status_code == 202 and resized.headers['ETag'] != pool['eTag']
        resizing = raw_json(batch, f'/pools/{pool_id}')  # the resize's node step is held: still under way
        assert (resizing['allocationState'], resizing['targetDedicatedNodes']) == ('resizing', 2)
        assert resizing['allocationStateTransitionTime'] == resizing['lastModified']
        stopped = raw(batch, 'POST', f'/pools/{pool_id}/stopresize')
        assert stopped.status_code == 202
        assert (stopped.headers['ETag'], stopped.headers['Last-Modified']) == (
            resized.headers['ETag'], resized.headers['Last-Modified'])  # the pool itself is not changed
        stopping = raw_json(batch, f'/pools/{pool_id}')
        assert (stopping['allocationState'], stopping['targetDedicatedNodes']) == ('stopping', 2)
    finally:
        steps.release()
    eventually(lambda: raw_json(batch, f'/pools/{pool_id}')['allocationState'] == 'steady', message='steady')

    deleted = raw(batch, 'DELETE', f'/pools/{pool_id}')
    assert deleted.status_code == 202
    deleting = raw_json(batch, f'/pools/{pool_id}')
    assert deleting['state'] == 'deleting' and deleting['eTag'] != stopping['eTag']
    assert deleting['stateTransitionTime'] == deleting['lastModified']
    eventually(lambda: raw(batch, 'GET', f'/pools/{pool_id}').status_code == 404, message='gone')


def test_a_job_is_disabled_enabled_terminated_and_deleted_as_recorded(batch_client, pool_and_job):
    _, job_id = pool_and_job
    active = raw_json(batch_client, f'/jobs/{job_id}')
    assert active['stateTransitionTime'] == active['lastModified'] == active['executionInfo']['startTime']
    disabled = raw(batch_client, 'POST', f'/jobs/{job_id}/disable', {'disableTasks': 'requeue'})
    assert disabled.status_code == 202 and disabled.headers['ETag'] != active['eTag']
    job = raw_json(batch_client, f'/jobs/{job_id}')
    assert (job['state'], job['previousState']) == ('disabled', 'active')
    assert job['previousStateTransitionTime'] == active['stateTransitionTime']
    assert raw(batch_client, 'POST', f'/jobs/{job_id}/enable').status_code == 202
    job = raw_json(batch_client, f'/jobs/{job_id}')
    assert (job['state'], job['previousState']) == ('active', 'disabled')

    terminated = raw(batch_client, 'POST', f'/jobs/{job_id}/terminate', {'terminateReason': 'UserTerminate'})
    assert terminated.status_code == 202
    job = eventually(lambda: (body := raw_json(batch_client, f'/jobs/{job_id}'))['state'] == 'completed' and body,
                     message='completed')
    assert job['previousState'] == 'active'  # not "terminating"
    assert job['executionInfo']['terminateReason'] == 'UserTerminate'
    assert job['executionInfo']['endTime'] == job['stateTransitionTime']
    assert job['eTag'] == terminated.headers['ETag']  # terminating -> completed leaves the ETag alone

    assert raw(batch_client, 'DELETE', f'/jobs/{job_id}').status_code == 202
    deleting = raw_json(batch_client, f'/jobs/{job_id}')
    assert (deleting['state'], deleting['previousState']) == ('deleting', 'completed')
    assert (deleting['eTag'], deleting['lastModified']) == (job['eTag'], job['lastModified'])


def test_a_task_keeps_its_etag_while_it_runs_and_reactivates_clean(batch_client, pool_and_job):
    pool_id, job_id = pool_and_job
    created = raw(batch_client, 'POST', f'/jobs/{job_id}/tasks', {'id': 'runs', 'commandLine': 'true'})
    wait_for_task(batch_client, job_id, 'runs')
    task = raw_json(batch_client, f'/jobs/{job_id}/tasks/runs')
    assert (task['previousState'], task['eTag']) == ('running', created.headers['ETag'])
    assert task['creationTime'] == task['lastModified']

    raw(batch_client, 'POST', f'/jobs/{job_id}/disable', {'disableTasks': 'requeue'})  # so the next one waits
    raw(batch_client, 'POST', f'/jobs/{job_id}/tasks', {'id': 'never-runs', 'commandLine': 'true'})
    assert raw(batch_client, 'POST', f'/jobs/{job_id}/tasks/never-runs/terminate').status_code == 204
    ended = raw_json(batch_client, f'/jobs/{job_id}/tasks/never-runs')
    assert (ended['state'], ended['previousState'], ended['executionInfo']['result']) == ('completed', 'active',
                                                                                           'failure')
    assert raw(batch_client, 'POST', f'/jobs/{job_id}/tasks/never-runs/reactivate').status_code == 204
    again = raw_json(batch_client, f'/jobs/{job_id}/tasks/never-runs')
    assert (again['state'], again['previousState']) == ('active', 'completed')
    assert again['executionInfo'] == {'retryCount': 0, 'requeueCount': 0}


def test_a_rebooted_node_goes_through_rebooting_and_starting_to_idle(stepped, unique_id):
    batch, steps = stepped
    pool_id = unique_id('reboot')
    create_pool(batch, pool_id)
    node = wait_for_nodes(batch, pool_id)[0]
    first = raw_json(batch, f'/pools/{pool_id}/nodes/{node.id}')
    steps.hold()
    try:
        rebooted = raw(batch, 'POST', f'/pools/{pool_id}/nodes/{node.id}/reboot')
        assert rebooted.status_code == 202 and 'ETag' not in rebooted.headers
        assert raw_json(batch, f'/pools/{pool_id}/nodes/{node.id}')['state'] == 'rebooting'
        steps.step()
        starting = eventually(lambda: (body := raw_json(batch, f'/pools/{pool_id}/nodes/{node.id}'))['state']
                              != 'rebooting' and body, message='out of rebooting')
        assert starting['state'] == 'starting'
        assert starting['lastBootTime'] == first['lastBootTime']  # not yet booted again
        steps.step()
        node_after = eventually(lambda: (body := raw_json(batch, f'/pools/{pool_id}/nodes/{node.id}'))['state']
                                != 'starting' and body, message='out of starting')
    finally:
        steps.release()
    assert node_after['state'] == 'idle'
    assert node_after['lastBootTime'] > first['lastBootTime']
    batch.begin_delete_pool(pool_id)
