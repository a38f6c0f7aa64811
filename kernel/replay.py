"""Resume by replay: a fresh kernel reads a dead kernel's journal and carries on.

The controller is rebuilt with the journaled seed and shown the same events in the same order
(each trial it started, each outcome), so the optimizer's and the early stopper's state come
back without either of them knowing about resumes. Trials that had ended keep their results;
those that were running (or waiting to run again) are queued to run again.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .controller import TrialSpec
from .timeline import Timeline
from .trials import Trial, TrialState

if TYPE_CHECKING:
    from .driver import Kernel


def restore(kernel: "Kernel", events: list[dict[str, Any]]) -> dict[str, int]:
    """Replay ``events`` into ``kernel`` before it runs; returns a summary (the driver journals
    it as the ``resumed`` record when it runs).
    The journal is read through the one fold every reader uses (kernel/timeline.py); the
    controller is shown each trial when the fold first sees it, and each end."""
    timeline, mismatched = Timeline(), 0
    proposals = _proposals(events)
    for event in events:
        change = timeline.apply(event)
        if change is None or change.trial is None:
            continue
        if change.new and change.event in ("lease", "start"):
            for tid in sorted(t for t in proposals if t <= change.trial):  # in the order proposed: by id
                mismatched += _replay_proposal(kernel, proposals.pop(tid))
        if change.event == "start":
            trial = kernel.book.trials[change.trial]
            trial.state, trial.attempts = TrialState.RUNNING, timeline.trials[change.trial]["attempts"]
        elif change.event == "end":
            _replay_end(kernel, Trial.from_dict(event["trial"]))
    requeued = kernel.scheduler.requeue_unfinished()
    ended = sum(1 for t in kernel.book.trials.values() if t.state != TrialState.PENDING)
    return {"ended": ended, "requeued": requeued, "replay_mismatches": mismatched}


def _proposals(events: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Each trial the journal names, as first proposed. Trials are numbered in the order the
    controller proposed them, but journaled when handed out: a pack's first trial after the
    proposals of other shapes drawn while it filled. So the controller is asked in id order."""
    proposals: dict[int, dict[str, Any]] = {}
    for e in events:
        if e.get("event") in ("lease", "start") and e.get("trial") not in proposals:
            proposals[e["trial"]] = {"id": e["trial"], "params": e.get("params") or {}, "budget": e.get("budget"),
                                     "info": e.get("info") or {}, "parent": e.get("parent"), "ranks": e.get("ranks")}
    return proposals


def _replay_proposal(kernel: "Kernel", proposed: dict[str, Any]) -> int:
    """Ask the controller for the journaled trial again; 1 if it now decides otherwise (the
    journal is the truth: what was run is what runs, and the controller is told so: a study
    edited on resume, its space widened or its budget raised, decides otherwise by design)."""
    tid, book = proposed["id"], kernel.book
    if tid in book.trials:
        return 0
    decision = kernel.controller.next_trial(tid)
    known = isinstance(decision, TrialSpec)
    journaled = TrialSpec(dict(proposed["params"]), proposed.get("budget"), info=dict(proposed.get("info") or {}),
                          parent=proposed.get("parent"))
    mismatched = int(not known or (decision.params, decision.budget, decision.parent)
                     != (journaled.params, journaled.budget, journaled.parent))
    if mismatched:
        kernel.controller.replayed(tid, journaled, decision if known else None)
    book.new(tid, TrialSpec(journaled.params, journaled.budget, info=journaled.info,
                            parent=journaled.parent, run=decision.run if known else None,
                            extra=decision.extra if known else None,
                            gang=len(proposed.get("ranks") or []) or (decision.gang if known else 1),
                            traced=decision.traced if known else None))
    kernel.scheduler.next_id = max(kernel.scheduler.next_id, tid + 1)
    return mismatched


def _replay_end(kernel: "Kernel", ended: Trial) -> None:
    known = kernel.book.trials.get(ended.id)
    if known is not None:
        ended.run, ended.extra = known.run, known.extra
    kernel.book.restore(ended)
