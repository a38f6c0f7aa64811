"""The result that :func:`kernel.lagom` returns: every trial, the best one by the one rule of
:mod:`kernel.trials`, the Pareto front, a table (``dataframe()``), result.json and the summary
lines a search ends with.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transports.codec import traced_of

from . import fastjson, records
from .direction import Direction
from .trials import COUNTED, ENDED, Trial, TrialState, best_trial, budget_of, rank_key

_SCALAR = (int, float, str, bool, type(None))


def _row(t: Trial) -> dict[str, Any]:
    row = {"trial": t.id, "state": str(t.state), "budget": t.budget, "metric": t.metric, "duration": t.duration,
           "compile_s": t.compile_s, "programs_compiled": t.programs_compiled, "programs_cached": t.programs_cached,
           "agent": t.agent, "attempts": t.attempts, "parent": t.parent, "error": t.error,
           "started": t.started, "ended": t.ended}
    row.update((f"params_{k}", v if isinstance(v, _SCALAR) else str(v)) for k, v in t.params.items())
    row.update((f"info_{k}", v) for k, v in t.info.items() if isinstance(v, _SCALAR))
    row.update((f"metrics_{k}", v) for k, v in t.metrics.items() if isinstance(v, _SCALAR))
    return row


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    """Every row's keys, in first-seen order (trials of one search may return different metrics)."""
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen) or ["trial"]


def compile_lines(trials: list[Trial]) -> list[str]:
    """What the trials waited for XLA, and why when it is most of their time: trials of a shape
    seen before compiled their programs again (hyperparameters baked into the step)."""
    timed = [t for t in trials if t.compile_s is not None and t.duration]
    if not timed:
        return []
    spent, total = sum(t.compile_s for t in timed), sum(t.duration for t in timed)
    compiled, cached = sum(t.programs_compiled for t in timed), sum(t.programs_cached for t in timed)
    lines = [f"  XLA compilation: {spent / total:.0%} of trial time ({spent:.3g} of {total:.3g} s); {compiled} "
             f"programs compiled, {cached} loaded from the cache"]
    seen: set[tuple] = set()
    again = later = 0
    for t in sorted(timed, key=lambda t: t.started or 0.0):
        traced = traced_of(t.traced, t.params)
        shape = tuple(sorted((k, repr(v)) for k, v in t.params.items() if k not in traced)) + (repr(t.budget),)
        if shape in seen:
            later += 1
            again += t.programs_compiled > 0
        seen.add(shape)
    if spent > total / 2 and later and again > later / 2:
        lines.append(f"    {again} of {later} trials of a shape seen before compiled again: hyperparameters closed over "
                     f"by a jitted step are baked into it as constants; hand them to the step as arguments "
                     f"(def step(state, batch, hparams) with strategy.step: docs/compile.md)")
    elif spent > total / 2 and compiled > cached:  # what a first run on a host shows: say it is paid once
        lines.append("    most programs were new to this host's compilation cache (a first run, or new shapes): "
                     "a later run loads them; each distinct shape (a width, a depth, a choice) compiles its own")
    return lines


class NoBestTrial(LookupError):
    """``result.best`` of an experiment in which no trial could be ranked; the message says why."""


def _returned(result: Any) -> str:
    """What a single run's function returned, as a summary line shows it."""
    if isinstance(result, dict):
        return "{" + ", ".join(f"{k!r}: {_fmt(v)}" for k, v in result.items()) + "}" if result else "an empty dict"
    return "nothing" if result is None else _fmt(result)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


@dataclass
class Result:
    """Everything an experiment produced. ``best`` is None when no trial could be ranked.

    ``extras`` holds what a context adds (an ablation's ``ranking`` and ``baseline``, a chart's
    path); each is also an attribute (``result.ranking``) and a key of result.json. ``notes``
    are lines a context adds to the printed summary.
    """

    experiment: str
    path: Path
    context: str
    metric: str | None
    direction: str
    trials: list[Trial]
    duration: float
    rejected: dict[str, int] = field(default_factory=dict)  # dropped messages, by reason
    agents: int = 0
    extras: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list, repr=False)
    objectives: list[str] | None = None  # a search of several objectives: their names...
    directions: list[str] | None = None  # ...and which way each improves
    # The exceptions of trials that failed in this process (a single run's agent is a thread of
    # it), by trial id: a single run raises the original. Not in result.json.
    errors: dict[int, BaseException] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, kernel: Any) -> "Result":
        """The result of a kernel's experiment, as it stands."""
        controller = kernel.controller
        return cls(experiment=kernel.experiment, path=kernel.folder.path, context=kernel.context_name,
                   metric=controller.metric, direction=controller.direction,
                   trials=[kernel.book.trials[k] for k in sorted(kernel.book.trials)],
                   duration=time.time() - kernel.started_at, rejected=dict(kernel.rejected),
                   agents=len(kernel.agents), objectives=controller.objectives,
                   directions=None if not controller.directions else [str(d) for d in controller.directions])

    @classmethod
    def of_folder(cls, folder: Path) -> "Result":
        """An experiment's result as its journal tells it (a result.json a full disk kept out);
        a context's extras, which its own code computes, are not in it."""
        from .timeline import Timeline

        timeline = Timeline.read(folder)
        head = timeline.head
        trials = [Trial.from_dict({"id": tid, **t}) for tid, t in sorted(timeline.trials.items())]
        return cls(experiment=head.get("id", folder.name), path=folder, context=head.get("context", ""),
                   metric=head.get("metric"), direction=head.get("direction") or "max", trials=trials,
                   duration=max([t.ended or 0.0 for t in trials], default=timeline.started_at) - timeline.started_at,
                   objectives=head.get("objectives"), directions=head.get("directions"))

    def __post_init__(self) -> None:
        for t in self.trials:
            t.folder = self.path

    def __getattr__(self, name: str) -> Any:
        extras = self.__dict__.get("extras") or {}
        if name in extras:
            return extras[name]
        raise AttributeError(f"Result has no attribute {name!r}")

    @property
    def best(self) -> Trial:
        """The best trial; raises :class:`NoBestTrial` (saying why) when none can be ranked, and
        in a search of several objectives, where there is a front to choose from instead."""
        if self.objectives:
            raise NoBestTrial(self._why_no_best())
        best = best_trial(self.trials, self.direction)
        if best is None:
            raise NoBestTrial(self._why_no_best())
        return best

    @property
    def pareto(self) -> list[Trial]:
        """The trials no other beats in every objective (a search of several), among the finished
        ones of the largest budget any finished (as ``best``); by the first objective, best first."""
        if not self.objectives:
            raise AttributeError("result.pareto is for a search of several objectives (metric=[...]); "
                                 "this one has one: result.best")
        from .pareto import front_at_top_budget

        finished = [t for t in self.trials if t.state == TrialState.FINISHED]
        return front_at_top_budget(finished, lambda t: t.values, budget_of, lambda t: t.id,
                                   [str(Direction.of(d)) for d in self.directions])

    def best_at(self, budget: float | int) -> Trial:
        """The best trial among those run with ``budget`` (an ASHA rung, say), finished or
        stopped alike; raises :class:`NoBestTrial` naming the budgets there are."""
        at = [(key, t) for t in self.trials if t.budget == budget
              and (key := rank_key(t, self.direction)) is not None]
        if not at:
            budgets = sorted({t.budget for t in self.trials if t.budget is not None})
            raise NoBestTrial(f"no ranked trial ran with budget {budget!r}; the budgets run: {budgets or 'none'}")
        return max(at, key=lambda kt: (kt[0][2], kt[0][3]))[1]

    def _why_no_best(self) -> str:
        if self.objectives:
            return (f"a search of several objectives ({', '.join(f'{d} {m}' for m, d in zip(self.objectives, self.directions))}) "
                    f"has a Pareto front, not one best trial: choose from result.pareto ({len(self.pareto)} trials), "
                    f"e.g. max(result.pareto, key=lambda t: t.values[0])")
        failed = [t for t in self.trials if t.state == "failed"]
        if failed:
            return (f"no trial finished ({len(failed)} of {len(self.trials)} failed); first failure: trial "
                    f"{failed[0].id}: {failed[0].error} (its traceback: result.trials[{failed[0].id}].traceback)")
        counts = ", ".join(f"{self.count(s)} {s}" for s in ENDED if self.count(s)) or "none ran"
        return f"no trial finished with a metric to rank ({len(self.trials)} trials: {counts})"

    def count(self, state: str) -> int:
        return sum(1 for t in self.trials if t.state == state)

    def importance(self, budget: float | int | None = None, top: float = 0.1, rounds: int = 100,
                   method: str = "ped") -> list[dict]:
        """Which hyperparameters mattered, most first: each one's share of how much the top
        ``top`` of the finished trials (at ``budget``; by default the largest at which 10 finished)
        prefer certain values, with a 90% interval, and whether it stands out from the rest
        (kernel/outputs/importance.py). ``method="fanova"``: the share of the metric's variance
        each explains alone (a random forest's functional ANOVA, kernel/outputs/fanova.py; needs
        scikit-learn). Needs numpy and at least 10 finished trials."""
        try:
            import numpy  # noqa: F401
            if method == "fanova":
                import sklearn  # noqa: F401
        except ImportError as exc:
            raise ImportError(f"result.importance(method={method!r}) needs {exc.name}: pip install "
                              f"{'scikit-learn' if exc.name == 'sklearn' else exc.name}") from None
        from .outputs.importance import of_trials

        return of_trials(self.trials, self.directions or [self.direction], budget, top, rounds, method)

    def _importance(self) -> list[dict] | None:
        """For result.json and the summary: a search's importance at the top budget, when there
        are numpy and enough finished trials; else None. Computed once."""
        if "_importance_rows" not in self.__dict__:
            rows = None
            if self.context == "HyperparameterSearch" and any(t.params for t in self.trials):
                try:
                    rows = self.importance()
                except (ImportError, ValueError):
                    rows = None
            self.__dict__["_importance_rows"] = rows
        return self.__dict__["_importance_rows"]

    def dataframe(self) -> "pandas.DataFrame":  # noqa: F821 (pandas is optional)
        """One row per trial, indexed by trial id: state, budget, metric, duration, agent,
        attempts, parent, error, start and end times, then ``params_<name>`` for each parameter
        and ``metrics_<name>`` for each number the function returned (as Optuna's
        ``trials_dataframe``). Needs pandas."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("result.dataframe() needs pandas: pip install pandas") from None
        rows = [_row(t) for t in self.trials]
        frame = pd.DataFrame(rows, columns=_columns(rows)).set_index("trial")
        for when in ("started", "ended"):
            frame[when] = pd.to_datetime(frame[when], unit="s", utc=True)
        return frame

    def to_dict(self) -> dict[str, Any]:
        return {**self._head(), "trials": [t.to_dict() for t in self.trials]}

    def _head(self) -> dict[str, Any]:
        """Everything of result.json but the trials."""
        best = None if self.objectives else best_trial(self.trials, self.direction)
        several = {"objectives": self.objectives, "directions": self.directions,
                   "pareto": [t.id for t in self.pareto]} if self.objectives else {}
        return {
            "experiment": self.experiment,
            "path": str(self.path),
            "context": self.context,
            "metric": self.metric,
            "direction": self.direction,
            "duration": self.duration,
            "agents": self.agents,
            "rejected_messages": self.rejected,
            "counts": {s: self.count(s) for s in COUNTED},
            "best": None if best is None else {"trial": best.id, "params": best.params, "budget": best.budget,
                                               "state": best.state, "metric": best.metric, "result": best.result},
            **({"no_best": self._why_no_best()} if best is None else {}),
            **several,
            **({"importance": rows} if (rows := self._importance()) else {}),
            **self.extras,
        }

    def save(self, path: Path | None = None) -> Path:
        """result.json: the summary indented, then one line per trial, written a trial at a time
        (100,000 trials never make one string in memory)."""
        target = Path(path or self.path / records.RESULT)
        tmp = target.with_suffix(".json.tmp")
        with open(tmp, "wb") as f:
            f.write(fastjson.pretty(self._head())[:-1].rstrip() + b',\n  "trials": [')
            for i, t in enumerate(self.trials):
                f.write(b"\n    " if i == 0 else b",\n    ")
                f.write(fastjson.line(t.to_dict())[:-1])
            f.write(b"\n  ]\n}\n")
        tmp.replace(target)  # never a half-written result.json
        return target

    def __str__(self) -> str:
        counts = ", ".join(f"{self.count(s)} {s}" for s in COUNTED if self.count(s))
        lines = [f"{self.context} {self.experiment}: {len(self.trials)} trials ({counts or 'none'}) "
                 f"in {self.duration:.1f}s on {self.agents} agent(s)"]
        best = None if self.objectives else best_trial(self.trials, self.direction)
        if self.objectives:
            lines.extend(self._front_lines())
        if best is not None and self.metric is None:  # one run (Single, Distributed): nothing was ranked
            lines.append(f"  returned: {_returned(best.result)}")
        elif best is not None:
            lines.append(f"  best: trial {best.id}, {self.metric} = {_fmt(best.metric)} ({self.direction})"
                         + self._best_budget(best))
            if best.params:
                lines.append("        " + ", ".join(f"{k}={_fmt(v)}" for k, v in best.params.items()))
        lines.extend(self.notes)
        rows = self._importance() if len(self.trials) >= 20 else None
        if rows:
            from .outputs.importance import lines as importance_lines

            lines.extend(importance_lines(rows))
        lines.extend(compile_lines(self.trials))
        again = [t for t in self.trials if t.interruptions]
        if again:
            lines.append(f"  {len(again)} trial(s) ran again after their agent was lost; first: trial "
                         f"{again[0].id}: {again[0].interruptions[0]}")
        failed = [t for t in self.trials if t.state == "failed"]
        if failed:
            lines.append(f"  first failure: trial {failed[0].id}: {failed[0].error}")
        if self.rejected:
            lines.append(f"  rejected messages: {sum(self.rejected.values())} "
                         + str(dict(sorted(self.rejected.items()))))
        lines.append(f"  folder: {self.path}")
        return "\n".join(lines)

    def _front_lines(self, shown: int = 5) -> list[str]:
        front = self.pareto
        names = ", ".join(f"{d} {m}" for m, d in zip(self.objectives, self.directions))
        lines = [f"  Pareto front ({names}): {len(front)} trial(s)" + (f", the first {shown}:" if len(front) > shown else ":")]
        for t in front[:shown]:
            values = ", ".join(f"{m}={_fmt(v)}" for m, v in zip(self.objectives, t.values))
            lines.append(f"    trial {t.id}: {values}  (" + ", ".join(f"{k}={_fmt(v)}" for k, v in t.params.items()) + ")")
        return lines

    def _best_budget(self, best: Trial) -> str:
        """Where the best comes from, when trials had different budgets or none finished."""
        budgets = sorted({t.budget for t in self.trials if isinstance(t.budget, (int, float))})
        if best.state != TrialState.FINISHED:
            return ", a stopped trial (none finished)"
        if len(budgets) < 2:
            return ""
        lower = [b for b in budgets if b < best.budget]
        return (f" at budget {_fmt(best.budget)}, the largest any trial finished"
                + (f" (result.best_at({_fmt(lower[-1])}) for a lower one)" if lower else ""))

    def __repr__(self) -> str:
        best = best_trial(self.trials, self.direction)
        return (f"Result({self.experiment!r}, trials={len(self.trials)}, "
                f"best={None if best is None else best.id}, path={str(self.path)!r})")
