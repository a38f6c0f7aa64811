"""TensorBoard event files for an experiment, without TensorFlow (tensorboardX).

Every broadcast becomes a scalar of its trial (``<folder>/tensorboard/trial-00042``), and when
a trial ends its parameters and final metric go to the HParams plugin, so
``tensorboard --logdir <folder>/tensorboard`` shows curves and a table of every trial.
"""
from __future__ import annotations

from typing import Any

from .driver import Kernel, Observer


class TensorBoard(Observer):
    def __init__(self) -> None:
        from tensorboardX import SummaryWriter  # ImportError: pip install "lagom-kernel[report]"

        self._writer_class = SummaryWriter
        self._writers: dict[int, Any] = {}

    def _writer(self, kernel: Kernel, trial_id: int):
        w = self._writers.get(trial_id)
        if w is None:
            w = self._writers[trial_id] = self._writer_class(
                str(kernel.folder.path / "tensorboard" / f"trial-{trial_id:05d}"), flush_secs=5)
        return w

    def trial_metric(self, kernel: Kernel, trial, step: float, value: float) -> None:
        self._writer(kernel, trial.id).add_scalar(kernel.controller.metric or "metric", value, int(step))

    def trial_ended(self, kernel: Kernel, trial) -> None:
        w = self._writer(kernel, trial.id)
        params = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in trial.params.items()}
        if trial.budget is not None:
            params["budget"] = trial.budget
        name = kernel.controller.metric or "metric"
        metrics = {f"hparam/{name}": trial.metric if trial.metric is not None else float("nan")}
        w.add_hparams(params, metrics, name="hparams")  # a sub-run: one row per trial in HParams
        w.close()
        self._writers.pop(trial.id, None)

    def experiment_ended(self, kernel: Kernel, result) -> None:
        for w in self._writers.values():
            w.close()
        self._writers.clear()
