"""TensorBoard event files for an experiment, without TensorFlow (tensorboardX).

Every broadcast becomes a scalar of its trial (``<folder>/tensorboard/trial-00042``), and when
a trial ends its parameters and final metric go to the HParams plugin, so
``tensorboard --logdir <folder>/tensorboard`` shows curves and a table of every trial.
"""
from __future__ import annotations

from typing import Any

from ..views import KernelView, Observer


class TensorBoard(Observer):
    def __init__(self) -> None:
        from tensorboardX import SummaryWriter  # ImportError: pip install "lagom-kernel[report]"

        self._writer_class = SummaryWriter
        self._writers: dict[int, Any] = {}

    def _writer(self, view: KernelView, trial_id: int):
        w = self._writers.get(trial_id)
        if w is None:
            w = self._writers[trial_id] = self._writer_class(
                str(view.path / "tensorboard" / f"trial-{trial_id:05d}"), flush_secs=5)
        return w

    def trial_metric(self, view: KernelView, trial, step: float, value: float) -> None:
        self._writer(view, trial.id).add_scalar(view.metric or "metric", value, int(step))

    def trial_series(self, view: KernelView, trial, step: float, values: dict[str, float]) -> None:
        writer = self._writer(view, trial.id)
        for name, value in values.items():
            if name != view.metric:  # the search's metric is written by trial_metric
                writer.add_scalar(name, value, int(step))

    def trial_ended(self, view: KernelView, trial) -> None:
        w = self._writer(view, trial.id)
        params = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in trial.params.items()}
        if trial.budget is not None:
            params["budget"] = trial.budget
        name = view.metric or "metric"
        metrics = {f"hparam/{name}": trial.metric if trial.metric is not None else float("nan")}
        if trial.values and view.objectives:  # several objectives: each a column of the HParams table
            metrics.update((f"hparam/{m}", v) for m, v in zip(view.objectives, trial.values))
        if trial.compile_s is not None:  # what it waited for XLA, beside what it scored
            metrics["hparam/compile_s"] = trial.compile_s
            w.add_scalar("compile_s", trial.compile_s, 0)
        w.add_hparams(params, metrics, name="hparams")  # a sub-run: one row per trial in HParams
        w.close()
        self._writers.pop(trial.id, None)

    def experiment_ended(self, view: KernelView, result) -> None:
        for w in self._writers.values():
            w.close()
        self._writers.clear()
        if result is not None and result.objectives:
            self._front(view, result)

    def _front(self, view: KernelView, result) -> None:
        """The Pareto front as a table and a picture under ``tensorboard/front`` (TEXT, IMAGES)."""
        w = self._writer_class(str(view.path / "tensorboard" / "front"))
        names, front = result.objectives, result.pareto
        rows = ["| trial | " + " | ".join(names) + " | parameters |", "|" + "---|" * (len(names) + 2)]
        rows += [f"| {t.id} | " + " | ".join(f"{v:.6g}" for v in t.values) + " | "
                 + ", ".join(f"{k}={v}" for k, v in t.params.items()) + " |" for t in front]
        w.add_text("pareto_front", "\n".join(rows))
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            w.close()
            return
        fig, ax = plt.subplots(figsize=(5, 4))
        done = [t for t in result.trials if t.values]
        ax.scatter([t.values[0] for t in done], [t.values[1] for t in done], s=8, color="#aab7b8")
        ax.plot([t.values[0] for t in front], [t.values[1] for t in front], "o-", color="#c0392b", ms=4)
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])
        w.add_figure("pareto_front", fig)
        plt.close(fig)
        w.close()
