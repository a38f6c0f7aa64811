"""lagom-kernel: one training function, run unchanged in every context.

    from kernel import lagom
    result = lagom(train, HyperparameterSearch(...))

The kernel is the asyncio driver (``driver``) with its scheduler, gang runs, deadlines and
journal replay beside it, the experiment folder (``journal``) and the worker agent (``agent``,
run as ``python -m kernel.agent``). It knows no optimizer and no JAX: policies come from
``contexts/`` and ``plugins/``, and bytes move through ``transports/``. Watchers subclass
:class:`Observer` and see a read-only :class:`KernelView`.
"""
from ._shadow import check_not_shadowed

check_not_shadowed()  # a project's own plugins/ or contexts/ would break lagom far from the cause

from .controller import ExperimentError, Interrupted  # noqa: E402
from .direction import Direction  # noqa: E402
from .outputs.mlflow_logger import MLflowLogger  # noqa: E402 (imports MLflow only when used)
from .reporter import EarlyStop  # noqa: E402
from .runner import lagom, lagom_async  # noqa: E402
from .shipping import with_data  # noqa: E402
from .result import NoBestTrial, Result  # noqa: E402
from .trials import Trial, TrialState  # noqa: E402
from .views import KernelView, Observer  # noqa: E402

__all__ = ["lagom", "lagom_async", "with_data", "Result", "Trial", "TrialState", "NoBestTrial", "EarlyStop", "ExperimentError", "Interrupted",
           "Observer", "KernelView", "Direction", "MLflowLogger"]
__version__ = "0.1.0"
