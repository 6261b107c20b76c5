"""Handlers of the Certificate_* operations (api-versions before 2025-06-01: ``contract/certificates.py``).

Each takes the request's ``Context`` and returns what the service answers with (``results.py``); the adapter
writes it as recorded (Go SDK recording TestCertificates, 2024-07-01.20.0): add 201 with DataServiceId and
Location naming ``certificates(ThumbprintAlgorithm=sha1,Thumbprint=<lower-case>)``, no ETag or
Last-Modified; list and get 200 (no ETag or Last-Modified either); delete 202; cancel deletion 204 with
DataServiceId. The rules are the certificate room's (``service/certificates.py``).
"""

from __future__ import annotations

from batch_emulator.contract.certificates import ENTITY_SET
from batch_emulator.wire.results import Context, Done, Entity, Page


def _key(ctx: Context) -> tuple[str, str]:
    return ctx.params['thumbprintAlgorithm'], ctx.params['thumbprint']


async def add_certificate(ctx: Context) -> Done:
    certificate = ctx.state.add_certificate(ctx.body)
    # As recorded: the created certificate's id with capitalised keys and the thumbprint in lower case.
    return Done(location=f'/certificates(ThumbprintAlgorithm={certificate.thumbprint_algorithm},'
                         f'Thumbprint={certificate.thumbprint})')


async def list_certificates(ctx: Context) -> Page:
    return Page(ctx.state.list_certificates(), ENTITY_SET)


async def get_certificate(ctx: Context) -> Entity:
    certificate = ctx.state.get_certificate(*_key(ctx))
    return Entity(ctx.state.certificate_resource(certificate), ENTITY_SET)


async def delete_certificate(ctx: Context) -> Done:
    ctx.state.delete_certificate(*_key(ctx))
    return Done()


async def cancel_certificate_deletion(ctx: Context) -> Done:
    ctx.state.cancel_certificate_deletion(*_key(ctx))
    return Done()


CERTIFICATE_HANDLERS: dict = {
    'Certificate_Add': add_certificate,
    'Certificate_List': list_certificates,
    'Certificate_Get': get_certificate,
    'Certificate_Delete': delete_certificate,
    'Certificate_CancelDeletion': cancel_certificate_deletion,
}
