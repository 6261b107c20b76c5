"""The local portal: its read-only JSON endpoints, and the page in a real browser during a tutorial run."""

from __future__ import annotations

import json
import os
import threading
import urllib.error
import urllib.request

import pytest
from aiohttp import web
from azure.batch import models as m
from azure.core.exceptions import ResourceNotFoundError

import python_tutorial_client as client
from batch_emulator import portal
from tests.conftest import PROJECT_DIR, eventually
from tests.webdriver import Browser, find_browser

pytestmark = pytest.mark.e2e


def get(url: str) -> tuple[int, dict, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_the_page_is_self_contained_and_needs_no_shared_key(emulator):
    status, headers, body = get(emulator.endpoint + '/')
    assert status == 200 and headers['Content-Type'].startswith('text/html')
    page = body.decode()
    assert '<script src="/portal/static/portal.js"' in page
    assert 'http://' not in page and 'https://' not in page  # no CDN: works offline
    assert "default-src 'self'" in headers['Content-Security-Policy']
    for name in ('portal.js', 'portal.css'):
        assert get(f'{emulator.endpoint}/portal/static/{name}')[0] == 200
    assert 'innerHTML' not in get(f'{emulator.endpoint}/portal/static/portal.js')[2].decode()
    for escape in ('/portal/static/../../server.py', '/portal/static/..%2F..%2Fserver.py'):
        status, _, body = get(emulator.endpoint + escape)
        assert status >= 400 and b'import' not in body


def test_the_portal_is_read_only_and_not_in_the_request_log(emulator, batch_client, unique_id):
    job_id = unique_id('job')
    batch_client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id='nowhere')))
    status, _, body = get(emulator.endpoint + '/portal/api/overview')
    assert status == 200 and job_id in [job['id'] for job in json.loads(body)['jobs']]
    with open(emulator.request_log, encoding='utf-8') as log:
        assert not any(entry['path'] == '/portal/api/overview' for entry in map(json.loads, log))
    requests = json.loads(get(emulator.endpoint + '/portal/api/requests')[2])['requests']
    assert requests[0]['path'] == '/jobs' and requests[0]['method'] == 'POST'  # latest first
    for method in ('POST', 'PUT', 'DELETE'):
        request = urllib.request.Request(emulator.endpoint + '/portal/api/overview', data=b'{}', method=method)
        with pytest.raises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(request, timeout=10)
        assert raised.value.code in (400, 403)  # only signed Batch requests change anything


def test_the_portal_answers_loopback_clients_only(mocker):
    for remote, allowed in (('127.0.0.1', True), ('::1', True), ('10.1.2.3', False), ('192.168.0.7', False)):
        request = mocker.MagicMock(remote=remote)
        if allowed:
            portal._loopback_only(request)
        else:
            with pytest.raises(web.HTTPForbidden):
                portal._loopback_only(request)


def test_sas_signatures_are_hidden_from_the_page():
    command = '--sastoken "sv=2025&sp=cw&sig=abc%2B%3D&se=x"'
    assert portal.redact(command) == '--sastoken "sv=2025&sp=cw&sig=REDACTED&se=x"'


@pytest.fixture(scope='module')
def browser():
    chromium, chromedriver = find_browser()
    if not chromium or not chromedriver:
        reason = ('the browser test needs headless Chromium: install the Debian packages chromium and '
                  'chromium-driver (sudo apt-get install chromium chromium-driver); .ci/run installs them')
        if os.environ.get('CI'):
            pytest.fail(reason)
        pytest.skip(reason)
    opened = Browser(chromium, chromedriver)
    yield opened
    opened.close()


def test_a_tutorial_run_is_watched_live_in_headless_chromium(local_stack, browser, mocker, tmp_path, unique_id):
    """The page shows a task move to completed without a reload, opens its stdout.txt (escaped) and the blobs."""
    gate = tmp_path / 'go'
    script = tmp_path / 'app' / 'python_tutorial_task.py'
    script.parent.mkdir()
    real_task = os.path.join(PROJECT_DIR, 'python_tutorial_task.py')
    script.write_text(
        'import os, runpy, sys, time\n'
        'if os.environ["AZ_BATCH_TASK_ID"] == "topNtask0":\n'
        f'    while not os.path.exists({str(gate)!r}):  # the test opens the gate (bounded below)\n'
        '        time.sleep(0.05)\n'
        'print("<b>not bold</b> & <img src=x onerror=alert(1)>")\n'
        f'sys.argv[0] = {real_task!r}\n'
        f'runpy.run_path({real_task!r}, run_name="__main__")\n')
    mocker.patch.object(client, '_TASK_SCRIPT_PATH', str(script))
    mocker.patch.object(client, 'query_yes_no', return_value='no')  # keep the job so the page can be checked
    environ = local_stack.environment()
    job_id, pool_id = unique_id('job'), unique_id('pool')
    settings = client.load_settings(client.parse_arguments(
        ['--output-dir', str(tmp_path / 'out'), '--job-id', job_id, '--pool-id', pool_id, '--timeout', '2']), environ)
    assert settings.portal_url == local_stack.batch_endpoint + '/'
    blob_service, batch, sas_key = client.create_service_clients(settings)
    results: list[int] = []
    run = threading.Thread(target=lambda: results.append(client.main(settings, blob_service, batch, sas_key)))
    run.start()
    try:
        browser.open(settings.portal_url)
        task_row = f'[data-job-id="{job_id}"] tr[data-task-id="topNtask0"]'
        eventually(lambda: browser.text(f'{task_row} td[data-state]') == 'running', message='task 0 running')
        eventually(lambda: browser.text('[data-container="output"]'), message='output container listed')
        assert 'taskdata1.txt' in browser.text('[data-container="input"]')
        assert 'addtaskcollection' in browser.text('#requests')
        if os.environ.get('PORTAL_SCREENSHOT'):  # the README's picture: a run in progress
            browser.screenshot(os.environ['PORTAL_SCREENSHOT'])
        browser.script('window.__sameDocument = 42;')
        gate.touch()
        eventually(lambda: browser.text(f'{task_row} td[data-state]') == 'completed', message='task 0 completed')
        assert browser.script('return window.__sameDocument;') == 42, 'the page was reloaded'
        assert browser.text(f'{task_row} td[data-exit-code]') == '0'

        browser.click(f'{task_row} button[data-file="topNtask0/stdout.txt"]')
        eventually(lambda: 'Uploaded' in (browser.text('#file-view') or ''), message='stdout.txt shown')
        assert '<b>not bold</b> & <img src=x onerror=alert(1)>' in browser.text('#file-view')
        assert browser.script('return document.querySelectorAll("#file-view b, #file-view img").length;') == 0

        # The start task's files: the list, then the script it copied into its working directory.
        browser.click(f'[data-pool-id="{pool_id}"] tr[data-node-id] td:last-child button:nth-of-type(3)')
        eventually(lambda: 'startup/wd/python_tutorial_task.py' in (browser.text('#file-view') or ''),
                   message='start task files listed')
        browser.click('#file-view button[data-file$="startup/wd/python_tutorial_task.py"]')
        eventually(lambda: 'runpy.run_path' in (browser.text('#file-view') or ''), message='script shown')
    finally:
        gate.touch()
        run.join(120)
        for delete in (batch.begin_delete_job, batch.begin_delete_pool):
            try:
                delete(job_id if delete == batch.begin_delete_job else pool_id)
            except ResourceNotFoundError:
                pass
    assert results == [0]
