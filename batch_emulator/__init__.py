"""A local emulator of the Azure Batch service (data plane, api-version 2025-06-01).

It speaks the Batch REST API to the real azure-batch SDK over HTTP on 127.0.0.1,
verifies SharedKey signatures, and runs pools' start tasks and jobs' tasks as
real processes on this machine. Run it with ``python -m batch_emulator``.
"""

from batch_emulator.app import create_app
from batch_emulator.wire.server import DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME, SUPPORTED_API_VERSIONS

__all__ = ['DEFAULT_ACCOUNT_KEY', 'DEFAULT_ACCOUNT_NAME', 'SUPPORTED_API_VERSIONS', 'create_app']
