"""Certificates at the api-versions that have them (every one before 2025-06-01, which removed them).

Through azure-batch 14.2.0 (api-version 2024-02-01.19.0, run in its own venv from .cache as
tests/test_sdk_eras.py runs it) and over raw signed HTTP for the headers, at 2024-07-01.20.0 as Microsoft's
Go SDK recording TestCertificates shows them. Each test makes its own self-signed certificate: nothing secret
is in the repository.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import signal
import subprocess
import urllib.request

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, Encoding, pkcs12
from cryptography.x509.oid import NameOID

from batch_emulator import DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME
from tests.conftest import PROJECT_DIR, eventually
from tests.hostile import pool_body, send, start_emulator, stop_emulator
from tests.test_wire_safety import assert_tampered_start_refused

pytestmark = pytest.mark.emulator

OLDER = 'api-version=2024-07-01.20.0'
CURRENT = 'api-version=2025-06-01'
CLIENT = os.path.join(PROJECT_DIR, 'tests', 'sdk_era_certificate_client.py')


def _certificate(name: str) -> tuple[bytes, object]:
    """A fresh self-signed certificate (DER) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now)
                   .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    return certificate.public_bytes(Encoding.DER), key


def _cer(name: str) -> dict:
    der, _ = _certificate(name)
    return {'thumbprint': hashlib.sha1(der).hexdigest().upper(), 'data': base64.b64encode(der).decode(), 'der': der}


def _pfx(name: str) -> dict:
    der, key = _certificate(name)
    password = os.urandom(12).hex()
    pfx = pkcs12.serialize_key_and_certificates(name.encode(), key, x509.load_der_x509_certificate(der), None,
                                                BestAvailableEncryption(password.encode()))
    return {'thumbprint': hashlib.sha1(der).hexdigest().upper(), 'data': base64.b64encode(pfx).decode(),
            'password': password, 'der': der}


def _add_body(certificate: dict, certificate_format: str = 'cer', **extra: object) -> bytes:
    body = {'thumbprint': certificate['thumbprint'], 'thumbprintAlgorithm': 'sha1', 'data': certificate['data'],
            'certificateFormat': certificate_format, **extra}
    return json.dumps(body).encode()


def _path(certificate: dict, tail: str = '') -> str:
    return f"/certificates(thumbprintAlgorithm=sha1,thumbprint={certificate['thumbprint'].lower()}){tail}"


def _gone(endpoint: str, certificate: dict) -> bool:
    answer = send(endpoint, 'GET', f'{_path(certificate)}?{OLDER}')
    return (answer.status, answer.code) == (404, 'CertificateNotFound')


def test_azure_batch_14_2_adds_lists_gets_deletes_and_cancels_certificates(emulator):
    python = os.path.join(PROJECT_DIR, '.cache', 'azure-batch-14.2.0', 'bin', 'python')
    if not os.path.exists(python):
        pytest.fail('azure-batch 14.2.0 is needed in .cache/azure-batch-14.2.0: run the tests with ./run.sh test '
                    '(it installs each era once)')
    cer, pfx = _cer('era-cer'), _pfx('era-pfx')
    given = {'cer': {'thumbprint': cer['thumbprint'], 'data': cer['data']},
             'pfx': {key: pfx[key] for key in ('thumbprint', 'data', 'password')}}
    result = subprocess.run([python, CLIENT, emulator.endpoint, DEFAULT_ACCOUNT_NAME, DEFAULT_ACCOUNT_KEY],
                            input=json.dumps(given), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen['api_version'] == '2024-02-01.19.0'
    assert seen['added_again'] == 'CertificateExists'
    lower = cer['thumbprint'].lower()
    assert seen['cer'] == {'thumbprint': lower, 'thumbprint_algorithm': 'sha1', 'state': 'active',
                           'previous_state': None, 'public_data': cer['data'],
                           'url': f'{emulator.endpoint}/certificates(thumbprintAlgorithm=sha1,thumbprint={lower})'}
    # A .pfx's public data is its certificate alone, as a .cer: not the .pfx (which holds the private key).
    assert base64.b64decode(seen['pfx']['public_data']) == pfx['der']
    assert seen['listed'] == sorted([[lower, 'active', None], [pfx['thumbprint'].lower(), 'active', None]])
    assert seen['cancel_active'] == 'CertificateStateActive'
    assert seen['after_delete'] == 'deleting'
    assert seen['finally'] == 'CertificateNotFound'
    eventually(lambda: _gone(emulator.endpoint, pfx), message='the .pfx is gone')


def test_the_answers_carry_the_recorded_headers_and_keys(emulator):
    cer = _cer('headers')
    lower = cer['thumbprint'].lower()
    added = send(emulator.endpoint, 'POST', f'/certificates?{OLDER}', _add_body(cer))
    assert added.status == 201, added.body
    created = f'{emulator.endpoint}/certificates(ThumbprintAlgorithm=sha1,Thumbprint={lower})'
    assert added.headers['DataServiceId'] == created and added.headers['Location'] == created
    assert not {'ETag', 'Last-Modified', 'Content-Type'} & set(added.headers)
    got = send(emulator.endpoint, 'GET', f'{_path(cer)}?{OLDER}')
    assert got.status == 200
    assert got.headers['Content-Type'] == 'application/json; odata=minimalmetadata'
    assert not {'ETag', 'Last-Modified', 'DataServiceId'} & set(got.headers)
    body = got.json()
    assert set(body) == {'odata.metadata', 'publicData', 'state', 'stateTransitionTime', 'thumbprint',
                         'thumbprintAlgorithm', 'url'}
    assert body['odata.metadata'] == f'{emulator.endpoint}/$metadata#certificates/@Element'
    assert (body['thumbprint'], body['thumbprintAlgorithm'], body['publicData']) == (lower, 'sha1', cer['data'])
    # An uppercase thumbprint in the URL names the same certificate.
    upper = send(emulator.endpoint, 'GET', f"/certificates(thumbprintAlgorithm=sha1,thumbprint={cer['thumbprint']})"
                                           f'?{OLDER}')
    assert upper.json()['thumbprint'] == lower
    deleted = send(emulator.endpoint, 'DELETE', f'{_path(cer)}?{OLDER}')
    assert deleted.status == 202 and deleted.body == b''
    assert not {'ETag', 'Last-Modified', 'DataServiceId', 'Content-Type'} & set(deleted.headers)
    eventually(lambda: _gone(emulator.endpoint, cer), message='the certificate is gone')


def test_the_list_filters_selects_and_pages(emulator):
    first, second = _cer('list-1'), _cer('list-2')
    for certificate in (first, second):
        assert send(emulator.endpoint, 'POST', f'/certificates?{OLDER}', _add_body(certificate)).status == 201
    try:
        one = send(emulator.endpoint, 'GET', f"/certificates?{OLDER}&$filter=thumbprint%20eq%20'"
                                             f"{first['thumbprint'].lower()}'&$select=thumbprint,state")
        assert one.status == 200, one.body
        assert one.json()['value'] == [{'thumbprint': first['thumbprint'].lower(), 'state': 'active'}]
        paged = send(emulator.endpoint, 'GET', f'/certificates?{OLDER}&maxresults=1').json()
        assert len(paged['value']) == 1 and '$skiptoken=' in paged['odata.nextLink']
        assert send(emulator.endpoint, 'GET', f'/certificates?{OLDER}&maxresults=0').code == \
            'InvalidQueryParameterValue'
    finally:
        for certificate in (first, second):
            send(emulator.endpoint, 'DELETE', f'{_path(certificate)}?{OLDER}')


def test_a_certificate_a_pool_uses_fails_to_delete_until_cancelled_or_the_pool_goes(emulator, unique_id):
    cer = _cer('in-use')
    pool_id = unique_id('certpool')
    assert send(emulator.endpoint, 'POST', f'/certificates?{OLDER}', _add_body(cer)).status == 201
    reference = {'thumbprint': cer['thumbprint'], 'thumbprintAlgorithm': 'sha1', 'storeLocation': 'currentuser'}
    created = send(emulator.endpoint, 'POST', f'/pools?{OLDER}', pool_body(pool_id, certificateReferences=[reference]))
    assert created.status == 201, created.body
    try:
        assert send(emulator.endpoint, 'DELETE', f'{_path(cer)}?{OLDER}').status == 202
        assert send(emulator.endpoint, 'POST', f'{_path(cer, "/canceldelete")}?{OLDER}').code == \
            'CertificateBeingDeleted'
        failed = eventually(lambda: (body := send(emulator.endpoint, 'GET', f'{_path(cer)}?{OLDER}').json())[
            'state'] == 'deletefailed' and body, message='the deletion fails')
        assert failed['previousState'] == 'deleting'
        assert failed['deleteCertificateError'] == {
            'code': 'PoolsReferencingCertificate',
            'message': 'The specified certificate is being used by the below mentioned pool(s)',
            'values': [{'name': 'Pools', 'value': pool_id}]}
        cancelled = send(emulator.endpoint, 'POST', f'{_path(cer, "/canceldelete")}?{OLDER}')
        assert cancelled.status == 204 and cancelled.body == b''
        assert cancelled.headers['DataServiceId'] == f'{emulator.endpoint}{_path(cer, "/canceldelete")}'
        active = send(emulator.endpoint, 'GET', f'{_path(cer)}?{OLDER}').json()
        assert (active['state'], active['previousState']) == ('active', 'deletefailed')
        assert 'deleteCertificateError' not in active
        again = send(emulator.endpoint, 'POST', f'{_path(cer, "/canceldelete")}?{OLDER}')
        assert (again.status, again.code) == (409, 'CertificateStateActive')
    finally:
        send(emulator.endpoint, 'DELETE', f'/pools/{pool_id}?{OLDER}')
    eventually(lambda: send(emulator.endpoint, 'GET', f'/pools/{pool_id}?{OLDER}').status == 404,
               message='the pool is gone')
    assert send(emulator.endpoint, 'DELETE', f'{_path(cer)}?{OLDER}').status == 202
    eventually(lambda: _gone(emulator.endpoint, cer), message='the certificate is gone')


def test_the_refusals_name_the_property_and_never_show_the_secret(emulator):
    cer, pfx = _cer('refused'), _pfx('refused-pfx')

    def refused(body: bytes) -> tuple[int, str | None, dict]:
        answer = send(emulator.endpoint, 'POST', f'/certificates?{OLDER}', body)
        assert pfx['password'] not in answer.body.decode() and pfx['data'] not in answer.body.decode()
        values = {value['key']: value.get('value') for value in answer.json().get('values', [])}
        return answer.status, answer.code, values

    no_data = json.loads(_add_body(cer))
    del no_data['data']
    assert refused(json.dumps(no_data).encode()) == (400, 'MissingRequiredProperty', {'PropertyName': 'data'})
    status, code, values = refused(_add_body(cer, thumbprintAlgorithm='md5'))
    assert (status, code, values['PropertyName']) == (400, 'InvalidPropertyValue', 'thumbprintAlgorithm')
    status, code, values = refused(_add_body(cer, password=pfx['password']))  # a .cer has no password
    assert (status, code, values['PropertyName']) == (400, 'InvalidPropertyValue', 'password')
    status, code, values = refused(_add_body(pfx, 'pfx', password='not-' + pfx['password']))
    assert (status, code, values['PropertyName']) == (400, 'InvalidPropertyValue', 'data')
    status, code, values = refused(_add_body({**cer, 'data': 'not base64!'}))
    assert (status, code, values['PropertyName']) == (400, 'InvalidPropertyValue', 'data')
    status, code, values = refused(_add_body({**cer, 'thumbprint': 'xyz'}))
    assert (status, code, values['PropertyName']) == (400, 'InvalidPropertyValue', 'thumbprint')
    # Nothing was stored: neither certificate is in the account.
    for certificate in (cer, pfx):
        assert _gone(emulator.endpoint, certificate)
        for method, tail in (('DELETE', ''), ('POST', '/canceldelete')):
            answer = send(emulator.endpoint, method, f'{_path(certificate, tail)}?{OLDER}')
            assert (answer.status, answer.code) == (404, 'CertificateNotFound')


def test_neither_the_password_nor_a_pfx_is_answered_or_logged(emulator):
    pfx = _pfx('logged')
    log_url = emulator.endpoint + '/portal/api/requests?since='
    before = json.loads(urllib.request.urlopen(log_url, timeout=10).read())
    assert send(emulator.endpoint, 'POST', f'/certificates?{OLDER}',
                _add_body(pfx, 'pfx', password=pfx['password'])).status == 201
    try:
        got = send(emulator.endpoint, 'GET', f'{_path(pfx)}?{OLDER}')
        listed = send(emulator.endpoint, 'GET', f'/certificates?{OLDER}')
        for answer in (got, listed):
            assert pfx['password'] not in answer.body.decode() and pfx['data'] not in answer.body.decode()
        assert base64.b64decode(got.json()['publicData']) == pfx['der']
        newer = json.loads(urllib.request.urlopen(log_url + urllib.request.quote(before['token']), timeout=10).read())
        added = next(entry for entry in newer['requests'] if entry['operation'] == 'Certificate_Add')
        detail = urllib.request.urlopen(f"{emulator.endpoint}/portal/api/request?seq={added['seq']}", timeout=10)
        text = detail.read().decode()
        assert pfx['password'] not in text and pfx['data'] not in text and 'REDACTED' in text
    finally:
        send(emulator.endpoint, 'DELETE', f'{_path(pfx)}?{OLDER}')


def test_the_current_version_has_no_certificate_operations_and_the_oldest_has_them(emulator):
    cer = _cer('current')
    for method, path in (('POST', '/certificates'), ('GET', '/certificates'), ('GET', _path(cer)),
                         ('DELETE', _path(cer)), ('POST', _path(cer, '/canceldelete'))):
        answer = send(emulator.endpoint, method, f'{path}?{CURRENT}', _add_body(cer) if method == 'POST' else None)
        assert (answer.status, answer.code) == (400, 'InvalidUri'), (method, path)
    oldest = send(emulator.endpoint, 'GET', '/certificates?api-version=2018-03-01.6.1')
    assert oldest.status == 200 and isinstance(oldest.json()['value'], list)
    # A method the path does not have: the service's UnsupportedHttpVerb where the path exists, else InvalidUri.
    wrong_verb = send(emulator.endpoint, 'PUT', f'/certificates?{OLDER}', b'{}')
    assert (wrong_verb.status, wrong_verb.code) == (405, 'UnsupportedHttpVerb')
    assert send(emulator.endpoint, 'PUT', f'/certificates?{CURRENT}', b'{}').code == 'InvalidUri'


# ----- kept across a restart with --location ----------------------------------------------------------------

def _location_files_text(location: str) -> str:
    """Everything the emulator wrote into its location (journal, request log, its log), as one text."""
    texts = []
    for folder, _, names in os.walk(location):
        for name in names:
            with open(os.path.join(folder, name), 'rb') as file:
                texts.append(file.read().decode(errors='replace'))
    return '\n'.join(texts)


def _journaled(location: str, certificate: dict) -> list[str]:
    """The states state.jsonl recorded for the certificate, in order ('removed' for its removal)."""
    lower, states = certificate['thumbprint'].lower(), []
    with open(os.path.join(location, 'state.jsonl'), encoding='utf-8') as file:
        for line in file:
            event = json.loads(line)
            if event.get('certificate', {}).get('thumbprint') == lower:
                states.append(event['certificate']['state'])
            elif event.get('remove') == 'certificate' and event['key'] == ['sha1', lower]:
                states.append('removed')
    return states


def _without_url(body: dict) -> dict:
    return {key: value for key, value in body.items() if key not in ('url', 'odata.metadata')}


def test_certificates_in_every_state_survive_a_kill_and_a_deletion_under_way_finishes(tmp_path):
    location = str(tmp_path / 'location')
    kept, pfx, cancelled, failed, doomed, doomed_in_use = (
        _cer('kept'), _pfx('kept-pfx'), _cer('cancelled'), _cer('failed'), _cer('doomed'), _cer('doomed-in-use'))
    process, endpoint = start_emulator(location)
    try:
        for certificate in (kept, cancelled, failed, doomed, doomed_in_use):
            assert send(endpoint, 'POST', f'/certificates?{OLDER}', _add_body(certificate)).status == 201
        assert send(endpoint, 'POST', f'/certificates?{OLDER}',
                    _add_body(pfx, 'pfx', password=pfx['password'])).status == 201
        references = [{'thumbprint': certificate['thumbprint'], 'thumbprintAlgorithm': 'sha1'}
                      for certificate in (cancelled, failed, doomed_in_use)]
        assert send(endpoint, 'POST', f'/pools?{OLDER}', pool_body('uses', certificateReferences=references)
                    ).status == 201
        for certificate in (cancelled, failed):
            assert send(endpoint, 'DELETE', f'{_path(certificate)}?{OLDER}').status == 202
            eventually(lambda certificate=certificate: send(endpoint, 'GET', f'{_path(certificate)}?{OLDER}').json()[
                'state'] == 'deletefailed', message='the deletion fails')
        assert send(endpoint, 'POST', f'{_path(cancelled, "/canceldelete")}?{OLDER}').status == 204
        listed = send(endpoint, 'GET', f'/certificates?{OLDER}').json()['value']
        before = {body['thumbprint']: body for body in listed
                  if body['thumbprint'] not in (doomed['thumbprint'].lower(), doomed_in_use['thumbprint'].lower())}
        assert sorted(body['state'] for body in before.values()) == ['active', 'active', 'active', 'deletefailed']
        # Two deletions under way (nothing reads the certificates before the kill, so neither finishes first).
        for certificate in (doomed, doomed_in_use):
            assert send(endpoint, 'DELETE', f'{_path(certificate)}?{OLDER}').status == 202
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(15)
        process.stdout.close()
    assert _journaled(location, doomed) == ['active', 'deleting']
    assert _journaled(location, cancelled) == ['active', 'deleting', 'deletefailed', 'active']
    written = _location_files_text(location)
    assert pfx['password'] not in written and pfx['data'] not in written

    for restart in ('after the kill', 'after a clean stop'):
        process, endpoint = start_emulator(location)
        try:
            listed = send(endpoint, 'GET', f'/certificates?{OLDER}').json()['value']
            after = {body['thumbprint']: body for body in listed}
            lower = doomed_in_use['thumbprint'].lower()
            assert set(after) == set(before) | {lower}, restart  # the unused one being deleted is gone
            for thumbprint, body in before.items():
                assert _without_url(after[thumbprint]) == _without_url(body), (restart, thumbprint)
                assert after[thumbprint]['url'] == f'{endpoint}/certificates(thumbprintAlgorithm=sha1,' \
                                                   f'thumbprint={thumbprint})'
            assert (after[lower]['state'], after[lower]['previousState']) == ('deletefailed', 'deleting')
            assert after[lower]['deleteCertificateError']['values'] == [{'name': 'Pools', 'value': 'uses'}]
            assert _gone(endpoint, doomed)
            assert base64.b64decode(after[pfx['thumbprint'].lower()]['publicData']) == pfx['der']
        finally:
            stop_emulator(process)
    written = _location_files_text(location)
    assert pfx['password'] not in written and pfx['data'] not in written


def _location_with_a_certificate(location: str) -> dict:
    certificate = _cer('journaled')
    process, endpoint = start_emulator(location)
    try:
        assert send(endpoint, 'POST', f'/certificates?{OLDER}', _add_body(certificate)).status == 201
    finally:
        stop_emulator(process)
    return certificate


def _certificate_field(name: str, value: object):
    return lambda event: {'certificate': {**event['certificate'], name: value}} if 'certificate' in event else event


@pytest.mark.parametrize('tamper, reason', [
    (_certificate_field('state', 'exploding'), "certificate state 'exploding' is not one of active, deleting"),
    (_certificate_field('previousState', 'gone'), "certificate previousState 'gone' is not one of"),
    (_certificate_field('thumbprint', '../../etc'), "certificate 'sha1' '../../etc' is not a sha1 thumbprint"),
    (_certificate_field('thumbprintAlgorithm', 'md5'), "certificate 'md5' '"),
    (_certificate_field('publicData', base64.b64encode(b'not a certificate').decode()),
     'certificate publicData is not a base64 DER-encoded X.509 certificate'),
    (_certificate_field('deleteCertificateError', 'oops'), 'certificate deleteCertificateError has the wrong type'),
    (_certificate_field('stateTransitionTime', 'yesterday'), 'certificate stateTransitionTime must be a time'),
    (lambda event: {'certificate': {k: v for k, v in event['certificate'].items() if k != 'publicData'}}
     if 'certificate' in event else event, 'a certificate record has no publicData'),
    (lambda event: {'remove': 'certificate', 'key': [event['certificate']['thumbprint']]}
     if 'certificate' in event else event, 'a removal must name a pool, job, task, schedule or certificate'),
])
def test_a_tampered_certificate_record_stops_the_start_naming_its_line(tmp_path, tamper, reason):
    location = str(tmp_path / 'location')
    _location_with_a_certificate(location)
    assert_tampered_start_refused(location, tamper, reason)
