"""Authentication tokens for tasks: ``authenticationTokenSettings`` with access ``job``, as the service gives them.

The service gives a task whose ``authenticationTokenSettings.access`` includes ``job`` (a job manager, usually)
a token in ``AZ_BATCH_AUTHENTICATION_TOKEN``, with which it can call the Batch API without the account key: a
bearer token (``Authorization: Bearer <token>``) that grants "access to all operations related to the Job which
contains the Task" (the spec's AuthenticationTokenSettings). The emulator does the same: such a task gets a
random token; a request that carries it is accepted for the paths under ``/jobs/{its job}``
while the task runs, refused with 403 AuthorizationFailure elsewhere (another job, pools, the account), and
with 403 AuthenticationFailed once the task no longer runs or for a token it never gave. The tokens live in
memory only (a restarted emulator reruns the tasks, with new tokens) and are never written anywhere: the
request log and the portal show ``Bearer REDACTED`` (``common/redaction.py``).
"""

from __future__ import annotations

import hmac
import secrets
import weakref

from batch_emulator.common.errors import BatchServiceError
from batch_emulator.service.models import Task

TOKEN_VARIABLE = 'AZ_BATCH_AUTHENTICATION_TOKEN'


def wants_job_token(spec: dict) -> bool:
    access = (spec.get('authenticationTokenSettings') or {}).get('access') or []
    return any(str(scope).lower() == 'job' for scope in access)


class JobTokens:
    """The tokens given to tasks, forgotten with their tasks."""

    def __init__(self) -> None:
        self._tasks: weakref.WeakValueDictionary[str, Task] = weakref.WeakValueDictionary()  # token -> its task
        self._tokens: weakref.WeakKeyDictionary[Task, str] = weakref.WeakKeyDictionary()  # task -> its token

    def variables(self, task: Task) -> dict[str, str]:
        """AZ_BATCH_AUTHENTICATION_TOKEN for a task that asks for job access: one token per task (its instances and
        retries share it), accepted only while the task runs."""
        if not wants_job_token(task.spec):
            return {}
        token = self._tokens.get(task)
        if token is None:
            token = secrets.token_urlsafe(32)
            self._tasks[token] = task
            self._tokens[task] = token
        return {TOKEN_VARIABLE: token}

    def check(self, token: str, path: str) -> None:
        """Accepts a request with this bearer token to this (decoded) path, or raises the service's 403."""
        task = next((task for known, task in list(self._tasks.items())
                     if hmac.compare_digest(known.encode(), token.encode('utf-8', 'surrogateescape'))), None)
        if task is None or task.state not in ('running', 'preparing'):
            raise BatchServiceError('AuthenticationFailed', values={
                'AuthenticationErrorDetail': 'The bearer token is not one the local emulator gave a running task '
                                             '(AZ_BATCH_AUTHENTICATION_TOKEN is valid while its task runs).'})
        parts = path.strip('/').split('/')
        if len(parts) < 2 or parts[0].lower() != 'jobs' or parts[1].lower() != task.job_id.lower():
            raise BatchServiceError('AuthorizationFailure', values={
                'Reason': f"The task's authentication token grants access to the operations of job {task.job_id} "
                          'only (authenticationTokenSettings access: job).'})
