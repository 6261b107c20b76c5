"""SharedKey, in process: the emulator accepts what the SDK signs and refuses anything else with 403.

The expected strings to sign follow Microsoft's "Authenticate requests to Azure Batch" (the verb, eleven
standard headers in a fixed order, the ``ocp-`` headers sorted, ``/account/path``, the query parameters
sorted) and /work/shared/reference/batch-rest-notes.md; the signatures are the azure-batch SDK's own
(``BatchSharedKeyAuthPolicy``), an implementation independent of the emulator's. These tests are fast and
in-process so that mutation testing (benchmarks/mutation.sh) sees them.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
from email.utils import format_datetime

import pytest
from azure.batch._patch import BatchSharedKeyAuthPolicy
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.rest import HttpRequest
from multidict import CIMultiDict

from batch_emulator.common.errors import BatchServiceError
from batch_emulator.wire import auth

ACCOUNT = 'acct'
KEY = base64.b64encode(b'sixteen byte key and some more!!').decode()
NOW = datetime.datetime(2030, 1, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)


def rfc1123(moment: datetime.datetime) -> str:
    return format_datetime(moment, usegmt=True)


def sdk_signed(method: str, path_and_query: str, headers: dict[str, str], key: str = KEY,
               account: str = ACCOUNT) -> CIMultiDict:
    """The headers the azure-batch SDK sends for this request, its Authorization included."""
    request = HttpRequest(method, f'http://127.0.0.1:1{path_and_query}', headers=headers)
    BatchSharedKeyAuthPolicy(AzureNamedKeyCredential(account, key)).on_request(
        PipelineRequest(request, PipelineContext(None)))
    return CIMultiDict(request.headers)  # aiohttp hands the server case-insensitive headers


def hmac_sha256(key: str, text: str) -> str:
    return base64.b64encode(hmac.new(base64.b64decode(key), text.encode(), hashlib.sha256).digest()).decode()


def refusal(call) -> BatchServiceError:
    with pytest.raises(BatchServiceError) as raised:
        call()
    assert raised.value.code == 'AuthenticationFailed' and raised.value.status == 403
    return raised.value


def detail(error: BatchServiceError) -> str:
    return error.values['AuthenticationErrorDetail']


# ----- the string to sign, as Microsoft's documentation builds it -------------------------------------

def test_a_get_without_headers_signs_the_verb_eleven_empty_lines_and_the_resource():
    assert auth.string_to_sign('GET', '/pools', {}, ACCOUNT) == 'GET' + '\n' * 12 + '/acct/pools'


def test_every_standard_header_has_its_own_line_in_the_documented_order():
    names = ['Content-Encoding', 'Content-Language', 'Content-Length', 'Content-MD5', 'Content-Type', 'Date',
             'If-Modified-Since', 'If-Match', 'If-None-Match', 'If-Unmodified-Since', 'Range']
    headers = CIMultiDict((name, f'v{index}') for index, name in enumerate(names))
    headers['User-Agent'] = 'not signed'
    assert auth.string_to_sign('PUT', '/pools/p', headers, ACCOUNT) == \
        'PUT\nv0\nv1\nv2\nv3\nv4\nv5\nv6\nv7\nv8\nv9\nv10\n/acct/pools/p'


def test_ocp_headers_are_signed_sorted_lower_case_after_the_standard_ones():
    headers = CIMultiDict({'ocp-date': 'Tue, 01 Jan 2030 00:00:00 GMT', 'Content-Length': '0',
                           'Ocp-Batch-Extra': 'b', 'client-request-id': 'x', 'X-Ocp-Custom': 'c', 'ocp-empty': ''})
    assert auth.string_to_sign('DELETE', '/jobs/j', headers, ACCOUNT) == (
        'DELETE\n\n\n0\n\n\n\n\n\n\n\n\n'
        'ocp-batch-extra:b\nocp-date:Tue, 01 Jan 2030 00:00:00 GMT\nx-ocp-custom:c\n/acct/jobs/j')


def test_query_parameters_are_signed_decoded_sorted_first_value_and_non_empty_only():
    text = auth.string_to_sign('GET', '/jobs/j%2F1/tasks?timeOut=30&api-version=2025-06-01&%24filter=a%20eq%20%27b%27'
                                      '&empty=&%24select=id&%24select=url', {}, ACCOUNT)
    assert text == ('GET' + '\n' * 12 + '/acct/jobs/j%2F1/tasks'
                    "\n$filter:a eq 'b'\n$select:id\napi-version:2025-06-01\ntimeOut:30")


def test_a_path_without_a_query_signs_no_parameter_line():
    assert auth.string_to_sign('HEAD', '/pools/p?', {}, ACCOUNT).endswith('\n/acct/pools/p')


def test_the_signature_is_base64_of_hmac_sha256_with_the_decoded_key():
    assert auth.sign(KEY, 'GET\n/acct/pools') == hmac_sha256(KEY, 'GET\n/acct/pools')
    assert auth.sign(KEY, 'x') != auth.sign(base64.b64encode(b'another key').decode(), 'x')


# ----- what the SDK signs is accepted ---------------------------------------------------------------

@pytest.mark.parametrize('method, path_and_query, headers', [
    ('GET', '/pools?api-version=2025-06-01&maxresults=10&timeOut=30', {}),
    ('POST', '/jobs/j/addtaskcollection?api-version=2025-06-01',
     {'Content-Type': 'application/json; odata=minimalmetadata', 'Content-Length': '12', 'client-request-id': 'r'}),
    ('GET', "/jobs/job%201/tasks?api-version=2025-06-01&%24filter=state%20eq%20%27active%27&%24select=id%2Curl", {}),
    ('PATCH', '/pools/p?api-version=2025-06-01', {'Content-Length': '2', 'If-Match': '"0x8D"',
                                                  'Content-Type': 'application/json'}),
    ('DELETE', '/pools/p?api-version=2025-06-01', {'Content-Length': '0', 'ocp-batch-extra': 'z'}),
])
def test_a_request_the_sdk_signed_is_accepted(method, path_and_query, headers):
    sent = sdk_signed(method, path_and_query, {'ocp-date': rfc1123(datetime.datetime.now(datetime.timezone.utc)),
                                               **headers})
    auth.verify_shared_key(method, path_and_query, sent, ACCOUNT, KEY)  # no error


def test_a_request_dated_with_date_instead_of_ocp_date_is_accepted():
    """A client that sends only Date signs it on the sixth header line (the documented order)."""
    date = rfc1123(datetime.datetime.now(datetime.timezone.utc))
    text = 'GET\n\n\n\n\n\n' + date + '\n\n\n\n\n\n/acct/pools\napi-version:2025-06-01'
    sent = CIMultiDict({'Date': date, 'Authorization': f'SharedKey {ACCOUNT}:{hmac_sha256(KEY, text)}'})
    auth.verify_shared_key('GET', '/pools?api-version=2025-06-01', sent, ACCOUNT, KEY)


def test_header_bytes_that_are_not_utf_8_are_signed_as_sent():
    """aiohttp hands the server such bytes as surrogate escapes; the signature covers the bytes themselves."""
    raw = b'caf\xe9'  # Latin-1, as an old client might send it
    received = raw.decode('utf-8', 'surrogateescape')
    text = auth.string_to_sign('GET', '/pools', {'ocp-note': received}, ACCOUNT)
    expected = base64.b64encode(hmac.new(base64.b64decode(KEY), text.encode('utf-8', 'surrogateescape'),
                                         hashlib.sha256).digest()).decode()
    assert text.endswith('ocp-note:caf\udce9\n/acct/pools')
    assert auth.sign(KEY, text) == expected
    signed_over_bytes = base64.b64encode(hmac.new(
        base64.b64decode(KEY), b'GET' + b'\n' * 12 + b'ocp-note:' + raw + b'\n/acct/pools', hashlib.sha256).digest())
    assert expected.encode() == signed_over_bytes


def test_a_signature_that_is_not_utf_8_is_refused_with_403_not_an_error():
    sent = fresh()
    signature = b'\xff\xfe'.decode('utf-8', 'surrogateescape')
    sent['Authorization'] = f'SharedKey {ACCOUNT}:{signature}'
    refusal(lambda: auth.verify_shared_key('GET', '/pools?api-version=2025-06-01', sent, ACCOUNT, KEY))


# ----- anything else is 403 AuthenticationFailed, saying why ----------------------------------------

def fresh(method: str = 'GET', path: str = '/pools?api-version=2025-06-01', **headers: str) -> CIMultiDict:
    return sdk_signed(method, path, {'ocp-date': rfc1123(datetime.datetime.now(datetime.timezone.utc)), **headers})


@pytest.mark.parametrize('change', ['path', 'query', 'method', 'header', 'ocp', 'key', 'signature'])
def test_a_request_changed_after_signing_is_refused_quoting_its_signature(change):
    path = '/pools?api-version=2025-06-01&maxresults=10'
    sent = fresh('POST', path, **{'Content-Length': '2', 'ocp-batch-x': '1'})
    method, key = 'POST', KEY
    if change == 'path':
        path = path.replace('/pools', '/jobs')
    elif change == 'query':
        path = path.replace('10', '11')
    elif change == 'method':
        method = 'PUT'
    elif change == 'header':
        sent['Content-Length'] = '3'
    elif change == 'ocp':
        sent['ocp-batch-x'] = '2'
    elif change == 'key':
        key = base64.b64encode(b'the emulator has another key').decode()
    else:  # not base64, and with a colon: still this account's request, with a wrong signature
        sent['Authorization'] = f'SharedKey {ACCOUNT}:not:base64'
    error = refusal(lambda: auth.verify_shared_key(method, path, sent, ACCOUNT, key))
    signature = sent['Authorization'].partition(':')[2]
    # The Storage services' wording of this failure, which Batch shares.
    assert detail(error) == (f"The MAC signature found in the HTTP request '{signature}' is not the same as any "
                             'computed signature.')


def test_a_missing_authorization_header_is_refused():
    sent = fresh()
    del sent['Authorization']
    text = detail(refusal(lambda: auth.verify_shared_key('GET', '/pools', sent, ACCOUNT, KEY)))
    assert text.startswith('The Authorization header is missing.')
    assert text.endswith('AZ_BATCH_AUTHENTICATION_TOKEN.')


def test_another_scheme_than_shared_key_is_refused_naming_it():
    sent = fresh()
    for scheme, credentials in [('Basic', 'YWNjdDprZXk='), ('Signature', 'keyId="acct", algorithm="hmac-sha256"')]:
        sent['Authorization'] = f'{scheme} {credentials}'
        text = detail(refusal(lambda: auth.verify_shared_key('GET', '/pools?api-version=2025-06-01', sent, ACCOUNT,
                                                             KEY)))
        assert text.startswith(f'The authentication scheme {scheme} is not supported')
        assert text.endswith('AZ_BATCH_AUTHENTICATION_TOKEN.')


def test_a_signature_for_another_account_is_refused_naming_both():
    sent = sdk_signed('GET', '/pools?api-version=2025-06-01',
                      {'ocp-date': rfc1123(datetime.datetime.now(datetime.timezone.utc))}, account='other')
    text = detail(refusal(lambda: auth.verify_shared_key('GET', '/pools?api-version=2025-06-01', sent, ACCOUNT, KEY)))
    assert text.startswith("The account 'other' in the Authorization header does not exist here")
    assert text.endswith(f"(the emulator's account is '{ACCOUNT}').")


def test_a_request_without_a_date_is_refused_before_its_signature_is_checked():
    sent = fresh()
    del sent['ocp-date']
    text = detail(refusal(lambda: auth.verify_shared_key('GET', '/pools?api-version=2025-06-01', sent, ACCOUNT, KEY)))
    assert text.startswith('Request date header not specified')


# ----- the request's time: within 15 minutes of the server's, as documented ------------------------

@pytest.mark.parametrize('offset', [datetime.timedelta(0), datetime.timedelta(minutes=15),
                                    -datetime.timedelta(minutes=15), datetime.timedelta(minutes=-14, seconds=-59)])
def test_a_date_within_15_minutes_is_accepted(offset):
    auth.check_request_date(CIMultiDict({'ocp-date': rfc1123(NOW + offset)}), now=NOW)
    auth.check_request_date(CIMultiDict({'Date': rfc1123(NOW + offset)}), now=NOW)


def test_a_date_older_than_15_minutes_is_refused_as_too_old():
    text = rfc1123(NOW - datetime.timedelta(minutes=15, seconds=1))
    error = refusal(lambda: auth.check_request_date(CIMultiDict({'ocp-date': text}), now=NOW))
    assert detail(error) == f"Request date header too old: '{text}'"  # the Storage services' wording


def test_a_date_more_than_15_minutes_ahead_is_refused_as_in_the_future():
    text = rfc1123(NOW + datetime.timedelta(minutes=15, seconds=1))
    error = refusal(lambda: auth.check_request_date(CIMultiDict({'ocp-date': text}), now=NOW))
    assert detail(error) == f"Request date header too far in the future: '{text}'"


def test_ocp_date_is_the_request_time_when_both_are_sent():
    """Documented: "If both headers are specified for the request, the value of ocp-date is used"."""
    good, stale = rfc1123(NOW), rfc1123(NOW - datetime.timedelta(hours=1))
    auth.check_request_date(CIMultiDict({'ocp-date': good, 'Date': stale}), now=NOW)
    refusal(lambda: auth.check_request_date(CIMultiDict({'ocp-date': stale, 'Date': good}), now=NOW))


def test_without_now_the_date_is_compared_with_the_clock():
    auth.check_request_date(CIMultiDict({'ocp-date': rfc1123(datetime.datetime.now(datetime.timezone.utc))}))
    refusal(lambda: auth.check_request_date(CIMultiDict({'ocp-date': rfc1123(NOW)})))  # 2030 is in the future


@pytest.mark.parametrize('name', ['ocp-date', 'Date'])
@pytest.mark.parametrize('text', ['yesterday', '2030-01-01T12:00:00Z', 'Tue, 01 Jan 2030 12:00:00', 'Tue, 99 Foo'])
def test_a_date_that_is_not_rfc_1123_is_refused_naming_the_header(name, text):
    error = refusal(lambda: auth.check_request_date(CIMultiDict({name: text}), now=NOW))
    assert detail(error) == f"The {name} header '{text}' is not a valid RFC 1123 date."


def test_no_date_at_all_is_refused_saying_what_to_send():
    for headers in ({}, {'ocp-date': '', 'Date': ''}):
        text = detail(refusal(lambda headers=headers: auth.check_request_date(CIMultiDict(headers), now=NOW)))
        assert text.startswith('Request date header not specified') and 'ocp-date' in text


# ----- the account key given to the emulator --------------------------------------------------------

@pytest.mark.parametrize('key, valid', [(KEY, True), ('c2VjcmV0', True), ('', False), ('not base64!', False),
                                        ('abc', False), ('c2VjcmV0\n', False)])
def test_only_a_non_empty_base64_key_is_valid(key, valid):
    assert auth.is_valid_key(key) is valid


def test_a_refusal_never_repeats_what_may_be_a_credential():
    """A token sent with an odd scheme or spacing is not echoed in the 403 (which the portal's log shows)."""
    sent = fresh()
    token = 'tok-' + 'x' * 40
    for authorization in (f'Bearer\t{token}', token, f'Bearer"{token}"', f'SharedKey {token}',
                          f'SharedKey {token}:', f'{token}:sig'):
        sent['Authorization'] = authorization
        text = detail(refusal(lambda: auth.verify_shared_key('GET', '/pools?api-version=2025-06-01', sent, ACCOUNT,
                                                             KEY)))
        assert token not in text, authorization
