"""The Batch service's errors: codes, status codes, messages and body shape.

Every error the emulator answers is a ``BatchServiceError``; routes raise it
and the server turns it into the body the real service sends:

    {"odata.metadata": ".../$metadata#Microsoft.Azure.Batch.Protocol.Entities.Container.errors/@Element",
     "code": "PoolExists",
     "message": {"lang": "en-US", "value": "The specified pool already exists.\\nRequestId:...\\nTime:..."},
     "values": [{"key": "...", "value": "..."}]}
"""

from __future__ import annotations

import uuid

from batch_emulator.common.clock import utc_now

# code -> (HTTP status, message) as the service words them.
_KNOWN = {
    'PoolExists': (409, 'The specified pool already exists.'),
    'PoolNotFound': (404, 'The specified pool does not exist.'),
    'PoolBeingDeleted': (409, 'The specified pool has been marked for deletion and is being reclaimed.'),
    'PoolNotSteady': (409, 'The specified pool is not in steady state.'),
    'JobExists': (409, 'The specified job already exists.'),
    'JobNotFound': (404, 'The specified job does not exist.'),
    'JobBeingDeleted': (409, 'The specified job has been marked for deletion and is being garbage collected.'),
    'JobBeingTerminated': (409, 'The specified job is already in the process of being terminated.'),
    'JobPreparationTaskOrReleaseTaskNotSpecified': (409, 'The specified job does not have either job preparation '
                                                         'task or job release task.'),
    'JobCompleted': (409, 'The specified job is already in a completed state.'),
    'JobNotActive': (409, 'The specified job is not in an active state.'),
    'JobScheduleExists': (409, 'The specified job schedule already exists.'),
    'JobScheduleNotFound': (404, 'The specified job schedule does not exist.'),
    'JobScheduleBeingDeleted': (409, 'The specified job schedule has been marked for deletion and is being '
                                     'garbage collected.'),
    'JobScheduleCompleted': (409, 'The specified job schedule is already in a completed state.'),
    'TaskExists': (409, 'The specified task already exists.'),
    'TaskNotFound': (404, 'The specified task does not exist.'),
    'TaskCompleted': (409, 'The specified task is already completed.'),
    'NodeNotFound': (404, 'The specified node does not exist.'),
    'FileNotFound': (404, 'The specified file does not exist.'),
    'OperationInvalidForCurrentState': (409, 'The operation is not allowed on the resource in its current state.'),
    # Codes of the SDKs' BatchErrorCodeStrings; messages as close to the service's wording as known.
    'PoolBeingResized': (409, 'The specified pool is currently being resized.'),
    'TooManyEnableAutoScaleRequests': (409, 'Enable AutoScale requests for the same pool must be separated by at '
                                            'least 30 seconds.'),
    'AutoScalingFormulaSyntaxError': (400, 'The specified auto-scaling formula has a syntax error.'),
    'AutoScaleFormulaTooLong': (400, 'The specified auto-scaling formula exceeds lengths limit.'),
    'TaskDependenciesNotSpecifiedOnJob': (409, 'The specified job does not have task dependencies enabled.'),
    'NodeUserExists': (409, 'The specified node user already exists.'),
    'CertificateExists': (409, 'The specified certificate already exists.'),
    'CertificateNotFound': (404, 'The specified certificate does not exist.'),
    'CertificateBeingDeleted': (409, 'The specified certificate has been marked for deletion and is being deleted.'),
    'CertificateStateActive': (409, 'The specified certificate is active: only a failed deletion can be cancelled.'),
    'NodeUserNotFound': (404, 'The specified node user does not exist.'),
    'NodeAlreadyInTargetSchedulingState': (409, 'The specified node is already in the target scheduling state.'),
    'NodeBeingCreated': (409, 'The specified node is being created.'),
    'NodeBeingStarted': (409, 'The specified node is being started.'),
    'NodeBeingRebooted': (409, 'The specified node is being rebooted.'),
    'NodeBeingReimaged': (409, 'The specified node is being reimaged.'),
    'NodeStateUnusable': (409, 'The specified node is unusable.'),
    'OutOfRangePriority': (400, 'The specified priority is outside the permitted range of -1000 to 1000.'),
    'InvalidPropertyValue': (400, 'The value provided for one of the properties in the request body is invalid.'),
    'MissingRequiredProperty': (400, 'A required property was not specified in the request body.'),
    'InvalidRequestBody': (400, 'The specified Request Body is not syntactically valid.'),
    'InvalidQueryParameterValue': (400, 'Value for one of the query parameters specified in the request URI is '
                                        'invalid.'),
    'MissingRequiredQueryParameter': (400, 'A query parameter that\'s mandatory for this request is not '
                                           'specified.'),
    'InvalidHeaderValue': (400, 'The value for one of the HTTP headers is not in the correct format.'),
    'MissingRequiredHeader': (400, 'An HTTP header that\'s mandatory for this request is not specified.'),
    'RequestBodyTooLarge': (413, 'The request body is too large and exceeds the maximum permissible limit.'),
    'AuthenticationFailed': (403, 'Server failed to authenticate the request. Make sure the value of '
                                  'Authorization header is correctly formed including the signature.'),
    'AuthorizationFailure': (403, 'This request is not authorized to perform this operation.'),
    'ConditionNotMet': (412, 'The condition specified using HTTP conditional header(s) is not met.'),
    'InvalidUri': (400, 'The requested URI does not represent any resource on the server.'),
    'UnsupportedHttpVerb': (405, 'The resource doesn\'t support the specified HTTP verb.'),
    'NotImplemented': (501, 'The local Batch emulator does not implement this operation.'),
    'InternalError': (500, 'Server encountered an internal error. Please try again after some time.'),
    'ServerBusy': (503, 'The server is currently unable to receive requests. Please retry your request.'),
}

ODATA_ERROR_METADATA = '$metadata#Microsoft.Azure.Batch.Protocol.Entities.Container.errors/@Element'


class BatchServiceError(Exception):
    """An error response of the Batch service."""

    def __init__(self, code: str, message: str | None = None, *, status: int | None = None,
                 values: dict[str, str] | None = None) -> None:
        known_status, known_message = _KNOWN.get(code, (400, code))
        self.code = code
        self.status = status or known_status
        self.message = message or known_message
        self.values = values or {}
        super().__init__(f'{self.status} {code}: {self.message}')

    def body(self, base_url: str, request_id: str | None = None) -> dict:
        now = utc_now().strftime('%Y-%m-%dT%H:%M:%S.%f0Z')
        body: dict = {
            'odata.metadata': f'{base_url}/{ODATA_ERROR_METADATA}',
            'code': self.code,
            'message': {'lang': 'en-US',
                        'value': f'{self.message}\nRequestId:{request_id or uuid.uuid4()}\nTime:{now}'},
        }
        if self.values:
            # A value of None is a key the service sends without a value (recorded [J:pool2/cmk]).
            body['values'] = [{'key': key} if value is None else {'key': key, 'value': value}
                              for key, value in self.values.items()]
        return body


def invalid_property(name: str, value: object, reason: str | None = None) -> BatchServiceError:
    values = {'PropertyName': name, 'PropertyValue': str(value)}
    if reason:
        values['Reason'] = reason
    return BatchServiceError('InvalidPropertyValue', values=values)


def missing_property(name: str) -> BatchServiceError:
    return BatchServiceError('MissingRequiredProperty', values={'PropertyName': name})


def invalid_query(name: str, value: str, reason: str) -> BatchServiceError:
    return BatchServiceError('InvalidQueryParameterValue',
                             values={'QueryParameterName': name, 'QueryParameterValue': value, 'Reason': reason})
