"""What a running experiment shows in its folder beyond the journal: learning curves as they
grow, and the agents' health, for the dashboard and anything else that reads the folder (from
another host that shares it, too).

- ``curves.jsonl``: every ``interval`` seconds, one line per running trial whose curve grew:
  ``{"trial", "attempt", "from", "points", "series"}``, ``points`` being the broadcasts from
  index ``from`` on (``from`` 0 again when a trial restarted after its agent was lost). A
  trial's whole curve is in its journal ``end`` record; this file only tells what came before.
- ``agents.json``: every agent that joined, its state, its trial and how long since the
  kernel heard from it, rewritten whole (atomically) every ``agents_every`` seconds.

Written on a timer, never per broadcast: the metric path stays as cheap as without it.
"""
from __future__ import annotations

import os
from typing import Any

from .. import fastjson, records
from ..views import KernelView, Observer

CURVES = records.CURVES
AGENTS = records.AGENTS


class LiveFiles(Observer):
    def __init__(self, interval: float = 0.25, agents_every: float = 1.0):
        self.interval, self.agents_every = interval, agents_every
        self._running: dict[int, Any] = {}  # trial id -> the Trial
        self._sent: dict[int, tuple[int, int, dict[str, int]]] = {}  # id -> (attempt, points, per series)
        self._out = None
        self._timer = None
        self._agents_due = 0.0

    def experiment_started(self, view: KernelView) -> None:
        try:
            self._out = open(view.path / CURVES, "ab")
        except OSError:
            return  # the journal reports a folder that cannot be written; this is only a view
        self._timer = view.call_later(self.interval, self._tick, view)

    def trial_started(self, view: KernelView, trial) -> None:
        self._running[trial.id] = trial

    def trial_ended(self, view: KernelView, trial) -> None:
        self._running.pop(trial.id, None)
        self._sent.pop(trial.id, None)

    def _tick(self, view: KernelView) -> None:
        self._write_curves()
        self._agents_due -= self.interval
        if self._agents_due <= 0:
            self._agents_due = self.agents_every
            self._write_agents(view)
        self._timer = view.call_later(self.interval, self._tick, view)

    def _write_curves(self) -> None:
        lines = [line for trial in self._running.values() if (line := self._grown(trial)) is not None]
        if lines and self._out is not None:
            try:
                self._out.write(b"".join(lines))
                self._out.flush()
            except OSError:
                self._out = None

    def _grown(self, trial) -> bytes | None:
        """The line for what ``trial`` broadcast since the last one, or None if nothing."""
        attempt, sent, series_sent = self._sent.get(trial.id, (trial.attempts, 0, {}))
        if attempt != trial.attempts:  # ran again from scratch: its curve starts over
            attempt, sent, series_sent = trial.attempts, 0, {}
        history, series = trial.history, trial.series
        grown = {name: points[series_sent.get(name, 0):] for name, points in series.items()
                 if len(points) > series_sent.get(name, 0)}
        if len(history) <= sent and not grown:
            return None
        line = {"trial": trial.id, "attempt": attempt, "from": sent, "points": history[sent:]}
        if grown:
            line["series"] = {name: {"from": series_sent.get(name, 0), "points": pts} for name, pts in grown.items()}
        self._sent[trial.id] = (attempt, len(history), {name: len(points) for name, points in series.items()})
        return fastjson.line(line)

    def _write_agents(self, view: KernelView) -> None:
        target = view.path / AGENTS
        tmp = target.with_suffix(".json.tmp")
        try:
            tmp.write_bytes(fastjson.line({"agents": view.agents}))
            os.replace(tmp, target)
        except OSError:
            pass

    def experiment_ended(self, view: KernelView, result) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._write_curves()
        self._write_agents(view)
        if self._out is not None:
            self._out.close()
            self._out = None
