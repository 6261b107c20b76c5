"""SharedKey authentication, verified against the raw request as received.

String to sign (azure-batch 14.x and 15.x sign the same way), lines joined by "\\n":
the verb; content-encoding, content-language, content-length, content-md5,
content-type, date, if-modified-since, if-match, if-none-match,
if-unmodified-since, range (empty when absent; content-length is "0" for a
non-GET/HEAD request without one); every header whose name contains "ocp-",
sorted, as name:value; "/<account><path as received>"; then each query
parameter sorted by name, with its first decoded value, skipping empty values.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import parse_qs

from .errors import BatchServiceError

_SIGNED_HEADERS = ('content-encoding', 'content-language', 'content-length', 'content-md5', 'content-type', 'date',
                   'if-modified-since', 'if-match', 'if-none-match', 'if-unmodified-since', 'range')


def string_to_sign(method: str, raw_path: str, headers: Mapping[str, str], account_name: str) -> str:
    path, _, query = raw_path.partition('?')
    lowered = {name.lower(): value for name, value in headers.items() if value}
    if method not in ('GET', 'HEAD') and 'content-length' not in lowered:
        lowered['content-length'] = '0'
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
    digest = hmac.new(base64.b64decode(key), text.encode('utf-8'), hashlib.sha256).digest()
    return base64.b64encode(digest).decode('ascii')


def verify_shared_key(method: str, raw_path: str, headers: Mapping[str, str], account_name: str, key: str) -> None:
    """Raises AuthenticationFailed (403) unless the request is signed with the account's key."""
    authorization = headers.get('Authorization', '')
    scheme, _, credentials = authorization.partition(' ')
    if not authorization:
        raise _failed('The Authorization header is missing. The local emulator accepts SharedKey only.')
    if scheme != 'SharedKey':
        raise _failed(f'The authentication scheme {scheme} is not supported; the local emulator accepts SharedKey '
                      'only.')
    claimed_account, _, signature = credentials.partition(':')
    if claimed_account != account_name:
        raise _failed(f"The account '{claimed_account}' in the Authorization header does not exist here "
                      f"(the emulator's account is '{account_name}').")
    expected = sign(key, string_to_sign(method, raw_path, headers, account_name))
    if not hmac.compare_digest(expected, signature):
        raise _failed(f"The MAC signature found in the HTTP request '{signature}' is not the same as any computed "
                      'signature.')


def _failed(detail: str) -> BatchServiceError:
    return BatchServiceError('AuthenticationFailed', values={'AuthenticationErrorDetail': detail})
