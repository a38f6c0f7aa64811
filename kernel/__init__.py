"""lagom-kernel: one training function, run unchanged in every context.

    from kernel import lagom
    result = lagom(train, HyperparameterSearch(...))

The kernel is the asyncio driver (``driver``) with its scheduler, gang runs, deadlines and
journal replay beside it, the experiment folder (``journal``) and the worker agent (``agent``,
run as ``python -m kernel.agent``). It knows no optimizer and no JAX: policies come from
``contexts/`` and ``plugins/``, and bytes move through ``transports/``. Watchers subclass
:class:`Observer` and see a read-only :class:`KernelView`.
"""
from .controller import ExperimentError, Interrupted
from .direction import Direction
from .reporter import EarlyStop
from .runner import lagom, lagom_async
from .shipping import with_data
from .trials import NoBestTrial, Result, Trial, TrialState
from .views import KernelView, Observer

__all__ = ["lagom", "lagom_async", "with_data", "Result", "Trial", "TrialState", "NoBestTrial", "EarlyStop", "ExperimentError", "Interrupted",
           "Observer", "KernelView", "Direction"]
__version__ = "0.1.0"
