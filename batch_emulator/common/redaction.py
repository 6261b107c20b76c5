"""Secrets replaced by REDACTED wherever the emulator shows or logs text: the one place that knows them.

Used for the request log (its query, headers and bodies), the local portal (command lines, file
contents, storage errors) and the download errors tasks report. It knows secrets by what they are
(a SAS ``sig``, a SharedKey signature, a bearer token, an account key, a certificate's ``data`` beside its
``thumbprintAlgorithm``) and by the name they are given (a JSON property, an environment setting or a
``NAME=value`` pair whose name says key, secret, token, password, credential...), in every form a client
writes them: plain, JSON-escaped (``\\u0026sig=``, as Go's and .NET's JSON writers escape ``&``),
URL-encoded (``%26sig%3D``, also twice) and in any property order (an environment setting's ``value``
before its ``name``). It errs on the side of hiding: a value whose name merely looks secret is hidden too.
"""

from __future__ import annotations

import re

REDACTED = 'REDACTED'

# A name that says its value is secret: DB_PWD, CREDENTIALS, SECRET, TOKEN, KEY, STORAGE_SAS_URL, accountKey...
_WORDS = ('key', 'secret', 'token', 'passw', 'pwd', 'credential', 'sas', 'private', 'sig')
_SECRET_WORDS = r'(?:key|secret|token|passw|pwd|credential|sas|private)'
_NAME = rf'(?:[\w.-]*{_SECRET_WORDS}[\w.-]*|sig)'  # sig: a SAS token's signature
_SECRET_WORD = re.compile(_SECRET_WORDS, re.IGNORECASE)
# Where a value written after a name ends: the next query parameter (also escaped: %26, %2526, \u0026),
# a quote, a space, a ';' (connection strings). JSON escapes other than of & and quotes stay inside it.
_VALUE = r'(?:\\u(?!0026|0022|0027)[0-9a-f]{4}|\\/|(?!%26|%2526)[^&;\s"\'\\<>])+'
# NAME=value (also NAME%3D and NAME%253D): a query parameter, a command line's variable, a connection string.
# Found from each '=' back to its name (see _redact_name_equals): a regex tried at every position costs ms.
_EQUALS = re.compile(r'=|%3d|%253d')  # in the lower-cased text
_VALUE_AFTER = re.compile(_VALUE, re.IGNORECASE)
_NAME_CHARS = frozenset('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-')
# The SharedKey signature of Authorization (the scheme and account stay: they show how requests are signed).
_SHARED_KEY = re.compile(r'\b(SharedKey(?:Lite)?\s+[^:\s]+:)\S+')
_BEARER = re.compile(r'\b(Bearer\s+)[^\s"\'\\]+', re.IGNORECASE)  # a bearer token (a task's job token): all of it
# A JSON string property (its name and value); redacted when the name says it is secret (accountKey, sasKey,
# password, secretValue...), also when the text was cut inside the value.
_JSON_STRING = r'"(?:[^"\\]|\\.)*("|$)'
_PROPERTY = re.compile(r'("([^"\\]{1,200})"\s*:\s*)"(?:[^"\\]|\\.)*("|$)')
# Properties that are secret as a whole object (a VM extension's protectedSettings).
_SECRET_OBJECT = re.compile(r'("protectedSettings"\s*:\s*)\{[^{}]*(?:\}|$)', re.IGNORECASE)
# A JSON object without nested objects (an environment setting, a name/value pair), also one cut short.
_FLAT_OBJECT = re.compile(r'\{[^{}]*(?:\}|$)')
_NAMED = re.compile(r'"name"\s*:\s*"((?:[^"\\]|\\.)*)(?:"|$)', re.IGNORECASE)
_VALUE_PROPERTY = re.compile(r'("value"\s*:\s*)' + _JSON_STRING, re.IGNORECASE)
# A certificate's data (an older api-version's add certificate body: a .pfx holds the private key).
_CERTIFICATE_DATA = re.compile(r'("data"\s*:\s*)' + _JSON_STRING)


def is_secret_name(name: str) -> bool:
    """Does a name (of a variable, a setting, a parameter) say its value is secret?"""
    return name.lower() == 'sig' or not name.startswith('$') and _SECRET_WORD.search(name) is not None


def _secret_property(match: re.Match) -> str:
    return f'{match.group(1)}"{REDACTED}{match.group(3)}' if _SECRET_WORD.search(match.group(2)) else match.group(0)


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
    # Each pattern only where the text can hold what it looks for (most bodies hold no secret: cheap).
    lower = text.lower()
    if 'sharedkey' in lower:
        text = _SHARED_KEY.sub(r'\1' + REDACTED, text)
    if 'bearer' in lower:
        text = _BEARER.sub(r'\1' + REDACTED, text)
    if 'protectedsettings' in lower:
        text = _SECRET_OBJECT.sub(r'\1"' + REDACTED + '"', text)
    if '"thumbprintalgorithm"' in lower and '"data"' in lower:
        text = _CERTIFICATE_DATA.sub(_quoted, text)
    if any(word in lower for word in _WORDS):
        if '"' in text:
            text = _PROPERTY.sub(_secret_property, text)
            if '"name"' in lower:
                text = _FLAT_OBJECT.sub(_redact_named_value, text)
        text = _redact_name_equals(text, text.lower())
    return text


AUTH_SCHEME = re.compile(r'[A-Za-z][A-Za-z0-9-]{0,31}')  # an Authorization scheme's name; else maybe a credential
_SIGNED_BY = re.compile(r'(SharedKey(?:Lite)?\s+[a-z0-9]{1,64}:)')


def redact_authorization(value: str) -> str:
    """An Authorization header as it may be shown: its scheme (and a SharedKey's account), never what follows.
    Whatever the scheme, and however the parts are spaced, the credentials are all REDACTED."""
    signed_by = _SIGNED_BY.match(value)
    if signed_by is not None:
        return signed_by.group(1) + REDACTED
    words = value.split(maxsplit=1)
    if len(words) == 2 and AUTH_SCHEME.fullmatch(words[0]):
        return f'{words[0]} {REDACTED}'
    return REDACTED


def _redact_name_equals(text: str, lower: str) -> str:
    """Every value written as NAME=value (or NAME%3D, NAME%253D) whose name says it is secret, REDACTED.

    The name is what precedes the '=' in [A-Za-z0-9_.-], less an escaped '&' before it (\\u0026, %26,
    %2526); a name after '$' is OData's ($skiptoken), not a secret.
    """
    pieces, done = [], 0
    for equals in _EQUALS.finditer(lower):
        start = equals.start()
        if start < done or not any(word in lower[max(0, start - 60):start] for word in _WORDS):
            continue
        begin = start
        while begin > 0 and text[begin - 1] in _NAME_CHARS and start - begin < 200:
            begin -= 1
        name = lower[begin:start]
        before = text[begin - 1] if begin else ''
        if before == '%':
            name = name[4:] if name.startswith('2526') else name[2:] if name.startswith('26') else name
        elif before == '\\' and name.startswith('u0026'):
            name = name[5:]
        elif before == '$':
            continue
        if not name or not is_secret_name(name):
            continue
        value = _VALUE_AFTER.match(text, equals.end())
        if value is None:
            continue
        pieces += [text[done:equals.end()], REDACTED]
        done = value.end()
    return ''.join(pieces) + text[done:] if pieces else text


def redact_query(query: dict[str, str], account_key: str | None = None) -> dict[str, str]:
    """A request's query parameters: those whose name says secret (sig, token...) hidden whole, the others redacted."""
    return {name: REDACTED if is_secret_name(name) else redact_secrets(value, account_key)
            for name, value in query.items()}
