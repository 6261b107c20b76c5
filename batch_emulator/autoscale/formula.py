"""The Batch autoscale formula language: parse, validate and evaluate a pool's ``autoScaleFormula``.

Pure and synchronous: no clock, no I/O, no emulator state. The caller (the pool operations) hands in an
``AutoScaleContext`` -- the time now, the pool's node counts and targets, and the sample history the
emulator recorded per sampled variable -- and gets back an ``AutoScaleResult``: the new targets, the
node deallocation option, the service's ``results`` string and, when the formula fails, the error in the
shape of the spec's ``AutoScaleRunError``.

    result = evaluate('$TargetDedicatedNodes = max(0, $PendingTasks.GetSample(1));', context)
    result.results  # '$TargetDedicatedNodes=3;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue'

The language as Microsoft documents it ("Create a formula to automatically scale compute nodes in a Batch
pool", MicrosoftDocs/azure-docs articles/batch/batch-automatic-scaling.md):

- statements separated by ``;`` (line breaks are whitespace; a statement may span lines), ``//`` comments;
  a statement is an assignment ``name = expression`` or a bare expression;
- service-defined variables start with ``$``; user variables may or may not;
- types double, doubleVec, doubleVecList (function arguments), string, timestamp, timeinterval;
- the operators of the doc's operations table, unary ``-`` and ``!``, ``? :`` (nonzero is true);
- functions avg, ceil, floor, len, lg, ln, log, max, min, norm, percentile, rand, range, round, std, stop,
  sum, time, val; sampled variables' methods GetSample, GetSamplePercent, GetSamplePeriod, Count,
  HistoryBeginTime; constants TimeInterval_* and the deallocation options requeue, terminate,
  taskcompletion, retaineddata.

What the service answers, and where from (tests/test_autoscale.py's docstring lists the sources): the
``results`` string lists $TargetDedicatedNodes, $TargetLowPriorityNodes, $NodeDeallocationOption, then
the user variables by name (recordings, users' pasted results); an undefined symbol is
``AutoScalingFormulaEvaluationError`` "The specified auto-scaling formula has evaluation error", detail
"Line 1, Col 1: Undefined symbol: $something_useless" (JS SDK recording); too few samples is
``InsufficientSampleData`` "Line 1, Col 24: Insufficient data from data set: $RunningTasks wanted 100%,
received 0%" (the column of the call's opening parenthesis; the .NET SDK's test, the REST reference); the
codes ``AutoScalingFormulaSyntaxError`` and ``AutoScaleFormulaTooLong`` (the .NET SDK's error-code
strings).

This project's wording, where nothing recorded or published gives the service's: the messages of the
syntax and too-long errors, and every detail after "Line L, Col C:" except "Undefined symbol: NAME" and
"Insufficient data ..." (type, operator, argument, range, time-string and syntax errors).

Where no recording or page says what the service does, this module chooses, and says so here:
fractional node targets drop the fraction (negative ones become 0); on any error ``results`` reports the
pool's targets unchanged and no user variables; user variables sort case-insensitively; GetSample(n)
and windows return samples oldest first, a window includes both ends, and percent = samples present /
(window / ``sample_period``), at most 100; a timeinterval prints as a .NET TimeSpan (``00:03:00``).
``%`` is not an operator (the doc's operations table has none); ceil/floor/round are in today's
learn.microsoft.com page only. Also ours: the budgets of one evaluation (MAX_VECTOR_LENGTH, MAX_STEPS,
MAX_SECONDS, MAX_RESULTS_LENGTH), each an AutoScalingFormulaEvaluationError when exceeded; a target above
the spec's int32 is refused the same way, not clamped (as an infinite one is); a timeinterval overflows
where a .NET TimeSpan does.
"""

from __future__ import annotations

import datetime
import email.utils
import functools
import math
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

# The limits the doc states: "The formula string cannot exceed 8 KB"; the SDKs' error-code constants say
# "An automatic scaling formula is too long. The maximum length is 8192 characters."
MAX_FORMULA_LENGTH = 8192

# Budgets of one evaluation (ours: the service documents none). A formula is short (8 KB) but can ask for
# a lot: seven statements each flattening ten copies of the one before build a doubleVec of 10^7 values.
# Over any budget the run fails with AutoScalingFormulaEvaluationError, inside the AutoScaleRun, as every
# other formula the service cannot evaluate does. MAX_VECTOR_LENGTH is well above the 18,000 samples the
# emulator keeps of a variable (25 hours, one every 5 s); a step is one expression, and each value of a
# doubleVec an expression yields is one more; MAX_SECONDS is a backstop for slow machines only.
MAX_VECTOR_LENGTH = 50_000
MAX_STEPS = 400_000
MAX_SECONDS = 2.0
MAX_RESULTS_LENGTH = 64 * 1024
INT32_MAX = 2 ** 31 - 1  # the spec types targetDedicatedNodes and targetLowPriorityNodes as int32
# .NET's TimeSpan.MaxValue in seconds: a timeinterval beyond it overflows, as a TimeSpan does.
MAX_INTERVAL_SECONDS = 922_337_203_685.4775807

# Error codes and messages. The first two are recorded / documented inside AutoScaleRun bodies; the
# syntax and length codes are the service's 400 codes (the .NET SDK's BatchErrorCodeStrings), their
# messages this project's wording (none recorded).
EVALUATION_ERROR = 'AutoScalingFormulaEvaluationError'
EVALUATION_ERROR_MESSAGE = 'The specified auto-scaling formula has evaluation error'
INSUFFICIENT_SAMPLES = 'InsufficientSampleData'
INSUFFICIENT_SAMPLES_MESSAGE = 'Autoscale evaluation failed due to insufficient sample data'
SYNTAX_ERROR = 'AutoScalingFormulaSyntaxError'
SYNTAX_ERROR_MESSAGE = 'The specified auto-scaling formula has a syntax error.'
TOO_LONG = 'AutoScaleFormulaTooLong'
TOO_LONG_MESSAGE = 'The specified auto-scaling formula exceeds lengths limit.'
# Codes the service answers with HTTP 400 (a request error) rather than inside a 200 AutoScaleRun.
REQUEST_ERROR_CODES = frozenset({SYNTAX_ERROR, TOO_LONG})

DEALLOCATION_OPTIONS = ('requeue', 'terminate', 'taskcompletion', 'retaineddata')

# Read-only variables that are sample histories (objects with GetSample & co., not numbers). The emulator
# records these; a variable missing from ``AutoScaleContext.samples`` has an empty history.
SAMPLED_VARIABLES = frozenset({
    '$CPUPercent', '$WallClockSeconds', '$MemoryBytes', '$DiskBytes', '$DiskReadBytes', '$DiskWriteBytes',
    '$DiskReadOps', '$DiskWriteOps', '$NetworkInBytes', '$NetworkOutBytes', '$SampleNodeCount',
    '$ActiveTasks', '$RunningTasks', '$PendingTasks', '$SucceededTasks', '$FailedTasks',
    '$PreemptedNodeCount', '$UsableNodeCount',
})

_TARGET_DEDICATED = '$TargetDedicatedNodes'
_TARGET_LOW_PRIORITY = '$TargetLowPriorityNodes'
_DEALLOCATION = '$NodeDeallocationOption'
# "$TargetDedicatedNodes can also be specified using the alias $TargetDedicated ... If both the fully named
# variable and its alias are set by the formula, the value assigned to the fully named variable will take
# precedence."
_ALIASES = {'$TargetDedicated': _TARGET_DEDICATED, '$TargetLowPriority': _TARGET_LOW_PRIORITY}
_SETTABLE = frozenset({_TARGET_DEDICATED, _TARGET_LOW_PRIORITY, _DEALLOCATION, *_ALIASES})

_TICK = 1e-7  # seconds in one .NET tick (100 ns)
_TIME_INTERVALS = {
    'TimeInterval_Zero': 0.0,
    'TimeInterval_100ns': _TICK,
    'TimeInterval_Microsecond': 1e-6,
    'TimeInterval_Millisecond': 1e-3,
    'TimeInterval_Second': 1.0,
    'TimeInterval_Minute': 60.0,
    'TimeInterval_Hour': 3600.0,
    'TimeInterval_Day': 86400.0,
    'TimeInterval_Week': 7 * 86400.0,
    'TimeInterval_Year': 365 * 86400.0,
}

_GRAMMAR = r'''
start: (_SEMI | statement _SEMI)* statement?

?statement: NAME EQUALS expr              -> assign
          | expr                          -> expression

?expr: or_expr
     | or_expr QMARK expr ":" expr        -> conditional
?or_expr: and_expr | or_expr OR and_expr  -> binary
?and_expr: eq_expr | and_expr AND eq_expr -> binary
?eq_expr: rel_expr | eq_expr EQOP rel_expr -> binary
?rel_expr: add_expr | rel_expr RELOP add_expr -> binary
?add_expr: mul_expr | add_expr (PLUS | MINUS) mul_expr -> binary
?mul_expr: unary | mul_expr (STAR | SLASH) unary -> binary
?unary: postfix | (MINUS | BANG) unary    -> unary
?postfix: primary
        | postfix "." NAME LPAR [arguments] ")" -> method
        | postfix "." NAME                -> member
?primary: NUMBER                          -> number
        | STRING                          -> string
        | NAME LPAR [arguments] ")"       -> call
        | NAME                            -> name
        | "(" expr ")"
arguments: expr ("," expr)*

NAME: /\$?[A-Za-z_][A-Za-z0-9_]*/
NUMBER: /(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?/
STRING: /"[^"\n]*"/
EQUALS: "="
OR: "||"
AND: "&&"
EQOP: "==" | "!="
RELOP: "<=" | ">=" | "<" | ">"
PLUS: "+"
MINUS: "-"
STAR: "*"
SLASH: "/"
BANG: "!"
QMARK: "?"
LPAR: "("
_SEMI: ";"
COMMENT: /\/\/[^\n]*/
%ignore COMMENT
%ignore /[ \t\f\r\n]+/
'''



@functools.cache
def _parser() -> Lark:
    """Built when the first formula is parsed (a few tenths of a second), not when the emulator starts."""
    return Lark(_GRAMMAR, parser='lalr', maybe_placeholders=True)


# ---------------------------------------------------------------------------------------------------------
# The API: context in, result out.

Sample = tuple[datetime.datetime, float]


@dataclass(frozen=True)
class AutoScaleContext:
    """What a formula can see: the time now, the pool as it is, and the recorded sample histories.

    ``samples`` maps a sampled variable's name (``'$PendingTasks'``, see ``SAMPLED_VARIABLES``) to its
    history as (UTC timestamp, value) pairs, any order. ``sample_period`` is how often the emulator
    records a sample (the service: every 30 s); GetSamplePercent divides by it.
    """

    now: datetime.datetime
    current_dedicated_nodes: int = 0
    current_low_priority_nodes: int = 0
    target_dedicated_nodes: int = 0
    target_low_priority_nodes: int = 0
    node_deallocation_option: str = 'requeue'
    task_slots_per_node: int = 1
    samples: Mapping[str, Sequence[Sample]] = field(default_factory=dict)
    sample_period: datetime.timedelta = datetime.timedelta(seconds=30)
    rand: Callable[[], float] = random.random


@dataclass(frozen=True)
class AutoScaleError:
    """The spec's AutoScaleRunError: code, message and ``values`` as (name, value) pairs."""

    code: str
    message: str
    values: tuple[tuple[str, str], ...] = ()

    @property
    def detail(self) -> str:
        """The ``Message`` value ("Line 1, Col 1: ...") -- what a user reads."""
        return next((value for name, value in self.values if name == 'Message'), self.message)

    def to_json(self) -> dict:
        """As in an AutoScaleRun body: ``values`` are ``{"name", "value"}`` (not ``key``) [J:as/invalid]."""
        return {'code': self.code, 'message': self.message,
                'values': [{'name': name, 'value': value} for name, value in self.values]}


@dataclass(frozen=True)
class AutoScaleResult:
    """One evaluation: the targets to apply, the ``results`` string, and the error if it failed.

    On an error the targets are the context's (the pool is left as it is) and ``results`` reports them.
    """

    target_dedicated_nodes: int
    target_low_priority_nodes: int
    node_deallocation_option: str
    results: str
    error: AutoScaleError | None = None

    def to_json(self) -> dict:
        """The AutoScaleRun body without ``timestamp`` (and ``odata.metadata``), which the caller adds."""
        body: dict = {'results': self.results}
        if self.error is not None:
            body['error'] = self.error.to_json()
        return body


@dataclass(frozen=True)
class Formula:
    """A parsed formula, ready to evaluate any number of times."""

    text: str
    statements: tuple[Tree, ...]


class FormulaSyntaxError(ValueError):
    """The formula does not parse (or is too long); ``error`` is what the service answers."""

    def __init__(self, error: AutoScaleError):
        super().__init__(error.detail)
        self.error = error


def parse(formula: str) -> Formula:
    """Parse a formula, or raise ``FormulaSyntaxError`` carrying the service's error."""
    if len(formula) > MAX_FORMULA_LENGTH:
        raise FormulaSyntaxError(AutoScaleError(TOO_LONG, TOO_LONG_MESSAGE, (
            ('Message', f'The formula is {len(formula)} characters long; the limit is {MAX_FORMULA_LENGTH}.'),)))
    try:
        tree = _parser().parse(formula)
    except UnexpectedInput as problem:
        raise FormulaSyntaxError(AutoScaleError(SYNTAX_ERROR, SYNTAX_ERROR_MESSAGE,
                                                (('Message', _syntax_message(formula, problem)),))) from None
    return Formula(formula, tuple(tree.children))


def validate(formula: str) -> AutoScaleError | None:
    """The error the service gives for a formula that cannot be accepted (create/enable time), or None.

    Only syntax and length are checked here: undefined symbols, type errors and missing samples are found
    by evaluating, and the service reports those inside the AutoScaleRun, not as a request error.
    """
    try:
        parse(formula)
    except FormulaSyntaxError as problem:
        return problem.error
    return None


def evaluate(formula: str | Formula, context: AutoScaleContext) -> AutoScaleResult:
    """Evaluate a formula against a pool's context, as evaluateautoscale and each periodic run do."""
    untouched = _results_string(context.target_dedicated_nodes, context.target_low_priority_nodes,
                                context.node_deallocation_option, {})
    try:
        parsed = formula if isinstance(formula, Formula) else parse(formula)
    except FormulaSyntaxError as problem:
        return _failed(context, untouched, problem.error)
    run = _Run(context)
    try:
        try:
            for statement in parsed.statements:
                run.statement(statement)
        except _Stop:
            pass
        dedicated = run.final_count(_TARGET_DEDICATED)
        low_priority = run.final_count(_TARGET_LOW_PRIORITY)
        deallocation = run.final_value(_DEALLOCATION)
        results = run.results_string(dedicated, low_priority, deallocation)
    except _FormulaError as problem:
        return _failed(context, untouched, problem.error)
    except RecursionError:
        return _failed(context, untouched, _whole_formula_error('The formula nests its expressions too deeply to '
                                                               'evaluate'))
    except (ArithmeticError, ValueError, MemoryError) as problem:  # an answer, never an exception
        return _failed(context, untouched, _whole_formula_error(f'The formula cannot be evaluated: {problem}'))
    except Exception as problem:  # noqa: BLE001 - the same for what no one foresaw: a run, never a 500
        return _failed(context, untouched, _whole_formula_error(f'The formula cannot be evaluated '
                                                               f'({type(problem).__name__})'))
    return AutoScaleResult(dedicated, low_priority, deallocation, results)


def _whole_formula_error(text: str) -> AutoScaleError:
    return AutoScaleError(EVALUATION_ERROR, EVALUATION_ERROR_MESSAGE, (('Message', f'Line 1, Col 1: {text}'),))


def _failed(context: AutoScaleContext, results: str, error: AutoScaleError) -> AutoScaleResult:
    return AutoScaleResult(context.target_dedicated_nodes, context.target_low_priority_nodes,
                           context.node_deallocation_option, results, error)


# ---------------------------------------------------------------------------------------------------------
# Values. double is float, string is str, timestamp is an aware UTC datetime; the others are these.

@dataclass(frozen=True)
class DoubleVec:
    values: tuple[float, ...]


@dataclass(frozen=True)
class TimeInterval:
    seconds: float


@dataclass(frozen=True)
class _Sampled:
    """A read-only sampled variable: only its methods can be used."""

    name: str


@dataclass(frozen=True)
class _Deallocation:
    """One of the bare words requeue / terminate / taskcompletion / retaineddata."""

    option: str


def _type_name(value: object) -> str:
    if isinstance(value, float):
        return 'double'
    if isinstance(value, DoubleVec):
        return 'doubleVec'
    if isinstance(value, str):
        return 'string'
    if isinstance(value, datetime.datetime):
        return 'timestamp'
    if isinstance(value, TimeInterval):
        return 'timeinterval'
    if isinstance(value, _Deallocation):
        return 'nodeDeallocationOption'
    return 'sampled variable'


# ---------------------------------------------------------------------------------------------------------
# Evaluation.

class _Stop(Exception):
    """stop(): "Stops evaluation of the autoscaling expression" -- what was assigned so far stands."""


class _FormulaError(Exception):
    def __init__(self, error: AutoScaleError):
        super().__init__(error.detail)
        self.error = error


def _first_token(where: Tree | Token | None) -> Token:
    """Where an error is reported: the token itself, or the first token of an expression (else Line 1, Col 1)."""
    if isinstance(where, Tree):
        where = next(where.scan_values(lambda value: isinstance(value, Token)), None)
    return where if isinstance(where, Token) else Token('START', '', line=1, column=1)


def _evaluation_error(at: Token, text: str) -> _FormulaError:
    return _FormulaError(AutoScaleError(EVALUATION_ERROR, EVALUATION_ERROR_MESSAGE,
                                        (('Message', f'Line {at.line}, Col {at.column}: {text}'),)))


class _Run:
    """One evaluation's variables, in the order of the statements."""

    def __init__(self, context: AutoScaleContext):
        self.context = context
        self.now = _utc(context.now)
        self.assigned: dict[str, object] = {}
        self.assigned_at: dict[str, Token] = {}
        self.steps = 0
        self.deadline = time.monotonic() + MAX_SECONDS
        self.histories: dict[str, list[Sample]] = {}

    def spend(self, where: Tree | Token, steps: int) -> None:
        """Counts steps against MAX_STEPS and the clock against MAX_SECONDS; over either, the run fails."""
        self.steps += steps
        if self.steps > MAX_STEPS:
            raise _evaluation_error(_first_token(where), f'The formula needs more than {MAX_STEPS} steps to evaluate')
        if time.monotonic() > self.deadline:
            raise _evaluation_error(_first_token(where), f'The formula takes longer than {MAX_SECONDS:g} seconds '
                                                         'to evaluate')

    # Statements -------------------------------------------------------------------------------------

    def statement(self, node: Tree) -> None:
        if node.data == 'assign':
            target, _, expression = node.children
            self.assign(target, self.value(expression))
        else:
            self.value(node.children[0])

    def assign(self, target: Token, value: object) -> None:
        name = str(target)
        if name in SAMPLED_VARIABLES or name in _TIME_INTERVALS or name in DEALLOCATION_OPTIONS or name in {
                '$CurrentDedicatedNodes', '$CurrentLowPriorityNodes', '$CurrentDedicated', '$TaskSlotsPerNode'}:
            raise _evaluation_error(target, f'Cannot assign to read-only symbol: {name}')
        if name == _DEALLOCATION:
            if isinstance(value, _Deallocation):
                value = value.option
            if value not in DEALLOCATION_OPTIONS:
                raise _evaluation_error(target, f'Invalid value for {name}: {_format_value(value, 200) or "..."}')
        elif name in _SETTABLE and not isinstance(value, float):
            raise _evaluation_error(target, f'{name} must be a double, not a {_type_name(value)}')
        elif isinstance(value, _Sampled):
            raise _evaluation_error(target, f'{value.name} cannot be assigned; use its methods such as GetSample')
        self.assigned[name] = value
        self.assigned_at[name] = target

    # The three settable variables at the end --------------------------------------------------------

    def final_value(self, name: str) -> object:
        alias = next((a for a, full in _ALIASES.items() if full == name), None)
        if name in self.assigned:
            return self.assigned[name]
        if alias in self.assigned:
            return self.assigned[alias]
        return self._initial(name)

    def final_count(self, name: str) -> int:
        value = self.final_value(name)
        if isinstance(value, int):
            return value
        at = self.assigned_at.get(name) or self.assigned_at[next(a for a, f in _ALIASES.items() if f == name)]
        if math.isnan(value) or math.isinf(value):
            raise _evaluation_error(at, f'{name} is not a number: {_format_double(value)}')
        if value >= INT32_MAX + 1:  # the spec's int32; refused as an infinite target is, not clamped
            raise _evaluation_error(at, f'{name} is out of range: {_format_double(value)} is more than {INT32_MAX}')
        # Node counts are whole: the fraction is dropped (the doc's own "+ 3) / 4" rounds up that way).
        return max(0, int(value))

    def _initial(self, name: str) -> object:
        return {_TARGET_DEDICATED: self.context.target_dedicated_nodes,
                _TARGET_LOW_PRIORITY: self.context.target_low_priority_nodes,
                _DEALLOCATION: self.context.node_deallocation_option}[name]

    def results_string(self, dedicated: int, low_priority: int, deallocation: object) -> str:
        """The AutoScaleRun's ``results``, or an error once it would be longer than MAX_RESULTS_LENGTH."""
        user = {name: value for name, value in self.assigned.items() if name not in _SETTABLE}
        text = _results_string(dedicated, low_priority, str(deallocation), user, MAX_RESULTS_LENGTH)
        if text is None:
            raise _evaluation_error(_first_token(self.assigned_at.get(next(iter(user), ''))),
                                    f'The results would be longer than {MAX_RESULTS_LENGTH} characters')
        return text

    # Expressions ------------------------------------------------------------------------------------

    def value(self, node: Tree) -> object:
        """The value of an expression, each one counted against the budget (a doubleVec by its length)."""
        self.spend(node, 1)
        result = self._value(node)
        if isinstance(result, DoubleVec):
            self.spend(node, len(result.values))
        return result

    def _value(self, node: Tree) -> object:
        kind = node.data
        if kind == 'number':
            return float(node.children[0])
        if kind == 'string':
            return str(node.children[0])[1:-1]
        if kind == 'name':
            return self.lookup(node.children[0])
        if kind == 'conditional':
            condition, mark, when_true, when_false = node.children
            return self.value(when_true if self.truth(self.value(condition), mark) else when_false)
        if kind == 'binary':
            return self.binary_chain(node)
        if kind == 'unary':
            operator, operand = node.children
            return _unary(operator, self.value(operand))
        if kind == 'member':
            subject, member = node.children
            return _member(self.value(subject), member)
        if kind == 'call':
            function, parenthesis, arguments = node.children
            return self.call(function, parenthesis, self.arguments(arguments))
        if kind == 'method':
            subject, method, parenthesis, arguments = node.children
            return self.method(self.value(subject), method, parenthesis, self.arguments(arguments))
        raise AssertionError(f'unknown node {kind}')  # pragma: no cover - the grammar has no other

    def arguments(self, node: Tree | None) -> list[object]:
        return [] if node is None else [self.value(child) for child in node.children]

    def truth(self, value: object, at: Token) -> bool:
        """"When testing a double with a ternary operator, nonzero is true, and zero is false"."""
        if not isinstance(value, float):
            raise _evaluation_error(at, f'Condition must be a double, not a {_type_name(value)}')
        return value != 0.0

    def binary_chain(self, node: Tree) -> object:
        """``a + b - c ...`` left to right, without recursing once per operator (a formula may hold
        thousands)."""
        chain = []
        while isinstance(node, Tree) and node.data == 'binary':
            left, operator, right = node.children
            chain.append((operator, right))
            node = left
        result = self.value(node)
        for operator, right in reversed(chain):
            if operator in ('&&', '||'):
                result = self.logical(result, operator, right)
            else:
                result = _binary(operator, result, self.value(right))
        return result

    def logical(self, left: object, operator: Token, right: Tree) -> float:
        """&& and || on doubles, giving 1 or 0; the right side is evaluated only when it decides."""
        first = self.truth(left, operator)
        if operator == '&&' and not first:
            return 0.0
        if operator == '||' and first:
            return 1.0
        return 1.0 if self.truth(self.value(right), operator) else 0.0

    def lookup(self, token: Token) -> object:
        name = str(token)
        context = self.context
        if name in self.assigned:
            return self.assigned[name]
        if name in _ALIASES:
            return float(self.final_value(_ALIASES[name]))
        if name in (_TARGET_DEDICATED, _TARGET_LOW_PRIORITY):
            return float(self.final_value(name))
        if name == _DEALLOCATION:
            return _Deallocation(str(self.final_value(name)))
        if name in ('$CurrentDedicatedNodes', '$CurrentDedicated'):
            return float(context.current_dedicated_nodes)
        if name == '$CurrentLowPriorityNodes':
            return float(context.current_low_priority_nodes)
        if name == '$TaskSlotsPerNode':
            return float(context.task_slots_per_node)
        if name in SAMPLED_VARIABLES:
            return _Sampled(name)
        if name in _TIME_INTERVALS:
            return TimeInterval(_TIME_INTERVALS[name])
        if name in DEALLOCATION_OPTIONS:
            return _Deallocation(name)
        raise _evaluation_error(token, f'Undefined symbol: {name}')

    # Functions --------------------------------------------------------------------------------------

    def call(self, function: Token, parenthesis: Token, arguments: list[object]) -> object:
        name = str(function)
        if name == 'stop':
            _arity(function, arguments, 0, 0)
            raise _Stop
        if name == 'rand':
            _arity(function, arguments, 0, 0)
            return float(self.context.rand())
        if name == 'time':
            return self.time(function, arguments)
        if name in _LIST_FUNCTIONS:
            values = _flatten(function, arguments)
            if name != 'len' and not values:
                raise _evaluation_error(function, f'{name}() needs at least one value; the list is empty')
            return float(_LIST_FUNCTIONS[name](values))
        if name in _ELEMENTWISE_FUNCTIONS:
            apply = _ELEMENTWISE_FUNCTIONS[name]
            if len(arguments) == 1 and isinstance(arguments[0], float):
                return _checked(function, name, apply, arguments[0])
            return DoubleVec(tuple(_checked(function, name, apply, v) for v in _flatten(function, arguments)))
        if name == 'percentile':
            _arity(function, arguments, 2, 2)
            vector, percent = _flatten(function, arguments[:1]), arguments[1]
            if not isinstance(percent, float) or not vector:
                raise _evaluation_error(function, 'percentile() takes a non-empty doubleVec and a double')
            return _percentile(vector, percent)
        if name == 'val':
            _arity(function, arguments, 2, 2)
            vector, index = arguments
            if not isinstance(vector, DoubleVec) or not isinstance(index, float):
                raise _evaluation_error(function, 'val() takes a doubleVec and a double index')
            if not 0 <= index < len(vector.values) or index != int(index):
                raise _evaluation_error(function, f'Index {_format_double(index)} is out of range for a '
                                                  f'doubleVec of length {len(vector.values)}')
            return vector.values[int(index)]
        raise _evaluation_error(function, f'Undefined symbol: {name}')

    def time(self, function: Token, arguments: list[object]) -> datetime.datetime:
        """time(string dateTime=""): now, or the W3C-DTF / RFC 1123 time given."""
        _arity(function, arguments, 0, 1)
        if not arguments or arguments[0] == '':
            return self.now
        text = arguments[0]
        if not isinstance(text, str):
            raise _evaluation_error(function, f'time() takes a string, not a {_type_name(text)}')
        moment = _parse_time(text)
        if moment is None:
            raise _evaluation_error(function, f'Invalid time string: {text}')
        return moment

    # Sampled variables' methods ---------------------------------------------------------------------

    def method(self, subject: object, method: Token, parenthesis: Token, arguments: list[object]) -> object:
        if not isinstance(subject, _Sampled):
            raise _evaluation_error(method, f'Undefined symbol: {method} on a {_type_name(subject)}')
        history = self.history(subject.name, method)
        name = str(method)
        if name == 'GetSample':
            return self.get_sample(subject, history, method, parenthesis, arguments)
        if name == 'GetSamplePercent':
            _arity(method, arguments, 1, 2)
            start, end = self.window(method, arguments)
            return _percent_available(history, start, end, self.context.sample_period)
        if name == 'GetSamplePeriod':
            _arity(method, arguments, 0, 0)
            return TimeInterval(self.context.sample_period.total_seconds())
        if name == 'Count':
            _arity(method, arguments, 0, 0)
            return float(len(history))
        if name == 'HistoryBeginTime':
            _arity(method, arguments, 0, 0)
            if not history:
                raise _evaluation_error(method, f'{subject.name} has no samples yet')
            return history[0][0]
        raise _evaluation_error(method, f'Undefined symbol: {name}')

    def history(self, name: str, at: Token) -> list[Sample]:
        """A sampled variable's history, oldest first: sorted once per run, each sample one step."""
        if name not in self.histories:
            recorded = self.context.samples.get(name, ())
            self.spend(at, len(recorded))
            self.histories[name] = sorted((_utc(moment), float(value)) for moment, value in recorded)
        return self.histories[name]

    def get_sample(self, subject: _Sampled, history: list[Sample], method: Token, parenthesis: Token,
                   arguments: list[object]) -> DoubleVec:
        """GetSample(count) | GetSample(start [, percent]) | GetSample(start, end [, percent])."""
        if len(arguments) == 1 and isinstance(arguments[0], float):
            count = int(arguments[0]) if math.isfinite(arguments[0]) else 0
            if count < 1:
                raise _evaluation_error(method, 'GetSample() needs a count of at least 1')
            return DoubleVec(tuple(value for _, value in history[-count:]))
        _arity(method, arguments, 1, 3)
        times = [a for a in arguments if isinstance(a, (TimeInterval, datetime.datetime))]
        wanted = arguments[len(times):]
        if not 1 <= len(times) <= 2 or len(wanted) > 1 or (wanted and not isinstance(wanted[0], float)):
            raise _evaluation_error(method, 'GetSample() takes a count, or a start time (timestamp or '
                                            'timeinterval), an optional end time and an optional percent')
        start, end = self.window(method, times)
        window = [value for moment, value in history if start <= moment <= end]
        if wanted:
            received = _percent_available(history, start, end, self.context.sample_period)
            if received < wanted[0]:
                raise _FormulaError(_insufficient(parenthesis, subject.name, wanted[0], received))
        return DoubleVec(tuple(window))

    def window(self, at: Token, bounds: list[object]) -> tuple[datetime.datetime, datetime.datetime]:
        """The absolute [start, end] of one look-back (until now) or two (a timeinterval counts back)."""
        moments = []
        for bound in bounds:
            if isinstance(bound, TimeInterval):
                moments.append(_shift(self.now, -bound.seconds, at))
            elif isinstance(bound, datetime.datetime):
                moments.append(bound)
            else:
                raise _evaluation_error(at, f'A sample window takes a timestamp or timeinterval, '
                                            f'not a {_type_name(bound)}')
        if len(moments) == 1:
            moments.append(self.now)
        return min(moments), max(moments)


def _utc(moment: datetime.datetime) -> datetime.datetime:
    """Aware UTC; a naive time is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc)


def _shift(moment: datetime.datetime, seconds: float, at: Token) -> datetime.datetime:
    """timestamp + timeinterval, or an error when the result is no time at all."""
    try:
        return moment + datetime.timedelta(seconds=seconds)
    except (OverflowError, ValueError):
        raise _evaluation_error(at, 'The time is out of range') from None


def _insufficient(at: Token, name: str, wanted: float, received: float) -> AutoScaleError:
    text = (f'Line {at.line}, Col {at.column}: Insufficient data from data set: {name} '
            f'wanted {_format_double(wanted)}%, received {int(received)}%')
    return AutoScaleError(INSUFFICIENT_SAMPLES, INSUFFICIENT_SAMPLES_MESSAGE, (('Message', text),))


def _percent_available(history: list[Sample], start: datetime.datetime, end: datetime.datetime,
                       period: datetime.timedelta) -> float:
    """Samples present in the window against the samples the recording period promises (at most 100)."""
    present = sum(1 for moment, _ in history if start <= moment <= end)
    expected = max(1.0, (end - start) / period)
    return min(100.0, 100.0 * present / expected)


def _arity(at: Token, arguments: list[object], least: int, most: int) -> None:
    if not least <= len(arguments) <= most:
        raise _evaluation_error(at, f'{at}() takes {least if least == most else f"{least} to {most}"} '
                                    f'argument(s), not {len(arguments)}')


def _flatten(at: Token, arguments: list[object]) -> list[float]:
    """A doubleVecList: "any combination of double and doubleVec", converted to one doubleVec (counted first:
    ten copies of a long doubleVec are refused before they are built)."""
    total = sum(len(argument.values) if isinstance(argument, DoubleVec) else 1 for argument in arguments)
    if total > MAX_VECTOR_LENGTH:
        raise _evaluation_error(at, f'{at}() would make a doubleVec of {total} values; at most '
                                    f'{MAX_VECTOR_LENGTH} are allowed')
    values: list[float] = []
    for argument in arguments:
        if isinstance(argument, float):
            values.append(argument)
        elif isinstance(argument, DoubleVec):
            values.extend(argument.values)
        else:
            raise _evaluation_error(at, f'{at}() takes doubles and doubleVecs, not a {_type_name(argument)}')
    return values


def _checked(at: Token, name: str, apply: Callable[[float], float], value: float) -> float:
    try:
        return float(apply(value))
    except (ValueError, OverflowError):
        raise _evaluation_error(at, f'{name}() is undefined for {_format_double(value)}') from None


def _sample_std(values: list[float]) -> float:
    """The sample standard deviation (n - 1); a single value deviates by 0."""
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _percentile(values: list[float], percent: float) -> float:
    """The nearest-rank percentile element of the vector."""
    ordered = sorted(values)
    rank = math.ceil(max(0.0, min(100.0, percent)) / 100.0 * len(ordered))
    return ordered[max(0, rank - 1)]


def _round_half_away(value: float) -> float:
    """round(): "rounding halfway cases away from zero" (not Python's banker's rounding)."""
    return math.copysign(math.floor(abs(value) + 0.5), value)


_LIST_FUNCTIONS: dict[str, Callable[[list[float]], float]] = {
    'avg': lambda values: sum(values) / len(values),
    'len': len,
    'max': max,
    'min': min,
    'norm': lambda values: math.sqrt(sum(v * v for v in values)),
    'range': lambda values: max(values) - min(values),
    'std': _sample_std,
    'sum': sum,
}
_ELEMENTWISE_FUNCTIONS: dict[str, Callable[[float], float]] = {
    'lg': math.log2,
    'ln': math.log,
    'log': math.log10,
    'ceil': math.ceil,
    'floor': math.floor,
    'round': _round_half_away,
}


# ---------------------------------------------------------------------------------------------------------
# Operators: exactly the doc's operations table.

def _binary(operator: Token, left: object, right: object) -> object:
    op = str(operator)
    pair = (type(left), type(right))
    if op in ('+', '-', '*', '/'):
        result = _arithmetic(operator, left, right)
        if result is not None:
            return result
    elif op in ('<', '<=', '==', '>=', '>', '!='):
        if pair in ((float, float), (str, str), (TimeInterval, TimeInterval)) or (
                isinstance(left, datetime.datetime) and isinstance(right, datetime.datetime)):
            keys = (left.seconds, right.seconds) if isinstance(left, TimeInterval) else (left, right)
            return 1.0 if _COMPARISONS[op](*keys) else 0.0
    raise _evaluation_error(operator, f"Operator '{op}' is not defined for {_type_name(left)} and "
                                      f'{_type_name(right)}')


def _arithmetic(operator: Token, left: object, right: object) -> object | None:
    op = str(operator)
    if isinstance(left, float) and isinstance(right, float):
        return _double_arithmetic(op, left, right)
    if isinstance(left, DoubleVec) and isinstance(right, float):
        return DoubleVec(tuple(_double_arithmetic(op, v, right) for v in left.values))
    if isinstance(left, DoubleVec) and isinstance(right, DoubleVec) and len(left.values) == len(right.values):
        return DoubleVec(tuple(_double_arithmetic(op, a, b) for a, b in zip(left.values, right.values, strict=True)))
    if op == '*' and isinstance(left, float) and isinstance(right, TimeInterval):
        return _interval(left * right.seconds, operator)
    if op in ('*', '/') and isinstance(left, TimeInterval) and isinstance(right, float):
        return _interval(_double_arithmetic(op, left.seconds, right), operator)
    if op in ('+', '-') and isinstance(left, TimeInterval) and isinstance(right, TimeInterval):
        return _interval(_double_arithmetic(op, left.seconds, right.seconds), operator)
    if op == '+' and isinstance(left, TimeInterval) and isinstance(right, datetime.datetime):
        return _shift(right, left.seconds, operator)
    if op == '+' and isinstance(left, datetime.datetime) and isinstance(right, TimeInterval):
        return _shift(left, right.seconds, operator)
    if op == '-' and isinstance(left, datetime.datetime) and isinstance(right, datetime.datetime):
        return TimeInterval((left - right).total_seconds())
    return None


def _interval(seconds: float, at: Token) -> TimeInterval:
    """A timeinterval; beyond a .NET TimeSpan's range it overflows as a TimeSpan does (NaN is refused too)."""
    if math.isnan(seconds):
        raise _evaluation_error(at, 'TimeSpan does not accept floating point Not-a-Number values.')
    if abs(seconds) > MAX_INTERVAL_SECONDS:
        raise _evaluation_error(at, 'TimeSpan overflowed because the duration is too long.')
    return TimeInterval(seconds)


def _double_arithmetic(op: str, left: float, right: float) -> float:
    """IEEE doubles, as the service's .NET ones: x / 0 is infinity (or NaN), not an error."""
    if op == '+':
        return left + right
    if op == '-':
        return left - right
    if op == '*':
        return left * right
    if right != 0.0:
        return left / right
    if left == 0.0 or math.isnan(left):
        return math.nan
    return math.copysign(math.inf, left) * math.copysign(1.0, right)


def _unary(operator: Token, operand: object) -> object:
    if isinstance(operand, float):
        return -operand if operator == '-' else (1.0 if operand == 0.0 else 0.0)
    if operator == '-' and isinstance(operand, TimeInterval):
        return TimeInterval(-operand.seconds)
    raise _evaluation_error(operator, f"Operator '{operator}' is not defined for {_type_name(operand)}")


def _member(subject: object, member: Token) -> float:
    """A timestamp's members: year, month (1-12), day (1-31), weekday (1 = Monday), hour, minute, second."""
    if isinstance(subject, datetime.datetime):
        readers = {'year': subject.year, 'month': subject.month, 'day': subject.day,
                   'weekday': subject.isoweekday(), 'hour': subject.hour, 'minute': subject.minute,
                   'second': subject.second}
        if str(member) in readers:
            return float(readers[str(member)])
    raise _evaluation_error(member, f'Undefined symbol: {member} on a {_type_name(subject)}')


_COMPARISONS: dict[str, Callable[[object, object], bool]] = {
    '<': lambda a, b: a < b, '<=': lambda a, b: a <= b, '==': lambda a, b: a == b,
    '>=': lambda a, b: a >= b, '>': lambda a, b: a > b, '!=': lambda a, b: a != b,
}


# ---------------------------------------------------------------------------------------------------------
# Text in and out.

_W3C_DTF = re.compile(r'(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?'
                      r'(Z|[+-]\d{2}:\d{2})?)?)?)?$')


def _parse_time(text: str) -> datetime.datetime | None:
    """W3C-DTF (ISO 8601 profiles: YYYY, YYYY-MM, ..., YYYY-MM-DDThh:mm:ss.sTZD) or RFC 1123."""
    match = _W3C_DTF.match(text.strip())
    if match:
        year, month, day, hour, minute, second, fraction, zone = match.groups()
        try:
            moment = datetime.datetime(int(year), int(month or 1), int(day or 1), int(hour or 0),
                                       int(minute or 0), int(second or 0), int((fraction or '0')[:6].ljust(6, '0')))
        except ValueError:
            return None
        offset = datetime.timezone.utc
        if zone and zone != 'Z':
            sign = 1 if zone[0] == '+' else -1
            offset = datetime.timezone(sign * datetime.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
        return moment.replace(tzinfo=offset).astimezone(datetime.timezone.utc)
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc)


def _syntax_message(formula: str, problem: UnexpectedInput) -> str:
    """"Line L, Col C: ..." as the service words its positions; the wording after it is ours."""
    if isinstance(problem, UnexpectedToken) and problem.token.type == '$END':
        problem = UnexpectedEOF(problem.expected)
    if isinstance(problem, UnexpectedEOF):
        lines = formula.split('\n')
        return f'Line {len(lines)}, Col {len(lines[-1]) + 1}: Unexpected end of formula'
    if isinstance(problem, UnexpectedCharacters):
        return f"Line {problem.line}, Col {problem.column}: Unexpected character '{problem.char}'"
    token = problem.token
    return f"Line {token.line}, Col {token.column}: Unexpected '{token}'"


def _results_string(dedicated: int, low_priority: int, deallocation: str, user: dict[str, object],
                    limit: int | None = None) -> str | None:
    """"$TargetDedicatedNodes=..;$TargetLowPriorityNodes=..;$NodeDeallocationOption=.." then the user's
    variables by name, each as the formula wrote it ($curTime with its $, maxNumberofVMs without); None
    as soon as it would be longer than ``limit``."""
    parts = [f'{_TARGET_DEDICATED}={dedicated}', f'{_TARGET_LOW_PRIORITY}={low_priority}',
             f'{_DEALLOCATION}={deallocation}']
    length = sum(len(part) + 1 for part in parts) - 1
    for name in sorted(user, key=lambda n: (n.casefold(), n)):
        text = _format_value(user[name], None if limit is None else limit - length - len(name) - 2)
        if text is None:
            return None
        parts.append(f'{name}={text}')
        length += len(parts[-1]) + 1
    return ';'.join(parts)


def _format_value(value: object, room: int | None = None) -> str | None:
    """The value as ``results`` shows it; None if that is longer than ``room`` (a doubleVec stops early)."""
    if isinstance(value, DoubleVec):
        pieces, size = [], 1
        for element in value.values:
            pieces.append(_format_double(element))
            size += len(pieces[-1]) + 1
            if room is not None and size > room:
                return None
        return '[' + ','.join(pieces) + ']'
    if isinstance(value, float):
        text = _format_double(value)
    elif isinstance(value, datetime.datetime):
        moment = value.astimezone(datetime.timezone.utc)
        text = moment.strftime('%Y-%m-%dT%H:%M:%S.') + f'{moment.microsecond // 1000:03d}Z'
    elif isinstance(value, TimeInterval):
        text = _format_interval(value.seconds)
    elif isinstance(value, _Deallocation):
        text = value.option
    else:
        text = str(value)
    return None if room is not None and len(text) > room else text


def _format_double(value: float) -> str:
    """Whole numbers without a fraction ("$TargetDedicatedNodes=3"), others shortest round-trip, .NET style."""
    if math.isnan(value):
        return 'NaN'
    if math.isinf(value):
        return '∞' if value > 0 else '-∞'
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value).replace('e', 'E')


def _format_interval(seconds: float) -> str:
    """A .NET TimeSpan's constant format: [-][d.]hh:mm:ss[.fffffff]."""
    if not math.isfinite(seconds):
        return _format_double(seconds)
    ticks = round(abs(seconds) / _TICK)
    days, ticks = divmod(ticks, 864_000_000_000)
    hours, ticks = divmod(ticks, 36_000_000_000)
    minutes, ticks = divmod(ticks, 600_000_000)
    whole, fraction = divmod(ticks, 10_000_000)
    text = f'{hours:02d}:{minutes:02d}:{whole:02d}' + (f'.{fraction:07d}' if fraction else '')
    return ('-' if seconds < 0 else '') + (f'{days}.' if days else '') + text
