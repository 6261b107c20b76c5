"""The account's certificates (api-versions before 2025-06-01, which removed them): ``CertificateRoom``.

The rules are the 2024-07-01.20.0 spec's (``contract/certificates.json``):

- add: ``thumbprintAlgorithm`` must be sha1; the thumbprint is up to 40 hex digits, spaces removed (kept
  lower-case, as the service writes it in URLs); ``data`` is the base64 certificate, at most 10KB: a .cer
  (an X.509 certificate, DER) or a .pfx (PKCS#12, opened with ``password``, which a .cer must not have).
  The spec does not say the thumbprint is checked against the data, and it is not. A thumbprint already
  in the account is CertificateExists (CertificateBeingDeleted while it is being deleted).
- ``publicData`` is the public certificate alone, as a base64 .cer: a .cer's own bytes, a .pfx's certificate
  (read with ``cryptography``). Neither ``data`` nor ``password`` is kept.
- delete: the certificate is ``deleting``; a moment later (``DELETE_SECONDS``, looked at whenever the
  certificates are read) it is gone, or, if a pool still names it in its ``certificateReferences``, it is
  ``deletefailed`` with a ``deleteCertificateError`` naming the pools (code PoolsReferencingCertificate,
  as the service's documentation shows it). A failed deletion can be retried or cancelled (back to active);
  cancelling any other is CertificateStateActive or CertificateBeingDeleted.

With ``--location`` every add, state change and removal is journaled (``certificate_record``: what the
account keeps, never ``data`` or ``password``). A certificate that was ``deleting`` when the emulator stopped
finishes its deletion at the restart (``runtime/persistence.py``), as a pool or job being deleted does.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import re
import time

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, pkcs12

from batch_emulator.common.errors import BatchServiceError, invalid_property
from batch_emulator.service.models import iso, parse_iso, utc_now
from batch_emulator.service.room import Room

MAX_DATA_BYTES = 10 * 1024  # the spec: "The maximum size is 10KB."
DELETE_SECONDS = 2.0  # how long a deletion stays 'deleting' before it completes or fails
MAX_ERROR_POOLS = 100  # "the list contains only about the first hundred"
_THUMBPRINT = re.compile(r'[0-9a-f]{1,40}')


@dataclasses.dataclass
class Certificate:
    thumbprint: str  # lower-case hex
    thumbprint_algorithm: str
    public_data: str  # base64 DER of the certificate alone
    state: str = 'active'
    state_transition_time: datetime.datetime = dataclasses.field(default_factory=utc_now)
    previous_state: str | None = None
    previous_state_transition_time: datetime.datetime | None = None
    delete_error: dict | None = None
    delete_due: float | None = None  # time.monotonic() at which a deletion completes or fails


def _data_error(reason: str) -> BatchServiceError:
    """A bad ``data`` (or password): named, never echoed (a .pfx holds a private key)."""
    return BatchServiceError('InvalidPropertyValue', values={'PropertyName': 'data', 'Reason': reason})


def _public_data(data: bytes, certificate_format: str, password: str | None) -> bytes:
    """The DER of the certificate alone, from a .cer's or a .pfx's bytes."""
    if certificate_format == 'cer':
        try:
            x509.load_der_x509_certificate(data)
        except ValueError:
            raise _data_error('The data is not a DER-encoded X.509 certificate.') from None
        return data
    try:
        _, certificate, _ = pkcs12.load_key_and_certificates(data, password.encode() if password else None)
    except (ValueError, TypeError):
        raise _data_error('The data is not a PKCS#12 (.pfx) file that the password opens.') from None
    if certificate is None:
        raise _data_error('The PKCS#12 (.pfx) file holds no certificate.')
    return certificate.public_bytes(Encoding.DER)


def certificate_path(algorithm: str, thumbprint: str) -> str:
    """The certificate's path as the service writes its url."""
    return f'/certificates(thumbprintAlgorithm={algorithm},thumbprint={thumbprint})'


class CertificateRoom(Room):
    """The account's certificates, by (thumbprint algorithm, thumbprint), both lower-case."""

    def __init__(self, account) -> None:
        super().__init__(account)
        self.certificates: dict[tuple[str, str], Certificate] = {}

    def add_certificate(self, body: dict) -> Certificate:
        """The body checked by the contract (its required properties and the format's enum)."""
        self._settle()
        algorithm = str(body['thumbprintAlgorithm'])
        if algorithm.lower() != 'sha1':
            raise invalid_property('thumbprintAlgorithm', algorithm, 'The thumbprint algorithm must be sha1.')
        thumbprint = str(body['thumbprint']).replace(' ', '').lower()
        if not _THUMBPRINT.fullmatch(thumbprint):
            raise invalid_property('thumbprint', body['thumbprint'], 'The thumbprint is a sequence of up to 40 '
                                                                      'hex digits.')
        certificate_format = body.get('certificateFormat', 'pfx')
        password = body.get('password')
        if certificate_format == 'cer' and password is not None:
            raise BatchServiceError('InvalidPropertyValue', values={  # the password itself is never shown
                'PropertyName': 'password', 'Reason': 'A password must be omitted when the certificateFormat is cer.'})
        try:
            data = base64.b64decode(str(body['data']), validate=True)
        except (binascii.Error, ValueError):
            raise _data_error('The data is not base64.') from None
        if len(data) > MAX_DATA_BYTES:
            raise _data_error(f'The certificate is larger than the maximum of {MAX_DATA_BYTES} bytes.')
        public = _public_data(data, certificate_format, None if password is None else str(password))
        existing = self.certificates.get(('sha1', thumbprint))
        if existing is not None:
            raise BatchServiceError('CertificateBeingDeleted' if existing.state == 'deleting' else 'CertificateExists')
        certificate = Certificate(thumbprint, 'sha1', base64.b64encode(public).decode())
        self.certificates[('sha1', thumbprint)] = certificate
        self.changed('certificate', certificate)
        return certificate

    def get_certificate(self, algorithm: str, thumbprint: str) -> Certificate:
        self._settle()
        certificate = self.certificates.get((algorithm.lower(), thumbprint.lower()))
        if certificate is None:
            raise BatchServiceError('CertificateNotFound')
        return certificate

    def list_certificates(self) -> list[dict]:
        self._settle()
        return [self.certificate_resource(certificate) for certificate in self.certificates.values()]

    def delete_certificate(self, algorithm: str, thumbprint: str) -> None:
        certificate = self.get_certificate(algorithm, thumbprint)
        if certificate.state == 'deleting':
            return
        self._set_state(certificate, 'deleting')
        certificate.delete_error = None
        certificate.delete_due = time.monotonic() + DELETE_SECONDS
        self.changed('certificate', certificate)

    def cancel_certificate_deletion(self, algorithm: str, thumbprint: str) -> None:
        certificate = self.get_certificate(algorithm, thumbprint)
        if certificate.state == 'deleting':
            raise BatchServiceError('CertificateBeingDeleted')
        if certificate.state == 'active':
            raise BatchServiceError('CertificateStateActive')
        self._set_state(certificate, 'active')
        certificate.delete_error = None
        self.changed('certificate', certificate)

    def certificate_resource(self, certificate: Certificate) -> dict:
        """The certificate as the service writes it (never its data or password: they are not kept)."""
        return {
            'thumbprint': certificate.thumbprint, 'thumbprintAlgorithm': certificate.thumbprint_algorithm,
            'url': self.base_url + certificate_path(certificate.thumbprint_algorithm, certificate.thumbprint),
            'state': certificate.state, 'stateTransitionTime': iso(certificate.state_transition_time),
            'previousState': certificate.previous_state,
            'previousStateTransitionTime': iso(certificate.previous_state_transition_time),
            'publicData': certificate.public_data, 'deleteCertificateError': certificate.delete_error,
        }

    def _set_state(self, certificate: Certificate, state: str) -> None:
        certificate.previous_state, certificate.previous_state_transition_time = \
            certificate.state, certificate.state_transition_time
        certificate.state, certificate.state_transition_time = state, utc_now()

    def _pools_using(self, certificate: Certificate) -> list[str]:
        """The ids of the pools whose certificateReferences name the certificate."""
        return [pool.id for pool in self.pools.values()
                if any(str(reference.get('thumbprint', '')).replace(' ', '').lower() == certificate.thumbprint
                       and str(reference.get('thumbprintAlgorithm', '')).lower() == certificate.thumbprint_algorithm
                       for reference in pool.spec.get('certificateReferences') or [] if isinstance(reference, dict))]

    def settle_certificates(self) -> None:
        """Finishes the deletions whose moment has come (at a restart: every one that was under way)."""
        self._settle()

    def _settle(self) -> None:
        """Deletions whose moment has come: the certificate goes, or its deletion fails if a pool still uses it."""
        now = time.monotonic()
        for key, certificate in list(self.certificates.items()):
            if certificate.state != 'deleting' or certificate.delete_due is None or certificate.delete_due > now:
                continue
            certificate.delete_due = None
            pools = self._pools_using(certificate)
            if not pools:
                del self.certificates[key]
                self._removed('certificate', certificate)
                continue
            self._set_state(certificate, 'deletefailed')
            certificate.delete_error = {
                'code': 'PoolsReferencingCertificate',
                'message': 'The specified certificate is being used by the below mentioned pool(s)',
                'values': [{'name': 'Pools', 'value': pool_id} for pool_id in pools[:MAX_ERROR_POOLS]]}
            self.changed('certificate', certificate)


# ----- persistence (the --location journal) ------------------------------------------------------

def certificate_record(certificate: Certificate) -> dict:
    """What the journal keeps of a certificate: what the account keeps (never its data or password)."""
    return {'thumbprint': certificate.thumbprint, 'thumbprintAlgorithm': certificate.thumbprint_algorithm,
            'publicData': certificate.public_data, 'state': certificate.state,
            'stateTransitionTime': iso(certificate.state_transition_time),
            'previousState': certificate.previous_state,
            'previousStateTransitionTime': iso(certificate.previous_state_transition_time),
            'deleteCertificateError': certificate.delete_error}


def certificate_from_record(record: dict) -> Certificate:
    """The certificate a (checked) record keeps; one that was being deleted is due to finish now."""
    return Certificate(record['thumbprint'], record['thumbprintAlgorithm'], record['publicData'],
                       state=record['state'], state_transition_time=parse_iso(record['stateTransitionTime']),
                       previous_state=record['previousState'],
                       previous_state_transition_time=parse_iso(record['previousStateTransitionTime']),
                       delete_error=record['deleteCertificateError'],
                       delete_due=time.monotonic() if record['state'] == 'deleting' else None)


def check_certificate_record(record: dict, states: list[str]) -> None:
    """Raises ValueError saying what the emulator would never have written in a certificate record."""
    if record['thumbprintAlgorithm'] != 'sha1' or not _THUMBPRINT.fullmatch(record['thumbprint']):
        raise ValueError(f"certificate {record['thumbprintAlgorithm'][:10]!r} {record['thumbprint'][:50]!r} is not "
                         'a sha1 thumbprint of up to 40 lower-case hex digits')
    for name in ('state', 'previousState'):
        if record[name] is not None and record[name] not in states:
            raise ValueError(f'certificate {name} {record[name][:50]!r} is not one of {", ".join(states)}')
    try:
        x509.load_der_x509_certificate(base64.b64decode(record['publicData'], validate=True))
    except (binascii.Error, ValueError):
        raise ValueError('certificate publicData is not a base64 DER-encoded X.509 certificate') from None
