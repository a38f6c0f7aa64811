"""The lifecycle of a trial: the kernel's record of one attempt, and the one place where a
trial ends.

A trial is ``pending`` until an agent takes it, ``running`` while an attempt is under way, and
ends ``finished``, ``stopped``, ``failed`` or ``lost``; an attempt cut short by a lost agent
sends it back to ``pending`` (bounded retries). What the kernel needs to steer an attempt (which
agents run it, whether a stop was sent, the ranks' finals, its timers) lives on an
:class:`Attempt`, never in ``trial.info``, which belongs to the optimizer alone.

:class:`TrialBook` owns the trials, their counts and the best one. Every ending goes through
:meth:`TrialBook.end`, which updates counts and the best, closes the trial's log, records it
in the journal, tells the controller and then the observers, in that order, whatever ended the
trial. The book decides what the journal says of its trials; the driver writes it (the book's
``journal``, made by the driver, hands each record to the folder's writer at once).
"""
from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

from . import records
from .trials import Trial, TrialState, rank_key

if TYPE_CHECKING:  # only for annotations: the book knows no sockets
    import asyncio

    from .controller import Controller, TrialSpec
    from .journal import ExperimentFolder
    from .registry import AgentInfo
    from .views import KernelView, Observer


@dataclass(eq=False)
class Attempt:
    """One try at running a trial, on one agent or (a distributed run) on several, by rank."""

    trial: Trial
    agents: list["AgentInfo"]
    number: int
    verdicts: bool = False  # agents wait for the kernel's verdict on each broadcast
    leased: bool = False  # handed to its agent ahead, while another trial ran there
    taken_back: bool = False  # the agent was asked to drop it unstarted (a "skip")
    stop_sent: bool = False
    overtime: float | None = None  # the time limit it ran past, if it did
    finals: dict[int, dict[str, Any]] = field(default_factory=dict)  # rank -> what it sent
    failed_rank: int | None = None
    requeue: str | None = None  # a rank's agent was lost: once every rank answered, run it again whole
    timers: list["asyncio.TimerHandle"] = field(default_factory=list)
    over: bool = False
    since: float = 0.0  # when its agent started it, as the kernel learnt (time.monotonic())
    pack: list[int] | None = None  # run as a lane of one program with these trials (ids, lane order)

    @property
    def lead(self) -> "AgentInfo":
        return self.agents[0]

    @property
    def distributed(self) -> bool:
        return len(self.agents) > 1

    def close(self) -> None:
        self.over = True
        for timer in self.timers:
            timer.cancel()
        self.timers.clear()


class TrialBook:
    """Every trial of one experiment, its counts, the best one, and how each one ends."""

    def __init__(self, folder: "ExperimentFolder", controller: "Controller", journal: "records.Writer"):
        self.folder = folder  # the trials' logs and checkpoints; the journal is written by the driver
        self.journal = journal
        self.controller = controller
        self.trials: dict[int, Trial] = {}
        self.counts: collections.Counter[str] = collections.Counter()
        self.best: Trial | None = None
        self._best_key: tuple | None = None
        self.view: "KernelView | None" = None
        self.observers: list["Observer"] = []
        self.early_failures: list[Trial] = []  # failures before any trial finished

    def new(self, trial_id: int, spec: "TrialSpec") -> Trial:
        trial = Trial(trial_id, dict(spec.params), spec.budget, info=dict(spec.info), parent=spec.parent)
        trial.run, trial.extra, trial.gang, trial.traced = spec.run, spec.extra, spec.gang, spec.traced
        self.trials[trial_id] = trial
        return trial

    def started(self, attempt: Attempt) -> None:
        attempt.since = time.monotonic()
        trial = attempt.trial
        trial.state, trial.agent, trial.attempts = TrialState.RUNNING, attempt.lead.id, attempt.number
        if attempt.distributed:
            trial.ranks = [a.id for a in attempt.agents]
        self.counts["running"] += 1
        records.start(self.journal, trial, attempt.pack)
        for ob in self.observers:
            ob.trial_started(self.view, trial)

    def requeued(self, trial: Trial, why: str) -> None:
        """A running trial goes back to pending (its agent was lost); it runs again from scratch."""
        self.counts["running"] -= 1
        trial.state, trial.agent = TrialState.PENDING, None
        trial.history.clear()
        trial.interruptions.append(why)
        records.requeue(self.journal, trial.id, why)

    def leased(self, attempt: Attempt) -> None:
        """A trial handed to a busy agent ahead: journaled now, in the order the controller
        proposed it (a replay asks it again in that order); it is pending until it starts."""
        trial = attempt.trial
        records.lease(self.journal, trial, attempt.lead.id)

    def proposed(self, trial: Trial) -> None:
        """A trial proposed while a pack of another shape filled: journaled in the order the
        controller proposed it; pending until a pack of its own takes it."""
        records.proposed(self.journal, trial)

    def unleased(self, trial: Trial) -> None:
        """A trial handed out ahead came back unstarted: it waits to run elsewhere (no attempt
        was made, so none counts against its retries), even if it was counted as started
        (it was next in its agent's queue when the one before ended)."""
        if trial.state == TrialState.RUNNING:
            self.counts["running"] -= 1
            trial.attempts -= 1
        trial.state, trial.agent = TrialState.PENDING, None
        records.requeue(self.journal, trial.id, "handed back unstarted")

    def withdraw(self, trial: Trial) -> None:
        """A trial handed out ahead that had not started when the run ended (the time was up, or
        the experiment stopped): not a trial of this run; a resume runs it."""
        del self.trials[trial.id]
        records.withdrawn(self.journal, trial.id)

    def end(self, trial: Trial, state: TrialState, **fields: Any) -> None:
        """The one way a trial ends: its fields, counts, best, log, journal, controller, observers."""
        if trial.state == TrialState.RUNNING:
            self.counts["running"] -= 1
        asked = fields.pop("checkpointed", None)  # the agents' word that the function asked for the folder
        for name, value in fields.items():
            setattr(trial, name, value)
        trial.state = state
        # Whether files are there as this host sees them (journaled: a resume sees the same),
        # looked at only when the function asked for its folder, or nobody said.
        trial.checkpointed = state in (TrialState.FINISHED, TrialState.STOPPED) and asked is not False \
            and self.folder.has_checkpoint(trial.id)
        self._count(trial)
        self.folder.close_log(trial.id)
        records.end(self.journal, trial)
        self.controller.on_end(trial)
        for ob in self.observers:
            ob.trial_ended(self.view, trial)

    def restore(self, trial: Trial) -> None:
        """A trial that ended before a resume: counted and shown to the controller, not journaled again."""
        self.trials[trial.id] = trial
        self._count(trial)
        self.controller.on_end(trial)

    def failing_alike(self, n: int) -> Trial | None:
        """The first failure, when the first ``n`` trials to end all failed with the same error
        and none finished (a bug in the function, not a bad configuration). Only errors of the
        code count: an exception or a crash, which leave a traceback; a diverged run (a NaN
        metric) or a time limit is a verdict on a configuration, never a reason to stop."""
        first = self.early_failures[:n]
        if len(first) == n and not (self.counts[TrialState.FINISHED] or self.counts[TrialState.STOPPED]) \
                and len({t.error for t in first}) == 1:
            return first[0]
        return None

    def _count(self, trial: Trial) -> None:
        self.counts[trial.state] += 1
        if trial.state == TrialState.FAILED and trial.traceback and not self.counts[TrialState.FINISHED]:
            self.early_failures.append(trial)
        key = None if self.controller.objectives else rank_key(trial, self.controller.direction)  # a front: no one best
        if key is not None and (self._best_key is None or key > self._best_key):
            self.best, self._best_key = trial, key

    def unfinished(self) -> Iterable[Trial]:
        return [t for t in self.trials.values() if t.state in (TrialState.RUNNING, TrialState.PENDING)]
