"""``Ablation``: the study's trials, the baseline first, each reported against the baseline.

The ablator plugin (``lagom.ablators``, default ``loco``) lists the components; each becomes one
trial whose ``dataset`` and ``model`` generators leave that component out (``repeats=k``: k
trials, with seeds ``seed``, ``seed+1``, ..., in ``hparams["seed"]``, the baseline's alike). At
the end, the components are ranked by effect (the metric without the component minus the
baseline's, paired by seed, with a 95% interval when repeated: ranking.py), in
``result.ranking``, in result.json, and as ``ablation.png`` in the experiment folder.
"""
from __future__ import annotations

from typing import Any

from kernel.controller import DONE, Controller, ExperimentError, TrialSpec
from plugins.ablators import Ablator
from plugins.registry import PluginError, resolve

from ..base import ConfigError, Context, check_direction, check_int, check_pack
from ..hpo import trial_runs
from ..single import TrialFailed
from .chart import ranking_chart
from .ranking import VERDICTS, rank, seed_ignored
from .study import AblationStudy


class _AblationController(Controller):
    """One trial per component the ablator lists and seed, the baseline first, all with the
    same hparams (and, repeated, each seed's ``seed``)."""

    gang: int = 1  # agents per trial (each trial a distributed run)
    run: dict[str, Any] | None = None

    def __init__(self, ablator: Ablator, hparams: dict, metric: str, direction: str, repeats: int = 1,
                 pack: int = 1):
        self.ablator, self.hparams, self.metric, self.direction = ablator, hparams, metric, direction
        self.repeats, self.pack = repeats, pack
        self.total = ablator.count() * repeats
        self._components: list | None = None
        self._issued = 0

    def next_trial(self, trial_id: int):
        if self._components is None:  # the ablator's list, once, then every seed of it in turn
            self._components = list(iter(self.ablator.next_trial, None))
        n = len(self._components)
        if self._issued >= n * self.repeats:
            return DONE
        if self.pack > 1:  # a component's seeds one after another: they pack together
            component, seed = divmod(self._issued, self.repeats)
        else:
            seed, component = divmod(self._issued, n)
        self._issued += 1
        component = self._components[component]
        hparams = dict(self.hparams, **dict(component.hparams))
        info = {"ablated": component.label, "kind": component.kind}
        if self.repeats > 1:
            hparams["seed"] = info["seed"] = self.hparams.get("seed", 0) + seed
        # Packed, the seed differs per lane (strategy.init makes each lane's state from its own).
        traced = [k for k, v in hparams.items() if type(v) is float or k == "seed"] if self.pack > 1 else None
        return TrialSpec(hparams, info=info, extra=component.to_extra(), gang=self.gang, run=self.run, traced=traced)

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
    """Run ``study`` with ``ablator`` ("loco", a registered name, or an instance).

    ``strategy``, ``agents_per_trial``, ``cpu_devices``: each trial a distributed run, as in
    ``HyperparameterSearch`` (``strategy="multihost", agents_per_trial=2``: a gang per trial).
    ``pack``: with ``repeats``, run up to this many seeds of one component as the lanes of one
    program (the function written against ``strategy``; docs/packing.md)."""

    name = "ablation"
    provides = frozenset({"hparams", "reporter", "strategy", "dataset", "model"})

    def __init__(self, study: AblationStudy, ablator: Any = "loco", *, direction: str = "max",
                 metric: str = "metric", workers: int = 2, hparams: dict[str, Any] | None = None,
                 launcher: Any = "local", name: str | None = None, repeats: int = 1, strategy: Any = None,
                 agents_per_trial: int = 1, cpu_devices: int | None = None, pack: int = 1):
        owner = "Ablation"
        if not isinstance(study, AblationStudy):
            raise ConfigError(f"{owner}(study=...) needs a contexts.AblationStudy, got {type(study).__name__}")
        study.validate()
        check_int("workers", workers, 0, owner)
        check_int("repeats", repeats, 1, owner)
        self.repeats = repeats
        self.direction = check_direction(direction, owner)
        if not isinstance(metric, str) or not metric:
            raise ConfigError(f"{owner}(metric={metric!r}): the name of a returned value, e.g. 'accuracy'")
        self.study, self.ablator, self.metric = study, ablator, metric
        self.provides = frozenset({"hparams", "reporter", "strategy"} | study.provides())
        self.workers, self.launcher = workers, launcher
        self.hparams = dict(hparams or {})
        if name is not None:
            self.name = name
        self.gang, self.run = trial_runs(strategy, agents_per_trial, cpu_devices, workers, owner)
        self.pack = check_pack(pack, self.run, strategy, owner)
        if pack > 1 and repeats == 1:
            raise ConfigError(f"{owner}(pack={pack}): a pack runs the seeds of one component together (the "
                              f"components' programs differ); with repeats=1 there is nothing to pack: "
                              f"set repeats={pack}, or leave pack out")
        if self._build().total < 2:
            raise ConfigError(f"{owner}: the study leaves nothing out; include features or layers "
                              f"(study.features.include(...), study.model.layers.include(...))")

    def _build(self) -> _AblationController:
        try:
            ablator = resolve("lagom.ablators", self.ablator, Ablator)
        except PluginError as exc:
            raise ConfigError(str(exc)) from None
        ablator.setup(self.study)
        pack = self.__dict__.get("pack", 1)
        controller = _AblationController(ablator, self.hparams, self.metric, self.direction, self.repeats, pack)
        controller.gang, controller.run, controller.pack = self.__dict__.get("gang", 1), self.__dict__.get("run"), pack
        return controller

    def controller(self) -> Controller:
        return self._build()

    def injector(self):
        return self.study.injector()

    def finish(self, result):
        bases = [t for t in result.trials if t.info.get("kind") == "baseline"]
        baseline, rows = rank(result.trials, self.direction)
        if not baseline:
            base = bases[0] if bases else None
            why = base.error if base is not None else "it did not run"
            raise TrialFailed(f"the ablation's baseline failed, so nothing can be compared: {why}\n\n"
                              f"{(base.traceback if base is not None else '') or ''}", result)
        base_metric = sum(baseline.values()) / len(baseline)
        chart = ranking_chart(rows, base_metric, self.metric, result.path / "ablation.png")
        result.extras.update(ranking=rows, baseline=base_metric, baseline_by_seed=baseline, repeats=self.repeats,
                             ablation_chart=str(chart) if chart else None)
        runs = f", mean of {len(baseline)} seeds" if self.repeats > 1 else ""
        result.notes.append(f"  baseline {self.metric} = {base_metric:.4g}{runs}; effect of leaving out, "
                            f"most important first" + (" (95% interval, paired by seed):" if self.repeats > 1 else ":"))
        result.notes.extend(_grouped(rows))
        if self.repeats == 1:
            result.notes.append("  (one run each: repeats=5 gives intervals that tell effects from noise)")
        elif seed_ignored(baseline):
            result.notes.append(f"  the baseline's {len(baseline)} repeats all gave {base_metric:.6g}: the function "
                                f"ignores hparams['seed'] (seed its initialisation and data order with it), so the "
                                f"repeats say nothing of noise and no effect is called significant")
        result.save()
        return result


def _grouped(rows: list[dict]) -> list[str]:
    """The summary's ranking lines: important, harmful and indistinguishable components apart
    (a component whose removal helps is not "important"), then the failed ones."""
    lines = []
    for key, title in (*VERDICTS.items(), (None, "failed")):
        group = [r for r in rows if r.get("verdict") == key]
        if group:
            lines.append(f"    {title}:")
            lines += [f"      {r['component']:<26s} {_effect_text(r)}" for r in group]
    return lines


def _effect_text(row: dict) -> str:
    """Significant digits, not decimals: an effect of 1.7e-6 must not print as +0.0000."""
    if row["effect"] is None:
        return "failed"
    if row["ci"] is None:
        return f"{row['effect']:+.3g}"
    lo, hi = row["ci"]
    return f"{row['effect']:+.3g}  [{lo:+.3g}, {hi:+.3g}]"
