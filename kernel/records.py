"""The experiment folder's format: every journal event and its fields, and the folder's files.

The journal is the project's second interface, after the wire (transports/codec.py): resume
replays it, ``status``, report.html and the dashboard read it, and other tools may too. So its
events are declared here, once, and written only through the functions below; what they mean
is read only through the fold in :mod:`kernel.timeline`. A writer that wants a new event adds
it here, with its fields, and to the fold (tests/test_timeline.py checks that each function
writes the fields declared, and that the fold knows every event).

Every line is one JSON object: ``{"event": <name>, "time": <unix seconds>, ...fields}``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Protocol

if TYPE_CHECKING:
    from .trials import Trial

JOURNAL = "journal.jsonl"  # the events below, one per line, append-only
CURVES = "curves.jsonl"  # running trials' learning curves as they grow, a line each (outputs/live.py)
AGENTS = "agents.json"  # the agents now, rewritten each second (outputs/live.py)
RESULT = "result.json"  # the result, written when the experiment ends (kernel/result.py)
LOCK = "kernel.lock"  # held by the live kernel: its host and pid

CURVE_FIELDS = ("trial", "attempt", "from", "points")  # + "series": {name: {"from", "points"}}
"""A line of curves.jsonl: the broadcasts of one attempt of a running trial from index
``from`` on, as [step, value] lists (a reader replaces its copy from there)."""
AGENT_FIELDS = ("id", "host", "pid", "devices", "state", "trial", "silent_s", "error")
"""One entry of agents.json's ``agents`` list: where it runs, its state, the trial it runs and
the seconds since the kernel last heard from it."""
RESULT_FIELDS = ("experiment", "path", "context", "metric", "direction", "duration", "agents",
                 "rejected_messages", "counts", "best", "trials")
"""The keys result.json always has (``no_best``, the objectives' and a context's extras when
they apply); each trial is a Trial.to_dict, as in an ``end`` event."""

EVENTS: dict[str, tuple[str, ...]] = {
    # the experiment
    "experiment": ("id", "context", "metric", "direction", "controller"),  # + objectives, directions
    "resumed": ("ended", "requeued", "replay_mismatches", "edits"),  # a resumed kernel carries on; edits:
    # {setting: [before, now]} the study was changed by (num_trials, max_time raised)
    "time-up": ("max_time",),
    "interrupt": ("reason",),  # Ctrl-C, SIGTERM: the experiment ends, resumable
    "aborted": ("reason",),  # the experiment ends on an error
    "interrupted": ("trials",),  # the trials the end cut short; a resume runs them
    "closed": ("counts",),  # the kernel is done with the folder
    # trials
    "lease": ("trial", "params", "budget", "info", "parent", "agent"),  # proposed, handed out ahead (agent
    # None: proposed, waiting for a pack of its shape)
    "start": ("trial", "params", "budget", "agent", "attempt", "info", "parent", "ranks", "pack"),  # pack:
    # the trials run with it as lanes of one program, or None
    "requeue": ("trial", "reason"),  # back to pending: it runs again (or elsewhere)
    "withdrawn": ("trial",),  # handed out ahead, never started, the run ended: not of this run
    "overtime": ("trial", "limit"),  # ran past trial_timeout: asked to stop
    "killed": ("trial", "agent"),  # would not stop: its agent was restarted
    "end": ("trial",),  # the whole Trial (Trial.to_dict): its state, result and curve
    # agents
    "agent": ("id", "host", "pid", "devices"),
    "agent-broken": ("id", "error"),  # cannot run the function
    "agent-gone": ("id", "reason"),
}


class Writer(Protocol):
    """Where the functions below write: the folder (ExperimentFolder.write), or what the driver
    hands the trial book and the handlers (decisions.Journal). Fields come as one dict: three
    records a trial, and each layer of keyword packing was a cost on the kernel's path."""

    def write(self, event: str, durable: bool, fields: dict[str, Any]) -> None: ...


# -- the experiment ---------------------------------------------------------------------------
def experiment(folder: Writer, id: str, context: str, metric: Any, direction: str, controller: dict,
               objectives: list[str] | None = None, directions: list[Any] | None = None) -> None:
    """A search of several objectives names them all (``objectives``, ``directions``)."""
    several = {"objectives": list(objectives), "directions": [str(d) for d in directions]} if objectives else {}
    folder.write("experiment", False, {"id": id, "context": context, "metric": metric, "direction": direction,
                                       "controller": controller, **several})


def resumed(folder: Writer, ended: int, requeued: int, replay_mismatches: int, edits: dict | None = None) -> None:
    folder.write("resumed", False, {"ended": ended, "requeued": requeued, "replay_mismatches": replay_mismatches,
                                    "edits": edits or {}})


def time_up(folder: Writer, max_time: float) -> None:
    folder.write("time-up", False, {"max_time": max_time})


def interrupt(folder: Writer, reason: str) -> None:
    folder.write("interrupt", False, {"reason": reason})


def aborted(folder: Writer, reason: str) -> None:
    folder.write("aborted", False, {"reason": reason})


def interrupted(folder: Writer, trials: Iterable[int]) -> None:
    folder.write("interrupted", False, {"trials": list(trials)})


def closed(folder: Writer, counts: dict[str, int]) -> None:
    folder.write("closed", True, {"counts": counts})


# -- trials -----------------------------------------------------------------------------------
def lease(folder: Writer, trial: "Trial", agent: str) -> None:
    folder.write("lease", False, {"trial": trial.id, "params": trial.params, "budget": trial.budget,
                                  "info": trial.info, "parent": trial.parent, "agent": agent})


def proposed(folder: Writer, trial: "Trial") -> None:
    """Proposed before it can run (it waits for a pack of its shape): a lease to no agent."""
    folder.write("lease", False, {"trial": trial.id, "params": trial.params, "budget": trial.budget,
                                  "info": trial.info, "parent": trial.parent, "agent": None})


def start(folder: Writer, trial: "Trial", pack: list[int] | None = None) -> None:
    folder.write("start", False, {"trial": trial.id, "params": trial.params, "budget": trial.budget,
                                  "agent": trial.agent, "attempt": trial.attempts, "info": trial.info,
                                  "parent": trial.parent, "ranks": trial.ranks, "pack": pack})


def requeue(folder: Writer, trial: int, reason: str) -> None:
    folder.write("requeue", False, {"trial": trial, "reason": reason})


def withdrawn(folder: Writer, trial: int) -> None:
    folder.write("withdrawn", False, {"trial": trial})


def overtime(folder: Writer, trial: int, limit: float) -> None:
    folder.write("overtime", False, {"trial": trial, "limit": limit})


def killed(folder: Writer, trial: int, agent: str) -> None:
    folder.write("killed", False, {"trial": trial, "agent": agent})


def end(folder: Writer, trial: "Trial") -> None:
    folder.write("end", True, {"trial": trial.to_dict()})


# -- agents -----------------------------------------------------------------------------------
def agent(folder: Writer, id: str, host: str, pid: int, devices: Any) -> None:
    folder.write("agent", False, {"id": id, "host": host, "pid": pid, "devices": devices})


def agent_broken(folder: Writer, id: str, error: str) -> None:
    folder.write("agent-broken", False, {"id": id, "error": error})


def agent_gone(folder: Writer, id: str, reason: str) -> None:
    folder.write("agent-gone", False, {"id": id, "reason": reason})
