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
    for event in events:
        change = timeline.apply(event)
        if change is None or change.trial is None:
            continue
        if change.new and change.event in ("lease", "start"):
            mismatched += _replay_proposal(kernel, timeline.trials[change.trial])
        if change.event == "start":
            trial = kernel.book.trials[change.trial]
            trial.state, trial.attempts = TrialState.RUNNING, timeline.trials[change.trial]["attempts"]
        elif change.event == "end":
            _replay_end(kernel, Trial.from_dict(event["trial"]))
    requeued = kernel.scheduler.requeue_unfinished()
    ended = sum(1 for t in kernel.book.trials.values() if t.state != TrialState.PENDING)
    return {"ended": ended, "requeued": requeued, "replay_mismatches": mismatched}


def _replay_proposal(kernel: "Kernel", proposed: dict[str, Any]) -> int:
    """Ask the controller for the journaled trial again; 1 if it now decides otherwise (the
    journal is the truth: what was run is what runs), else 0."""
    tid, book = proposed["id"], kernel.book
    if tid in book.trials:
        return 0
    decision = kernel.controller.next_trial(tid)
    known = isinstance(decision, TrialSpec)
    mismatched = int(not known or decision.params != proposed["params"])
    book.new(tid, TrialSpec(dict(proposed["params"]), proposed.get("budget"), info=dict(proposed.get("info") or {}),
                            parent=proposed.get("parent"), run=decision.run if known else None,
                            extra=decision.extra if known else None,
                            gang=len(proposed.get("ranks") or []) or (decision.gang if known else 1)))
    kernel.scheduler.next_id = max(kernel.scheduler.next_id, tid + 1)
    return mismatched


def _replay_end(kernel: "Kernel", ended: Trial) -> None:
    known = kernel.book.trials.get(ended.id)
    if known is not None:
        ended.run, ended.extra = known.run, known.extra
    kernel.book.restore(ended)
