"""The wire contract, in process: request bodies read as the service reads them, responses written as it writes.

Expected values come from Microsoft's spec (``batch_emulator/contract/spec/BatchService.json``: which properties are
required, readOnly, int32, durations, date-times, enums) and the recorded service
(/work/shared/reference/recorded-service-behaviour.md §2.1: a pool's defaults, its key order, ``vmSize``
lower-cased; §1.5: empty lists not written, ``odata.*`` first). The leniencies (numbers and booleans sent as
strings, as the Azure CLI sends them; enum values in any casing; nulls dropped) are the documented ones of
``contract.conform``. Fast and in-process, so mutation testing (benchmarks/mutation.sh) sees them.
"""

from __future__ import annotations

import datetime

import pytest

from batch_emulator.common.clock import iso, parse_iso
from batch_emulator.common.errors import BatchServiceError
from batch_emulator.contract import schema as contract
from batch_emulator.contract.schema import conform, render

POOL_CREATE = {'$ref': '#/definitions/BatchPoolCreateOptions'}
RESIZE = {'$ref': '#/definitions/BatchPoolResizeOptions'}
TASK_CREATE = {'$ref': '#/definitions/BatchTaskCreateOptions'}
JOB = {'$ref': '#/definitions/BatchJob'}
POOL = {'$ref': '#/definitions/BatchPool'}


@pytest.fixture(autouse=True)
def fresh_conformers():
    """Each test reads bodies as a freshly started emulator does: the conformers contract.py builds once per
    schema are built again (a warm cache would let a mutation test run the conformers built before it)."""
    contract._conformers.clear()
    yield
    contract._conformers.clear()


def invalid(value, schema, name: str = '') -> dict[str, str]:
    with pytest.raises(BatchServiceError) as error:
        conform(value, schema, name)
    assert (error.value.status, error.value.code) == (400, 'InvalidPropertyValue')
    return error.value.values


def missing(value, schema) -> str:
    with pytest.raises(BatchServiceError) as error:
        conform(value, schema)
    assert (error.value.status, error.value.code) == (400, 'MissingRequiredProperty')
    return error.value.values['PropertyName']


# ----- the route table and the spec ----------------------------------------------------------------

def test_every_operation_of_the_spec_is_a_route_with_its_body_and_answer():
    operations = {operation.operation_id: operation for operation in contract.operations()}
    create = operations['Pools_CreatePool']
    assert (create.method, create.path, create.body_schema) == ('POST', '/pools', POOL_CREATE)
    assert operations['Pools_GetPool'].response_schema == POOL
    assert operations['Pools_GetPool'].body_schema is None
    assert operations['Pools_DeletePool'].method == 'DELETE'
    assert operations['Pools_PoolExists'].method == 'HEAD'
    assert operations['Pools_UpdatePool'].method == 'PATCH'
    assert operations['Jobs_ReplaceJob'].method == 'PUT'
    file = operations['Tasks_GetTaskFile']
    assert file.route == '/jobs/{jobId}/tasks/{taskId}/files/{filePath:.+}'
    assert operations['Pools_GetPool'].route == '/pools/{poolId}'


@pytest.mark.parametrize('path, known', [
    ('/pools', True), ('/pools/p1', True), ('/pools/p1/nodes/n1/reboot', True),
    ('/jobs/j/tasks/t/files/wd/sub/out.txt', True), ('/pools/p1/nodes', True),
    ('/pool', False), ('/pools/p1/unknown', False), ('/pools/p1/nodes/n1/x/y', False), ('/', False),
    ('/jobs//tasks', False),
])
def test_a_path_is_known_when_it_names_a_resource_of_the_spec(path, known):
    assert contract.is_spec_path(path) is known


def test_a_reference_is_followed_to_its_definition():
    assert contract.resolve(POOL_CREATE)['required'] == ['id', 'vmSize']
    assert contract.resolve({'type': 'string'}) == {'type': 'string'}


# ----- request bodies: what is required ------------------------------------------------------------

def test_a_body_with_what_the_spec_requires_is_read_as_sent():
    body = {'id': 'pool1', 'vmSize': 'standard_d2s_v3', 'targetDedicatedNodes': 2, 'enableAutoScale': False,
            'resizeTimeout': 'PT15M', 'metadata': [{'name': 'a', 'value': 'b'}],
            'startTask': {'commandLine': '/bin/true', 'waitForSuccess': True}}
    assert conform(body, POOL_CREATE) == body


@pytest.mark.parametrize('body, name', [
    ({'vmSize': 'x'}, 'id'), ({'id': 'p'}, 'vmSize'), ({'id': None, 'vmSize': 'x'}, 'id'),
    ({'id': 'p', 'vmSize': 'x', 'metadata': [{'name': 'a'}]}, 'value'),
    ({'id': 'p', 'vmSize': 'x', 'startTask': {'waitForSuccess': True}}, 'commandLine'),
])
def test_a_missing_required_property_is_named(body, name):
    assert missing(body, POOL_CREATE) == name


def test_read_only_properties_are_never_required_and_ignored_when_sent():
    """A PUT job body is the whole BatchJob: its id, url, state... are the service's, not required."""
    assert conform({'poolInfo': {'poolId': 'p'}, 'priority': 1, 'id': 'j', 'state': 'whatever'}, JOB) == \
        {'poolInfo': {'poolId': 'p'}, 'priority': 1}
    assert missing({'priority': 1}, JOB) == 'poolInfo'


def test_nulls_are_dropped_as_if_absent():
    assert conform({'id': 'p', 'vmSize': 'x', 'displayName': None, 'metadata': [None, {'name': 'a', 'value': 'b'}]},
                   POOL_CREATE) == {'id': 'p', 'vmSize': 'x', 'metadata': [{'name': 'a', 'value': 'b'}]}


def test_properties_the_spec_does_not_name_are_kept_unchecked():
    assert conform({'id': 'p', 'vmSize': 'x', 'futureProperty': {'any': [1]}}, POOL_CREATE)['futureProperty'] == \
        {'any': [1]}


def test_free_form_settings_are_checked_against_their_additional_properties():
    extension = {'$ref': '#/definitions/VMExtension'}
    body = {'name': 'e', 'publisher': 'p', 'type': 't', 'settings': {'a': 1, 'b': 'x'}}
    assert conform(body, extension)['settings'] == {'a': '1', 'b': 'x'}  # numbers where a string is expected
    assert invalid({**body, 'settings': {'a': [1]}}, extension)['PropertyName'] == 'a'


def test_no_schema_means_the_value_is_taken_as_is():
    assert conform({'x': [1]}, None) == {'x': [1]}
    assert conform([1, 'a'], {'type': 'array'}) == [1, 'a']
    assert conform({'a': 1}, {'description': 'no type'}) == {'a': 1}


# ----- request bodies: wrong types, named ----------------------------------------------------------

@pytest.mark.parametrize('value', [[], 'text', 1, True])
def test_a_body_that_is_not_an_object_is_invalid(value):
    values = invalid(value, POOL_CREATE)
    assert values['PropertyName'] == 'body'


@pytest.mark.parametrize('property_name, value, shown', [
    ('startTask', 'run', 'run'),
    ('startTask', [1, 2], '[1, 2]'),
    ('metadata', {'name': 'a'}, '{"name": "a"}'),
    ('metadata', 'a=b', 'a=b'),
    ('targetDedicatedNodes', True, 'true'),
    ('targetDedicatedNodes', 2.5, '2.5'),
    ('targetDedicatedNodes', 'two', 'two'),
    ('targetDedicatedNodes', '1.0', '1.0'),
    ('targetDedicatedNodes', [1], '[1]'),
    ('targetDedicatedNodes', 2 ** 31, '2147483648'),
    ('targetDedicatedNodes', -2 ** 31 - 1, '-2147483649'),
    ('targetDedicatedNodes', '2147483648', '2147483648'),
    ('enableAutoScale', 1, '1'),
    ('enableAutoScale', 'yes', '"yes"'),
    ('enableAutoScale', {'b': True}, '{"b": true}'),
    ('id', True, 'true'),
    ('id', ['p'], '["p"]'),
    ('id', {'a': None}, '{"a": null}'),
    ('resizeTimeout', 'P', 'P'),
    ('resizeTimeout', 'PT', 'PT'),
    ('resizeTimeout', '15 minutes', '15 minutes'),
    ('resizeTimeout', 'PT15MX', 'PT15MX'),
    ('resizeTimeout', 'XPT15M', 'XPT15M'),
    ('resizeTimeout', 'PT1.S', 'PT1.S'),
])
def test_a_property_of_a_wrong_type_or_form_is_named_with_its_value(property_name, value, shown):
    values = invalid({'id': 'p', 'vmSize': 'x', property_name: value}, POOL_CREATE)
    assert values['PropertyName'] == property_name
    assert values['PropertyValue'] in (shown, shown.strip('"'))


def test_a_long_wrong_value_is_shown_cut_at_200_characters():
    values = invalid({'id': 'p', 'vmSize': 'x', 'targetDedicatedNodes': 'x' * 500}, POOL_CREATE)
    assert values['PropertyValue'] == 'x' * 200 + '...'
    values = invalid({'id': 'p', 'vmSize': 'x', 'startTask': list(range(100))}, POOL_CREATE)
    assert values['PropertyValue'] == str(list(range(100)))[:200] + '...'
    exactly = 'y' * 200
    assert invalid({'id': 'p', 'vmSize': 'x', 'enableAutoScale': exactly}, POOL_CREATE)['PropertyValue'] == exactly
    one_more = 'z' * 201
    assert invalid({'id': 'p', 'vmSize': 'x', 'enableAutoScale': one_more}, POOL_CREATE)['PropertyValue'] == \
        'z' * 200 + '...'


def test_an_array_item_of_a_wrong_type_is_named_by_its_array():
    values = invalid({'id': 'p', 'vmSize': 'x', 'metadata': ['a']}, POOL_CREATE)
    assert values['PropertyName'] == 'metadata'
    values = invalid({'id': 't', 'commandLine': 'c', 'constraints': {'maxTaskRetryCount': 'many'}}, TASK_CREATE)
    assert values == {'PropertyName': 'maxTaskRetryCount', 'PropertyValue': 'many'}


# ----- request bodies: what the service's deserialiser accepts and how it reads it ---------------------

@pytest.mark.parametrize('sent, read', [
    ('1', 1), (' -3 ', -3), (2.0, 2), (7, 7), (2 ** 31 - 1, 2 ** 31 - 1), (-2 ** 31, -2 ** 31),
    (str(2 ** 31 - 1), 2 ** 31 - 1), (str(-2 ** 31), -2 ** 31),
])
def test_an_int32_is_read_from_a_number_or_its_text(sent, read):
    body = conform({'id': 'p', 'vmSize': 'x', 'targetDedicatedNodes': sent}, POOL_CREATE)
    assert body['targetDedicatedNodes'] == read and type(body['targetDedicatedNodes']) is int


@pytest.mark.parametrize('sent, read', [('true', True), (' FALSE ', False), ('True', True), (True, True),
                                        (False, False)])
def test_a_boolean_is_read_from_true_false_or_their_text_in_any_casing(sent, read):
    assert conform({'id': 'p', 'vmSize': 'x', 'enableAutoScale': sent}, POOL_CREATE)['enableAutoScale'] is read


def test_a_number_where_a_string_is_expected_is_read_as_its_text():
    body = conform({'id': 5, 'vmSize': 1.5}, POOL_CREATE)
    assert body == {'id': '5', 'vmSize': '1.5'}


@pytest.mark.parametrize('sent, read', [('Terminate', 'terminate'), ('REQUEUE', 'requeue'),
                                        ('taskCompletion', 'taskcompletion'), ('retaineddata', 'retaineddata')])
def test_an_enum_value_in_any_casing_is_read_in_the_spec_casing(sent, read):
    assert conform({'nodeDeallocationOption': sent}, RESIZE) == {'nodeDeallocationOption': read}


def test_an_enum_value_the_spec_does_not_list_is_invalid_as_sent():
    assert invalid({'nodeDeallocationOption': 'Later'}, RESIZE) == {'PropertyName': 'nodeDeallocationOption',
                                                                    'PropertyValue': 'Later'}
    assert invalid({'nodeDeallocationOption': 3}, RESIZE)['PropertyValue'] == '3'


@pytest.mark.parametrize('duration', ['PT15M', 'P1D', 'P1DT2H', 'PT0.5S', 'PT1H30M5.25S', 'P1Y2M3W4D', 'P2W',
                                      'P10675199DT2H48M5.4775807S'])
def test_iso_8601_durations_are_accepted(duration):
    assert conform({'resizeTimeout': duration}, RESIZE) == {'resizeTimeout': duration}


@pytest.mark.parametrize('duration', ['P999999999D', 'P10675199DT2H48M5.4775808S', 'P10675200D', 'P29248Y',
                                      'P1525029W'])
def test_a_duration_longer_than_the_service_can_hold_is_invalid(duration):
    """The service holds durations as .NET TimeSpans: the longest is P10675199DT2H48M5.4775807S (its 'unbounded')."""
    assert invalid({'resizeTimeout': duration}, RESIZE) == {'PropertyName': 'resizeTimeout', 'PropertyValue': duration}


@pytest.mark.parametrize('moment', ['2025-01-01T00:00:00Z', '2025-01-01T00:00Z', '2025-01-01T00:00:00.1234567Z',
                                    '2025-01-01T00:00:00+08:00', '2025-01-01t00:00:00z'])
def test_iso_8601_date_times_are_accepted(moment):
    schedule = {'$ref': '#/definitions/BatchJobScheduleConfiguration'}
    assert conform({'doNotRunUntil': moment}, schedule) == {'doNotRunUntil': moment}


@pytest.mark.parametrize('moment', ['2025-01-01', '2025-01-01T00:00:00', 'tomorrow', '2025-01-01T00:00:00+8',
                                    'x2025-01-01T00:00:00Z', '2025-01-01T00:00:00Zx', '2025-01-01T00:00:00.Z'])
def test_other_date_times_are_invalid(moment):
    schedule = {'$ref': '#/definitions/BatchJobScheduleConfiguration'}
    assert invalid({'doNotRunUntil': moment}, schedule) == {'PropertyName': 'doNotRunUntil', 'PropertyValue': moment}


def test_an_int64_sent_as_text_must_be_an_integer():
    int64 = {'type': 'string', 'format': 'int64'}
    assert conform(' 12 ', int64) == ' 12 '
    assert invalid('12a', int64, 'lun') == {'PropertyName': 'lun', 'PropertyValue': '12a'}
    assert conform('12a', {'type': 'string'}) == '12a'


@pytest.mark.parametrize('sent, read', [('1.5', 1.5), (' 2 ', 2.0), (3, 3), (2.25, 2.25)])
def test_a_double_is_read_from_a_number_or_its_text(sent, read):
    assert conform(sent, {'type': 'number'}, 'weight') == read


@pytest.mark.parametrize('sent, shown', [('heavy', 'heavy'), (True, 'true'), ([1], '[1]'), ({'a': 1}, '{"a": 1}')])
def test_a_double_of_a_wrong_type_is_invalid(sent, shown):
    assert invalid(sent, {'type': 'number'}, 'weight') == {'PropertyName': 'weight', 'PropertyValue': shown}


# ----- response bodies: as the service writes them (recorded) -----------------------------------------

def test_a_pool_is_written_in_the_recorded_key_order_with_its_defaults_and_without_nulls():
    stored = {'vmSize': 'Standard_D2s_v3', 'id': 'pool1', 'state': 'active', 'allocationState': 'steady',
              'targetDedicatedNodes': 1, 'currentDedicatedNodes': 0, 'displayName': None, 'internal': 'x',
              'odata.metadata': 'm', 'metadata': []}
    body = render(stored, POOL)
    assert list(body)[:7] == ['odata.metadata', 'id', 'state', 'allocationState', 'vmSize', 'resizeTimeout',
                              'currentDedicatedNodes']
    assert body['vmSize'] == 'standard_d2s_v3'  # recorded: lower-cased
    assert body['resizeTimeout'] == 'PT15M' and body['enableAutoScale'] is False
    assert body['enableInterNodeCommunication'] is False and body['taskSlotsPerNode'] == 1
    assert 'displayName' not in body and 'internal' not in body and 'metadata' not in body


def test_a_value_sent_replaces_the_default():
    body = render({'id': 'p', 'resizeTimeout': 'PT5M', 'taskSlotsPerNode': 4}, POOL)
    assert body['resizeTimeout'] == 'PT5M' and body['taskSlotsPerNode'] == 4


def test_nested_objects_and_lists_are_written_by_their_own_definitions():
    stored = {'id': 'p', 'startTask': {'commandLine': 'c', 'extra': 1, 'resourceFiles': [
        {'httpUrl': 'u', 'filePath': 'f', 'junk': 2}, None]}, 'metadata': [{'name': 'a', 'value': 'b', 'junk': 3}]}
    body = render(stored, POOL)
    assert body['startTask']['commandLine'] == 'c' and 'extra' not in body['startTask']
    assert body['startTask']['resourceFiles'] == [{'httpUrl': 'u', 'filePath': 'f'}]
    assert body['metadata'] == [{'name': 'a', 'value': 'b'}]


def test_a_list_answer_writes_its_items_and_an_empty_value_list():
    listing = {'$ref': '#/definitions/BatchPoolListResult'}
    assert render({'value': []}, listing) == {'value': []}
    body = render({'value': [{'id': 'p', 'junk': 1}], 'odata.nextLink': 'next'}, listing)
    assert body['value'][0]['id'] == 'p' and 'junk' not in body['value'][0]
    assert body['odata.nextLink'] == 'next'
    assert render([{'id': 'p', 'junk': 1}, None], {'type': 'array', 'items': POOL})[0]['id'] == 'p'
    assert len(render([{'id': 'p'}, None], {'type': 'array', 'items': POOL})) == 1
    assert render([1, None], {'type': 'array'}) == [1, None]


def test_an_inline_object_schema_is_written_by_its_properties():
    schema = {'type': 'object', 'properties': {'a': {'type': 'string'}, 'b': {'$ref': '#/definitions/BatchPool'},
                                               'c': {'type': 'array', 'items': POOL}}}
    body = render({'b': {'id': 'p', 'junk': 1}, 'a': 'x', 'z': 1, 'c': [{'id': 'q', 'junk': 2}]}, schema)
    assert body == {'a': 'x', 'b': render({'id': 'p'}, POOL), 'c': [render({'id': 'q'}, POOL)]}
    assert list(body) == ['a', 'b', 'c']


def test_free_form_values_and_plain_values_are_written_as_they_are():
    extension = {'$ref': '#/definitions/VMExtension'}
    assert render({'name': 'e', 'settings': {'any': 'thing', 'n': 1}}, extension)['settings'] == \
        {'any': 'thing', 'n': 1}
    assert render({'free': 1}, {'type': 'object'}) == {'free': 1}
    assert render('text', POOL) == 'text'
    assert render({'a': None}, None) == {'a': None}
    strings = {'type': 'object', 'properties': {'tags': {'type': 'array', 'items': {'type': 'string'}},
                                                'nested': {'type': 'object', 'properties': {'k': {'type': 'string'}}},
                                                'missing': {'$ref': '#/definitions/BatchMetadataItem'}}}
    body = render({'tags': ['a', 'b'], 'nested': {'k': 'v', 'junk': 1}}, strings)
    assert body == {'tags': ['a', 'b'], 'nested': {'k': 'v'}}


@pytest.mark.parametrize(('moment', 'written'), [
    (datetime.datetime(2026, 12, 3, 10, 0, 0, tzinfo=datetime.timezone.utc), '2026-12-03T10:00:00Z'),
    (datetime.datetime(2026, 12, 3, 10, 0, 10, tzinfo=datetime.timezone.utc), '2026-12-03T10:00:10Z'),
    (datetime.datetime(2026, 12, 3, 10, 0, 0, 120000, tzinfo=datetime.timezone.utc), '2026-12-03T10:00:00.12Z'),
    (datetime.datetime(2026, 12, 3, 10, 0, 0, 1, tzinfo=datetime.timezone.utc), '2026-12-03T10:00:00.000001Z'),
    (datetime.datetime(1, 1, 1, tzinfo=datetime.timezone.utc), '0001-01-01T00:00:00Z'),  # .NET's DateTime.MinValue
    (None, None),
])
def test_timestamps_are_written_as_the_service_writes_them(moment, written):
    """``Z``; a fraction without its trailing zeros, none when it is zero; four digits of year."""
    assert iso(moment) == written
    if moment is not None:
        assert parse_iso(written) == moment


def test_a_moment_with_an_offset_is_written_in_utc_whichever_moment_was_written_first():
    """``iso`` remembers what it wrote: an equal moment at another offset (the same instant) must not get a string
    written for another one, nor its own wall-clock time with a ``Z``."""
    shanghai = datetime.timezone(datetime.timedelta(hours=8))
    iso.cache_clear()
    assert iso(datetime.datetime(2026, 12, 3, 18, 0, 0, 5, tzinfo=shanghai)) == '2026-12-03T10:00:00.000005Z'
    assert iso(datetime.datetime(2026, 12, 3, 10, 0, 0, 5, tzinfo=datetime.timezone.utc)) == \
        '2026-12-03T10:00:00.000005Z'
    iso.cache_clear()
    assert iso(datetime.datetime(2026, 12, 4, 2, 0, tzinfo=datetime.timezone.utc)) == '2026-12-04T02:00:00Z'
    assert iso(datetime.datetime(2026, 12, 4, 10, 0, tzinfo=shanghai)) == '2026-12-04T02:00:00Z'
