"""Replays the real-service exchanges derived from Microsoft's SDK recordings against the local emulator.

    python benchmarks/replay_recordings.py [--json] [--only NAME] [--language LANG] [--data FILE]

The expectations are the project's own facts in tests/data/recorded_exchanges.json (status, error
code, key sets, defaults and headers per request, derived from the recordings in
Azure/azure-sdk-assets; see ../shared/reference/recorded-service-behaviour.md section 0). Each
recording gets a fresh emulator (``python -m batch_emulator --port 0 --node-step-seconds 0.05``);
its requests are sent in order, signed with SharedKey, after polling (with a deadline) for any
state an entry waits for. It prints per recording and in total how many counted entries match,
and every mismatch with expected vs got. Exit status 0 unless the script itself fails.
"""

from __future__ import annotations

import argparse
import email.utils
import http.client
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from urllib.parse import quote, urlsplit

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, PROJECT_DIR)

from batch_emulator import DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME  # noqa: E402
from batch_emulator.wire.auth import sign, string_to_sign  # noqa: E402

DATA_FILE = os.path.join(PROJECT_DIR, 'tests', 'data', 'recorded_exchanges.json')
API_VERSION = '2025-06-01'
WAIT_SECONDS = 15.0
POLL_INTERVAL = 0.05
PARALLEL = 4
_MISSING = object()


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    text: str
    body: object = None


@dataclass
class EntryResult:
    recording: str
    index: int
    language: str
    label: str
    source: str
    method: str
    path: str
    counted: bool
    shape_only: bool = False
    replayable: bool = True
    reason: str = ''
    known_difference: str = ''
    mismatches: list[str] = field(default_factory=list)
    aspects: tuple[str, ...] = ()

    @property
    def matched(self) -> bool:
        return not self.mismatches

    def aspect_matched(self, aspect: str) -> bool:
        """A wrong status (or a state never reached) leaves nothing else comparable: every aspect misses."""
        kinds = {aspect_of(problem) for problem in self.mismatches}
        return aspect not in kinds and 'status' not in kinds


ASPECTS = ('status', 'error code', 'key sets', 'values', 'headers')
LANGUAGES = {'P': 'python', 'J': 'js', 'N': 'dotnet', 'Java': 'java', 'Go': 'go'}


def aspect_of(problem: str) -> str:
    if problem.startswith(('status:', 'waited', 'not sent', 'GET ')):
        return 'status'
    if problem.startswith('error '):
        return 'error code'
    if problem.startswith(('keys at', 'top-level keys')):
        return 'key sets'
    if problem.startswith('header '):
        return 'headers'
    return 'values'


def checked_aspects(entry: dict) -> tuple[str, ...]:
    found = ['status']
    if 'error_code' in entry or 'error_values' in entry:
        found.append('error code')
    if any(name in entry for name in ('keys_at', 'required_keys_at', 'keys_between')):
        found.append('key sets')
    if not entry.get('shape_only') and any(name in entry for name in ('defaults', 'absent', 'body_text')):
        found.append('values')
    if entry.get('headers'):
        found.append('headers')
    return tuple(found)


# ----- the emulator and signed requests -------------------------------------------------------

@contextmanager
def running_emulator() -> Iterator[str]:
    """A fresh ``python -m batch_emulator`` on a free loopback port; yields its endpoint."""
    process = subprocess.Popen(
        [sys.executable, '-m', 'batch_emulator', '--port', '0', '--node-step-seconds', '0.05'],
        cwd=PROJECT_DIR, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        first_line = process.stdout.readline()
        match = re.search(r'listening on (http://127\.0\.0\.1:\d+)', first_line)
        if not match:
            raise RuntimeError(f'the emulator did not start: {first_line!r}')
        yield match.group(1)
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        process.stdout.close()


def query_string(entry: dict) -> str:
    """api-version first (as the Python SDK sends it), then the entry's parameters; or the entry's exact string."""
    if 'query_string' in entry:
        return entry['query_string']
    parameters = [('api-version', entry.get('api_version', API_VERSION)), *entry.get('query', {}).items()]
    return '&'.join(f'{quote(name, safe="")}={quote(str(value), safe=",")}' for name, value in parameters)


def send(endpoint: str, method: str, path: str, query: str, body: object = None, *, encoded: bool = False) -> Response:
    """One request signed with the emulator's SharedKey, as azure-batch 15 signs it (``encoded``: the path is
    sent as it is, percent-encoding and all, as a recorded client sent it)."""
    raw_path = (path if encoded else quote(path, safe='/:')) + ('?' + query if query else '')
    headers = {'ocp-date': email.utils.formatdate(usegmt=True), 'Accept': 'application/json'}
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        headers['Content-Type'] = 'application/json; odata=minimalmetadata'
        headers['Content-Length'] = str(len(payload))
    elif method in ('POST', 'PUT', 'PATCH'):
        headers['Content-Type'] = 'application/json; odata=minimalmetadata'
        headers['Content-Length'] = '0'
    signature = sign(DEFAULT_ACCOUNT_KEY, string_to_sign(method, raw_path, headers, DEFAULT_ACCOUNT_NAME))
    headers['Authorization'] = f'SharedKey {DEFAULT_ACCOUNT_NAME}:{signature}'
    address = urlsplit(endpoint)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    try:
        connection.request(method, raw_path, body=payload, headers=headers)
        reply = connection.getresponse()
        text = reply.read().decode('utf-8', 'replace')
        response = Response(reply.status, {name.lower(): value for name, value in reply.getheaders()}, text)
    finally:
        connection.close()
    if text and 'json' in response.headers.get('content-type', ''):
        try:
            response.body = json.loads(text)
        except ValueError:
            response.body = None
    return response


# ----- reading expectations -------------------------------------------------------------------

def resolve(value: object, dotted: str) -> object:
    """The value at a dotted path ('' is the whole value); keys may contain dots (odata.metadata)."""
    if dotted == '':
        return value
    parts = dotted.split('.')
    return _resolve_parts(value, parts)


def _resolve_parts(value: object, parts: list[str]) -> object:
    if not parts:
        return value
    if isinstance(value, list):
        if not parts[0].isdigit() or int(parts[0]) >= len(value):
            return _MISSING
        return _resolve_parts(value[int(parts[0])], parts[1:])
    if isinstance(value, dict):
        for length in range(len(parts), 0, -1):
            key = '.'.join(parts[:length])
            if key in value:
                found = _resolve_parts(value[key], parts[length:])
                if found is not _MISSING:
                    return found
    return _MISSING


def substitute(value: object, names: dict[str, str]) -> object:
    """Placeholders: {name} captured earlier; {now+600s} the UTC time that many seconds from the moment of sending."""
    if isinstance(value, str):
        value = re.sub(r'\{now([+-]\d+)s\}', lambda m: _utc_iso(int(m.group(1))), value)
        return re.sub(r'\{(\w+)\}', lambda m: names.get(m.group(1), m.group(0)), value)
    if isinstance(value, list):
        return [substitute(item, names) for item in value]
    if isinstance(value, dict):
        return {key: substitute(item, names) for key, item in value.items()}
    return value


def _utc_iso(offset_seconds: int) -> str:
    moment = datetime.now(timezone.utc) + timedelta(seconds=offset_seconds)
    return moment.strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def expand_keys(spec: object, key_sets: dict[str, list[str]]) -> set[str]:
    items = [spec] if isinstance(spec, str) else spec
    keys: set[str] = set()
    for item in items:
        keys.update(key_sets[item[1:]] if item.startswith('@') else [item])
    return keys


def short(value: object) -> str:
    text = json.dumps(value, sort_keys=True) if value is not _MISSING else '<absent>'
    return text if len(text) <= 160 else text[:157] + '...'


# ----- comparing one exchange -----------------------------------------------------------------

def compare(entry: dict, response: Response, names: dict[str, str], key_sets: dict) -> list[str]:
    expected_status = entry['status']
    got_code = response.body.get('code') if isinstance(response.body, dict) else None
    if response.status != expected_status:
        detail = f' ({got_code}: {_message(response.body)}{_values(response.body)})' if got_code else ''
        return [f'status: expected {expected_status}, got {response.status}{detail}']
    problems: list[str] = []
    if 'error_code' in entry and got_code != entry['error_code']:
        problems.append(f'error code: expected {entry["error_code"]}, got {got_code}')
    if 'error_values' in entry:
        problems += _compare_error_values(entry['error_values'], response.body, names)
    for header, wanted in entry.get('headers', {}).items():
        got = response.headers.get(header.lower())
        wanted = substitute(wanted, names)
        if _uncaptured(wanted):
            problems.append(f'header {header}: {_uncaptured(wanted)}')
        elif wanted is True and got is None:
            problems.append(f'header {header}: expected present, got absent')
        elif wanted is False and got is not None:
            problems.append(f'header {header}: expected absent, got {got!r}')
        elif isinstance(wanted, str) and got != wanted:
            problems.append(f'header {header}: expected {wanted!r}, got {got!r}')
    body = response.body
    for dotted, spec in entry.get('keys_at', {}).items():
        problems += _compare_keys(dotted, expand_keys(spec, key_sets), body, exact=True)
    for dotted, spec in entry.get('required_keys_at', {}).items():
        problems += _compare_keys(dotted, expand_keys(spec, key_sets), body, exact=False)
    for dotted, spec in entry.get('keys_between', {}).items():
        problems += _compare_keys(dotted, set(spec['required']), body, exact=True, optional=set(spec['optional']))
    if entry.get('shape_only'):
        return problems
    for dotted in entry.get('absent', []):
        got = resolve(body, dotted)
        if got is not _MISSING:
            problems.append(f'{dotted or "body"}: expected absent, got {short(got)}')
    for dotted, wanted in entry.get('defaults', {}).items():
        wanted = substitute(wanted, names)
        problem = _uncaptured(wanted) or _compare_value(resolve(body, dotted), wanted)
        if problem:
            problems.append(f'{dotted}: {problem}')
    if 'body_text' in entry and response.text != entry['body_text']:
        problems.append(f'body: expected {entry["body_text"]!r}, got {response.text[:80]!r}')
    return problems


def _message(body: object) -> str:
    message = body.get('message') if isinstance(body, dict) else None
    text = message.get('value', '') if isinstance(message, dict) else str(message or '')
    return text.split('\n', 1)[0][:140]


def _values(body: object) -> str:
    values = body.get('values') if isinstance(body, dict) else None
    pairs = [f'{item.get("key")}={item.get("value", "")}' for item in values or [] if isinstance(item, dict)]
    return (' [' + '; '.join(pairs)[:200] + ']') if pairs else ''


def _uncaptured(wanted: object) -> str:
    found = re.findall(r'\{(\w+)\}', json.dumps(wanted))
    return f'not comparable: {{{found[0]}}} was not captured (the entry that sets it failed)' if found else ''


def _compare_error_values(wanted: dict, body: object, names: dict) -> list[str]:
    values = body.get('values') if isinstance(body, dict) else None
    got = {item.get('key'): item.get('value', _MISSING) for item in values or [] if isinstance(item, dict)}
    problems = []
    for key, value in wanted.items():
        if key not in got:
            problems.append(f'error values: expected key {key}, got keys {sorted(k for k in got if k)}')
        elif value is not None and got[key] != substitute(value, names):
            problems.append(f'error values {key}: expected {short(value)}, got {short(got[key])}')
    return problems


def _compare_keys(dotted: str, wanted: set[str], body: object, *, exact: bool,
                  optional: set[str] = frozenset()) -> list[str]:
    """The keys at a dotted path: all of ``wanted``; with ``exact``, nothing else but ``optional`` ones."""
    got = resolve(body, dotted)
    where = f'keys at {dotted!r}' if dotted else 'top-level keys'
    if not isinstance(got, dict):
        return [f'{where}: expected an object with {sorted(wanted)}, got {short(got)}']
    missing, extra = sorted(wanted - got.keys()), sorted(got.keys() - wanted - optional)
    if missing or (exact and extra):
        parts = [f'missing {missing}'] if missing else []
        parts += [f'unexpected {extra}'] if exact and extra else []
        return [f'{where}: ' + ', '.join(parts)]
    return []


def _compare_value(got: object, wanted: object) -> str:
    if isinstance(wanted, dict) and len(wanted) == 1 and next(iter(wanted)) in ('startswith', 'one_of', 'contains'):
        matcher, operand = next(iter(wanted.items()))
        ok = (matcher == 'startswith' and isinstance(got, str) and got.startswith(operand)) or \
             (matcher == 'one_of' and got in operand) or \
             (matcher == 'contains' and isinstance(got, (str, list)) and operand in got)
        return '' if ok else f'expected {matcher} {short(operand)}, got {short(got)}'
    return '' if got == wanted else f'expected {short(wanted)}, got {short(got)}'


# ----- replaying ------------------------------------------------------------------------------

def wait_for(endpoint: str, condition: dict, names: dict[str, str]) -> str:
    """Polls a GET until its condition holds; returns '' or why it did not within the deadline."""
    path = substitute(condition['path'], names)
    deadline = time.monotonic() + condition.get('timeout', WAIT_SECONDS)
    last = ''
    while True:
        response = send(endpoint, 'GET', path, query_string({}))
        if response.status == 501:  # the operation is missing: no state will ever come
            return f'GET {path} answers 501 {(response.body or {}).get("code", "")}: cannot wait for its state'
        if 'status' in condition:
            if response.status == condition['status']:
                return ''
            last = f'status {response.status}'
        elif response.status == 200:
            got = _resolve_every(response.body, condition['field'])
            if got == condition['equals']:
                return ''
            last = f'{condition["field"]} = {short(got)}'
        elif response.status == 404:  # entities are made by the request that creates them: it will not come
            return f'GET {path} answers 404 {(response.body or {}).get("code", "")}: no state to wait for'
        else:
            last = f'status {response.status}'
        if time.monotonic() > deadline:
            wanted = short(condition.get('status', condition.get('equals')))
            return f'waited {condition.get("timeout", WAIT_SECONDS):.0f} s on GET {path} for {wanted}: last {last}'
        time.sleep(POLL_INTERVAL)


def _resolve_every(body: object, dotted: str) -> object:
    """As resolve; ``value.*.state``: the state every item of the list has (_MISSING while they differ)."""
    if '.*.' not in dotted:
        return resolve(body, dotted)
    head, tail = dotted.split('.*.', 1)
    items = resolve(body, head)
    found = [resolve(item, tail) for item in items] if isinstance(items, list) and items else [_MISSING]
    return found[0] if all(item == found[0] for item in found) else _MISSING


def capture(entry: dict, response: Response, names: dict[str, str]) -> None:
    for name, where in entry.get('capture', {}).items():
        if where.startswith('header:'):
            value = response.headers.get(where[len('header:'):].lower())
        else:
            value = resolve(response.body, where)
        if isinstance(value, (str, int)) and value is not _MISSING:
            names[name] = str(value)


def replay_recording(recording: dict, key_sets: dict, known: dict[tuple[str, str], str]) -> list[EntryResult]:
    results = []
    with running_emulator() as endpoint:
        names = {'base': endpoint}
        previous_failed = False
        for index, entry in enumerate(recording['entries']):
            result = EntryResult(recording['name'], index, language_of(recording), entry['label'],
                                 entry.get('source', ''), entry['method'], entry['path'],
                                 counted=not entry.get('setup'), shape_only=bool(entry.get('shape_only')),
                                 known_difference=known.get((recording['name'], entry['label']), ''),
                                 aspects=checked_aspects(entry))
            results.append(result)
            if entry.get('replayable', True) is False:
                result.replayable, result.counted, result.reason = False, False, entry.get('reason', '')
                continue
            if 'wait' in entry:
                # A wait follows an action; when that action failed, its state will not come: look once only.
                condition = {**entry['wait'], 'timeout': 0} if previous_failed else entry['wait']
                problem = wait_for(endpoint, condition, names)
                if problem and previous_failed:
                    problem = f'not sent: the previous entry failed and the state is not there ({problem})'
                if problem:
                    result.mismatches.append(problem)
                    previous_failed = True
                    continue
            path = substitute(entry['path'], names)
            result.path = path.replace(endpoint, '')
            response = send(endpoint, entry['method'], path, substitute(query_string(entry), names),
                            substitute(entry.get('body'), names), encoded=bool(entry.get('path_encoded')))
            result.mismatches = compare(entry, response, names, key_sets)
            # The action failed (another status): a state it would bring will not come. A body that differs
            # in its keys or values does not stop what the next entry waits for.
            previous_failed = any(aspect_of(problem) == 'status' for problem in result.mismatches)
            capture(entry, response, names)
    return results


def language_of(recording: dict) -> str:
    return recording.get('language') or LANGUAGES[recording['name'].split(':', 1)[0]]


def load(data_file: str) -> dict:
    with open(data_file, encoding='utf-8') as handle:
        return json.load(handle)


def run(data_file: str = DATA_FILE, only: str | None = None, language: str | None = None) -> list[EntryResult]:
    data = load(data_file)
    known = {(item['recording'], item['label']): item['reason'] for item in data.get('known_differences', [])}
    recordings = [r for r in data['recordings'] if (only is None or r['name'] == only)
                  and (language is None or language_of(r) == language)]
    if only is not None and not recordings:
        raise SystemExit(f'error: no recording named {only!r}; names: '
                         + ', '.join(r['name'] for r in data['recordings']))
    # Each recording has an emulator of its own: a few run side by side (they wait on polls more than they work).
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        replayed = pool.map(lambda recording: replay_recording(recording, data['key_sets'], known), recordings)
        return [result for results in replayed for result in results]


# ----- reporting ------------------------------------------------------------------------------

def summary(results: list[EntryResult]) -> dict:
    recordings: dict[str, dict] = {}
    languages: dict[str, dict] = {}
    for result in results:
        for tallies, key in ((recordings, result.recording), (languages, result.language)):
            tally = tallies.setdefault(key, {'matched': 0, 'counted': 0, 'unreplayable': 0, 'setup_failures': 0,
                                             'aspects': {aspect: [0, 0] for aspect in ASPECTS}})
            if not result.replayable:
                tally['unreplayable'] += 1
            elif result.counted:
                tally['counted'] += 1
                tally['matched'] += result.matched
                for aspect in result.aspects:
                    tally['aspects'][aspect][0] += result.aspect_matched(aspect)
                    tally['aspects'][aspect][1] += 1
            elif not result.matched:
                tally['setup_failures'] += 1
    for tally in (*recordings.values(), *languages.values()):
        tally['ratio'] = round(tally['matched'] / tally['counted'], 4) if tally['counted'] else 1.0
    matched = sum(t['matched'] for t in recordings.values())
    counted = sum(t['counted'] for t in recordings.values())
    aspects = {aspect: [sum(t['aspects'][aspect][i] for t in languages.values()) for i in (0, 1)]
               for aspect in ASPECTS}
    return {'recordings': recordings, 'languages': languages, 'matched': matched, 'counted': counted,
            'ratio': round(matched / counted, 4) if counted else 1.0, 'aspects': aspects,
            'unreplayable': sum(t['unreplayable'] for t in recordings.values())}


def _aspect_line(aspects: dict) -> str:
    return ', '.join(f'{name} {got}/{of}' for name, (got, of) in aspects.items() if of)


def print_report(results: list[EntryResult]) -> None:
    totals = summary(results)
    print('Replay of the recorded Batch service exchanges against the local emulator')
    for name, tally in totals['recordings'].items():
        extra = f', {tally["unreplayable"]} not replayable' if tally['unreplayable'] else ''
        extra += f', {tally["setup_failures"]} setup step(s) failed' if tally['setup_failures'] else ''
        print(f'  {name:28} {tally["matched"]:3} / {tally["counted"]:3} match{extra}')
    print(f'  {"total":28} {totals["matched"]:3} / {totals["counted"]:3} match ({totals["ratio"]:.1%}), '
          f'{totals["unreplayable"]} not replayable')
    print('\nPer language (replayable exchanges that match fully; then per aspect compared):')
    for name, tally in sorted(totals['languages'].items()):
        print(f'  {name:8} {tally["matched"]:3} / {tally["counted"]:3} match ({tally["ratio"]:.1%}), '
              f'{tally["unreplayable"]} not replayable; {_aspect_line(tally["aspects"])}')
    print(f'  {"all":8} {totals["matched"]:3} / {totals["counted"]:3} match ({totals["ratio"]:.1%}), '
          f'{totals["unreplayable"]} not replayable; {_aspect_line(totals["aspects"])}')
    mismatched = [r for r in results if r.replayable and not r.matched]
    if mismatched:
        print('\nMismatches (recording #entry  METHOD path  [source]: expected vs got):')
    for result in mismatched:
        role = ' (setup)' if not result.counted else ''
        known = f'  [known difference: {result.known_difference}]' if result.known_difference else ''
        print(f'  {result.recording} #{result.index} {result.method} {result.path}{role} - {result.label}'
              f'  [{result.source}]{known}')
        for problem in result.mismatches:
            print(f'      {problem}')
    unreplayable = [r for r in results if not r.replayable]
    if unreplayable:
        print('\nNot replayable (listed, not sent):')
    for result in unreplayable:
        print(f'  {result.recording} #{result.index} {result.label}: {result.reason}')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--json', action='store_true', help='print a machine-readable result')
    parser.add_argument('--only', metavar='NAME', help='replay only this recording (e.g. J:job_operations)')
    parser.add_argument('--language', choices=sorted(set(LANGUAGES.values())), help='replay only this language')
    parser.add_argument('--data', default=DATA_FILE, help='the expectations file (default tests/data/...)')
    args = parser.parse_args(argv)
    results = run(args.data, args.only, args.language)
    if args.json:
        print(json.dumps({'summary': summary(results),
                          'entries': [{**vars(r), 'matched': r.matched} for r in results]}, indent=1))
    else:
        print_report(results)
    return 0


if __name__ == '__main__':
    sys.exit(main())
