"""SharedKey authentication, verified against the raw request as received.

String to sign (azure-batch 14.x and 15.x sign the same way), lines joined by "\\n":
the verb; content-encoding, content-language, content-length, content-md5,
content-type, date, if-modified-since, if-match, if-none-match,
if-unmodified-since, range, each exactly as received (empty when absent: a
client that sends no Content-Length signs an empty line, azure-batch 15 sends
and signs "0"); every header whose name contains "ocp-", sorted, as name:value;
"/<account><path as received>"; then each query parameter sorted by name, with
its first decoded value, skipping empty values.

Like the service, a request must carry its time (``ocp-date`` or ``Date``)
within 15 minutes of the server's clock, so a signed request cannot be replayed
later. Whatever the headers hold, a bad request gets 403, never an error of ours.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import hmac
import re
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qs

from batch_emulator.common.clock import utc_now
from batch_emulator.common.errors import BatchServiceError
from batch_emulator.common.redaction import AUTH_SCHEME

_ACCOUNT = re.compile(r'[a-z0-9]{1,64}')  # an account's name

MAX_CLOCK_SKEW = datetime.timedelta(minutes=15)
_ACCEPTED = ('The local emulator accepts SharedKey, and from a task the Bearer token it was given in '
             'AZ_BATCH_AUTHENTICATION_TOKEN.')
_SIGNED_HEADERS = ('content-encoding', 'content-language', 'content-length', 'content-md5', 'content-type', 'date',
                   'if-modified-since', 'if-match', 'if-none-match', 'if-unmodified-since', 'range')


def string_to_sign(method: str, raw_path: str, headers: Mapping[str, str], account_name: str) -> str:
    path, _, query = raw_path.partition('?')
    lowered = {name.lower(): value for name, value in headers.items() if value}
    lines = [method] + [lowered.get(name, '') for name in _SIGNED_HEADERS]
    lines += [f'{name}:{value}' for name, value in sorted((n, v) for n, v in lowered.items() if 'ocp-' in n)]
    text = '\n'.join(lines) + '\n' + f'/{account_name}{path}'
    parameters = parse_qs(query, keep_blank_values=True)
    for name in sorted(parameters):
        value = parameters[name][0]
        if value:
            text += f'\n{name}:{value}'
    return text


def sign(key: str, text: str) -> str:
    # Headers arrive decoded as UTF-8 with surrogate escapes: encoding them back gives the bytes as sent.
    digest = hmac.new(base64.b64decode(key), text.encode('utf-8', 'surrogateescape'), hashlib.sha256).digest()
    return base64.b64encode(digest).decode('ascii')


def is_valid_key(key: str) -> bool:
    try:
        return bool(base64.b64decode(key, validate=True))
    except (binascii.Error, ValueError):
        return False


def check_request_date(headers: Mapping[str, str], now: datetime.datetime | None = None) -> None:
    """The request's ocp-date (or Date) must be a valid RFC 1123 time within 15 minutes of ours."""
    name = 'ocp-date' if headers.get('ocp-date') else 'Date'
    text = headers.get(name, '')
    if not text:
        raise _failed('Request date header not specified: send ocp-date (or Date) with the request time.')
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        moment = None
    if moment is None or moment.tzinfo is None:
        raise _failed(f"The {name} header '{text}' is not a valid RFC 1123 date.")
    skew = moment - (now or utc_now())
    if skew < -MAX_CLOCK_SKEW:
        raise _failed(f"Request date header too old: '{text}'")
    if skew > MAX_CLOCK_SKEW:
        raise _failed(f"Request date header too far in the future: '{text}'")


def verify_shared_key(method: str, raw_path: str, headers: Mapping[str, str], account_name: str, key: str) -> None:
    """Raises AuthenticationFailed (403) unless the request is signed with the account's key."""
    authorization = headers.get('Authorization', '')
    scheme, _, credentials = authorization.partition(' ')
    if not authorization:
        raise _failed('The Authorization header is missing. ' + _ACCEPTED)
    if scheme != 'SharedKey':  # the scheme is named only if it is one (never what may be a token)
        named = f' {scheme}' if AUTH_SCHEME.fullmatch(scheme) else ''
        raise _failed(f'The authentication scheme{named} is not supported. ' + _ACCEPTED)
    claimed_account, _, signature = credentials.partition(':')
    if claimed_account != account_name:
        named = f" '{claimed_account}'" if _ACCOUNT.fullmatch(claimed_account) and signature else ''
        raise _failed(f"The account{named} in the Authorization header does not exist here "
                      f"(the emulator's account is '{account_name}').")
    check_request_date(headers)
    expected = sign(key, string_to_sign(method, raw_path, headers, account_name))
    if not hmac.compare_digest(expected.encode(), signature.encode('utf-8', 'surrogateescape')):
        raise _failed(f"The MAC signature found in the HTTP request '{signature}' is not the same as any computed "
                      'signature.')


def _failed(detail: str) -> BatchServiceError:
    return BatchServiceError('AuthenticationFailed', values={'AuthenticationErrorDetail': detail})
