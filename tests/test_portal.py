"""The local portal: its read-only JSON endpoints, and the page in a real browser (Selenium) during a tutorial run."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from aiohttp import web
from azure.batch import models as m
from azure.core.exceptions import ResourceNotFoundError

import python_tutorial_client as client
from batch_emulator import DEFAULT_ACCOUNT_KEY, portal
from batch_emulator.wire.server import redact_secrets
from tests.conftest import PROJECT_DIR, eventually
from tests.hostile import batch_client_for, start_emulator, stop_emulator
from tests.test_emulator import UBUNTU, create_pool, wait_for_nodes, wait_for_task

pytestmark = pytest.mark.e2e

SECRET_SIG = 'c2VjcmV0LXNpZ25hdHVyZQ%3D%3D'
GET_TASK_ENTRY = '#requests tr.request[data-operation="Tasks_GetTask"]'
CHROMIUM_FLAGS = ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                  '--disable-background-networking', '--disable-component-update', '--disable-sync',
                  '--disable-dev-shm-usage', '--hide-scrollbars', '--force-device-scale-factor=1']


def get(url: str) -> tuple[int, dict, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def get_json(url: str) -> dict:
    status, _, body = get(url)
    assert status == 200, body
    return json.loads(body)


def test_the_page_is_self_contained_and_needs_no_shared_key(emulator):
    status, headers, body = get(emulator.endpoint + '/')
    assert status == 200 and headers['Content-Type'].startswith('text/html')
    page = body.decode()
    assert '<script src="/portal/static/portal.js"' in page
    assert 'http://' not in page and 'https://' not in page  # no CDN: works offline
    assert "default-src 'self'" in headers['Content-Security-Policy']
    for name in ('portal.js', 'portal.css'):
        status, _, asset = get(f'{emulator.endpoint}/portal/static/{name}')
        assert status == 200 and b'https://' not in asset and b'@import' not in asset
    script = get(f'{emulator.endpoint}/portal/static/portal.js')[2].decode()
    assert 'innerHTML' not in script and 'insertAdjacentHTML' not in script and 'eval(' not in script
    for escape in ('/portal/static/../../server.py', '/portal/static/..%2F..%2Fserver.py'):
        status, _, body = get(emulator.endpoint + escape)
        assert status >= 400 and b'import' not in body


def test_the_portal_is_read_only_and_not_in_the_request_log(emulator, batch_client, unique_id):
    job_id = unique_id('job')
    batch_client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id='nowhere')))
    assert job_id in [job['id'] for job in get_json(emulator.endpoint + '/portal/api/overview')['jobs']]
    with open(emulator.request_log, encoding='utf-8') as log:
        assert not any(entry['path'].startswith('/portal/api/') for entry in map(json.loads, log))
    requests = get_json(emulator.endpoint + '/portal/api/requests')['requests']
    assert requests[-1]['path'] == '/jobs' and requests[-1]['method'] == 'POST'  # oldest first: the newest last
    assert requests[-1]['operation'] == 'Jobs_CreateJob' and requests[-1]['status'] == 201
    assert not any(entry['path'].startswith('/portal/api/') for entry in requests)
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


def test_secrets_are_redacted_wherever_they_appear():
    command = '--sastoken "sv=2025&sp=cw&sig=abc%2B%3D&se=x"'
    assert portal.redact(command) == '--sastoken "sv=2025&sp=cw&sig=REDACTED&se=x"'
    assert redact_secrets('SharedKey devbatchaccount1:c2lnbmF0dXJl') == 'SharedKey devbatchaccount1:REDACTED'
    assert redact_secrets('Bearer s3cr3t-t0k_en.x') == 'Bearer REDACTED'  # a task's AZ_BATCH_AUTHENTICATION_TOKEN
    assert redact_secrets('DefaultEndpointsProtocol=http;AccountName=a;AccountKey=a2V5PT0=;BlobEndpoint=x') == \
        'DefaultEndpointsProtocol=http;AccountName=a;AccountKey=REDACTED;BlobEndpoint=x'
    mount = {'azureFileShareConfiguration': {'accountKey': 'k3y', 'accountName': 'a'}}
    body = json.dumps({'mountConfiguration': [mount],
                       'userAccounts': [{'name': 'u', 'password': 'p@ss"w0rd'}],
                       'environmentSettings': [{'name': 'STORAGE_KEY', 'value': 'v4lue'}, {'name': 'N', 'value': '3'}]})
    redacted = redact_secrets(body)
    assert all(secret not in redacted for secret in ('k3y', 'p@ss', 'w0rd', 'v4lue')), redacted
    assert json.loads(redacted)['environmentSettings'][1]['value'] == '3'  # only secrets go
    assert redact_secrets(f'key {DEFAULT_ACCOUNT_KEY} here', DEFAULT_ACCOUNT_KEY) == 'key REDACTED here'
    assert 'abc' not in redact_secrets('{"accountKey": "abcdef')  # a body cut inside the secret


def test_overview_polling_sends_only_the_tasks_changed_since_its_token(emulator, batch_client, unique_id):
    pool_id, job_id = unique_id('pool'), unique_id('job')
    create_pool(batch_client, pool_id, nodes=0)  # no node: the tasks wait, and only the test changes them
    batch_client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool_id)))
    try:
        batch_client.create_tasks(job_id, [m.BatchTaskCreateOptions(id=f't{i}', command_line='/bin/true')
                                           for i in range(5)])
        overview_url = emulator.endpoint + '/portal/api/overview?since='
        first = get_json(overview_url)
        job = next(job for job in first['jobs'] if job['id'] == job_id)
        assert first['full'] and job['taskCount'] == 5
        assert {t['id'] for t in job['tasks']} == {f't{i}' for i in range(5)}
        assert {t['state'] for t in job['tasks']} == {'active'}

        unchanged = get_json(overview_url + quote(first['token']))
        assert not unchanged['full'] and all(not job['tasks'] for job in unchanged['jobs'])

        batch_client.terminate_task(job_id, 't3')
        changed = get_json(overview_url + quote(unchanged['token']))
        rows = next(job for job in changed['jobs'] if job['id'] == job_id)['tasks']
        assert [(row['id'], row['state']) for row in rows] == [('t3', 'completed')]
        assert rows[0]['end'] is not None and rows[0]['failure'] == 'TaskEnded'

        assert get_json(overview_url + quote('another-emulator.1'))['full']  # a token of another process: all
    finally:
        batch_client.begin_delete_job(job_id)
        batch_client.begin_delete_pool(pool_id)


@pytest.fixture
def preempted(emulator, batch_emulator, batch_client, unique_id, tmp_path) -> Iterator[tuple[str, str, str]]:
    """A pool of one dedicated and two Spot nodes whose job's task ran on a Spot node until it was preempted:
    (pool id, job id, the preempted node's id). The task waits on the other Spot node for a file never made."""
    pool_id, job_id = unique_id('spot'), unique_id('job')
    batch_client.create_pool(m.BatchPoolCreateOptions(
        id=pool_id, vm_size='STANDARD_D2S_V3', target_dedicated_nodes=1, target_low_priority_nodes=2,
        virtual_machine_configuration=UBUNTU))
    try:
        nodes = wait_for_nodes(batch_client, pool_id, count=3)
        dedicated = next(node.id for node in nodes if node.is_dedicated)
        batch_client.disable_node_scheduling(pool_id, dedicated, m.BatchNodeDisableSchedulingOptions(
            node_disable_scheduling_option='taskcompletion'))  # the task runs on the Spot nodes only
        batch_client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool_id)))
        gate = tmp_path / 'never'
        batch_client.create_task(job_id, m.BatchTaskCreateOptions(
            id='work', command_line=f"/bin/sh -c 'while [ ! -e {gate} ]; do sleep 0.05; done'"))
        spot = eventually(lambda: (task := batch_client.get_task(job_id, 'work')).state == 'running' and task,
                          message='the task running').node_info.node_id
        batch_emulator.preempt(pool_id, spot)
        eventually(lambda: (task := batch_client.get_task(job_id, 'work')).state == 'running'
                   and task.node_info.node_id != spot, message='the task running again on the other Spot node')
        yield pool_id, job_id, spot
    finally:
        for delete in (lambda: batch_client.begin_delete_job(job_id), lambda: batch_client.begin_delete_pool(pool_id)):
            with contextlib.suppress(ResourceNotFoundError):
                delete()


def test_overview_shows_spot_nodes_and_their_preemptions(emulator, preempted):
    pool_id, _, spot = preempted
    pool = _by_id(get_json(emulator.endpoint + '/portal/api/overview?since=')['pools'], pool_id)
    assert (pool['current'], pool['target'], pool['spotCurrent'], pool['spotTarget']) == (1, 1, 2, 2)
    rows = {row['id']: row for row in pool['nodes']}
    assert sorted(row['dedicated'] for row in rows.values()) == [False, False, True]
    assert (rows[spot]['state'], len(rows[spot]['preemptions'])) == ('preempted', 1)
    assert rows[spot]['preemptions'][0] <= get_json(emulator.endpoint + '/portal/api/overview?since=')['now']
    assert all(not row['preemptions'] for node_id, row in rows.items() if node_id != spot)


def open_job(browser, endpoint: str, job_id: str) -> None:
    """The portal at 1400 px wide, with the job clicked once it is listed."""
    set_viewport(browser, 1400)
    browser.get(endpoint + '/')
    job = f'#jobs tr[data-job-id="{job_id}"]'
    eventually(lambda: browser.execute_script('return !!document.querySelector(arguments[0])', job),
               message='the job listed')
    click(browser, job)


def test_the_heatmap_and_timeline_show_the_spot_node_and_its_preemption(emulator, preempted, browser):
    pool_id, job_id, spot = preempted
    open_job(browser, emulator.endpoint, job_id)
    cell = f'[data-pool-id="{pool_id}"] .node-cell[data-node-id="{spot}"]'
    eventually(lambda: browser.execute_script('return !!document.querySelector(arguments[0])', cell),
               message='the preempted node in the heatmap')
    shown = browser.execute_script("""const cell = document.querySelector(arguments[0]);
        return [cell.dataset.state, cell.dataset.spot, cell.dataset.preemptions,
                cell.querySelector('.node-state').textContent, cell.title];""", cell)
    assert shown[:4] == ['preempted', 'true', '1', '☁ preempted'] and 'Spot/low-priority node' in shown[4]
    spot_cells = browser.execute_script(
        'return [...document.querySelectorAll(arguments[0])].map(cell => cell.dataset.spot).sort()',
        f'[data-pool-id="{pool_id}"] .node-cell')
    assert spot_cells == ['false', 'true', 'true']
    eventually(lambda: browser.execute_script('return document.getElementById("timeline").dataset.preemptions') == '1',
               message='one preemption on the timeline')
    lane = browser.execute_script('return document.querySelector(`#timeline li[data-node-id="${arguments[0]}"]`)'
                                  '.textContent', spot)
    assert 'preempted 1 time(s)' in lane


def test_the_request_log_pages_by_token_and_shows_redacted_detail(emulator, batch_client, pool_and_job):
    _, job_id = pool_and_job
    log_url = emulator.endpoint + '/portal/api/requests?since='
    before = get_json(log_url)
    sas_url = f'http://127.0.0.1:9/input/a.txt?sv=2025-01-05&sp=r&sig={SECRET_SIG}'
    batch_client.create_task(job_id, m.BatchTaskCreateOptions(
        id='secret', command_line='/bin/true', resource_files=[m.ResourceFile(http_url=sas_url, file_path='a.txt')]))
    batch_client.get_task(job_id, 'secret')

    newer = get_json(log_url + quote(before['token']))
    assert not newer['full']
    assert [entry['operation'] for entry in newer['requests']] == ['Tasks_CreateTask', 'Tasks_GetTask']
    assert all('detail' not in entry for entry in newer['requests'])  # bodies only on request
    assert get_json(log_url + quote(newer['token']))['requests'] == []

    detail = get_json(emulator.endpoint + f"/portal/api/request?seq={newer['requests'][-1]['seq']}")
    text = json.dumps(detail)
    assert SECRET_SIG not in text and DEFAULT_ACCOUNT_KEY not in text
    response_body = detail['detail']['responseBody']['text']
    assert 'sig=REDACTED' in response_body and json.loads(response_body)['id'] == 'secret'
    authorization = detail['detail']['requestHeaders']['Authorization']
    assert authorization.startswith('SharedKey ') and authorization.endswith(':REDACTED')
    assert get(emulator.endpoint + '/portal/api/request?seq=999999999')[0] == 404


@pytest.mark.parametrize('authorization', ['Bearer {token}', 'Bearer\t{token}', 'Token {token}', 'Basic {token}',
                                           'Bearer "{token}"', '{token}', 'SharedKey {token}'])
def test_the_request_log_never_shows_what_an_authorization_header_carries(emulator, authorization):
    """Whatever its scheme and spacing, the credentials of Authorization are REDACTED in the request's detail,
    and the refusal the detail shows does not repeat them."""
    token = 'tok' + os.urandom(16).hex()
    log_url = emulator.endpoint + '/portal/api/requests?since='
    before = get_json(log_url)
    path = f'/jobs/probe-{token[-8:]}'  # this test's own (other tests' pollers may log requests meanwhile)
    request = urllib.request.Request(emulator.endpoint + path + '?api-version=2025-06-01',
                                     headers={'Authorization': authorization.format(token=token)})
    with contextlib.suppress(urllib.error.HTTPError):
        urllib.request.urlopen(request, timeout=10)
    newer = [entry for entry in get_json(log_url + quote(before['token']))['requests'] if entry['path'] == path]
    assert [entry['status'] for entry in newer] == [403]
    detail = get_json(emulator.endpoint + f"/portal/api/request?seq={newer[0]['seq']}")
    assert token not in json.dumps(detail)
    assert detail['detail']['requestHeaders']['Authorization'].endswith('REDACTED')


# ---------------------------------------------------------------- the page in headless Chromium

def _chromium_and_driver() -> tuple[str | None, str | None]:
    return (shutil.which('chromium') or shutil.which('chromium-browser'),
            shutil.which('chromedriver') or shutil.which('chromium-driver'))


@pytest.fixture(scope='module')
def browser():
    """Headless Chromium through the system chromedriver (Selenium Manager never runs: nothing is downloaded)."""
    chromium, chromedriver = _chromium_and_driver()
    if not chromium or not chromedriver:
        reason = ('the browser tests need headless Chromium: install the Debian packages chromium and '
                  'chromium-driver (sudo apt-get install chromium chromium-driver); .ci/run installs them')
        if os.environ.get('CI'):
            pytest.fail(reason)
        pytest.skip(reason)
    os.environ['SE_OFFLINE'] = 'true'  # belt and braces: Selenium may not fetch a driver or a browser
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix='portal-test-chromium-')
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS + [f'--user-data-dir={profile}', '--window-size=1400,900']:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def text_of(driver, css: str) -> str | None:
    return driver.execute_script('const e = document.querySelector(arguments[0]); return e ? e.innerText : null;', css)


def click(driver, css: str) -> None:
    """Clicks the element ``css`` finds (the page redraws in place: an element found stays the page's element)."""
    from selenium.webdriver.common.by import By
    element = driver.find_element(By.CSS_SELECTOR, css)
    # As a person would: the element in the middle of its scroll box, not at the edge WebDriver scrolls it to,
    # where a table's sticky header row may cover it.
    driver.execute_script("arguments[0].scrollIntoView({block: 'center', inline: 'nearest'})", element)
    element.click()


def updates(driver) -> int:
    """The polls the page has answered (each one merges what changed and redraws it)."""
    return driver.execute_script('return window.portalStats.updates')


def after_a_poll(driver) -> None:
    """Returns once the page has taken one more answer from the emulator than when called."""
    seen = updates(driver)
    eventually(lambda: updates(driver) > seen, message='the next poll')


def held_click(driver, element, during=None) -> None:
    """A click as a hand makes it, slow: pressed, one poll of the page (and ``during()``) before the release."""
    from selenium.webdriver import ActionChains
    ActionChains(driver).move_to_element(element).click_and_hold().perform()
    try:
        if during:
            during()
        after_a_poll(driver)
    finally:
        ActionChains(driver).release().perform()


def set_viewport(driver, width: int, height: int = 900) -> None:
    """The page's own width (the window adds nothing in headless mode, but is checked)."""
    driver.set_window_size(width, height)
    eventually(lambda: driver.execute_script('return window.innerWidth') == width, message=f'{width} px wide')
    driver.execute_script('window.dispatchEvent(new Event("resize"))')


def cut_panels(driver) -> list[str]:
    """The panels (and header) whose content is wider than they are: something in them is cut off."""
    return driver.execute_script('''
        return [...document.querySelectorAll('header, .panel, #left, #right, .tabs, .toolbar')]
            .filter(e => e.offsetParent !== null && e.scrollWidth > e.clientWidth + 1)
            .map(e => (e.id || e.className) + ': ' + e.scrollWidth + ' > ' + e.clientWidth);''')


def cut_cells(driver, css: str) -> list[str]:
    """The cells ``css`` finds whose text is wider or taller than the cell: the user sees it cut."""
    return driver.execute_script('''
        return [...document.querySelectorAll(arguments[0])]
            .filter(e => e.scrollWidth > e.clientWidth + 1 || e.scrollHeight > e.clientHeight + 1)
            .map(e => e.innerText + ': ' + e.scrollWidth + ' > ' + e.clientWidth);''', css)


def height(driver, css: str) -> float:
    return driver.execute_script('return document.querySelector(arguments[0]).getBoundingClientRect().height', css)


def in_view(driver, css: str) -> bool:
    """The element is displayed, and its top is inside the window (the user sees it without scrolling)."""
    return driver.execute_script('''
        const e = document.querySelector(arguments[0]);
        if (!e || e.offsetParent === null) return false;
        const box = e.getBoundingClientRect();
        return box.height > 0 && box.top >= 0 && box.top < window.innerHeight - 20 && box.left >= 0
            && box.right <= window.innerWidth;''', css)


def test_ten_thousand_tasks_stay_a_quick_page(emulator, batch_client, browser, unique_id):
    """10,000 tasks: a few dozen rows in the page, filters and search over all, polling costs what changed."""
    pool_id, job_id = unique_id('pool'), unique_id('job')
    create_pool(batch_client, pool_id, nodes=0)  # queued tasks: the page's scale, not 10,000 processes
    batch_client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool_id)))
    try:
        batch_client.create_tasks(job_id, [m.BatchTaskCreateOptions(id=f'task{i}', command_line='/bin/true')
                                           for i in range(10_000)])
        open_job(browser, emulator.endpoint, job_id)
        eventually(lambda: text_of(browser, '#tasks-shown') == '10000 of 10000 tasks', message='10,000 tasks known')
        rows = browser.execute_script('return document.querySelectorAll("#task-rows .task-row").length')
        assert 0 < rows < 100  # only the rows in view are in the page
        assert text_of(browser, '#task-rows .task-row:first-child span') == 'task0'
        assert 'active' in text_of(browser, '#task-rows .task-row:first-child [data-state]')

        browser.execute_script('document.getElementById("task-viewport").scrollTop = 1e9')
        eventually(lambda: text_of(browser, '#task-rows .task-row:last-child span') == 'task9999',
                   message='the last task drawn when scrolled to the end')

        search = browser.find_element('id', 'filter-search')
        search.send_keys('task999')
        eventually(lambda: text_of(browser, '#tasks-shown') == '11 of 10000 tasks', message='search by id')
        search.clear()
        search.send_keys('x')  # clear() fires no input event: type, then delete
        search.send_keys('\b')

        batch_client.terminate_task(job_id, 'task7')  # one change
        eventually(lambda: browser.execute_script('return window.portalStats.lastTasksReceived') == 1,
                   message='the change arrives alone')
        eventually(lambda: browser.execute_script('return window.portalStats.lastTasksReceived') == 0,
                   message='an answer without changes')
        click(browser, '#filter-failed')
        eventually(lambda: text_of(browser, '#tasks-shown') == '1 of 10000 tasks', message='failed only')
        assert 'failed' in text_of(browser, '#task-rows [data-task-id="task7"] [data-state]')
        click(browser, '#filter-failed')
        stats = browser.execute_script('return window.portalStats')
        print(f"\n10,000 tasks: {stats['updates']} updates, slowest {stats['maxMs']:.1f} ms (the first, full one), "
              f"last {stats['lastMs']:.1f} ms (performance.now() in the page)")
    finally:
        batch_client.begin_delete_job(job_id)
        batch_client.begin_delete_pool(pool_id)


class Busy:
    """A job of 40 tasks on two one-slot nodes: t00-t03 print a line and end, t04 and t05 run until the test opens
    the gate, the 34 others wait in the queue behind them."""

    def __init__(self, client, job_id: str, pool_id: str) -> None:
        self.client, self.job_id, self.pool_id = client, job_id, pool_id
        self.finished = [f't{i:02}' for i in range(4)]
        self.running = ['t04', 't05']

    def open(self, driver, endpoint: str) -> None:
        open_job(driver, endpoint, self.job_id)
        for tasks, label in ((self.running, '▶ running'), (self.finished, '✓ succeeded')):
            for task in tasks:
                state = f'#task-rows [data-task-id="{task}"] [data-state]'
                eventually(lambda state=state, label=label: text_of(driver, state) == label, message=f'{task} {label}')


@pytest.fixture(scope='module')
def busy(emulator, tmp_path_factory) -> Iterator[Busy]:
    client = emulator.client()
    suffix = os.urandom(5).hex()
    busy = Busy(client, f'busy-{suffix}', f'busy-pool-{suffix}')
    gate = tmp_path_factory.mktemp('busy') / 'gate'
    create_pool(client, busy.pool_id, nodes=2)
    client.create_job(m.BatchJobCreateOptions(id=busy.job_id, pool_info=m.BatchPoolInfo(pool_id=busy.pool_id)))
    try:
        wait = f"/bin/sh -c 'while [ ! -e {gate} ]; do sleep 0.05; done'"

        def add(ids: list[str], command: Callable[[str], str]) -> None:
            client.create_tasks(busy.job_id, [m.BatchTaskCreateOptions(id=task_id, command_line=command(task_id))
                                              for task_id in ids])
        # Added in three steps: the service starts queued tasks in no promised order.
        add(busy.finished, lambda task_id: f"/bin/sh -c 'echo stdout of {task_id}'")
        for task in busy.finished:
            wait_for_task(client, busy.job_id, task)
        add(busy.running, lambda _: wait)
        for task in busy.running:
            eventually(lambda task=task: client.get_task(busy.job_id, task).state == 'running',
                       message=f'{task} running')
        add([f't{i:02}' for i in range(6, 40)], lambda _: wait)
        yield busy
    finally:
        gate.touch()
        client.begin_delete_job(busy.job_id)
        client.begin_delete_pool(busy.pool_id)


def test_every_click_lands_while_tasks_run(emulator, busy, browser):
    """The page redraws every second while tasks run: a button found before a redraw is still the page's button,
    and a click whose press and release straddle a redraw opens its file (20 of 20), or its request."""
    from selenium.webdriver.common.by import By

    busy.open(browser, emulator.endpoint)
    for number in range(20):
        task = busy.finished[number % len(busy.finished)]  # another file each time: a lost click shows
        button = browser.find_element(By.CSS_SELECTOR, f'#task-rows button[data-file="{task}/stdout.txt"]')
        after_a_poll(browser)  # the rows were redrawn since the button was found
        held_click(browser, button)
        eventually(lambda task=task: (text_of(browser, '#file-name') or '').startswith(f'{task}/stdout.txt — ')
                   and (text_of(browser, '#file-view') or '').strip() == f'stdout of {task}',
                   message=f'click {number + 1}: {task}/stdout.txt')
    assert [busy.client.get_task(busy.job_id, task).state for task in busy.running] == ['running', 'running']

    # The request log grows at the top while a request is pressed: the click still opens the request pressed.
    click(browser, '#tab-requests')
    for task in busy.finished:
        busy.client.get_task(busy.job_id, task)
        path = f'/jobs/{busy.job_id}/tasks/{task}'
        row = eventually(lambda path=path: browser.execute_script(
            """return [...document.querySelectorAll('#requests tr.request[data-operation="Tasks_GetTask"]')]
                .find(row => row.querySelector('.path').textContent.startsWith('GET ' + arguments[0])) || null;""",
            path),
            message=f'the GET of {task} listed')
        after_a_poll(browser)
        held_click(browser, row, during=lambda: (busy.client.get_job(busy.job_id), after_a_poll(browser)))
        eventually(lambda path=path: f'GET {path}?' in (text_of(browser, '#request-detail') or ''),
                   message=f'the detail of the GET of {task}')
        eventually(lambda: browser.execute_script(
            'return document.querySelector("#requests tr.request").dataset.operation') == 'Jobs_GetJob',
            message='the request made during the press listed after it')


def test_a_node_has_one_name_in_the_task_list_heatmap_timeline_and_filter(emulator, busy, browser):
    busy.open(browser, emulator.endpoint)
    eventually(lambda: browser.execute_script('return document.getElementById("timeline").dataset.lanes') == '2',
               message='a lane for each node')
    names = {}
    for task in busy.running + busy.finished:
        node_id = busy.client.get_task(busy.job_id, task).node_info.node_id
        name = text_of(browser, f'#task-rows [data-task-id="{task}"] [data-node-id]')
        names.setdefault(name, set()).add(node_id)
        # The user reads the name in the row, then finds the cell and the lane that carry it: they are that node.
        cell = browser.execute_script("""return [...document.querySelectorAll(arguments[0])]
            .filter(cell => cell.querySelector('[data-node-name]').textContent === arguments[1])
            .map(cell => cell.dataset.nodeId);""", f'[data-pool-id="{busy.pool_id}"] .node-cell', name)
        assert cell == [node_id], (task, name, cell)
        lane = browser.execute_script("""return [...document.querySelectorAll('#timeline li')]
            .filter(lane => lane.textContent.startsWith(arguments[0] + ' ('))
            .map(lane => lane.dataset.nodeId);""", name)
        assert lane == [node_id], (task, name, lane)
        option = browser.execute_script("""return [...document.querySelectorAll('#filter-node option')]
            .filter(option => option.textContent.startsWith(arguments[0] + ' (')).map(option => option.value);""", name)
        assert option == [node_id], (task, name, option)
    assert len(names) == 2 and all(len(ids) == 1 for ids in names.values()), names  # two nodes, two names


def test_the_running_line_of_the_counts_chart_has_its_own_axis(emulator, busy, browser):
    """2 tasks running among 40: on the tasks' axis the line would stay within a few pixels of zero."""
    busy.open(browser, emulator.endpoint)
    right_axis = 'return document.getElementById("counts-running-max").textContent'
    eventually(lambda: browser.execute_script(right_axis) == '2', message='the right axis up to 2 running')

    def peak(series: str) -> float:  # the highest point of a line (SVG y grows downwards)
        line = browser.find_element('css selector', f'#counts-chart polyline[data-series="{series}"]')
        points = line.get_attribute('points')
        return min(float(point.split(',')[1]) for point in points.split())
    # 2 running drawn at least as high as 34 queued: on the running axis 2 is its top, on the tasks' axis 34 of 40.
    assert peak('running') <= peak('active')
    assert text_of(browser, '[data-legend="running"]') == 'running: 2 (right axis)'


def test_a_tutorial_run_is_watched_live_at_three_widths(local_stack, browser, mocker, tmp_path, unique_id):
    """During a real --local run: heatmap, timeline, file viewer where the click was, redacted request detail."""
    gate = tmp_path / 'go'
    script = tmp_path / 'app' / 'python_tutorial_task.py'
    script.parent.mkdir()
    real_task = os.path.join(PROJECT_DIR, 'python_tutorial_task.py')
    script.write_text(
        'import os, runpy, sys, time\n'
        'if os.environ["AZ_BATCH_TASK_ID"] == "topNtask2":  # the last task waits; the first two finish\n'
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
        ['--output-dir', str(tmp_path / 'out'), '--job-id', job_id, '--pool-id', pool_id, '--timeout', '2',
         '--node-count', '2']), environ)
    assert settings.portal_url == local_stack.batch_endpoint + '/'
    blob_service, batch, sas_key = client.create_service_clients(settings)
    results: list[int] = []
    run = threading.Thread(target=lambda: results.append(client.main(settings, blob_service, batch, sas_key)))
    run.start()
    screenshots = os.environ.get('PORTAL_SCREENSHOT_DIR')  # e.g. docs: the README's pictures
    try:
        set_viewport(browser, 1400)
        browser.get(settings.portal_url)
        eventually(lambda: browser.execute_script('return !!document.querySelector(arguments[0])',
                                                  f'#jobs tr[data-job-id="{job_id}"]'), message='the job listed')
        click(browser, f'#jobs tr[data-job-id="{job_id}"]')
        task_row = '#task-rows [data-task-id="topNtask2"]'
        eventually(lambda: text_of(browser, f'{task_row} [data-state]') == '▶ running', message='task 2 running')
        completed = f'#jobs tr[data-job-id="{job_id}"] [data-count="completed"]'
        eventually(lambda: text_of(browser, completed) == '2', timeout=60, message='the two other tasks completed')
        # Heatmap: one cell per node of the pool, its state as a word, its slots in use.
        cells = browser.execute_script('''return [...document.querySelectorAll(arguments[0])]
            .map(cell => [cell.dataset.state, cell.innerText]);''', f'[data-pool-id="{pool_id}"] .node-cell')
        assert len(cells) == 2 and any(state == 'running' and 'running' in label and '1/1 slots' in label
                                       for state, label in cells), cells
        # Timeline: the two finished tasks and the running one, as bars; a click on one names it.
        eventually(lambda: browser.execute_script('return +document.getElementById("timeline").dataset.bars') == 3,
                   message='three bars')
        assert 'succeeded' in text_of(browser, '#timeline-legend') and 'failed' in text_of(browser, '#timeline-legend')
        assert '▶ running' in text_of(browser, '#task-rows') and '✓ succeeded' in text_of(browser, '#task-rows')
        # A response that carries the task's SAS URLs (its input file, its output container): shown redacted.
        signatures = [parse_qs(urlsplit(resource.http_url).query)['sig'][0]
                      for resource in batch.get_task(job_id, 'topNtask2').resource_files]
        assert signatures

        for width in (1280, 1400, 1920):
            set_viewport(browser, width)
            assert cut_panels(browser) == [], f'cut at {width} px'
            assert cut_cells(browser, '#jobs th, #jobs td') == [], f'the job table cut at {width} px'
            # The request log is one click away; a request's detail shows its bodies, secrets redacted.
            click(browser, '#tab-requests')
            eventually(lambda: browser.execute_script('return !!document.querySelector(arguments[0])', GET_TASK_ENTRY),
                       message='the GET of the task in the log')
            click(browser, GET_TASK_ENTRY)
            eventually(lambda: 'Response body' in (text_of(browser, '#request-detail') or ''), message='detail')
            detail = text_of(browser, '#request-detail')
            assert 'sig=REDACTED' in detail and 'SharedKey' in detail and ':REDACTED' in detail
            assert not any(signature in detail or quote(signature, safe='') in detail for signature in signatures)
            assert in_view(browser, '#request-detail')
            # The detail is what the user now reads: it has at least half the column, the list the rest.
            assert height(browser, '#request-detail') >= height(browser, '#right') / 2, f'a small detail at {width} px'
            assert 'Step 5 · add the tasks' in text_of(browser, '#requests')  # the log grouped by step
            assert text_of(browser, '#requests tr.step[data-step="3"]')
            # stdout.txt of the first task opens beside the list, in view, as text (HTML in it stays text).
            browser.execute_script('document.getElementById("task-viewport").scrollTop = 0')
            click(browser, '#task-rows [data-task-id="topNtask0"] button[data-file="topNtask0/stdout.txt"]')
            eventually(lambda: 'Uploaded' in (text_of(browser, '#file-view') or ''), message='stdout.txt shown')
            assert in_view(browser, '#file-view'), f'the file opened out of view at {width} px'
            assert '<b>not bold</b> & <img src=x onerror=alert(1)>' in text_of(browser, '#file-view')
            assert browser.execute_script("return document.querySelectorAll('#file-view b, img').length") == 0
            assert cut_panels(browser) == [], f'cut at {width} px with the file open'
            if screenshots and width in (1280, 1920):
                set_viewport(browser, width, 1000)
                click(browser, '#tab-requests')
                click(browser, GET_TASK_ENTRY)
                eventually(lambda: 'Response body' in (text_of(browser, '#request-detail') or ''), message='detail')
                browser.save_screenshot(os.path.join(screenshots, f'portal-{width}.png'))
                set_viewport(browser, width)

        click(browser, '#tab-storage')  # the run's blobs (its containers go at its end)
        eventually(lambda: text_of(browser, '[data-container="output"]'), message='output container listed')
        assert 'taskdata1.txt' in text_of(browser, '[data-container="input"]')
        assert cut_panels(browser) == []
        click(browser, '#timeline')  # somewhere on the timeline: the nearest bar, if any, is named
        browser.execute_script('window.__sameDocument = 42;')
        gate.touch()
        eventually(lambda: text_of(browser, f'{task_row} [data-state]') == '✓ succeeded', message='task 2 completed')
        assert browser.execute_script('return window.__sameDocument;') == 42, 'the page was reloaded'
        assert text_of(browser, f'{task_row} [data-exit-code]') == '0'

        # A node's cell: its start task's files, then the script the start task copied.
        click(browser, f'[data-pool-id="{pool_id}"] .node-cell')
        click(browser, f'[data-pool-id="{pool_id}"] [data-start-task-files]')
        eventually(lambda: 'startup/wd/python_tutorial_task.py' in (text_of(browser, '#file-view') or ''),
                   message='start task files listed')
        click(browser, '#file-view button[data-file$="startup/wd/python_tutorial_task.py"]')
        eventually(lambda: 'runpy.run_path' in (text_of(browser, '#file-view') or ''), message='script shown')
    finally:
        gate.touch()
        run.join(120)
        for delete in (batch.begin_delete_job, batch.begin_delete_pool):
            try:
                delete(job_id if delete == batch.begin_delete_job else pool_id)
            except ResourceNotFoundError:
                pass
    assert results == [0]



# ---------------------------------------------------------------- the rest of the Batch API, where a user looks for it

SCALE_FORMULA = '$limit = 2;\n$TargetDedicatedNodes = min($limit, 0);'
BAD_FORMULA = '$TargetDedicatedNodes = $missing_count;'  # parses; its evaluation fails (an undefined symbol)


class Scene:
    """One emulator whose clock runs 600 times faster (a 5-minute autoscale interval passes in half a second,
    a 10-minute recurrence in one), holding one of each thing the portal shows besides pools, jobs and tasks."""

    def __init__(self, endpoint: str, client) -> None:
        self.endpoint, self.client = endpoint, client
        self.work_pool, self.scaled, self.scaled_bad = 'work', 'scaled', 'scaled-bad'
        self.auto_job, self.mpi_job, self.schedule = 'autojob', 'mpi', 'nightly'

    def overview(self, token: str = '') -> dict:
        return get_json(f'{self.endpoint}/portal/api/overview?since={quote(token)}')

    def dependent_job(self, job_id: str, gate: str) -> None:
        """Task 1 waits for the file ``gate``, task 2 ends at once; 'child' depends on 1 and on the range 1-2."""
        self.client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=self.work_pool),
                                                       uses_task_dependencies=True))
        self.client.create_tasks(job_id, [
            m.BatchTaskCreateOptions(id='1', command_line=f"/bin/sh -c 'while [ ! -e {gate} ]; do sleep 0.05; done'"),
            m.BatchTaskCreateOptions(id='2', command_line='/bin/true'),
            m.BatchTaskCreateOptions(id='child', command_line='/bin/true', depends_on=m.BatchTaskDependencies(
                task_ids=['1'], task_id_ranges=[m.BatchTaskIdRange(start=1, end=2)]))])


@pytest.fixture(scope='module')
def scene(tmp_path_factory) -> Iterator[Scene]:
    process, endpoint = start_emulator(str(tmp_path_factory.mktemp('portal-scene')), '--clock-speed', '600')
    client = batch_client_for(endpoint)
    scene = Scene(endpoint, client)
    try:
        create_pool(client, scene.work_pool, nodes=2)
        nodes = wait_for_nodes(client, scene.work_pool, count=2)
        client.create_job(m.BatchJobCreateOptions(id=scene.mpi_job, pool_info=m.BatchPoolInfo(pool_id=scene.work_pool)))
        client.create_task(scene.mpi_job, m.BatchTaskCreateOptions(
            id='mpi', command_line='/bin/true', multi_instance_settings=m.MultiInstanceSettings(
                number_of_instances=2, coordination_command_line='/bin/true')))
        assert wait_for_task(client, scene.mpi_job, 'mpi').execution_info.result == 'success'
        # The second node: no new task starts there, and it has a node user.
        client.disable_node_scheduling(scene.work_pool, nodes[1].id, m.BatchNodeDisableSchedulingOptions(
            node_disable_scheduling_option='taskcompletion'))
        client.create_node_user(scene.work_pool, nodes[1].id, m.BatchNodeUserCreateOptions(name='alice', password='pw'))
        scene.disabled_node = nodes[1].id
        for pool_id, formula in ((scene.scaled, SCALE_FORMULA), (scene.scaled_bad, BAD_FORMULA)):
            client.create_pool(m.BatchPoolCreateOptions(
                id=pool_id, vm_size='standard_d2s_v3', virtual_machine_configuration=UBUNTU, enable_auto_scale=True,
                auto_scale_formula=formula, auto_scale_evaluation_interval=datetime.timedelta(minutes=5)))
        client.create_job(m.BatchJobCreateOptions(id=scene.auto_job, pool_info=m.BatchPoolInfo(
            auto_pool_specification=m.BatchAutoPoolSpecification(
                auto_pool_id_prefix='auto', pool_lifetime_option='job', pool=m.BatchPoolSpecification(
                    vm_size='STANDARD_D2S_V3', virtual_machine_configuration=UBUNTU, target_dedicated_nodes=0)))))
        client.create_job_schedule(m.BatchJobScheduleCreateOptions(
            id=scene.schedule,
            schedule=m.BatchJobScheduleConfiguration(recurrence_interval=datetime.timedelta(minutes=10)),
            job_specification=m.BatchJobSpecification(pool_info=m.BatchPoolInfo(pool_id=scene.work_pool))))
        done = m._models.BatchJobTerminateOptions(termination_reason='done')
        client.begin_terminate_job(f'{scene.schedule}:job-1', done, polling_interval=0.05).result()  # job-2 in 1 s
        eventually(lambda: client.get_job_schedule(scene.schedule).execution_info.recent_job.id == 'nightly:job-2',
                   message='the schedule made its second job')
        eventually(lambda: all(client.get_pool(pool_id).auto_scale_run for pool_id in (scene.scaled, scene.scaled_bad)),
                   message='a periodic autoscale run')
        yield scene
    finally:
        stop_emulator(process)


def _by_id(rows: list[dict], wanted: str) -> dict:
    return next(row for row in rows if row['id'] == wanted)


def test_overview_shows_schedules_autoscale_auto_pools_subtasks_and_node_scheduling(scene):
    overview = scene.overview()
    schedule = _by_id(overview['schedules'], scene.schedule)
    assert (schedule['state'], schedule['recurrence'], schedule['recentJob']) == ('active', 'PT10M', 'nightly:job-2')
    assert schedule['nextRun'] is not None and schedule['nextRun'] > schedule['created']
    assert [(job['id'], job['state']) for job in schedule['jobs']] == [('nightly:job-1', 'completed'),
                                                                       ('nightly:job-2', 'active')]
    assert _by_id(overview['jobs'], 'nightly:job-2')['schedule'] == {'id': 'nightly', 'number': 2}
    assert 'schedule' not in _by_id(overview['jobs'], scene.mpi_job)

    pools = {pool['id']: pool for pool in overview['pools']}
    scaled = pools[scene.scaled]['autoScale']
    assert (scaled['formula'], scaled['interval']) == (SCALE_FORMULA, 'PT5M')
    assert scaled['lastRun']['results'] == ('$TargetDedicatedNodes=0;$TargetLowPriorityNodes=0;'
                                            '$NodeDeallocationOption=requeue;$limit=2')
    assert scaled['lastRun']['error'] is None and scaled['lastRun']['time'] <= overview['now']
    error = pools[scene.scaled_bad]['autoScale']['lastRun']['error']
    assert error['code'] == 'AutoScalingFormulaEvaluationError' and 'Undefined symbol' in error['detail']
    assert pools[scene.work_pool]['autoScale'] is None and pools[scene.work_pool]['autoPoolOf'] is None

    auto_pool_id = _by_id(overview['jobs'], scene.auto_job)['autoPool']['poolId']
    assert auto_pool_id.startswith('auto_') and pools[auto_pool_id]['autoPoolOf'] == {
        'lifetime': 'job', 'jobId': scene.auto_job, 'keepAlive': False}

    mpi = _by_id(overview['jobs'], scene.mpi_job)['tasks'][0]
    assert mpi['instances'] == 2 and len(mpi['subtasks']) == 1
    subtask = mpi['subtasks'][0]
    assert (subtask['id'], subtask['state'], subtask['result'], subtask['exitCode']) == (1, 'completed', 'success', 0)
    assert subtask['nodeId'] in {node['id'] for node in pools[scene.work_pool]['nodes']} - {mpi['nodeId']}

    nodes = {node['id']: node for node in pools[scene.work_pool]['nodes']}
    disabled = nodes[scene.disabled_node]
    assert (disabled['schedulingState'], disabled['users']) == ('disabled', ['alice'])
    assert [node['schedulingState'] for node_id, node in nodes.items() if node_id != scene.disabled_node] == ['enabled']


def test_overview_sends_a_dependent_tasks_wait_when_it_changes(scene, unique_id, tmp_path):
    """A task leaving the waiting list gets no new stamp: the list comes again when it changed, not every poll."""
    job_id, gate = unique_id('deps'), tmp_path / 'gate'
    try:
        scene.dependent_job(job_id, str(gate))
        first = scene.overview()
        job = _by_id(first['jobs'], job_id)
        assert first['waiting'] and job['waiting'] == ['child'] and job['usesTaskDependencies']
        assert _by_id(job['tasks'], 'child')['dependsOn'] == {'taskIds': ['1'], 'taskIdCount': 1,
                                                              'taskIdRanges': [{'start': 1, 'end': 2}]}
        assert 'dependsOn' not in _by_id(job['tasks'], '1')
        eventually(lambda: scene.client.get_task(job_id, '2').state == 'completed', message='task 2 done')
        token = scene.overview()['token']
        unchanged = scene.overview(token)
        assert not unchanged['waiting'] and 'waiting' not in _by_id(unchanged['jobs'], job_id)  # nothing resent

        gate.touch()
        assert wait_for_task(scene.client, job_id, 'child').execution_info.result == 'success'
        after = scene.overview(token)
        job = _by_id(after['jobs'], job_id)
        assert after['waiting'] and job['waiting'] == []
        assert {task['id']: task['state'] for task in job['tasks']} == {'1': 'completed', 'child': 'completed'}
    finally:
        gate.touch()
        scene.client.begin_delete_job(job_id)


def test_the_page_shows_schedules_autoscale_auto_pools_dependencies_subtasks_and_nodes(scene, browser, unique_id,
                                                                                         tmp_path):
    job_id, gate = unique_id('deps'), tmp_path / 'gate'
    try:
        scene.dependent_job(job_id, str(gate))
        set_viewport(browser, 1400)
        browser.get(scene.endpoint + '/')
        # The job schedule, among the jobs: its recurrence, next run, recent job and jobs; its jobs named as its.
        row = f'#schedules tr[data-schedule-id="{scene.schedule}"]'
        eventually(lambda: text_of(browser, row), message='the schedule listed')
        text = text_of(browser, row)
        assert '▶ active' in text and 'every 10 min' in text and 'job-2' in text and '✓ job-1' in text, text
        assert text_of(browser, '#jobs tr[data-job-id="nightly:job-2"] [data-schedule="nightly"]') == 'nightly:job-2'
        # Autoscale in its pool's section: the formula, the last run's results; an evaluation's error.
        assert text_of(browser, f'[data-autoscale="{scene.scaled}"] [data-autoscale-formula]') == SCALE_FORMULA
        assert '$limit=2' in text_of(browser, f'[data-autoscale="{scene.scaled}"] [data-autoscale-results]')
        assert 'every 5 min' in text_of(browser, f'[data-autoscale="{scene.scaled}"]')
        assert '✗ error AutoScalingFormulaEvaluationError' in text_of(browser, f'[data-autoscale="{scene.scaled_bad}"]')
        assert 'Undefined symbol' in text_of(browser, f'[data-autoscale="{scene.scaled_bad}"]')
        # The auto pool, marked as the job's, with its lifetime.
        auto_pool = text_of(browser, f'[data-auto-pool-of="{scene.auto_job}"]')
        assert 'auto pool of job autojob' in auto_pool and 'lifetime: job' in auto_pool
        # The node whose scheduling is disabled: said on its cell, with its user.
        cell = text_of(browser, f'[data-pool-id="{scene.work_pool}"] .node-cell[data-node-id="{scene.disabled_node}"]')
        assert '⊘ scheduling off' in cell and '1 node user' in cell, cell

        # The dependent task: waiting for its dependencies (not plain queued), what it waits for, then done.
        click(browser, f'#jobs tr[data-job-id="{job_id}"]')
        child = '#task-rows [data-task-id="child"]'
        eventually(lambda: text_of(browser, f'{child} [data-state]') == '◷ waiting for dependencies',
                   message='the child waiting')
        assert '← 1, 1–2' in text_of(browser, child)
        assert text_of(browser, '#task-rows [data-task-id="1"] [data-state]') == '▶ running'
        click(browser, f'{child} span')
        eventually(lambda: 'waiting for dependencies' in (text_of(browser, '#task-detail') or ''), message='detail')
        assert '1 ▶ running' in text_of(browser, '#task-detail [data-parent="1"]')
        assert '1 of 2 completed' in text_of(browser, '#task-detail [data-range="1-2"]')
        for width in (1280, 1400, 1920):
            set_viewport(browser, width)
            assert cut_panels(browser) == [], f'cut at {width} px'
            assert browser.execute_script('''const cell = document.querySelector(arguments[0]).parentElement;
                return cell.scrollWidth <= cell.clientWidth && cell.scrollHeight <= cell.clientHeight;''',
                                          f'{child} [data-state]'), f'the waiting label cut at {width} px'
        gate.touch()
        eventually(lambda: text_of(browser, f'{child} [data-state]') == '✓ succeeded', message='the child ran')
        assert 'dependencies were met' in text_of(browser, '#task-detail')

        # The multi-instance task: its instances, its subtask on the other node, a bar on each node.
        click(browser, f'#jobs tr[data-job-id="{scene.mpi_job}"]')
        click(browser, '#task-rows [data-task-id="mpi"] span')
        eventually(lambda: text_of(browser, '#task-detail [data-subtask="subtask 1"]'), message='the subtask listed')
        assert '✓ succeeded' in text_of(browser, '#task-detail [data-subtask="subtask 1"]')
        assert '2 instances' in text_of(browser, '#task-detail')
        assert '×2' in text_of(browser, '#task-rows [data-task-id="mpi"]')
        eventually(lambda: browser.execute_script('return document.getElementById("timeline").dataset.bars') == '2',
                   message='a bar on each of its two nodes')
        assert cut_panels(browser) == []
    finally:
        gate.touch()
        scene.client.begin_delete_job(job_id)
