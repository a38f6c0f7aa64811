"""The one reading of an experiment's journal: its trials by id with their state, the
experiment's status, its agents.

Resume, ``status``, report.html and the dashboard all fold the journal through
:meth:`Timeline.apply`, event by event, so they cannot disagree on what a record means (they
did: a requeued trial was pending in one and running in another, an interrupted experiment
"ended" in one and "interrupted" in the other). Each reader adds only what it needs on top:
resume acts on the changes, the dashboard turns them into deltas for its pages.

A trial's state follows :class:`kernel.trials.TrialState` as the kernel holds it:

========================  =======================================================
lease (first seen)        pending (proposed, handed out ahead)
start                     running
requeue                   pending again, its curve cleared (it runs again)
withdrawn                 gone from the run's trials (handed out, never started:
                          not a trial of this run; a resume runs it)
end                       the state its end record says: finished, stopped,
                          failed or lost
interrupted [ids]         interrupted (cut short when the experiment ended)
resumed                   every trial that had not ended is pending again
========================  =======================================================

A reader that finds no kernel holding the folder calls :meth:`Timeline.settle`: trials still
"running" then were cut short by a kernel that died, and are interrupted too.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from .journal import holder, iter_journal
from .trials import ENDED, TrialState

_ENDED = frozenset(str(s) for s in ENDED)
_UNFINISHED = frozenset({str(TrialState.PENDING), str(TrialState.RUNNING), str(TrialState.INTERRUPTED)})
CUT_SHORT = "the experiment ended while it ran"


@dataclass(frozen=True)
class Change:
    """What one event changed: ``trial`` (an id), or ``trials`` (an event that moves several),
    or an agent, or the experiment's status; ``new``: the trial was seen for the first time
    (proposed)."""

    event: str
    trial: int | None = None
    new: bool = False
    agent: str | None = None
    status: bool = False
    trials: tuple[int, ...] = ()


class Timeline:
    """An experiment as its journal tells it, kept up to date one event at a time."""

    def __init__(self) -> None:
        self.head: dict[str, Any] = {}  # the experiment record, without its "event"
        self.started_at = 0.0
        self.status: dict[str, Any] = {"closed": False, "interrupted": None, "aborted": None, "time_up": False,
                                       "resumes": 0}
        self.trials: dict[int, dict[str, Any]] = {}
        self.withdrawn: set[int] = set()
        self.agents: dict[str, dict[str, Any]] = {}
        self.alive = False  # a kernel held the folder when it was last read (set by readers)
        self.kernel: dict[str, Any] | None = None  # that kernel's host and pid (set by read)

    @classmethod
    def read(cls, folder: str | Path) -> "Timeline":
        """The whole journal folded, and settled against whether a kernel holds the folder now
        (``alive``)."""
        timeline = cls()
        for event in iter_journal(Path(folder)):
            timeline.apply(event)
        timeline.kernel = holder(Path(folder))
        timeline.alive = timeline.kernel is not None
        timeline.settle(timeline.alive)
        return timeline

    def apply(self, e: dict[str, Any]) -> Change | None:
        """Fold one event in; what it changed (None for an event no reader needs)."""
        handler = _HANDLERS.get(e.get("event"))  # type: ignore[arg-type]
        return None if handler is None else handler(self, e)

    # -- what readers ask ------------------------------------------------------------------
    def outcome(self, alive: bool) -> str:
        """The experiment's state in one word, given whether a kernel holds its folder now."""
        if alive:
            return "running"
        if self.status["aborted"]:
            return "aborted"
        if self.status["interrupted"]:
            return "interrupted"
        return "ended" if self.status["closed"] else "kernel died"

    def settle(self, alive: bool) -> list[int]:
        """With no kernel, nothing runs: trials the journal left running were cut short (the
        kernel died). Returns the ids whose state changed."""
        if alive:
            return []
        cut = [tid for tid, t in self.trials.items() if t["state"] == TrialState.RUNNING]
        for tid in cut:
            self.trials[tid].update(state=str(TrialState.INTERRUPTED), error=CUT_SHORT)
        return cut

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for t in self.trials.values():
            counts[t["state"]] = counts.get(t["state"], 0) + 1
        return counts

    def unfinished(self) -> list[int]:
        """The trials a resume runs again: every one that had not ended, and those handed out
        ahead and withdrawn unstarted."""
        return [tid for tid, t in self.trials.items() if t["state"] in _UNFINISHED] + sorted(self.withdrawn)


# -- the events ------------------------------------------------------------------------------
def _experiment(x: Timeline, e: dict) -> Change | None:
    if x.head:  # a resumed kernel writes none; the first is the experiment's
        return None
    x.head, x.started_at = {k: v for k, v in e.items() if k != "event"}, e.get("time", 0.0)
    return Change("experiment", status=True)


def _resumed(x: Timeline, e: dict) -> Change:
    x.status.update(closed=False, interrupted=None, aborted=None, time_up=False, resumes=x.status["resumes"] + 1)
    if e.get("edits"):
        x.status["edits"] = {**x.status.get("edits", {}), **e["edits"]}
    again = [t for t in x.trials.values() if t["state"] in _UNFINISHED]
    for t in again:
        t.update(state=str(TrialState.PENDING), agent=None, history=[])
    return Change("resumed", status=True, trials=tuple(t["id"] for t in again))


def _status(field: str, value: Callable[[dict], Any]) -> Callable[[Timeline, dict], Change]:
    def handle(x: Timeline, e: dict) -> Change:
        x.status[field] = value(e)
        return Change(e["event"], status=True)
    return handle


def _interrupted(x: Timeline, e: dict) -> Change:
    cut = [x.trials[tid] for tid in e.get("trials") or [] if tid in x.trials and x.trials[tid]["state"] not in _ENDED]
    for t in cut:
        t.update(state=str(TrialState.INTERRUPTED), error=CUT_SHORT, agent=None)
    return Change("interrupted", status=True, trials=tuple(t["id"] for t in cut))


def _proposed(x: Timeline, e: dict) -> tuple[dict[str, Any], bool]:
    """The trial an event names, made pending from the event's fields the first time."""
    tid = e["trial"]
    t = x.trials.get(tid)
    if t is not None:
        return t, False
    x.withdrawn.discard(tid)
    t = x.trials[tid] = {"id": tid, "state": str(TrialState.PENDING), "params": e.get("params") or {},
                         "budget": e.get("budget"), "info": e.get("info") or {}, "parent": e.get("parent"),
                         "ranks": e.get("ranks"), "attempts": 0, "agent": None, "history": [], "interruptions": []}
    return t, True


def _lease(x: Timeline, e: dict) -> Change:
    _, new = _proposed(x, e)
    return Change("lease", e["trial"], new=new)


def _start(x: Timeline, e: dict) -> Change:
    t, new = _proposed(x, e)
    t.update(state=str(TrialState.RUNNING), agent=e.get("agent"), attempts=e.get("attempt", t["attempts"] + 1),
             started=e.get("time"), history=[], ranks=e.get("ranks") or t.get("ranks"), error=None)
    a = x.agents.get(e.get("agent"))  # type: ignore[arg-type]
    if a is not None:
        a.update(state="busy", trial=t["id"])
    return Change("start", t["id"], new=new, agent=e.get("agent"))


def _requeue(x: Timeline, e: dict) -> Change | None:
    t = x.trials.get(e["trial"])
    if t is None:
        return None
    _free(x, t.get("agent"), t["id"])
    t.update(state=str(TrialState.PENDING), agent=None, history=[], error=str(e.get("reason", ""))[:300])
    t["interruptions"] = [*t.get("interruptions", []), e.get("reason", "")]
    return Change("requeue", t["id"])


def _withdrawn(x: Timeline, e: dict) -> Change | None:
    if x.trials.pop(e["trial"], None) is None:
        return None
    x.withdrawn.add(e["trial"])
    return Change("withdrawn", e["trial"])


def _end(x: Timeline, e: dict) -> Change:
    d = e["trial"]
    new = d["id"] not in x.trials
    x.trials[d["id"]] = dict(d, ended_at=e.get("time"))
    _free(x, d.get("agent"), d["id"])
    return Change("end", d["id"], new=new)


def _free(x: Timeline, agent_id: Any, trial_id: int) -> None:
    """The agent that ran ``trial_id`` is idle, unless it has moved on to another."""
    a = x.agents.get(agent_id)
    if a is not None and a.get("trial") == trial_id:
        a.update(state="idle", trial=None)


def _agent(x: Timeline, e: dict) -> Change:
    x.agents[e["id"]] = {"id": e["id"], "host": e.get("host"), "pid": e.get("pid"), "devices": e.get("devices"),
                         "state": "joining", "trial": None, "silent_s": None, "error": None,
                         "joined": round(e.get("time", 0.0) - x.started_at, 3)}
    return Change("agent", agent=e["id"])


def _agent_left(state: str, key: str) -> Callable[[Timeline, dict], Change]:
    def handle(x: Timeline, e: dict) -> Change:
        x.agents.setdefault(e["id"], {"id": e["id"]}).update(state=state, trial=None, error=e.get(key))
        return Change(e["event"], agent=e["id"])
    return handle


def _noted(x: Timeline, e: dict) -> Change | None:
    """An event that changes no state a reader folds (overtime, killed: the end follows)."""
    return None


_HANDLERS: dict[str, Callable[[Timeline, dict], Change | None]] = {
    "experiment": _experiment, "resumed": _resumed, "closed": _status("closed", lambda e: True),
    "interrupt": _status("interrupted", lambda e: e.get("reason") or "interrupted"),
    "aborted": _status("aborted", lambda e: e.get("reason") or "aborted"),
    "time-up": _status("time_up", lambda e: True), "interrupted": _interrupted,
    "lease": _lease, "start": _start, "requeue": _requeue, "withdrawn": _withdrawn, "end": _end,
    "overtime": _noted, "killed": _noted,
    "agent": _agent, "agent-gone": _agent_left("gone", "reason"), "agent-broken": _agent_left("broken", "error"),
}


def lineages(trials: dict[int, dict[str, Any]], ranked: list[dict[str, Any]], most: int = 40) -> list[list]:
    """The checkpoint chains (root first) of the best final trials (``ranked``, best first)
    whose parameters changed along the way (PBT's lineages); empty when none did (ASHA
    promotes a configuration unchanged)."""
    parents = {t.get("parent") for t in trials.values()}
    out = []
    for leaf in ranked:
        if leaf["id"] in parents or leaf.get("parent") is None:
            continue
        chain, at = [], leaf
        while at is not None:
            chain.append(at)
            at = trials.get(at.get("parent")) if at.get("parent") is not None else None
        if any(a["params"] != b["params"] for a, b in zip(chain, chain[1:])):
            out.append(chain[::-1])
        if len(out) == most:
            break
    return out


def events_known() -> Iterable[str]:
    """Every event the fold reads (a test checks it is every event kernel/records.py declares)."""
    return _HANDLERS.keys()
