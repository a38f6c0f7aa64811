"""One experiment folder read as it grows, for the dashboard: the journal and curves.jsonl from
where the last read stopped, agents.json when it changed, result.json's ranking at the end.

It needs nothing but the folder, so it follows an experiment running here, one running on
another host that shares the folder, one that ended and one whose kernel died. Each
:meth:`Experiment.update` returns what changed since the last (a delta the page applies), and
:meth:`Experiment.snapshot` everything a page needs to start.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import msgpack

from ... import fastjson
from ... import records
from ...journal import holder
from ...timeline import Change, Timeline
from . import columns
from .tail import Tail

HEAVY = ("history", "series", "result", "traceback", "interruptions")
"""An ended trial's fields the page never shows in a table: dropped from the fold's copy, so a
100,000-trial experiment does not hold every curve twice."""

IMPORTANCE_SAMPLE = 10_000
"""The page's importance is computed from at most this many finished trials, drawn at random."""

CURVES_AT_START = 300
"""At most this many learning curves go with a snapshot (the running trials, the best, the
latest); a page asks for any other trial's curve when it is opened."""


def _finite(v: Any) -> float | None:
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def summary(t: dict[str, Any], started_at: float) -> dict[str, Any]:
    """What the page shows of a trial (its curve travels apart)."""
    info = t.get("info") or {}
    error = t.get("error")
    started = t.get("started")
    return {"id": t["id"], "state": t["state"], "params": t.get("params") or {}, "budget": t.get("budget"),
            "metric": _finite(t.get("metric")), "duration": t.get("duration"), "agent": t.get("agent"),
            "attempts": t.get("attempts"), "parent": t.get("parent"), "ablated": info.get("ablated"),
            "kind": info.get("kind"), "seed": info.get("seed"), "audit": info.get("audit"), "values": t.get("values"),
            "compile_s": t.get("compile_s"),
            "started": None if started is None else round(started - started_at, 3),
            "error": None if not error else str(error).splitlines()[0][:300]}


class Experiment:
    """The state of one experiment as its folder tells it, kept up to date by :meth:`update`."""

    def __init__(self, folder: Path):
        self.folder, self.name = Path(folder), Path(folder).name
        self._journal, self._curves = Tail(self.folder / records.JOURNAL), Tail(self.folder / records.CURVES)
        self.timeline = Timeline()  # the journal's one reading; what follows is the page's view of it
        self.status: dict[str, Any] = self.timeline.status  # and "running": a kernel holds the folder
        self.trials: dict[int, dict[str, Any]] = {}  # summaries of the timeline's trials
        self.curves: dict[int, list | bytes] = {}  # an ended trial's packed: a tenth of the memory
        self.series: dict[int, dict[str, list]] = {}
        self.best: list[list] = []  # [seconds since the start, best metric so far, trial, budget]
        self._best_by_budget: dict[Any, float] = {}
        self.agents = self.timeline.agents
        self._importance: dict[str, Any] = {}
        self._importance_key: tuple | None = None
        self.ranking: list | None = None
        self.version = 0
        self._agents_mtime = self._result_mtime = 0.0
        self._ablation = False  # any trial leaves a component out
        self._delta: dict[str, Any] = {}
        self._dirty: dict[int, None] = {}  # trials whose summary is out of date, summarized once per read

    @property
    def head(self) -> dict[str, Any]:
        return self.timeline.head

    @property
    def started_at(self) -> float:
        return self.timeline.started_at

    @property
    def direction(self) -> str:
        return self.head.get("direction") or (self.head.get("controller") or {}).get("direction") or "max"

    @property
    def metric(self) -> str | None:
        return self.head.get("metric") or (self.head.get("controller") or {}).get("metric")

    # -- reading -------------------------------------------------------------------------
    def update(self) -> dict[str, Any] | None:
        """Read what the folder gained; the delta (None when nothing changed)."""
        self._delta = {}
        events = 0
        for e in self._journal.read():
            events += 1
            change = self.timeline.apply(e)
            if change is not None:
                self._apply(change, e)
        self._summarize_dirty()
        for c in self._curves.read():
            self._curve_line(c)
        self._read_agents()
        self._read_ranking()
        self._settle(trials=self.refresh_status() or bool(events))
        self._summarize_dirty()
        if not self._delta:
            return None
        self.version += 1
        delta, self._delta = self._delta, {}
        delta["v"] = self.version
        if "trials" in delta:
            delta["trials"] = [self.trials[i] for i in delta["trials"] if i in self.trials]
        return delta

    def _changed(self, trial_id: int) -> None:
        self._delta.setdefault("trials", {})[trial_id] = None  # a dict: ordered, each once

    def _points(self, trial_id: int, start: int, points: list) -> None:
        self._delta.setdefault("points", []).append([trial_id, start, points])

    def _curve_line(self, c: dict[str, Any]) -> None:
        t = self.trials.get(c.get("trial"))
        if t is None or t["state"] != "running" or c.get("attempt") != t["attempts"]:
            return  # ended meanwhile (its end record has the whole curve), or an older attempt's
        curve, start = self.curves.setdefault(t["id"], []), int(c.get("from", 0))
        del curve[start:]
        curve.extend(c.get("points") or [])
        self._points(t["id"], start, c.get("points") or [])
        for name, part in (c.get("series") or {}).items():
            points = self.series.setdefault(t["id"], {}).setdefault(name, [])
            del points[int(part.get("from", 0)):]
            points.extend(part.get("points") or [])

    def _read_agents(self) -> None:
        try:
            mtime = os.stat(self.folder / records.AGENTS).st_mtime
        except FileNotFoundError:
            return
        if mtime == self._agents_mtime:
            return
        self._agents_mtime = mtime
        try:
            live = fastjson.loads((self.folder / records.AGENTS).read_bytes()).get("agents", [])
        except (OSError, ValueError, AttributeError):
            return
        for a in live:
            known = self.agents.setdefault(a["id"], {"id": a["id"]})
            known.update({k: a.get(k) for k in records.AGENT_FIELDS if k != "id"})
        self._delta["agents"] = True

    def _settle(self, trials: bool) -> None:
        """Without a kernel nothing runs, whatever the journal and agents.json said last: the
        trials it left running were cut short (the timeline's rule; looked at only when the
        journal or the kernel's presence changed, not at every poll of a large experiment), and
        the agents left with the experiment's end, or nobody knows (the kernel died, or was
        interrupted)."""
        if self.status.get("running"):
            return
        for tid in self.timeline.settle(alive=False) if trials else ():
            self._summarize(tid)
        left = "left" if self.status.get("closed") else "unknown"
        for a in self.agents.values():
            if a.get("state") not in ("gone", "broken", left):
                a.update(state=left, trial=None, silent_s=None)
                self._delta["agents"] = True

    def _read_ranking(self) -> None:
        """An ablation's final ranking, from result.json once it has one (written after the
        journal's close); the page computes a provisional one until then."""
        if not self.status.get("closed") or self.ranking is not None or not self._ablation:
            return
        try:
            mtime = os.stat(self.folder / records.RESULT).st_mtime
            if mtime == self._result_mtime:
                return
            self._result_mtime = mtime
            ranking = fastjson.loads((self.folder / records.RESULT).read_bytes()).get("ranking")
        except (OSError, ValueError, AttributeError):
            return
        if isinstance(ranking, list):
            self.ranking = ranking
            self._delta["ranking"] = True

    def refresh_status(self) -> bool:
        """Whether a kernel holds the folder now (running), told as a change when it changes."""
        running = holder(self.folder) is not None
        if running != self.status.get("running"):
            self.status["running"] = running
            self._delta_status()
            return True
        return False

    def _delta_status(self) -> None:
        self._delta["status"] = True

    # -- what a page gets ------------------------------------------------------------------
    def overview(self) -> dict[str, Any]:
        """The experiment in one line of the list: name, context, state and counts."""
        counts = self.timeline.counts()
        best = self.best[-1] if self.best else None
        return {"name": self.name, "context": self.head.get("context"), "metric": self.metric,
                "direction": self.direction, "state": self.state(), "counts": counts,
                "best": None if best is None else {"metric": best[1], "trial": best[2]},
                "started": self.started_at}

    def state(self) -> str:
        return self.timeline.outcome(bool(self.status.get("running")))

    def snapshot(self) -> dict[str, Any]:
        drawn = self._drawn()
        return {"kind": "snapshot", "v": self.version, **self.overview(), "head": self.head,
                "status": self.status, "trials": columns.encode(self.trials.values()),
                "curves": {i: self.curve(i) for i in drawn}, "best_so_far": self.best,
                "agents": list(self.agents.values()), "ranking": self.ranking}

    def frame(self, delta: dict[str, Any]) -> dict[str, Any]:
        """A delta as the page reads it: changed trials, new points, new bests, the agents and
        the state when they changed."""
        out = {"kind": "delta", "v": delta["v"], "trials": delta.get("trials", []), "points": delta.get("points", []),
               "best_so_far": delta.get("best", []), "removed": delta.get("removed", [])}
        if delta.get("agents"):
            out["agents"] = list(self.agents.values())
        if delta.get("status") or delta.get("ranking"):
            out.update(overview=self.overview(), status=self.status, ranking=self.ranking)
        return out

    def importance(self, budget: float | None = None) -> dict[str, Any]:
        """Which hyperparameters mattered so far (outputs/importance.py), recomputed only when
        trials ended since the last ask, from at most IMPORTANCE_SAMPLE trials of the budget
        (0.1 s; all 100,000 would hold the server 1 s)."""
        done = [t for t in self.trials.values() if t["state"] == "finished" and t["audit"] is None]
        key = (len(done), budget)
        if self._importance_key != key:
            from ..importance import of_trials

            try:
                directions = self.head.get("directions") or [self.direction]
                rows = of_trials(done, directions, budget, sample=IMPORTANCE_SAMPLE)
                self._importance = {"rows": rows, "of": rows[0]["of"] if rows else 0,
                                    "sampled": rows[0]["sampled"] if rows else 0}
            except (ImportError, ValueError) as exc:
                self._importance = {"note": str(exc)}
            self._importance_key = key
        return self._importance

    def _drawn(self) -> list[int]:
        """The curves a page starts with: every one when few, else running, best and latest."""
        if len(self.trials) <= CURVES_AT_START:
            return list(self.trials)
        sign = 1 if self.direction == "max" else -1
        running = [i for i, t in self.trials.items() if t["state"] == "running"]
        ranked = sorted((i for i, t in self.trials.items() if t["metric"] is not None),
                        key=lambda i: -sign * self.trials[i]["metric"])
        latest = sorted(self.trials, reverse=True)
        chosen = dict.fromkeys(running[:100] + ranked[:150] + latest[:50])
        return list(chosen)[:CURVES_AT_START]

    def trial(self, trial_id: int, log_bytes: int = 65536) -> dict[str, Any] | None:
        """One trial with its whole curve, its named series and the end of its log."""
        t = self.trials.get(trial_id)
        if t is None:
            return None
        log_path = self.folder / "trials" / f"trial-{trial_id:05d}.log"
        try:
            size = log_path.stat().st_size
            with open(log_path, "rb") as f:
                f.seek(max(0, size - log_bytes))
                log = f.read().decode("utf-8", "replace")
        except OSError:
            size, log = 0, ""
        return {**t, "curve": self.curve(trial_id), "series": self.series.get(trial_id, {}),
                "log": log, "log_size": size, "log_cut": size > log_bytes}

    # -- what the journal changed, as the page sees it ----------------------------------------
    def _apply(self, change: Change, e: dict[str, Any]) -> None:
        if change.status:
            self._delta_status()
        if change.agent is not None:
            self._delta["agents"] = True
        for tid in change.trials:
            self._summarize(tid)
        if change.trial is None:
            return
        tid = change.trial
        if tid not in self.timeline.trials:  # withdrawn: never a trial of this run
            if self.trials.pop(tid, None) is not None:
                self.curves.pop(tid, None)
                self._delta.setdefault("removed", []).append(tid)
            return
        if change.event in ("start", "requeue"):
            self.curves[tid] = []
            self.series.pop(tid, None)
            self._points(tid, 0, [])
        elif change.event == "end":
            self._ended(tid, e)
        self._summarize(tid)
        self._ablation = self._ablation or "ablated" in (self.timeline.trials[tid].get("info") or {})

    def _summarize(self, tid: int) -> None:
        self._dirty[tid] = None
        self._changed(tid)
        if tid in self._delta.get("removed", ()):  # withdrawn, then proposed again by a resumed kernel
            self._delta["removed"].remove(tid)

    def _summarize_dirty(self) -> None:
        for tid in self._dirty:
            t = self.timeline.trials.get(tid)
            if t is not None:
                self.trials[tid] = summary(t, self.started_at)
        self._dirty.clear()

    def curve(self, trial_id: int) -> list:
        c = self.curves.get(trial_id, [])
        return msgpack.unpackb(c, use_list=True) if isinstance(c, bytes) else c

    def _ended(self, tid: int, e: dict[str, Any]) -> None:
        # the page shows none of the heavy fields; the curve is kept apart, packed (msgpack's
        # bytes are exactly as long as they need be; orjson's keep a 4 KB buffer each)
        d = self.timeline.trials[tid] = {k: v for k, v in self.timeline.trials[tid].items() if k not in HEAVY}
        history = e["trial"].get("history") or []  # [step, value] lists, as JSON has them
        self.curves[tid] = msgpack.packb(history)
        if e["trial"].get("series"):
            self.series[tid] = e["trial"]["series"]
        self._points(tid, 0, history)
        metric, budget = _finite(d.get("metric")), d.get("budget")
        if metric is not None and d.get("state") == "finished":
            best = self._best_by_budget.get(budget)
            if best is None or (metric > best if self.direction == "max" else metric < best):
                self._best_by_budget[budget] = metric
                self.best.append([round(e.get("time", 0.0) - self.started_at, 3), metric, tid, budget])
                self._delta.setdefault("best", []).append(self.best[-1])
