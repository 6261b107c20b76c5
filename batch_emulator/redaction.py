"""Secrets replaced by REDACTED wherever the emulator shows or logs text: the one place that knows them.

Used for the request log (its query, headers and bodies), the local portal (command lines, file
contents, storage errors) and the download errors tasks report. It knows secrets by what they are
(a SAS ``sig``, a SharedKey signature, an account key) and by the name they are given (a JSON
property, an environment setting or a ``NAME=value`` pair whose name says key, secret, token,
password, credential...), in every form a client writes them: plain, JSON-escaped (``\\u0026sig=``,
as Go's and .NET's JSON writers escape ``&``), URL-encoded (``%26sig%3D``, also twice) and in any
property order (an environment setting's ``value`` before its ``name``). It errs on the side of
hiding: a value whose name merely looks secret is hidden too.
"""

from __future__ import annotations

import re

REDACTED = 'REDACTED'

# A name that says its value is secret: DB_PWD, CREDENTIALS, SECRET, TOKEN, KEY, STORAGE_SAS_URL, accountKey...
_SECRET_WORDS = r'(?:key|secret|token|passw|pwd|credential|sas|private)'
_NAME = rf'(?:[\w.-]*{_SECRET_WORDS}[\w.-]*|sig)'  # sig: a SAS token's signature
_SECRET_WORD = re.compile(_SECRET_WORDS, re.IGNORECASE)
# Where a value written after a name ends: the next query parameter (also escaped: %26, %2526, \u0026),
# a quote, a space, a ';' (connection strings). JSON escapes other than of & and quotes stay inside it.
_VALUE = r'(?:\\u(?!0026|0022|0027)[0-9a-f]{4}|\\/|(?!%26|%2526)[^&;\s"\'\\<>])+'
# NAME=value (also NAME%3D and NAME%253D): a query parameter, a command line's variable, a connection string.
_NAME_EQUALS = re.compile(
    r'(?:(?<=\\u0026)|(?<=%26)|(?<=%2526)|(?<![\w%.$-]))'  # not an OData $skiptoken
    rf'({_NAME}(?:=|%3D|%253D))' + _VALUE, re.IGNORECASE)
# The SharedKey signature of Authorization (the scheme and account stay: they show how requests are signed).
_SHARED_KEY = re.compile(r'\b(SharedKey(?:Lite)?\s+[^:\s]+:)\S+')
# A JSON string property whose name says it is secret (accountKey, sasKey, password, secretValue...), also
# when the text was cut inside the value.
_JSON_STRING = r'"(?:[^"\\]|\\.)*("|$)'
_SECRET_PROPERTY = re.compile(rf'("[^"\\]*{_SECRET_WORDS}[^"\\]*"\s*:\s*)' + _JSON_STRING,
                              re.IGNORECASE)
# Properties that are secret as a whole object (a VM extension's protectedSettings).
_SECRET_OBJECT = re.compile(r'("protectedSettings"\s*:\s*)\{[^{}]*(?:\}|$)', re.IGNORECASE)
# A JSON object without nested objects (an environment setting, a name/value pair), also one cut short.
_FLAT_OBJECT = re.compile(r'\{[^{}]*(?:\}|$)')
_NAMED = re.compile(r'"name"\s*:\s*"((?:[^"\\]|\\.)*)(?:"|$)', re.IGNORECASE)
_VALUE_PROPERTY = re.compile(r'("value"\s*:\s*)' + _JSON_STRING, re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    """Does a name (of a variable, a setting, a parameter) say its value is secret?"""
    return name.lower() == 'sig' or not name.startswith('$') and _SECRET_WORD.search(name) is not None


def _quoted(match: re.Match) -> str:
    return f'{match.group(1)}"{REDACTED}{match.group(2)}'


def _redact_named_value(match: re.Match) -> str:
    """An object whose "name" says it is secret: its "value" goes (before or after the name)."""
    text = match.group(0)
    name = _NAMED.search(text)
    if name is None or not is_secret_name(name.group(1)):
        return text
    return _VALUE_PROPERTY.sub(_quoted, text)


def redact_secrets(text: str, account_key: str | None = None) -> str:
    """``text`` with SAS and SharedKey signatures, account keys, passwords and named secrets replaced by REDACTED."""
    if not text:
        return text
    if account_key:
        text = text.replace(account_key, REDACTED)
    text = _SHARED_KEY.sub(r'\1' + REDACTED, text)
    text = _SECRET_OBJECT.sub(r'\1"' + REDACTED + '"', text)
    text = _SECRET_PROPERTY.sub(_quoted, text)
    if '"name"' in text or '"Name"' in text:
        text = _FLAT_OBJECT.sub(_redact_named_value, text)
    return _NAME_EQUALS.sub(r'\1' + REDACTED, text)


def redact_query(query: dict[str, str], account_key: str | None = None) -> dict[str, str]:
    """A request's query parameters: those whose name says secret (sig, token...) hidden whole, the others redacted."""
    return {name: REDACTED if is_secret_name(name) else redact_secrets(value, account_key)
            for name, value in query.items()}
