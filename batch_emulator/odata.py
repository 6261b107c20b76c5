"""OData $filter and $select as the Batch service applies them to list results.

Supported: comparisons (eq ne gt ge lt le) on properties and nested paths
(``executionInfo/result``), ``startswith(name,'prefix')``, ``and``, ``or``,
``not`` and parentheses. Literals: 'quoted strings' ('' escapes a quote),
numbers, true/false, null and datetimes (``datetime'2025-01-01T00:00:00Z'`` or
a bare ISO 8601 string). String comparison of enum values ignores case, as the
service does (``state eq 'Completed'`` matches "completed").
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from typing import Any

from .errors import invalid_query

_TOKEN = re.compile(r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<datetime>datetime'[^']*')|(?P<number>-?\d+(?:\.\d+)?)"
                    r"|(?P<punct>[(),])|(?P<word>[A-Za-z_][\w/.$-]*))")
_COMPARISONS = {
    'eq': lambda a, b: a == b, 'ne': lambda a, b: a != b,
    'gt': lambda a, b: a is not None and b is not None and a > b,
    'ge': lambda a, b: a is not None and b is not None and a >= b,
    'lt': lambda a, b: a is not None and b is not None and a < b,
    'le': lambda a, b: a is not None and b is not None and a <= b,
}

Predicate = Callable[[dict], bool]


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
    def __init__(self, text: str) -> None:
        self.text = text
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

    def parse(self) -> Predicate:
        predicate = self.parse_or()
        if self.peek() is not None:
            raise invalid_query('$filter', self.text, f"unexpected '{self.peek()[1]}'")
        return predicate

    def parse_or(self) -> Predicate:
        left = self.parse_and()
        while self.peek() and self.peek()[1].lower() == 'or':
            self.take()
            right = self.parse_and()
            left = (lambda a, b: lambda item: a(item) or b(item))(left, right)
        return left

    def parse_and(self) -> Predicate:
        left = self.parse_unary()
        while self.peek() and self.peek()[1].lower() == 'and':
            self.take()
            right = self.parse_unary()
            left = (lambda a, b: lambda item: a(item) and b(item))(left, right)
        return left

    def parse_unary(self) -> Predicate:
        token = self.peek()
        if token and token[1].lower() == 'not':
            self.take()
            inner = self.parse_unary()
            return lambda item: not inner(item)
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
            prefix = self.literal()
            self.expect(')')
            return lambda item: isinstance(_lookup(item, path), str) and _lookup(item, path).startswith(str(prefix))
        kind, path = self.take()
        if kind != 'word':
            raise invalid_query('$filter', self.text, f"expected a property name, found '{path}'")
        _, operator = self.take()
        compare = _COMPARISONS.get(operator.lower())
        if compare is None:
            raise invalid_query('$filter', self.text, f"unsupported operator '{operator}'")
        expected = _normalise(self.literal())

        def predicate(item: dict) -> bool:
            try:
                return bool(compare(_normalise(_lookup(item, path)), expected))
            except TypeError:
                return False
        return predicate

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


def compile_filter(text: str | None) -> Predicate | None:
    """Parses a $filter once; returns a predicate over REST JSON items (None: keep all)."""
    if not text or not text.strip():
        return None
    try:
        return _Parser(text).parse()
    except RecursionError:  # a hostile nesting of parentheses or 'not'
        raise invalid_query('$filter', text[:200], 'The expression nests too deeply.') from None


def apply_select(item: dict, select: str | None) -> dict:
    """Keeps only the $select-ed properties (comma separated; nested paths keep their parent)."""
    if not select:
        return item
    names = {part.strip().split('/')[0] for part in select.split(',') if part.strip()}
    return {key: value for key, value in item.items() if key in names}
