"""The autoscale formula language (``formula.py``: Microsoft's grammar, parsed with Lark, evaluated within budgets).

The pool rules around it (when a formula runs, what its result changes) are the service's (``service/scaling.py``).

``formula`` (and Lark with it) is imported on the first use of a name below, not with this package: most
emulators never see a formula, and the import is a tenth of the emulator's start-up (``benchmarks/bench_startup.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from batch_emulator.autoscale.formula import (
        EVALUATION_ERROR,
        AutoScaleContext,
        AutoScaleError,
        AutoScaleResult,
        Formula,
        FormulaSyntaxError,
        evaluate,
        parse,
        validate,
    )

__all__ = ['EVALUATION_ERROR', 'AutoScaleContext', 'AutoScaleError', 'AutoScaleResult', 'Formula',
           'FormulaSyntaxError', 'evaluate', 'parse', 'validate']


def __getattr__(name: str) -> object:
    if name not in __all__:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    from batch_emulator.autoscale import formula
    value = getattr(formula, name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
