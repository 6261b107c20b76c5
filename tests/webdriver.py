"""A small W3C WebDriver client for the portal test: headless Chromium through chromedriver, over HTTP.

The protocol is a handful of JSON calls, so the test needs no browser-automation package.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request

ELEMENT = 'element-6066-11e4-a52e-4f735466cecf'
CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                  '--disable-background-networking', '--disable-component-update', '--disable-sync',
                  '--disable-dev-shm-usage', '--window-size=1500,1100']


def find_browser() -> tuple[str | None, str | None]:
    return (shutil.which('chromium') or shutil.which('chromium-browser'),
            shutil.which('chromedriver') or shutil.which('chromium-driver'))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


class Browser:
    def __init__(self, chromium: str, chromedriver: str) -> None:
        self.port = _free_port()
        self.driver = subprocess.Popen([chromedriver, f'--port={self.port}', '--allowed-ips=127.0.0.1'],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.profile = tempfile.mkdtemp(prefix='portal-test-chromium-')
        deadline = time.monotonic() + 30
        while True:
            try:
                self._call('GET', '/status')
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        capabilities = {'browserName': 'chrome', 'goog:chromeOptions': {
            'binary': chromium, 'args': CHROMIUM_FLAGS + [f'--user-data-dir={self.profile}']}}
        self.session = self._call('POST', '/session', {'capabilities': {'alwaysMatch': capabilities}})['sessionId']

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f'http://127.0.0.1:{self.port}{path}', data=data, method=method,
                                         headers={'Content-Type': 'application/json'})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read() or b'{}').get('value')

    def _session(self, method: str, path: str, body: dict | None = None):
        return self._call(method, f'/session/{self.session}{path}', body)

    def open(self, url: str) -> None:
        self._session('POST', '/url', {'url': url})

    def script(self, source: str, *args):
        return self._session('POST', '/execute/sync', {'script': source, 'args': list(args)})

    def text(self, css: str) -> str | None:
        """The visible text of the first element matching ``css``, or None."""
        return self.script('const e = document.querySelector(arguments[0]); return e ? e.innerText : null;', css)

    def click(self, css: str) -> None:
        element = self._session('POST', '/element', {'using': 'css selector', 'value': css})[ELEMENT]
        self._session('POST', f'/element/{element}/click', {})

    def screenshot(self, path: str) -> None:
        with open(path, 'wb') as file:
            file.write(base64.b64decode(self._session('GET', '/screenshot')))

    def close(self) -> None:
        try:
            self._call('DELETE', f'/session/{self.session}')
        finally:
            self.driver.terminate()
            self.driver.wait(15)
            shutil.rmtree(self.profile, ignore_errors=True)
