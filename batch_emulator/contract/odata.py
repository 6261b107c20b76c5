"""OData $filter and $select as the Batch service applies them to list results.

Supported: comparisons (eq ne gt ge lt le) on properties and nested paths
(``executionInfo/result``), ``startswith(name,'prefix')``, ``and``, ``or``,
``not`` and parentheses. Literals: 'quoted strings' ('' escapes a quote),
numbers, true/false, null and datetimes (``datetime'2025-01-01T00:00:00Z'`` or
a bare ISO 8601 string). String comparison of enum values ignores case, as the
service does (``state eq 'Completed'`` matches "completed").

Budget: one list request may make at most ``MAX_COMPARISONS`` comparisons (each comparison of each item
counts once; ``and``/``or`` stop early as usual, and a chain of ``eq`` on one property joined by ``or``
is one comparison) and take at most ``MAX_SECONDS``; over either, the request is refused with the
service's 400 InvalidQueryParameterValue for ``$filter`` (the service documents no such limit; the
emulator must not stall every other request for one list). Each item's properties are read once
however many comparisons name them.
"""

from __future__ import annotations

import datetime
import re
import time
from collections.abc import Callable
from typing import Any

from batch_emulator.common.errors import invalid_query

_TOKEN = re.compile(r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<datetime>datetime'[^']*')|(?P<number>-?\d+(?:\.\d+)?)"
                    r"|(?P<punct>[(),])|(?P<word>[A-Za-z_][\w/.$-]*))")
_COMPARISONS = {
    'eq': lambda a, b: a == b, 'ne': lambda a, b: a != b,
    'gt': lambda a, b: a is not None and b is not None and a > b,
    'ge': lambda a, b: a is not None and b is not None and a >= b,
    'lt': lambda a, b: a is not None and b is not None and a < b,
    'le': lambda a, b: a is not None and b is not None and a <= b,
}

MAX_COMPARISONS = 250_000
MAX_SECONDS = 1.0
_CLOCK_EVERY = 4096  # comparisons between two looks at the clock

_Values = dict  # an item's normalised property values, read once per item: path -> value
_Test = Callable[[dict, _Values], bool]
Predicate = Callable[[dict], bool]


class _Budget:
    """The comparisons and time one list request may spend on its $filter."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.used = 0
        self.deadline = time.monotonic() + MAX_SECONDS

    def spend(self) -> None:
        self.used += 1
        if self.used > MAX_COMPARISONS:
            self._refuse(f'more than {MAX_COMPARISONS} comparisons')
        if self.used % _CLOCK_EVERY == 0 and time.monotonic() > self.deadline:
            self._refuse(f'more than {MAX_SECONDS:g} seconds')

    def _refuse(self, what: str) -> None:
        raise invalid_query('$filter', self.text[:200], f'The filter needs {what} over this list; narrow it or '
                                                        'list fewer items.')


def _value_of(item: dict, values: _Values, path: str) -> Any:
    if path not in values:
        values[path] = _normalise(_lookup(item, path))
    return values[path]


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise invalid_query('$filter', text, f'unexpected text at position {position}')
        kind = match.lastgroup
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


def _lookup(item: dict, path: str) -> Any:
    value: Any = item
    for part in path.split('/'):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


_ISO_DATETIME = re.compile(r'^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})?$')


def _normalise(value: Any) -> Any:
    """Makes JSON values and literals comparable: datetimes parsed, strings case-folded."""
    if not isinstance(value, str):
        return value
    match = _ISO_DATETIME.match(value)
    if match:
        whole, fraction, zone = match.groups()
        zone = '+00:00' if zone in (None, 'Z') else zone
        microseconds = (fraction or '.')[1:7].ljust(6, '0')  # Python 3.10 needs exactly 6 digits
        return datetime.datetime.fromisoformat(f'{whole}.{microseconds}{zone}')
    return value.lower()


class _Parser:
    def __init__(self, text: str, budget: _Budget) -> None:
        self.text = text
        self.budget = budget
        self.tokens = _tokenize(text)
        self.position = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise invalid_query('$filter', self.text, 'the expression ends too early')
        self.position += 1
        return token

    def expect(self, value: str) -> None:
        kind, text = self.take()
        if text != value:
            raise invalid_query('$filter', self.text, f"expected '{value}' but found '{text}'")

    def parse(self) -> _Test:
        test = self.parse_or()
        if self.peek() is not None:
            raise invalid_query('$filter', self.text, f"unexpected '{self.peek()[1]}'")
        return test

    def parse_or(self) -> _Test:
        tests = [self.parse_and()]
        while self.peek() and self.peek()[1].lower() == 'or':
            self.take()
            tests.append(self.parse_and())
        if len(tests) == 1:
            return tests[0]
        tests = _merge_equalities(tests, self.budget)
        return lambda item, values: any(test(item, values) for test in tests)

    def parse_and(self) -> _Test:
        tests = [self.parse_unary()]
        while self.peek() and self.peek()[1].lower() == 'and':
            self.take()
            tests.append(self.parse_unary())
        if len(tests) == 1:
            return tests[0]
        return lambda item, values: all(test(item, values) for test in tests)

    def parse_unary(self) -> _Test:
        token = self.peek()
        spend = self.budget.spend
        if token and token[1].lower() == 'not':
            self.take()
            inner = self.parse_unary()
            return lambda item, values: not inner(item, values)
        if token and token[1] == '(':
            self.take()
            inner = self.parse_or()
            self.expect(')')
            return inner
        if token and token[1].lower() == 'startswith':
            self.take()
            self.expect('(')
            kind, path = self.take()
            self.expect(',')
            prefix = str(self.literal())
            self.expect(')')

            def starts(item: dict, values: _Values) -> bool:
                spend()
                value = _lookup(item, path)
                return isinstance(value, str) and value.startswith(prefix)
            return starts
        kind, path = self.take()
        if kind != 'word':
            raise invalid_query('$filter', self.text, f"expected a property name, found '{path}'")
        _, operator = self.take()
        compare = _COMPARISONS.get(operator.lower())
        if compare is None:
            raise invalid_query('$filter', self.text, f"unsupported operator '{operator}'")
        expected = _normalise(self.literal())

        def test(item: dict, values: _Values) -> bool:
            spend()
            try:
                return bool(compare(_value_of(item, values, path), expected))
            except TypeError:
                return False
        test.equality = (path, expected) if operator.lower() == 'eq' else None  # type: ignore[attr-defined]
        return test

    def literal(self) -> Any:
        kind, text = self.take()
        if kind == 'string':
            return text[1:-1].replace("''", "'")
        if kind == 'datetime':
            return text[len("datetime'"):-1]
        if kind == 'number':
            return float(text) if '.' in text else int(text)
        if kind == 'word' and text.lower() in ('true', 'false', 'null'):
            return {'true': True, 'false': False, 'null': None}[text.lower()]
        raise invalid_query('$filter', self.text, f"expected a value, found '{text}'")


def _merge_equalities(tests: list[_Test], budget: _Budget) -> list[_Test]:
    """``a eq 1 or a eq 2 or ...``: one look-up in a set (one comparison) instead of one comparison each."""
    by_path: dict[str, set] = {}
    others: list[_Test] = []
    for test in tests:
        equality = getattr(test, 'equality', None)
        if equality is not None and _hashable(equality[1]):
            by_path.setdefault(equality[0], set()).add(equality[1])
        else:
            others.append(test)
    merged: list[_Test] = []
    for path, wanted in by_path.items():
        def member(item: dict, values: _Values, path: str = path, wanted: set = wanted) -> bool:
            budget.spend()
            value = _value_of(item, values, path)
            return _hashable(value) and value in wanted
        merged.append(member)
    return merged + others


def _hashable(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool, datetime.datetime))


def compile_filter(text: str | None) -> Predicate | None:
    """Parses a $filter once; returns a predicate over REST JSON items (None: keep all), for one request: its
    budget counts every item it is asked about."""
    if not text or not text.strip():
        return None
    try:
        test = _Parser(text, _Budget(text)).parse()
    except RecursionError:  # a hostile nesting of parentheses or 'not'
        raise invalid_query('$filter', text[:200], 'The expression nests too deeply.') from None
    return lambda item: test(item, {})


def apply_select(item: dict, select: str | None) -> dict:
    """Keeps only the $select-ed properties (comma separated; nested paths keep their parent)."""
    if not select:
        return item
    names = {part.strip().split('/')[0] for part in select.split(',') if part.strip()}
    return {key: value for key, value in item.items() if key in names}
