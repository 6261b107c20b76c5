"""$filter, $select and paging, in process: which items a list answers, as the Batch service selects them.

The semantics are OData's as Microsoft documents them for Batch ("Create queries to list Batch resources
efficiently": eq ne gt ge lt le, and, or, not, startswith, quoted strings with '' for a quote, datetimes)
and the recorded behaviour in /work/shared/reference/recorded-service-behaviour.md §1.5 (pages, nextLink,
``$select=id,state`` giving only those properties, enum values compared in any casing). The budget
(250,000 comparisons or 1 s per list request, 400 InvalidQueryParameterValue for ``$filter``) is this
project's, documented in the README; the service documents none. The wording of the ``Reason`` values is
this project's too. Fast and in-process, so mutation testing (benchmarks/mutation.sh) sees them.
"""

from __future__ import annotations

import pytest

from batch_emulator.common.errors import BatchServiceError
from batch_emulator.contract import odata
from batch_emulator.contract.odata import apply_select, compile_filter
from batch_emulator.service.room import page

TASKS = [
    {'id': 'task1', 'state': 'completed', 'priority': 0, 'creationTime': '2025-01-01T10:00:00Z',
     'executionInfo': {'result': 'success', 'exitCode': 0, 'retryCount': 0}, 'displayName': "it's"},
    {'id': 'task2', 'state': 'completed', 'priority': 5, 'creationTime': '2025-01-01T11:30:00.5Z',
     'executionInfo': {'result': 'failure', 'exitCode': 1, 'retryCount': 2}, 'displayName': 'Two'},
    {'id': 'Task3', 'state': 'running', 'priority': -5, 'creationTime': '2025-01-02T00:00:00+01:00',
     'executionInfo': {'retryCount': 0}},
    {'id': 'other', 'state': 'active', 'priority': 10, 'creationTime': '2025-01-03T00:00:00.1234567Z',
     'executionInfo': 'not an object'},
]


def ids(text: str | None) -> list[str]:
    predicate = compile_filter(text)
    assert predicate is not None
    return [task['id'] for task in TASKS if predicate(task)]


def refused(text: str) -> dict[str, str]:
    with pytest.raises(BatchServiceError) as error:
        ids(text)
    assert (error.value.status, error.value.code) == (400, 'InvalidQueryParameterValue')
    assert error.value.values['QueryParameterName'] == '$filter'
    return error.value.values


# ----- comparisons ----------------------------------------------------------------------------------

@pytest.mark.parametrize('text, expected', [
    ("state eq 'completed'", ['task1', 'task2']),
    ("state eq 'Completed'", ['task1', 'task2']),  # enum values in any casing, as the service compares them
    ("state ne 'completed'", ['Task3', 'other']),
    ('priority gt 0', ['task2', 'other']),
    ('priority ge 5', ['task2', 'other']),
    ('priority lt 0', ['Task3']),
    ('priority le 0', ['task1', 'Task3']),
    ('priority eq -5', ['Task3']),
    ('priority EQ 0', ['task1']),  # operators in any casing
    ('executionInfo/exitCode eq 1', ['task2']),
    ('executionInfo/exitCode ne 1', ['task1', 'Task3', 'other']),  # absent is "not equal"
    ('executionInfo/exitCode lt 1', ['task1']),  # absent is neither less nor greater
    ('executionInfo/exitCode ge 0', ['task1', 'task2']),
    ('executionInfo/exitCode gt -1', ['task1', 'task2']),
    ('executionInfo/exitCode le 1', ['task1', 'task2']),
    ("executionInfo/result eq 'failure'", ['task2']),
    ('executionInfo/result eq null', ['Task3', 'other']),
    ('executionInfo/result ne null', ['task1', 'task2']),
    ('missing eq null', ['task1', 'task2', 'Task3', 'other']),
    ("displayName eq 'it''s'", ['task1']),  # '' is a quote inside a string
    ('priority gt 4.5', ['task2', 'other']),
    ("priority lt 'x'", []),  # a number and a string do not compare: no match, no error
])
def test_comparisons_select_the_items_the_service_would(text, expected):
    assert ids(text) == expected


@pytest.mark.parametrize('text, expected', [
    ("creationTime ge datetime'2025-01-01T11:00:00Z'", ['task2', 'Task3', 'other']),
    ("creationTime lt datetime'2025-01-01T11:30:00.5Z'", ['task1']),
    ("creationTime eq datetime'2025-01-01T11:30:00.500Z'", ['task2']),  # the same instant, written otherwise
    ("creationTime eq '2025-01-01T23:00:00Z'", ['Task3']),  # 00:00+01:00 is 23:00 UTC; a bare ISO string
    ("creationTime gt '2025-01-01T23:00:00-00:30'", ['other']),
    ("creationTime eq '2025-01-03T00:00:00.123456Z'", ['other']),  # 7 fractional digits, as the service writes
    ("creationTime gt '2025-01-02T23:59:59.999999+00:00'", ['other']),
    ("creationTime eq datetime'2025-01-02T00:00:00+01:00'", ['Task3']),
    ("creationTime eq '2025-01-01T10:00:00'", ['task1']),  # without a zone: UTC
    ("creationTime gt '2025-01-01T11:30:00.4Z' and creationTime lt '2025-01-01T11:30:00.6Z'", ['task2']),
])
def test_datetimes_compare_as_instants_whatever_their_spelling(text, expected):
    assert ids(text) == expected


def test_booleans_compare_as_booleans():
    items = [{'id': 'a', 'enableAutoScale': True}, {'id': 'b', 'enableAutoScale': False}, {'id': 'c'}]
    for text, expected in [('enableAutoScale eq true', ['a']), ('enableAutoScale eq false', ['b']),
                           ('enableAutoScale eq TRUE', ['a']), ('enableAutoScale ne false', ['a', 'c'])]:
        predicate = compile_filter(text)
        assert [item['id'] for item in items if predicate(item)] == expected, text


def test_string_comparisons_ignore_case_but_not_order():
    assert ids("id gt 'task1'") == ['task2', 'Task3']
    assert ids("id eq 'TASK3'") == ['Task3']


# ----- startswith, and, or, not, parentheses -----------------------------------------------------------

def test_startswith_matches_a_prefix_of_the_string_as_sent():
    assert ids("startswith(id,'task')") == ['task1', 'task2']  # case-sensitive, unlike eq
    assert ids("startswith(id, 'T')") == ['Task3']
    assert ids("startswith(executionInfo/result,'fail')") == ['task2']
    assert ids("startswith(priority,'1')") == []  # not a string
    assert ids("STARTSWITH(id,'oth')") == ['other']


def test_and_binds_tighter_than_or_and_parentheses_change_that():
    assert ids("state eq 'running' or state eq 'completed' and priority gt 0") == ['task2', 'Task3']
    assert ids("(state eq 'running' or state eq 'completed') and priority gt 0") == ['task2']
    assert ids("state eq 'completed' AND priority eq 5") == ['task2']
    assert ids("priority eq 10 OR priority eq -5") == ['Task3', 'other']
    assert ids("priority gt 0 and priority lt 10 and state eq 'completed'") == ['task2']
    assert ids("priority eq 0 or priority eq 10 or state eq 'running'") == ['task1', 'Task3', 'other']


def test_not_negates_what_follows_it():
    assert ids("not state eq 'completed'") == ['Task3', 'other']
    assert ids("not (state eq 'completed' or priority lt 0)") == ['other']
    assert ids("NOT not priority eq 0") == ['task1']
    assert ids("not startswith(id,'task')") == ['Task3', 'other']


def test_a_chain_of_equalities_on_one_property_gives_the_same_items_as_one_by_one():
    assert ids("id eq 'task1' or id eq 'TASK2' or id eq 'nothing'") == ['task1', 'task2']
    assert ids("priority eq 5 or priority eq 10 or state eq 'running'") == ['task2', 'Task3', 'other']
    assert ids("executionInfo/result eq null or executionInfo/result eq 'success'") == ['task1', 'Task3', 'other']
    assert ids("priority eq 5 or priority eq 1.5") == ['task2']
    assert ids("executionInfo eq 'not an object' or id eq 'task1'") == ['task1', 'other']


def test_an_equality_with_an_object_or_list_value_matches_nothing():
    items = [{'id': 'a', 'tags': ['x']}, {'id': 'b', 'tags': {'k': 'v'}}, {'id': 'c', 'tags': 'x'}]
    predicate = compile_filter("tags eq 'x' or tags eq 'y'")
    assert [item['id'] for item in items if predicate(item)] == ['c']


def test_an_empty_filter_keeps_every_item():
    assert compile_filter(None) is None
    assert compile_filter('') is None
    assert compile_filter('   ') is None


def test_trailing_spaces_are_allowed():
    assert ids("priority eq 0   ") == ['task1']


# ----- a filter that is not one: 400 naming $filter --------------------------------------------------

def test_bad_syntax_is_refused_saying_where():
    assert refused("id eq 'a'#")['Reason'] == 'unexpected text at position 9'
    assert refused("id eq 'a'#")['QueryParameterValue'] == "id eq 'a'#"
    assert refused("id eq'unterminated")['Reason'] == 'unexpected text at position 5'


@pytest.mark.parametrize('text, reason', [
    ('id eq', 'the expression ends too early'),
    ("id like 'a'", "unsupported operator 'like'"),
    ("'a' eq id", "expected a property name, found ''a''"),
    ('id eq maybe', "expected a value, found 'maybe'"),
    ("(id eq 'a'", 'the expression ends too early'),
    ("(id eq 'a' or", 'the expression ends too early'),
    ("id eq 'a')", "unexpected ')'"),
    ("id eq 'a' id", "unexpected 'id'"),
    ("startswith id", "expected '(' but found 'id'"),
    ("startswith(id 'a')", "expected ',' but found ''a''"),
    ("startswith(id,'a'", 'the expression ends too early'),
    ("startswith(id,'a',", "expected ')' but found ','"),
])
def test_an_incomplete_or_unknown_expression_is_refused_saying_what(text, reason):
    values = refused(text)
    assert values['Reason'] == reason and values['QueryParameterValue'] == text


def test_a_hostile_nesting_is_refused_not_a_crash():
    text = '(' * 5000 + "id eq 'a'" + ')' * 5000
    values = refused(text)
    assert values['Reason'] == 'The expression nests too deeply.'
    assert values['QueryParameterValue'] == text[:200]
    assert refused('not ' * 5000 + "id eq 'a'")['Reason'] == 'The expression nests too deeply.'


# ----- the budget: 250,000 comparisons or 1 s per list request (this project's, in the README) ---------

def many(count: int) -> list[dict]:
    return [{'id': f'task{i}', 'priority': i} for i in range(count)]


@pytest.fixture
def frozen_clock(monkeypatch):
    """The comparison budget alone, whatever the speed of the machine: the clock stands still."""
    monkeypatch.setattr(odata.time, 'monotonic', lambda: 100.0)


def test_250000_comparisons_are_answered_and_the_next_one_is_refused(frozen_clock):
    predicate = compile_filter("priority ge 0 and id ne 'x'")
    items = many(125_000)
    assert sum(1 for item in items if predicate(item)) == 125_000  # two comparisons each
    with pytest.raises(BatchServiceError) as error:
        predicate(items[0])
    assert error.value.code == 'InvalidQueryParameterValue'
    assert error.value.values['QueryParameterName'] == '$filter'
    assert error.value.values['QueryParameterValue'] == "priority ge 0 and id ne 'x'"
    assert error.value.values['Reason'] == ('The filter needs more than 250000 comparisons over this list; narrow it '
                                            'or list fewer items.')


@pytest.fixture
def small_budget(frozen_clock, monkeypatch):
    monkeypatch.setattr(odata, 'MAX_COMPARISONS', 10)


@pytest.mark.parametrize('text', ["startswith(id,'t')", "id eq 'a' or id eq 'b'", 'not priority lt 0'])
def test_startswith_and_equality_chains_count_against_the_budget_too(small_budget, text):
    predicate = compile_filter(text)
    for item in many(10):
        predicate(item)
    with pytest.raises(BatchServiceError):
        predicate({'id': 'x'})


def test_each_request_has_its_own_budget(small_budget):
    for _ in range(2):
        predicate = compile_filter('priority ge 0')
        assert sum(1 for item in many(10) if predicate(item)) == 10


def test_a_filter_over_its_time_is_refused(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(odata.time, 'monotonic', lambda: clock[0])
    predicate = compile_filter('priority ge 0')
    items = many(3 * 4096)  # the clock is read every 4096 comparisons
    for item in items[:5000]:
        predicate(item)  # within the second
    clock[0] += 1.0
    for item in items[5000:8192]:
        predicate(item)  # exactly at the deadline: still within
    clock[0] += 0.001
    with pytest.raises(BatchServiceError) as error:
        for item in items[8192:]:
            predicate(item)
    assert error.value.values['Reason'] == ('The filter needs more than 1 seconds over this list; narrow it or '
                                            'list fewer items.')
    long_text = "id ne '" + 'x' * 300 + "'"
    predicate = compile_filter(long_text)
    clock[0] += 5
    with pytest.raises(BatchServiceError) as error:
        for item in items:
            predicate(item)
    assert error.value.values['QueryParameterValue'] == long_text[:200]


def test_the_clock_is_not_read_for_every_comparison(monkeypatch):
    reads = []
    real = odata.time.monotonic
    monkeypatch.setattr(odata.time, 'monotonic', lambda: reads.append(1) or real())
    predicate = compile_filter('priority ge 0')
    for item in many(4095):
        predicate(item)
    assert len(reads) == 1  # the deadline, set once


def test_each_property_of_an_item_is_read_once_however_many_comparisons_name_it(monkeypatch):
    calls = []
    real = odata._lookup
    monkeypatch.setattr(odata, '_lookup', lambda item, path: calls.append(path) or real(item, path))
    predicate = compile_filter('priority gt 1 and priority lt 9 and priority ne 4')
    assert predicate({'priority': 5}) is True
    assert calls == ['priority']


# ----- $select -------------------------------------------------------------------------------------

def test_select_keeps_only_the_named_properties_in_the_items_order():
    item = {'id': 'p', 'url': 'u', 'state': 'active', 'stats': {'x': 1}, 'eTag': 'e'}
    assert apply_select(item, 'id,state') == {'id': 'p', 'state': 'active'}
    assert apply_select(item, ' state , id ,') == {'state': 'active', 'id': 'p'} == {'id': 'p', 'state': 'active'}
    assert list(apply_select(item, 'state,id')) == ['id', 'state']
    assert apply_select(item, 'stats/x,eTag') == {'stats': {'x': 1}, 'eTag': 'e'}
    assert apply_select(item, None) is item and apply_select(item, '') is item
    assert apply_select(item, 'nothing') == {}


# ----- pages ----------------------------------------------------------------------------------------

def test_a_page_is_at_most_maxresults_items_then_the_next_skip():
    items = many(25)
    assert page(items, filter_text=None, select=None, max_results=10, skip=0) == (items[:10], 10)
    assert page(items, filter_text=None, select=None, max_results=10, skip=10) == (items[10:20], 20)
    assert page(items, filter_text=None, select=None, max_results=10, skip=20) == (items[20:], None)
    assert page(items, filter_text=None, select=None, max_results=5, skip=20) == (items[20:], None)
    assert page([], filter_text=None, select=None, max_results=None, skip=0) == ([], None)


def test_without_maxresults_a_page_is_1000_items():
    items = many(2500)
    chunk, next_skip = page(iter(items), filter_text=None, select=None, max_results=None, skip=0)
    assert chunk == items[:1000] and next_skip == 1000
    chunk, next_skip = page(items, filter_text=None, select=None, max_results=5000, skip=2000)
    assert chunk == items[2000:] and next_skip is None
    chunk, next_skip = page(items, filter_text=None, select=None, max_results=None, skip=1000)
    assert len(chunk) == 1000 and next_skip == 2000


def test_filter_and_select_apply_before_paging_and_see_what_the_service_writes():
    items = many(30)
    written = lambda item: {**item, 'state': 'active' if item['priority'] % 3 else 'completed'}  # noqa: E731
    chunk, next_skip = page(items, filter_text="state eq 'completed'", select='id', max_results=4, skip=0,
                            written=written)
    assert chunk == [{'id': 'task0'}, {'id': 'task3'}, {'id': 'task6'}, {'id': 'task9'}] and next_skip == 4
    chunk, next_skip = page(items, filter_text="state eq 'completed'", select='id,state', max_results=4, skip=8,
                            written=written)
    assert chunk == [{'id': 'task24', 'state': 'completed'}, {'id': 'task27', 'state': 'completed'}]
    assert next_skip is None
    chunk, _ = page(items[:2], filter_text=None, select=None, max_results=None, skip=0, written=written)
    assert chunk == [{'id': 'task0', 'priority': 0, 'state': 'completed'},
                     {'id': 'task1', 'priority': 1, 'state': 'active'}]


def test_only_the_page_is_written_when_there_is_no_filter():
    written_ids = []

    def written(item: dict) -> dict:
        written_ids.append(item['id'])
        return item
    page(many(50), filter_text=None, select=None, max_results=3, skip=10, written=written)
    assert written_ids == ['task10', 'task11', 'task12']


def test_the_last_full_page_has_no_next_link():
    items = many(20)
    assert page(items, filter_text=None, select=None, max_results=10, skip=10)[1] is None
    assert page(items, filter_text='priority ge 0', select=None, max_results=10, skip=10)[1] is None
    assert page(items, filter_text='priority ge 0', select=None, max_results=10, skip=9)[1] == 19

