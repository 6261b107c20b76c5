"""The autoscale formula language (batch_emulator/autoscale/): Microsoft's example formulas against
constructed sample histories, the service's ``results`` string, and each way a formula fails.

Which expected strings are the service's, and where from:
- the ``results`` string and the evaluation error of an undefined symbol (code, message and
  ``Line 1, Col 1: Undefined symbol: $something_useless``, in name/value pairs): the JS SDK recordings in
  Azure/azure-sdk-assets (js/sdk/batch/batch-rest/recordings/node/autoscale_operations/, commit 097db87:
  evaluate ``$TargetDedicatedNodes=3``, evaluate ``$something_useless``); results strings users pasted from
  real pools and the Batch docs' sample output;
- ``InsufficientSampleData``, its message and ``Line 1, Col 24: Insufficient data from data set:
  $RunningTasks wanted 100%, received 0%``: the .NET SDK's own AutoScaleRunError test and the REST
  reference's AutoScaleRunError example;
- the codes ``AutoScalingFormulaSyntaxError`` and ``AutoScaleFormulaTooLong`` (answered with 400): the .NET
  SDK's BatchErrorCodeStrings ("An automatic scaling formula has a syntax error", "... is too long. The
  maximum length is 8192 characters").

This project's wording (no recording or page gives the service's): the messages of those two 400s, and
every detail after the service's ``Line L, Col C:`` prefix other than "Undefined symbol: NAME" and
"Insufficient data ..." (type, operator, argument, range, time-string and syntax errors). Those tests do
not pin that wording: they check the place (line and column, worked out here from the formula) and that
the detail names what is wrong.
"""

from __future__ import annotations

import datetime
import uuid

import pytest

from batch_emulator.autoscale.formula import (
    EVALUATION_ERROR,
    INSUFFICIENT_SAMPLES,
    MAX_FORMULA_LENGTH,
    SYNTAX_ERROR,
    TOO_LONG,
    AutoScaleContext,
    FormulaSyntaxError,
    evaluate,
    parse,
    validate,
)

UTC = datetime.timezone.utc
# A Monday, inside working hours.
MONDAY_10AM = datetime.datetime(2026, 2, 2, 10, 0, 0, tzinfo=UTC)
SATURDAY_10AM = datetime.datetime(2026, 2, 7, 10, 0, 0, tzinfo=UTC)
THIRTY_SECONDS = datetime.timedelta(seconds=30)


def history(values: list[float], now: datetime.datetime = MONDAY_10AM,
            period: datetime.timedelta = THIRTY_SECONDS) -> list[tuple[datetime.datetime, float]]:
    """One sample per period, oldest first, the last one taken at ``now``."""
    return [(now - (len(values) - 1 - index) * period, value) for index, value in enumerate(values)]


def context(**overrides) -> AutoScaleContext:
    return AutoScaleContext(**{'now': MONDAY_10AM, **overrides})


def message(result) -> str:
    assert result.error is not None, result
    return result.error.detail


# --- The service's recorded answers ----------------------------------------------------------------------

def test_results_string_is_the_recorded_one_for_a_single_assignment():
    result = evaluate('$TargetDedicatedNodes=3', context(target_dedicated_nodes=2))

    assert result.error is None
    assert result.results == '$TargetDedicatedNodes=3;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue'
    assert (result.target_dedicated_nodes, result.target_low_priority_nodes) == (3, 0)
    assert result.node_deallocation_option == 'requeue'
    assert result.to_json() == {'results': result.results}


def test_undefined_symbol_is_the_recorded_evaluation_error_and_reports_the_pool_as_it_is():
    result = evaluate('$something_useless', context(target_dedicated_nodes=2))

    assert result.to_json() == {
        'results': '$TargetDedicatedNodes=2;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue',
        'error': {'code': 'AutoScalingFormulaEvaluationError',
                  'message': 'The specified auto-scaling formula has evaluation error',
                  'values': [{'name': 'Message',
                              'value': 'Line 1, Col 1: Undefined symbol: $something_useless'}]},
    }
    assert result.target_dedicated_nodes == 2


def test_a_user_variable_without_dollar_is_undefined_too():
    assert message(evaluate('something_useless', context())) == 'Line 1, Col 1: Undefined symbol: something_useless'


def test_too_few_samples_is_insufficient_sample_data_at_the_calls_parenthesis():
    # The formula and message of the .NET SDK's own AutoScaleRunError test (Col 24 is GetSample's "(").
    result = evaluate('$RunningTasks.GetSample(10 * TimeInterval_Second, 0 * TimeInterval_Second, 100);',
                      context(target_dedicated_nodes=5))

    assert result.error.to_json() == {
        'code': 'InsufficientSampleData',
        'message': 'Autoscale evaluation failed due to insufficient sample data',
        'values': [{'name': 'Message', 'value': 'Line 1, Col 24: Insufficient data from data set: $RunningTasks '
                                                'wanted 100%, received 0%'}],
    }
    assert result.results == '$TargetDedicatedNodes=5;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue'


def test_insufficient_data_names_the_line_of_a_multi_line_formula_and_the_percent_received():
    formula = ('maxNodes = 4;\n'
               'span = TimeInterval_Minute * 3;\n'
               '$TargetDedicatedNodes = min(maxNodes, avg($PendingTasks.GetSample(span, 70)));')
    samples = {'$PendingTasks': history([2, 2, 2])}  # 3 of the 6 a 3-minute window holds: 50 %

    result = evaluate(formula, context(samples=samples))

    assert result.error.code == INSUFFICIENT_SAMPLES
    assert result.error.detail == ('Line 3, Col 66: Insufficient data from data set: $PendingTasks wanted 70%, '
                                   'received 50%')


# --- Microsoft's example formulas ------------------------------------------------------------------------

PENDING_TASKS = '''startingNumberOfVMs = 1;
maxNumberofVMs = 25;
pendingTaskSamplePercent = $PendingTasks.GetSamplePercent(180 * TimeInterval_Second);
pendingTaskSamples = pendingTaskSamplePercent < 70 ? startingNumberOfVMs : avg($PendingTasks.GetSample(180 * TimeInterval_Second));
$TargetDedicatedNodes=min(maxNumberofVMs, pendingTaskSamples);
$NodeDeallocationOption = taskcompletion;
'''  # noqa: E501 - the doc's formula, verbatim


def test_pending_tasks_example_follows_the_average_of_the_last_three_minutes():
    samples = {'$PendingTasks': history([4, 6, 8, 10, 12, 14])}

    result = evaluate(PENDING_TASKS, context(samples=samples))

    assert result.error is None
    # User variables follow the three settable ones, by name, as a real pool reported this formula
    # ("...;maxNumberofVMs=2;pendingTaskSamplePercent=100;pendingTaskSamples=0;startingNumberOfVMs=1").
    assert result.results == ('$TargetDedicatedNodes=9;$TargetLowPriorityNodes=0;'
                              '$NodeDeallocationOption=taskcompletion;maxNumberofVMs=25;'
                              'pendingTaskSamplePercent=100;pendingTaskSamples=9;startingNumberOfVMs=1')
    assert result.target_dedicated_nodes == 9
    assert result.node_deallocation_option == 'taskcompletion'


def test_pending_tasks_example_starts_with_one_node_before_enough_samples_exist():
    result = evaluate(PENDING_TASKS, context(samples={'$PendingTasks': history([30, 30])}))

    assert result.error is None
    assert result.target_dedicated_nodes == 1
    assert 'pendingTaskSamplePercent=33.333333333333336' in result.results


def test_pending_tasks_example_never_exceeds_its_maximum():
    result = evaluate(PENDING_TASKS, context(samples={'$PendingTasks': history([400] * 7)}))

    assert result.target_dedicated_nodes == 25


PREEMPTED_NODES = '''maxNumberofVMs = 25;
$TargetDedicatedNodes = min(maxNumberofVMs, $PreemptedNodeCount.GetSample(180 * TimeInterval_Second));
$TargetLowPriorityNodes = min(maxNumberofVMs , maxNumberofVMs - $TargetDedicatedNodes);
$NodeDeallocationOption = taskcompletion;
'''


def test_preempted_nodes_example_fills_the_rest_with_low_priority_nodes():
    result = evaluate(PREEMPTED_NODES, context(samples={'$PreemptedNodeCount': history([3, 3, 4, 4, 4, 5])}))

    assert (result.target_dedicated_nodes, result.target_low_priority_nodes) == (3, 22)
    assert result.results.startswith('$TargetDedicatedNodes=3;$TargetLowPriorityNodes=22;'
                                     '$NodeDeallocationOption=taskcompletion;maxNumberofVMs=25')


CPU = '''$totalDedicatedNodes =
    (min($CPUPercent.GetSample(TimeInterval_Minute * 10)) > 0.7) ?
    ($CurrentDedicatedNodes * 1.1) : $CurrentDedicatedNodes;
$totalDedicatedNodes =
    (avg($CPUPercent.GetSample(TimeInterval_Minute * 60)) < 0.2) ?
    ($CurrentDedicatedNodes * 0.9) : $totalDedicatedNodes;
$TargetDedicatedNodes = min(400, $totalDedicatedNodes)
'''


def test_cpu_example_grows_by_ten_percent_when_cpu_stays_high():
    busy = {'$CPUPercent': history([0.9] * 121)}  # an hour of samples, all above 0.7

    result = evaluate(CPU, context(current_dedicated_nodes=20, target_dedicated_nodes=20, samples=busy))

    assert result.error is None
    assert result.target_dedicated_nodes == 22


def test_cpu_example_shrinks_by_ten_percent_when_the_hour_was_idle():
    idle = {'$CPUPercent': history([0.05] * 121)}

    result = evaluate(CPU, context(current_dedicated_nodes=20, target_dedicated_nodes=20, samples=idle))

    assert result.target_dedicated_nodes == 18


def test_cpu_example_keeps_the_pool_when_neither_holds_and_caps_at_400():
    steady = {'$CPUPercent': history([0.5] * 121)}
    assert evaluate(CPU, context(current_dedicated_nodes=20, samples=steady)).target_dedicated_nodes == 20

    busy = {'$CPUPercent': history([0.95] * 121)}
    assert evaluate(CPU, context(current_dedicated_nodes=380, samples=busy)).target_dedicated_nodes == 400


WORKING_HOURS = '''$curTime = time();
$workHours = $curTime.hour >= 8 && $curTime.hour < 18;
$isWeekday = $curTime.weekday >= 1 && $curTime.weekday <= 5;
$isWorkingWeekdayHour = $workHours && $isWeekday;
$TargetDedicatedNodes = $isWorkingWeekdayHour ? 20:10;
$NodeDeallocationOption = taskcompletion;
'''


def test_time_based_example_and_its_results_as_the_doc_prints_them():
    now = datetime.datetime(2026, 2, 2, 10, 18, 47, 805123, tzinfo=UTC)

    result = evaluate(WORKING_HOURS, context(now=now))

    # The doc's sample output: "$TargetDedicatedNodes=10; $NodeDeallocationOption=requeue;
    # $curTime=2016-10-13T19:18:47.805Z; $isWeekday=1; $isWorkingWeekdayHour=0; $workHours=0".
    assert result.results == ('$TargetDedicatedNodes=20;$TargetLowPriorityNodes=0;'
                              '$NodeDeallocationOption=taskcompletion;$curTime=2026-02-02T10:18:47.805Z;'
                              '$isWeekday=1;$isWorkingWeekdayHour=1;$workHours=1')


def test_time_based_example_at_the_weekend_and_in_a_time_zone():
    assert evaluate(WORKING_HOURS, context(now=SATURDAY_10AM)).target_dedicated_nodes == 10
    # "$curTime = time() + (-6 * TimeInterval_Hour);" for Mountain Daylight Time: 10:00 UTC is 04:00 there.
    mountain = WORKING_HOURS.replace('time();', 'time() + (-6 * TimeInterval_Hour);')
    assert evaluate(mountain, context()).target_dedicated_nodes == 10


TASK_BASED = '''// Get pending tasks for the past 15 minutes.
$samples = $PendingTasks.GetSamplePercent(TimeInterval_Minute * 15);
// If we have fewer than 70 percent data points, we use the last sample point,
// otherwise we use the maximum of last sample point and the history average.
$tasks = $samples < 70 ? max(0,$PendingTasks.GetSample(1)) : max( $PendingTasks.GetSample(1), avg($PendingTasks.GetSample(TimeInterval_Minute * 15)));
// If number of pending tasks is not 0, set targetVM to pending tasks, otherwise
// half of current dedicated.
$targetVMs = $tasks > 0? $tasks:max(0, $TargetDedicatedNodes/2);
// The pool size is capped at 20, if target VM value is more than that, set it
// to 20. This value should be adjusted according to your use case.
$TargetDedicatedNodes = max(0, min($targetVMs, 20));
// Set node deallocation mode - let running tasks finish before removing a node
$NodeDeallocationOption = taskcompletion;
'''  # noqa: E501 - the doc's formula, verbatim


def test_task_based_example_with_comments_uses_the_last_sample_when_history_is_short():
    result = evaluate(TASK_BASED, context(target_dedicated_nodes=4, samples={'$PendingTasks': history([1, 7])}))

    assert result.error is None
    assert result.target_dedicated_nodes == 7


def test_task_based_example_halves_the_pool_when_nothing_is_pending():
    quiet = {'$PendingTasks': history([0] * 31)}

    result = evaluate(TASK_BASED, context(target_dedicated_nodes=9, samples=quiet))

    assert result.target_dedicated_nodes == 4  # 9 / 2 = 4.5: node counts drop the fraction
    assert '$targetVMs=4.5' in result.results


PARALLEL_TASKS = '''$samples = $ActiveTasks.GetSamplePercent(TimeInterval_Minute * 15);
$tasks = $samples < 70 ? max(0,$ActiveTasks.GetSample(1)) : max( $ActiveTasks.GetSample(1),avg($ActiveTasks.GetSample(TimeInterval_Minute * 15)));
$cores = $TargetDedicatedNodes * 4;
$extraVMs = (($tasks - $cores) + 3) / 4;
$targetVMs = ($TargetDedicatedNodes + $extraVMs);
$TargetDedicatedNodes = max(0,min($targetVMs,3));
$NodeDeallocationOption = taskcompletion;
'''  # noqa: E501 - the doc's formula, verbatim


def test_parallel_tasks_example_rounds_up_to_whole_nodes_of_four_slots():
    result = evaluate(PARALLEL_TASKS, context(target_dedicated_nodes=1, samples={'$ActiveTasks': history([6])}))

    # 6 tasks on 4-slot nodes: (6 - 4 + 3) / 4 = 1.25 extra -> 2.25 -> 2 nodes.
    assert result.target_dedicated_nodes == 2


def test_initial_pool_size_example_keeps_four_nodes_for_the_first_ten_minutes():
    created = 'Mon, 02 Feb 2026 09:55:00 GMT'  # DateTime.UtcNow.ToString("r") when the pool was made
    formula = f'''
    $TargetDedicatedNodes = 4;
    lifespan         = time() - time("{created}");
    span             = TimeInterval_Minute * 60;
    startup          = TimeInterval_Minute * 10;
    ratio            = 50;

    $TargetDedicatedNodes = (lifespan > startup ? (max($RunningTasks.GetSample(span, ratio), $ActiveTasks.GetSample(span, ratio)) == 0 ? 0 : $TargetDedicatedNodes) : 4);
    '''  # noqa: E501 - the doc's formula, verbatim
    young = evaluate(formula, context())
    assert young.error is None and young.target_dedicated_nodes == 4
    assert 'lifespan=00:05:00' in young.results and 'span=01:00:00' in young.results

    later = MONDAY_10AM + datetime.timedelta(minutes=30)
    idle = {'$RunningTasks': history([0] * 121, now=later), '$ActiveTasks': history([0] * 121, now=later)}
    assert evaluate(formula, context(now=later, samples=idle)).target_dedicated_nodes == 0
    assert message(evaluate(formula, context(now=later))).endswith('$RunningTasks wanted 50%, received 0%')


# --- The language, piece by piece ------------------------------------------------------------------------

def test_the_untaken_branch_of_a_conditional_is_not_evaluated():
    formula = '$TargetDedicatedNodes = 1 ? 3 : avg($PendingTasks.GetSample(TimeInterval_Minute * 5, 100));'

    assert evaluate(formula, context()).target_dedicated_nodes == 3


def test_full_name_takes_precedence_over_its_alias():
    both = evaluate('$TargetDedicated = 7; $TargetDedicatedNodes = 2; $TargetLowPriority = 5;', context())
    assert (both.target_dedicated_nodes, both.target_low_priority_nodes) == (2, 5)
    assert both.results == '$TargetDedicatedNodes=2;$TargetLowPriorityNodes=5;$NodeDeallocationOption=requeue'

    reads_current = evaluate('$TargetDedicatedNodes = $TargetDedicated + 1;', context(target_dedicated_nodes=3))
    assert reads_current.target_dedicated_nodes == 4


def test_stop_ends_the_evaluation_keeping_what_was_assigned():
    result = evaluate('$TargetDedicatedNodes = 2; stop(); $TargetDedicatedNodes = 9; undefinedThing;', context())

    assert result.error is None
    assert result.target_dedicated_nodes == 2


def test_get_sample_count_window_and_look_back_range():
    samples = {'$RunningTasks': history([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13])}
    formula = '''last = $RunningTasks.GetSample(3);
    recent = $RunningTasks.GetSample(TimeInterval_Minute * 1);
    earlier = $RunningTasks.GetSample(1 * TimeInterval_Minute, 3 * TimeInterval_Minute);
    absolute = $RunningTasks.GetSample(time() - TimeInterval_Minute, time());
    first = val(last, 0);
    n = $RunningTasks.Count();
    begin = $RunningTasks.HistoryBeginTime();
    period = $RunningTasks.GetSamplePeriod();'''

    result = evaluate(formula, context(samples=samples))

    assert result.error is not None  # time() - timeinterval is not in the operations table
    assert result.error.detail == "Line 4, Col 47: Operator '-' is not defined for timestamp and timeinterval"
    result = evaluate(formula.replace('time() - TimeInterval_Minute', 'time() + (-1 * TimeInterval_Minute)'),
                      context(samples=samples))
    assert result.error is None
    assert result.results == ('$TargetDedicatedNodes=0;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue;'
                              'absolute=[11,12,13];begin=2026-02-02T09:54:00.000Z;earlier=[7,8,9,10,11];first=11;'
                              'last=[11,12,13];n=13;period=00:00:30;recent=[11,12,13]')


def test_functions_of_the_doc():
    formula = '''a = avg(1, 2, 3, 6); l = len($PendingTasks.GetSample(4), 9); b = lg(8); e = ln(1); t = log(1000);
    v = lg($PendingTasks.GetSample(2)); hi = max(1, $PendingTasks.GetSample(4)); lo = min(5, 3, 4);
    n = norm(3, 4); p = percentile($PendingTasks.GetSample(4), 50); r = range(2, 9, 4); s = std(2, 4, 4, 4, 5, 5, 7, 9);
    total = sum(1, 2, 3); c = ceil(1.2); f = floor(1.8); h = round(2.5); m = round(-2.5); x = rand();'''

    result = evaluate(formula, context(samples={'$PendingTasks': history([2, 4, 8, 16])}, rand=lambda: 0.25))

    assert result.error is None, result.error
    values = dict(part.split('=', 1) for part in result.results.split(';')[3:])
    assert values == {'a': '3', 'l': '5', 'b': '3', 'e': '0', 't': '3', 'v': '[3,4]', 'hi': '16', 'lo': '3',
                      'n': '5', 'p': '4', 'r': '7', 's': '2.138089935299395', 'total': '6', 'c': '2', 'f': '1',
                      'h': '3', 'm': '-3', 'x': '0.25'}


def test_operators_follow_the_doc_table():
    formula = '''vec = $PendingTasks.GetSample(3) * 2 + 1; both = vec - vec; half = TimeInterval_Hour / 2;
    week = 2 * TimeInterval_Week - TimeInterval_Day; later = time() + TimeInterval_Day > time();
    texts = "b" > "a"; neg = -TimeInterval_Minute; no = !3; yes = !0; ors = 0 || 2; ands = 1 && 0;
    eq = 2 == 2; ne = TimeInterval_Second != TimeInterval_Minute;'''

    result = evaluate(formula, context(samples={'$PendingTasks': history([1, 2, 3])}))

    assert result.error is None, result.error
    values = dict(part.split('=', 1) for part in result.results.split(';')[3:])
    assert values == {'vec': '[3,5,7]', 'both': '[0,0,0]', 'half': '00:30:00', 'week': '13.00:00:00',
                      'later': '1', 'texts': '1', 'neg': '-00:01:00', 'no': '0', 'yes': '1', 'ors': '1',
                      'ands': '0', 'eq': '1', 'ne': '1'}


def test_division_by_zero_gives_infinity_which_a_target_cannot_take():
    result = evaluate('x = 1 / 0;\n$TargetDedicatedNodes = x;', context(target_dedicated_nodes=3))

    assert result.target_dedicated_nodes == 3
    assert result.error.code == EVALUATION_ERROR
    assert result.error.detail.startswith(place('x = 1 / 0;\n$TargetDedicatedNodes = x;', '$TargetDedicatedNodes'))
    assert result.error.detail.endswith('∞')  # the value that a target cannot take, named (our wording)


def place(formula: str, offending: str | None) -> str:
    """``Line L, Col C: `` of the first occurrence of ``offending`` in the formula (None: its end), 1-based."""
    index = len(formula) if offending is None else formula.index(offending)
    line_start = formula.rfind('\n', 0, index) + 1
    return f"Line {formula.count(chr(10), 0, index) + 1}, Col {index - line_start + 1}: "


@pytest.fixture
def autoscaled_pool(emulator, request):
    """A new pool with autoscale on, to evaluate formulas against as a user would (evaluateautoscale). New for
    each formula: a pool that has lived through a sampling tick (every few seconds) has samples, and the
    formulas that fail on no samples would then succeed."""
    from tests.test_emulator import _pool, raw
    client = emulator.client()
    pool_id = f'formulas-{uuid.uuid4().hex[:12]}'  # a deleted pool's id stays taken a while
    body = {key: value for key, value in _pool(pool_id, enableAutoScale=True,
                                               autoScaleFormula='$TargetDedicatedNodes=0').items()
            if key != 'targetDedicatedNodes'}
    assert raw(client, 'POST', '/pools', body).status_code == 201
    yield lambda formula: raw(client, 'POST', f'/pools/{pool_id}/evaluateautoscale', {'autoScaleFormula': formula})
    raw(client, 'DELETE', f'/pools/{pool_id}')


# (formula, the offending text the detail's "Line L, Col C: " points at, what the detail must name). The
# service's form for an undefined symbol is recorded ("Undefined symbol: $something_useless"); the others'
# wording is ours.
@pytest.mark.parametrize(('formula', 'offending', 'named'), [
    ('x = time() + 1;', '+', ("'+'", 'timestamp', 'double')),
    ('x = $PendingTasks + 1;', '+', ("'+'", 'sampled variable', 'double')),
    ('$PendingTasks = 3;', '$PendingTasks', ('read-only', '$PendingTasks')),
    ('$NodeDeallocationOption = 2;', '$NodeDeallocationOption', ('$NodeDeallocationOption', '2')),
    ('$TargetDedicatedNodes = time();', '$TargetDedicatedNodes', ('$TargetDedicatedNodes', 'timestamp')),
    ('x = avg($PendingTasks.GetSample(TimeInterval_Minute));', 'avg', ('avg()', 'empty')),
    ('x = val($PendingTasks.GetSample(1), 0);', 'val', ('Index 0', 'length 0')),
    ('x = nosuchfunction(1);', 'nosuchfunction', ('Undefined symbol: nosuchfunction',)),
    ('x = $PendingTasks.GetSamples(1);', 'GetSamples', ('Undefined symbol: GetSamples',)),
    ('x = time("not a time");', 'time', ('not a time',)),
    ('x = time().fortnight;', 'fortnight', ('Undefined symbol: fortnight',)),
    ('x = 1 / 0;\n$TargetDedicatedNodes = x;', '$TargetDedicatedNodes', ('$TargetDedicatedNodes', 'not a number')),
])
def test_evaluation_errors_name_their_place(autoscaled_pool, formula, offending, named):
    result = evaluate(formula, context(target_dedicated_nodes=3))

    assert result.error.code == EVALUATION_ERROR
    assert result.error.detail.startswith(place(formula, offending)), result.error.detail
    assert all(name in result.error.detail for name in named), result.error.detail
    assert result.target_dedicated_nodes == 3  # the pool is left as it is
    assert result.results == '$TargetDedicatedNodes=3;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue'
    # What the user sees: a 200 AutoScaleRun whose error carries the detail as a name/value pair (recorded form).
    answer = autoscaled_pool(formula)
    assert answer.status_code == 200
    assert answer.json()['error']['values'] == [{'name': 'Message', 'value': result.error.detail}]


def test_time_strings_in_both_documented_formats():
    formula = '''a = time("2026-02-02T09:00:00Z"); b = time("Mon, 02 Feb 2026 09:00:00 GMT");
    c = time("2026-02-02T11:00:00.1234567+02:00"); same = a == b; later = c > a; d = a.day;'''

    result = evaluate(formula, context())

    assert result.error is None, result.error
    assert result.results.endswith(';a=2026-02-02T09:00:00.000Z;b=2026-02-02T09:00:00.000Z;'
                                   'c=2026-02-02T09:00:00.123Z;d=2;later=1;same=1')


# --- Syntax ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(('formula', 'offending', 'named'), [
    ('$TargetDedicatedNodes = (1 + ;', ';', ("';'",)),
    ('$TargetDedicatedNodes = 1 +', None, ('end of formula',)),
    ('a = 1;\nb = 2 % 3;', '%', ("'%'",)),
    ('a = 1\nb = 2', 'b', ("'b'",)),  # a line break does not end a statement
    ("x = 'single';", "'", ("'''",)),
])
def test_syntax_errors_are_the_services_syntax_error_code(autoscaled_pool, formula, offending, named):
    error = validate(formula)

    assert error is not None
    assert error.code == SYNTAX_ERROR
    assert error.detail.startswith(place(formula, offending)), error.detail
    assert all(name in error.detail for name in named), error.detail
    with pytest.raises(FormulaSyntaxError) as raised:
        parse(formula)
    assert raised.value.error == error

    evaluated = evaluate(formula, context(target_dedicated_nodes=2))
    assert evaluated.error == error
    assert evaluated.target_dedicated_nodes == 2
    # What the user sees: not a 200 AutoScaleRun but a 400 with the documented code, the detail in its values.
    answer = autoscaled_pool(formula)
    assert (answer.status_code, answer.json()['code']) == (400, 'AutoScalingFormulaSyntaxError')
    assert answer.json()['values'] == [{'key': 'Message', 'value': error.detail}]


def test_a_formula_over_8_kb_is_too_long(autoscaled_pool):
    formula = '$TargetDedicatedNodes = 1;' + ' ' * (MAX_FORMULA_LENGTH - 26)
    assert validate(formula) is None
    assert autoscaled_pool(formula).status_code == 200

    error = validate(formula + ' ')

    assert error.code == TOO_LONG
    answer = autoscaled_pool(formula + ' ')  # what the user sees: a 400 with the documented code
    assert (answer.status_code, answer.json()['code']) == (400, 'AutoScaleFormulaTooLong')
    assert '8192' in answer.json()['values'][0]['value']


def test_valid_formulas_validate_including_empty_statements_comments_and_line_breaks():
    for formula in (PENDING_TASKS, PREEMPTED_NODES, CPU, WORKING_HOURS, TASK_BASED, PARALLEL_TASKS,
                    ';;$TargetDedicatedNodes = 1;;', '// only a comment', '$something_useless'):
        assert validate(formula) is None, formula


def test_a_parsed_formula_can_be_evaluated_again_with_new_samples():
    formula = parse('$TargetDedicatedNodes = max($PendingTasks.GetSample(1));')

    assert evaluate(formula, context(samples={'$PendingTasks': history([2])})).target_dedicated_nodes == 2
    assert evaluate(formula, context(samples={'$PendingTasks': history([5])})).target_dedicated_nodes == 5


# --- Hostile input: an answer, never an exception ---------------------------------------------------------

def test_long_chains_and_deep_nesting_answer_without_crashing():
    chain = evaluate('x = ' + '1 + ' * 1500 + '1; $TargetDedicatedNodes = x > 3 && 1 || $Nope;', context())
    assert chain.error is None
    assert chain.target_dedicated_nodes == 1
    assert chain.results.endswith(';x=1501')

    nested = evaluate('x = ' + '-' * 5000 + '1;', context(target_dedicated_nodes=2))
    assert nested.error.code == EVALUATION_ERROR
    assert nested.target_dedicated_nodes == 2


@pytest.mark.parametrize('formula', [
    'x = time() + 1e300 * TimeInterval_Year;',
    'x = $PendingTasks.GetSample(1e300 * TimeInterval_Year);',
    'x = $PendingTasks.GetSample(1 / 0);',
    'x = ceil(1 / 0);',
    'x = val($PendingTasks.GetSample(3), 0 / 0);',
])
def test_out_of_range_numbers_are_evaluation_errors(formula):
    result = evaluate(formula, context(samples={'$PendingTasks': history([1, 2, 3])}))

    assert result.error is not None
    assert result.error.code == EVALUATION_ERROR


def test_naive_times_in_the_context_are_taken_as_utc():
    naive_now = MONDAY_10AM.replace(tzinfo=None)
    samples = {'$PendingTasks': [(moment.replace(tzinfo=None), value) for moment, value in history([3, 5])]}

    result = evaluate('$TargetDedicatedNodes = max($PendingTasks.GetSample(TimeInterval_Minute)); t = time();',
                      AutoScaleContext(now=naive_now, samples=samples))

    assert result.error is None
    assert result.target_dedicated_nodes == 5
    assert result.results.endswith(';t=2026-02-02T10:00:00.000Z')
