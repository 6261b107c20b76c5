"""A local emulator of the Azure Batch service (data plane, api-version 2025-06-01).

It speaks the Batch REST API to the real azure-batch SDK over HTTP on 127.0.0.1,
verifies SharedKey signatures, and runs pools' start tasks and jobs' tasks as
real processes on this machine. Run it with ``python -m batch_emulator``.

The names below are imported on first use: importing a part of the package (the pytest plugin, which
pytest loads in every session, needs only the account's name and key) does not import the emulator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from batch_emulator.common.account import DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME

if TYPE_CHECKING:
    from batch_emulator.app import create_app
    from batch_emulator.wire.server import SUPPORTED_API_VERSIONS

__all__ = ['DEFAULT_ACCOUNT_KEY', 'DEFAULT_ACCOUNT_NAME', 'SUPPORTED_API_VERSIONS', 'create_app']


def __getattr__(name: str) -> object:
    if name == 'create_app':
        from batch_emulator.app import create_app
        return create_app
    if name == 'SUPPORTED_API_VERSIONS':
        from batch_emulator.wire.server import SUPPORTED_API_VERSIONS
        return SUPPORTED_API_VERSIONS
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')  # a subpackage is imported as usual
