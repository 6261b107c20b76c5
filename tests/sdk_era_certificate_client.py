"""Runs inside azure-batch 14.2.0's own venv (tests/test_certificates.py): its certificate operations, unmodified.

    python sdk_era_certificate_client.py ENDPOINT ACCOUNT KEY < certificates.json

stdin: {"cer": {"thumbprint", "data"}, "pfx": {"thumbprint", "data", "password"}} (the test makes them; the
password is not on the command line). Adds both, adds the .cer again, reads them back, lists them with a
filter, a select and one per page, cancels a deletion that never began, deletes the .cer and waits (with a
deadline) until it is gone, then deletes the .pfx. Prints what it saw as one JSON line. Stdlib and the SDK only.
"""

from __future__ import annotations

import json
import sys
import time

import azure.batch.models as m
from azure.batch import BatchServiceClient
from azure.batch.batch_auth import SharedKeyCredentials

endpoint, account, key = sys.argv[1:4]
given = json.load(sys.stdin)
client = BatchServiceClient(SharedKeyCredentials(account, key), batch_url=endpoint)
seen: dict = {'api_version': client.api_version}


def error_code(call) -> str | None:
    try:
        call()
    except m.BatchErrorException as error:
        return error.error.code
    return None


cer, pfx = given['cer'], given['pfx']
client.certificate.add(m.CertificateAddParameter(thumbprint=cer['thumbprint'], thumbprint_algorithm='sha1',
                                                 data=cer['data'], certificate_format='cer'))
client.certificate.add(m.CertificateAddParameter(thumbprint=pfx['thumbprint'], thumbprint_algorithm='sha1',
                                                 data=pfx['data'], certificate_format='pfx', password=pfx['password']))
seen['added_again'] = error_code(lambda: client.certificate.add(m.CertificateAddParameter(
    thumbprint=cer['thumbprint'], thumbprint_algorithm='sha1', data=cer['data'], certificate_format='cer')))

for name, certificate in (('cer', cer), ('pfx', pfx)):
    got = client.certificate.get('sha1', certificate['thumbprint'].lower())
    seen[name] = {'thumbprint': got.thumbprint, 'thumbprint_algorithm': got.thumbprint_algorithm,
                  'state': str(got.state).rsplit('.', 1)[-1], 'previous_state': got.previous_state,
                  'public_data': got.public_data, 'url': got.url}

options = m.CertificateListOptions(filter="state eq 'active'", select='thumbprint,state', max_results=1)
seen['listed'] = sorted([item.thumbprint, str(item.state).rsplit('.', 1)[-1], item.public_data]
                        for item in client.certificate.list(certificate_list_options=options)
                        if item.thumbprint in (cer['thumbprint'].lower(), pfx['thumbprint'].lower()))

seen['cancel_active'] = error_code(lambda: client.certificate.cancel_deletion('sha1', cer['thumbprint']))
client.certificate.delete('sha1', cer['thumbprint'])
seen['after_delete'] = str(client.certificate.get('sha1', cer['thumbprint']).state).rsplit('.', 1)[-1]
deadline = time.monotonic() + 60
while (code := error_code(lambda: client.certificate.get('sha1', cer['thumbprint']))) is None:
    if time.monotonic() > deadline:
        break
    time.sleep(0.1)
seen['finally'] = code
client.certificate.delete('sha1', pfx['thumbprint'])
print(json.dumps(seen))
