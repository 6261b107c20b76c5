"""The recorded real-service exchanges replay against the emulator (benchmarks/replay_recordings.py).

Every replayable entry of tests/data/recorded_exchanges.json (derived from the Python, JS, .NET, Java
and Go SDKs' recordings) must match, except those in its ``known_differences`` list (each with a
reason); a known difference that now matches must leave the list, so the list stays the honest work
list it is.
"""

from __future__ import annotations

import os
import re
import sys

import pytest

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(PROJECT_DIR, 'benchmarks'))

import replay_recordings  # noqa: E402

pytestmark = pytest.mark.emulator


@pytest.fixture(scope='module')
def replay() -> list:
    return replay_recordings.run()


def _describe(result) -> str:
    return f'{result.recording} #{result.index} {result.method} {result.path} ({result.label}): ' + \
        '; '.join(result.mismatches)


def test_every_replayable_entry_matches_except_the_known_differences(replay):
    unexpected = [r for r in replay if r.replayable and r.counted and not r.matched and not r.known_difference]
    assert not unexpected, 'entries that differ from the recorded service:\n' + '\n'.join(map(_describe, unexpected))


def test_known_differences_are_still_differences(replay):
    fixed = [f'{r.recording}: {r.label}' for r in replay if r.known_difference and r.matched]
    assert not fixed, 'these now match the recordings; remove them from known_differences:\n' + '\n'.join(fixed)


def test_known_differences_name_existing_entries_and_give_reasons():
    data = replay_recordings.load(replay_recordings.DATA_FILE)
    labels = {(recording['name'], entry['label']) for recording in data['recordings'] for entry in recording['entries']}
    for item in data['known_differences']:
        assert (item['recording'], item['label']) in labels, f'no such entry: {item}'
        assert item['reason'].strip(), f'a known difference needs its reason: {item}'


def test_setup_steps_succeed(replay):
    failed = [r for r in replay if not r.counted and r.replayable and not r.matched]
    assert not failed, 'setup steps failed; nothing after them is measured:\n' + '\n'.join(map(_describe, failed))


def test_unreplayable_entries_say_why(replay):
    for result in replay:
        if not result.replayable:
            assert result.reason, f'{result.recording}: {result.label} is marked not replayable without a reason'


def test_the_comparison_sees_a_wrong_status_and_a_wrong_default():
    """The matcher itself: a response that differs from the expectation is reported, one that agrees is not."""
    entry = {'status': 200, 'defaults': {'state': 'active', 'odata.metadata': '{base}/$metadata#pools/@Element'},
             'keys_at': {'': ['odata.metadata', 'state']}}
    names = {'base': 'http://127.0.0.1:1'}
    good = replay_recordings.Response(200, {}, '', {'odata.metadata': 'http://127.0.0.1:1/$metadata#pools/@Element',
                                                     'state': 'active'})
    assert replay_recordings.compare(entry, good, names, {}) == []
    wrong_state = replay_recordings.Response(200, {}, '', {**good.body, 'state': 'deleting'})
    assert replay_recordings.compare(entry, wrong_state, names, {}) == ['state: expected "active", got "deleting"']
    wrong_status = replay_recordings.Response(404, {}, '', {'code': 'PoolNotFound', 'message': {'value': 'gone'}})
    assert replay_recordings.compare(entry, wrong_status, names, {})[0].startswith('status: expected 200, got 404')


def test_every_language_is_replayed(replay):
    """Each SDK's recordings give exchanges that are sent and counted: none of the five drops out unnoticed."""
    languages = replay_recordings.summary(replay)['languages']
    assert sorted(languages) == ['dotnet', 'go', 'java', 'js', 'python']
    assert all(tally['counted'] >= 10 for tally in languages.values()), languages


def test_derived_recordings_use_our_own_ids_and_name_their_sources():
    """The derived exchanges carry no id of the recorded accounts: every entity in a path is one of ours."""
    data = replay_recordings.load(replay_recordings.DATA_FILE)
    derived = [r for r in data['recordings'] if r['name'].split(':')[0] in ('N', 'Java', 'Go')]
    assert derived
    for recording in derived:
        assert recording['language'] in ('dotnet', 'java', 'go') and recording['sources'], recording['name']
        for entry in recording['entries']:
            segments = entry['path'].strip('/').split('/')
            for collection, entity in zip(segments, segments[1:], strict=False):
                if collection in ('pools', 'jobs', 'jobschedules', 'tasks'):
                    assert re.fullmatch(r'(net|java|go)-[a-z]+-\d+', entity), (recording['name'], entry['path'])


def test_a_wrong_status_counts_against_every_aspect_compared():
    result = replay_recordings.EntryResult('r', 0, 'go', 'l', 's', 'GET', '/pools', counted=True,
                                           mismatches=['status: expected 200, got 404'],
                                           aspects=('status', 'key sets', 'headers'))
    assert [result.aspect_matched(a) for a in result.aspects] == [False, False, False]
    result.mismatches = ['header ETag: expected present, got absent']
    assert [result.aspect_matched(a) for a in result.aspects] == [True, True, False]
