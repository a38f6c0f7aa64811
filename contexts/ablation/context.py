"""``Ablation``: the study's trials, the baseline first, each reported against the baseline.

The ablator plugin (``lagom.ablators``, default ``loco``) lists the components; each becomes one
trial whose ``dataset`` and ``model`` generators leave that component out. At the end, the
components are ranked by effect (the metric without the component minus the baseline's), in
``result.ranking``, in result.json, and as ``ablation.png`` in the experiment folder.
"""
from __future__ import annotations

from typing import Any

from kernel.controller import DONE, Controller, ExperimentError, TrialSpec
from plugins.ablators import Ablator
from plugins.registry import PluginError, resolve

from ..base import ConfigError, Context, check_direction, check_int
from ..single import TrialFailed
from .chart import ranking_chart
from .study import AblationStudy


class _AblationController(Controller):
    """One trial per component the ablator lists, the baseline first, all with the same hparams."""

    def __init__(self, ablator: Ablator, hparams: dict, metric: str, direction: str):
        self.ablator, self.hparams, self.metric, self.direction = ablator, hparams, metric, direction
        self.total = ablator.count()

    def next_trial(self, trial_id: int):
        component = self.ablator.next_trial()
        if component is None:
            return DONE
        return TrialSpec(dict(self.hparams), info={"ablated": component.label, "kind": component.kind},
                         extra=component.to_extra())

    def score(self, result: Any) -> float | None:
        if isinstance(result, dict):
            if self.metric not in result:
                returned = ", ".join(sorted(result)) or "nothing"
                raise ExperimentError(f"the training function returned {{{returned}}} but the ablation "
                                      f"compares metric={self.metric!r}; return it, or pass metric= one of: {returned}")
            result = result[self.metric]
        return super().score(result)

    def describe(self) -> dict[str, Any]:
        return {"ablator": type(self.ablator).__name__, "metric": self.metric, "total_trials": self.total}


class Ablation(Context):
    """Run ``study`` with ``ablator`` ("loco", a registered name, or an instance)."""

    name = "ablation"
    provides = frozenset({"hparams", "reporter", "strategy", "dataset", "model"})

    def __init__(self, study: AblationStudy, ablator: Any = "loco", *, direction: str = "max",
                 metric: str = "metric", workers: int = 2, hparams: dict[str, Any] | None = None,
                 launcher: Any = "local", name: str | None = None):
        owner = "Ablation"
        if not isinstance(study, AblationStudy):
            raise ConfigError(f"{owner}(study=...) needs a contexts.AblationStudy, got {type(study).__name__}")
        study.validate()
        check_int("workers", workers, 0, owner)
        self.direction = check_direction(direction, owner)
        if not isinstance(metric, str) or not metric:
            raise ConfigError(f"{owner}(metric={metric!r}): the name of a returned value, e.g. 'accuracy'")
        self.study, self.ablator, self.metric = study, ablator, metric
        self.workers, self.launcher = workers, launcher
        self.hparams = dict(hparams or {})
        if name is not None:
            self.name = name
        if self._build().total < 2:
            raise ConfigError(f"{owner}: the study leaves nothing out; include features or layers "
                              f"(study.features.include(...), study.model.layers.include(...))")

    def _build(self) -> _AblationController:
        try:
            ablator = resolve("lagom.ablators", self.ablator, Ablator)
        except PluginError as exc:
            raise ConfigError(str(exc)) from None
        ablator.setup(self.study)
        return _AblationController(ablator, self.hparams, self.metric, self.direction)

    def controller(self) -> Controller:
        return self._build()

    def injector(self):
        return self.study.injector()

    def finish(self, result):
        base = next((t for t in result.trials if t.info.get("kind") == "baseline"), None)
        if base is None or base.state != "finished" or base.metric is None:
            why = base.error if base is not None else "it did not run"
            raise TrialFailed(f"the ablation's baseline failed, so nothing can be compared: {why}\n\n"
                              f"{(base.traceback if base is not None else '') or ''}", result)
        rows = []
        for t in result.trials:
            if t is base:
                continue
            ok = t.state == "finished" and t.metric is not None
            rows.append({"component": t.info["ablated"], "kind": t.info["kind"], "trial": t.id,
                         "metric": t.metric if ok else None,
                         "effect": (t.metric - base.metric) if ok else None, "state": t.state})
        sign = self.direction.sign
        # Most important first: leaving it out hurts the most. Failed trials go last.
        rows.sort(key=lambda r: (r["effect"] is None, sign * (r["effect"] or 0.0), r["trial"]))
        chart = ranking_chart(rows, base.metric, self.metric, result.path / "ablation.png")
        result.extras.update(ranking=rows, baseline=base.metric, ablation_chart=str(chart) if chart else None)
        result.notes.append(f"  baseline {self.metric} = {base.metric:.4g}; effect of leaving out, "
                            f"most important first:")
        for r in rows:
            effect = "failed" if r["effect"] is None else f"{r['effect']:+.4f}"
            result.notes.append(f"    {r['component']:<28s} {effect}")
        result.save()
        return result
