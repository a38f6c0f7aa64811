"""lagom-kernel: one training function, run unchanged in every context.

    from kernel import lagom
    result = lagom(train, HyperparameterSearch(...))

The kernel is the asyncio driver (``driver``), its message dispatch and scheduling, the
experiment folder (``journal``) and the worker agent (``agent``, run as
``python -m kernel.agent``). It knows no optimizer and no JAX: policies come from ``contexts/``
and ``plugins/``, and bytes move through ``transports/``.
"""
from .controller import ExperimentError
from .reporter import EarlyStop
from .runner import lagom, lagom_async
from .trials import Result, Trial

__all__ = ["lagom", "lagom_async", "Result", "Trial", "EarlyStop", "ExperimentError"]
__version__ = "0.1.0"
