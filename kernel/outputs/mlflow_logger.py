"""MLflow tracking for an experiment: one MLflow run per trial, nested under one for the experiment.

    from kernel import MLflowLogger, lagom
    lagom(train, search, observers=[MLflowLogger(tracking_uri="http://mlflow:5000")])

Each trial's run holds its parameters (and budget), every broadcast as a metric with its step,
the numbers the function returned, and how it ended (FINISHED, or FAILED with the error). The
MLflow client talks to its server on a thread of its own: a slow or unreachable tracking server
never delays a dispatch, and one that fails stops the logging (said once), not the experiment.
"""
from __future__ import annotations

import importlib.util
import math
import queue
import sys
import threading
import time
from typing import Any

from ..views import KernelView, Observer

BATCH = 1000  # MLflow's own limit of metrics per log_batch call
PARAMS_PER_BATCH = 100  # and of parameters
STATUS = {"finished": "FINISHED", "stopped": "FINISHED", "failed": "FAILED", "lost": "FAILED"}


class MLflowLogger(Observer):
    """``tracking_uri``: where runs go (default: MLflow's own, ``$MLFLOW_TRACKING_URI``);
    ``experiment_name``: the MLflow experiment (default: the lagom experiment's name, without
    its timestamp); ``tags``: added to every run; ``flush_every``: seconds between sends of a
    running trial's broadcasts."""

    def __init__(self, tracking_uri: str | None = None, experiment_name: str | None = None,
                 tags: dict[str, str] | None = None, flush_every: float = 1.0):
        if importlib.util.find_spec("mlflow") is None:
            raise ImportError('MLflowLogger needs MLflow: pip install "lagom-kernel[mlflow]" (or mlflow)')
        self.tracking_uri, self.experiment_name = tracking_uri, experiment_name
        self.tags, self.flush_every = dict(tags or {}), flush_every
        self._jobs: queue.Queue = queue.Queue()
        self._pending: dict[int, list[tuple[str, float, float, int]]] = {}
        self._thread: threading.Thread | None = None
        self._timer = None
        self.error: str | None = None  # why logging stopped, if it did

    def experiment_started(self, view: KernelView) -> None:
        name = self.experiment_name or view.experiment.rsplit("-", 3)[0]
        self._thread = threading.Thread(target=_Sender(self).run, args=(name, view.experiment, view.context_name),
                                        name="lagom-mlflow", daemon=True)
        self._thread.start()
        self._timer = view.call_later(self.flush_every, self._flush, view)

    def trial_started(self, view: KernelView, trial) -> None:
        params = dict(trial.params)
        if trial.budget is not None:
            params["budget"] = trial.budget
        self._put(("start", trial.id, params, {"lagom.attempt": str(trial.attempts),
                                                     "lagom.parent_trial": str(trial.parent)}))

    def trial_metric(self, view: KernelView, trial, step: float, value: float) -> None:
        self._pending.setdefault(trial.id, []).append((view.metric or "metric", value, time.time(), int(step)))

    def trial_series(self, view: KernelView, trial, step: float, values: dict[str, float]) -> None:
        points = self._pending.setdefault(trial.id, [])
        now = time.time()
        points.extend((name, v, now, int(step)) for name, v in values.items() if name != view.metric)

    def trial_ended(self, view: KernelView, trial) -> None:
        final = {f"final_{k}": v for k, v in trial.metrics.items() if _number(v)}
        if trial.duration is not None:
            final["duration_s"] = trial.duration
        self._put(("end", trial.id, self._pending.pop(trial.id, []), final, str(trial.state), trial.error))

    def _put(self, job: tuple) -> None:
        if self.error is None:  # once logging has stopped, nothing piles up for it
            self._jobs.put(job)

    def _flush(self, view: KernelView) -> None:
        for trial_id, points in self._pending.items():
            if points:
                self._put(("metrics", trial_id, points))
        self._pending = {k: [] for k in self._pending}
        self._timer = view.call_later(self.flush_every, self._flush, view)

    def experiment_ended(self, view: KernelView, result) -> None:
        if self._timer is not None:
            self._timer.cancel()
        best = None if result is None else _best(result)
        self._jobs.put(("close", best))
        if self._thread is not None:
            self._thread.join(30)  # what was logged is sent before lagom() returns


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _best(result) -> dict[str, float]:
    try:
        best = result.best
    except LookupError:
        return {}
    return {"best_trial": best.id, **({"best_metric": best.metric} if _number(best.metric) else {})}


class _Sender:
    """The thread that owns the MLflow client: one run for the experiment, one per trial."""

    def __init__(self, logger: MLflowLogger):
        self.logger, self.runs = logger, {}

    def run(self, name: str, experiment: str, context: str) -> None:
        try:
            self._open(name, experiment, context)
        except Exception as exc:  # noqa: BLE001 (whatever the client raises, the experiment goes on)
            return self._give_up(exc)
        while True:
            job = self.logger._jobs.get()
            try:
                if job[0] == "close":
                    return self._close(job[1])
                getattr(self, "_" + job[0])(*job[1:])
            except Exception as exc:  # noqa: BLE001
                return self._give_up(exc)

    def _open(self, name: str, experiment: str, context: str) -> None:
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=self.logger.tracking_uri)
        found = self.client.get_experiment_by_name(name)
        self.experiment_id = found.experiment_id if found else self.client.create_experiment(name)
        tags = {**self.logger.tags, "lagom.experiment": experiment, "lagom.context": context}
        self.parent = self.client.create_run(self.experiment_id, run_name=experiment, tags=tags).info.run_id

    def _start(self, trial_id: int, params: dict, tags: dict) -> None:
        from mlflow.entities import Param, RunTag

        if trial_id in self.runs:  # a trial run again after its agent was lost: the same MLflow run
            self.client.log_batch(self.runs[trial_id], tags=[RunTag(k, v) for k, v in tags.items()])
            return
        run = self.client.create_run(self.experiment_id, run_name=f"trial-{trial_id:05d}", tags={
            **self.logger.tags, **tags, "mlflow.parentRunId": self.parent, "lagom.trial": str(trial_id)})
        self.runs[trial_id] = run_id = run.info.run_id
        items = [Param(str(k), str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), PARAMS_PER_BATCH):
            self.client.log_batch(run_id, params=items[i:i + PARAMS_PER_BATCH])

    def _metrics(self, trial_id: int, points: list) -> None:
        from mlflow.entities import Metric

        run_id = self.runs.get(trial_id)
        metrics = [Metric(name, v, int(at * 1000), step) for name, v, at, step in points if _number(v)]
        for i in range(0, len(metrics) if run_id else 0, BATCH):
            self.client.log_batch(run_id, metrics=metrics[i:i + BATCH])

    def _end(self, trial_id: int, points: list, final: dict, state: str, error: str | None) -> None:
        from mlflow.entities import RunTag

        self._metrics(trial_id, points + [(k, v, time.time(), 0) for k, v in final.items()])
        run_id = self.runs.get(trial_id)
        if run_id is None:
            return
        tags = [RunTag("lagom.state", state)] + ([RunTag("lagom.error", error[:5000])] if error else [])
        self.client.log_batch(run_id, tags=tags)
        self.client.set_terminated(run_id, STATUS.get(state, "FINISHED"))

    def _close(self, best: dict | None) -> None:
        self._metrics_of_parent(best or {})
        self.client.set_terminated(self.parent, "FINISHED")

    def _metrics_of_parent(self, values: dict) -> None:
        for k, v in values.items():
            self.client.log_metric(self.parent, k, v)

    def _give_up(self, exc: Exception) -> None:
        self.logger.error = f"{type(exc).__name__}: {exc}"
        print(f"lagom: MLflow logging stopped ({self.logger.error}); the experiment goes on",
              file=sys.stderr, flush=True)
