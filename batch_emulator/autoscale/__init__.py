"""The autoscale formula language (``formula.py``: Microsoft's grammar, parsed with Lark, evaluated within budgets).

The pool rules around it (when a formula runs, what its result changes) are the service's (``service/scaling.py``).
"""

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
