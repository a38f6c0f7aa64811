"""Trial records, their states, and the one rule for which trial is best (the result that
:func:`kernel.lagom` returns, built on them, is in :mod:`kernel.result`).

Which trial is best follows one rule, :func:`rank_key`, for the live display and for
``Result.best`` alike: among the finished trials of the largest budget any trial finished
(ASHA's top rung reached so far), the better metric, the earlier trial on a tie. A trial
trained for 3 of 9 epochs is never "the best configuration" while one trained for 9 exists;
stopped trials rank only when none finished.
"""
from __future__ import annotations

import enum
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .direction import Direction


class TrialState(enum.StrEnum):
    """Where a trial is: pending, running, or one of the four ways it ends."""

    PENDING = "pending"
    RUNNING = "running"
    FINISHED = "finished"
    STOPPED = "stopped"
    FAILED = "failed"
    LOST = "lost"
    INTERRUPTED = "interrupted"  # cut short when the experiment ended (an interrupt, an abort): a resume runs it


ENDED = (TrialState.FINISHED, TrialState.STOPPED, TrialState.FAILED, TrialState.LOST)
COUNTED = (*ENDED, TrialState.INTERRUPTED)  # what a result counts: the ended, and those cut short
RANKED = frozenset({TrialState.FINISHED, TrialState.STOPPED})


def rank_key(trial: "Trial", direction: str) -> tuple[bool, float, float, int] | None:
    """What ``trial`` ranks by (larger is better), or None when it cannot be ranked: finished
    first, then the larger budget, then the better metric, then the earlier trial. A trial
    that audits a decision (``info["audit"]``: a stopped trial run on) never ranks."""
    metric = trial.metric
    if trial.state not in RANKED or metric is None or math.isnan(metric) or "audit" in trial.info:
        return None
    finished = trial.state == TrialState.FINISHED
    return (finished, budget_of(trial) if finished else 0.0, _SIGN[direction] * metric, -trial.id)


_SIGN = {Direction.MAX: Direction.MAX.sign, Direction.MIN: Direction.MIN.sign}  # by "max"/"min" too


def budget_of(trial: "Trial") -> float:
    b = trial.budget
    return float(b) if isinstance(b, (int, float)) and not isinstance(b, bool) else 0.0


def best_trial(trials: Iterable["Trial"], direction: str) -> "Trial | None":
    """The best trial by :func:`rank_key`; a lone finished trial with no metric (a single run
    that returned nothing to rank) is its own best."""
    trials = list(trials)
    ranked = [(key, t) for t in trials if (key := rank_key(t, direction)) is not None]
    if ranked:
        return max(ranked, key=lambda kt: kt[0])[1]
    if len(trials) == 1 and trials[0].state == "finished":
        return trials[0]
    return None


@dataclass(slots=True)
class Trial:
    """One run of the training function: what it was given, what it did, how it ended."""

    id: int
    params: dict[str, Any]
    budget: float | int | None = None
    state: TrialState = TrialState.PENDING
    metric: float | None = None  # the number this trial is ranked by
    result: Any = None  # what the function returned (a dict of metrics, or a number)
    history: list[tuple[float, float]] = field(default_factory=list)  # (step, value) broadcasts
    started: float | None = None
    ended: float | None = None
    error: str | None = None
    traceback: str | None = None
    agent: str | None = None
    attempts: int = 0
    info: dict[str, Any] = field(default_factory=dict)
    parent: int | None = None  # the trial whose checkpoint this one continued from
    ranks: list[str] | None = None  # a distributed run's agents, by rank
    interruptions: list[str] = field(default_factory=list)  # why earlier attempts were cut short
    series: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # named broadcast values
    stop_requested: float | None = None  # when the kernel told it to stop (wall clock)
    checkpointed: bool = False  # it left files in its checkpoint folder (a later trial can continue it)
    values: list[float] | None = None  # every objective's value, in a search of several
    # What it waited for XLA (None: its function used no JAX): seconds tracing, lowering and
    # compiling, programs compiled, and programs loaded from the persistent cache instead.
    compile_s: float | None = None
    programs_compiled: int | None = None
    programs_cached: int | None = None
    run: dict[str, Any] | None = field(default=None, repr=False)  # how agents run it (distributed)
    extra: dict[str, Any] | None = field(default=None, repr=False)  # what the context's injector reads
    folder: Path | None = field(default=None, repr=False, compare=False)  # the experiment's (set by Result)
    gang: int = field(default=1, repr=False, compare=False)  # agents that run it together
    traced: list[str] | None = field(default=None, repr=False, compare=False)  # params a step gets traced
    # Its agent died holding trials handed out ahead, so which one killed it is not known: it
    # runs again alone (never handed out ahead), where a death is its own.
    suspect: bool = field(default=False, repr=False, compare=False)

    @property
    def duration(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return self.ended - self.started

    @property
    def checkpoint_dir(self) -> str | None:
        """The folder this trial saved its checkpoint in (its ``reporter.checkpoint_dir``), or None
        when it saved nothing there: load the best model from ``result.best.checkpoint_dir``."""
        if self.folder is None:
            return None
        from .journal import checkpoint_dir

        where = checkpoint_dir(self.folder, self.id)
        return where if os.path.isdir(where) and os.listdir(where) else None

    @property
    def metrics(self) -> dict[str, Any]:
        """The returned metrics as a dict (a bare number appears under ``"metric"``)."""
        if isinstance(self.result, dict):
            return self.result
        return {} if self.result is None else {"metric": self.result}

    def to_dict(self) -> dict[str, Any]:
        # By hand: dataclasses.asdict deep-copies every value, and this runs once per trial.
        return {
            "id": self.id, "params": self.params, "budget": self.budget, "state": self.state,
            "metric": self.metric, "result": self.result, "history": self.history,
            "started": self.started, "ended": self.ended, "duration": self.duration,
            "error": self.error, "traceback": self.traceback, "agent": self.agent,
            "attempts": self.attempts, "info": self.info, "parent": self.parent, "ranks": self.ranks,
            "stop_requested": self.stop_requested, "interruptions": self.interruptions, "series": self.series,
            "checkpointed": self.checkpointed, "values": self.values, "compile_s": self.compile_s,
            "programs_compiled": self.programs_compiled, "programs_cached": self.programs_cached,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Trial":
        d = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        d["history"] = [tuple(p) for p in d.get("history", [])]
        d["series"] = {k: [tuple(p) for p in v] for k, v in (d.get("series") or {}).items()}
        d["state"] = TrialState(d.get("state", "pending"))
        return cls(**d)

    def __repr__(self) -> str:
        metric = "" if self.metric is None else f", metric={self.metric:.6g}"
        return f"Trial({self.id}, {self.state}{metric}, params={self.params})"
