"""The kernel: one asyncio loop that turns agents' messages into an experiment.

Everything that happens is a message from an agent, a launcher's notice that an agent process
ended, or a timer. The loop decodes each message (the codec drops and counts anything invalid)
and hands it to its handler (handlers.py); what must go out or be armed comes back as a
decision (decisions.py) to :meth:`Kernel.act`, what the journal records to the folder's writer,
which this module alone holds and hands them as a ``decisions.Journal``. This module alone
sends, writes the journal and arms timers; the handlers, trial book, scheduler, ahead.py, gang
rules, deadlines and endings.py decide. Handlers run to completion on the loop (no locks;
other threads use ``call_soon_threadsafe``). No optimizer, no JAX: the :class:`Controller` says
what to run.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable, Iterable

from transports.base import Listener
from transports.codec import PART_SIZE, Codec

from . import gang, records
from .controller import Controller, ExperimentError, Interrupted
from .deadlines import Deadlines
from .decisions import (Abort, AbortRanks, Arm, CheckDone, EndAs, Journal, Lease, LookAgain, RanksAnswered, Send,
                        Start, Stop, TakeBack, TimeUp, Welcome)
from .handlers import Handlers
from .intake import Intake
from .journal import ExperimentFolder
from .lifecycle import Attempt, TrialBook
from .memory import GcPolicy
from .registry import BEAT_SUFFIX, AgentInfo, AgentRegistry, AgentState
from .scheduler import Scheduler
from .result import Result
from .trials import ENDED, Trial, TrialState
from .views import KernelView, Observer

log = logging.getLogger("lagom.kernel")


class Kernel:
    """One experiment's driver, built by :func:`kernel.lagom` on a running loop: ``await run()``
    returns the :class:`Result` when the controller has nothing left to run, or raises
    :class:`ExperimentError` when the experiment cannot go on."""

    def __init__(self, *, experiment: str, context_name: str, function: bytes, controller: Controller,
                 listener: Listener, codec: Codec, folder: ExperimentFolder, heartbeat: float = 1.0,
                 max_retries: int = 1, agent_env: dict[str, str] | None = None, inject: bytes | None = None,
                 agent_timeout: float | None = 5.0, deadlines: Deadlines | None = None,
                 observers: Iterable[Observer] = (), fail_fast: int | None = 3):
        self.experiment, self.context_name = experiment, context_name
        self.controller, self.listener, self.codec, self.folder = controller, listener, codec, folder
        self.heartbeat, self.agent_timeout, self.fail_fast = heartbeat, agent_timeout, fail_fast
        self.deadlines = deadlines or Deadlines()
        self.loop = asyncio.get_running_loop()
        self.agents = AgentRegistry()
        self.journal = Journal(folder.write)  # what the book and the handlers record: to the folder, at once
        self.book = TrialBook(folder, controller, self.journal)
        self.scheduler = Scheduler(self.book, controller, self.agents, self.act, lambda: self.ended,
                                   lambda: self.view.total_trials, max_retries)
        self._acts = self._acting()
        self.view = KernelView(self)
        self.observers = list(observers)
        self.book.view, self.book.observers = self.view, self.observers
        folder.schedule = self.loop.call_later  # deferred fsyncs of the journal
        folder.on_error = lambda exc: self.loop.call_soon(self.abort, folder.describe_failure())
        self.handlers = Handlers(agents=self.agents, book=self.book, scheduler=self.scheduler, controller=controller,
                                 intake=Intake(controller, self.view, self.observers), gc=GcPolicy(),
                                 deadlines=self.deadlines, folder=folder, function=function, fail_fast=fail_fast,
                                 codec=codec, act=self.act, ended=lambda: self.ended, journal=self.journal)
        self.rejected = self.handlers.rejected
        self.dispatch_latencies = self.handlers.dispatch_latencies  # a result's arrival -> the next trial starting there
        self.resumed: dict | None = None  # what a journal replay restored (replay.py)
        self.started_at = time.time()
        inline = function if len(function) <= PART_SIZE else b""
        self._welcome = codec.encode("welcome", experiment=experiment, function=inline, size=len(function),
                                     heartbeat=heartbeat, env=dict(agent_env or {}), inject=inject)
        self._early_exits: list[tuple[str, str]] = []
        self._outcome: asyncio.Future | None = None
        self._beat_handle: asyncio.TimerHandle | None = None
        self._budget: asyncio.TimerHandle | None = None  # max_time's timer
        self._handlers = self.handlers.table

    @property
    def trials(self) -> dict[int, Trial]:
        return self.book.trials

    @property
    def ended(self) -> bool:
        """True once the experiment's outcome is decided (finished, aborted or interrupted)."""
        return self._outcome is not None and self._outcome.done()

    # -- the loop ---------------------------------------------------------------------------
    async def run(self) -> Result:
        """Serve agents until the experiment ends; returns its result."""
        self._outcome = self.loop.create_future()
        self.started_at = time.time()
        for agent_id, detail in self._early_exits:
            self._agent_exited(agent_id, detail)
        self.handlers.started(self.experiment, self.context_name, self.resumed)
        for ob in self.observers:
            ob.experiment_started(self.view)
        receiver = asyncio.create_task(self._receive(), name="lagom-receive")
        self._beat_handle = self.loop.call_later(self.heartbeat, self._beat)
        self._budget = self._arm(self.deadlines.experiment_started())
        try:
            await asyncio.wait({receiver, self._outcome}, return_when=asyncio.FIRST_COMPLETED)
            if receiver.done() and not self._outcome.done():
                receiver.result()  # a bug in a handler: surface it
            self._outcome.result()
        finally:
            self._wind_down(receiver)
        return self.result()

    async def _receive(self) -> None:
        decode, handlers, agents, rejected = self.handlers.decode, self._handlers, self.agents, self.rejected
        while True:
            batch = await self.listener.recv_batch()
            # What a batch of messages causes goes out at its end: trials handed out ahead once
            # per agent, journal records in one write.
            self.scheduler.hold()
            self.folder.hold()
            try:
                for peer, frames in batch:
                    msg = decode(peer, frames)
                    if msg is None:
                        continue
                    agent = agents.get(peer)
                    if agent is not None:
                        agent.last_seen = time.monotonic()
                    elif msg["type"] != "hello":
                        rejected["unknown-peer"] += 1
                        continue
                    handlers[msg["type"]](agent, peer, msg)
                self.scheduler.release()
            finally:
                self.folder.release()
            if self._outcome.done():
                return
            await asyncio.sleep(0)  # let timers run even under a flood of messages

    def _wind_down(self, receiver: asyncio.Task) -> None:
        self.handlers.wind_down()
        self._beat_handle.cancel()
        if self._budget is not None:
            self._budget.cancel()
        receiver.cancel()
        self._broadcast(self.codec.encode("shutdown", reason="experiment over"))

    def finish(self, error: BaseException | None = None) -> None:
        """Decide the experiment's outcome: done, or ``error`` for ``run`` to raise."""
        if self._outcome is None or self._outcome.done():
            return
        self._outcome.set_result(None) if error is None else self._outcome.set_exception(error)

    def abort(self, message: str) -> None:
        """End the experiment with an error the user sees; what was done stays in the folder."""
        err = ExperimentError(message)
        err.path = self.folder.path
        records.aborted(self.folder, message)
        self.finish(err)

    def interrupt(self, why: str) -> None:
        """End the experiment now (Ctrl-C, SIGTERM): what ended is kept, and a resume continues."""
        ended = sum(self.book.counts[s] for s in ENDED)
        err = Interrupted(f"{why}: {ended} ended trials kept in {self.folder.path}; continue with "
                          f"python -m kernel resume {self.folder.path}")
        err.path = self.folder.path
        records.interrupt(self.folder, why)
        self.finish(err)

    def check_done(self) -> None:
        """Finish when the controller has nothing more and nothing runs or waits to run again."""
        if self.scheduler.drained and self.book.counts["running"] == 0:
            self.finish()

    # -- sending ----------------------------------------------------------------------------
    def send(self, agent: AgentInfo, frames: list[bytes]) -> bool:
        """Queue ``frames`` for ``agent``; an agent that cannot be reached is gone."""
        if self.listener.send(agent.peer, frames):
            return True
        self.handlers.agent_gone(agent, "unreachable")
        return False

    def _broadcast(self, frames: list[bytes]) -> None:
        for agent in self.agents.alive():
            self.listener.send(agent.peer, frames)

    def _beat(self) -> None:
        """Once per heartbeat interval: beat to every agent, and declare lost those silent for
        longer than ``agent_timeout`` (a frozen process, a host gone without closing its socket,
        a partition). A lost agent is not told to leave: if it comes back, it hears nothing,
        says hello again, and is welcomed as a new agent; its late messages are stale. An idle
        agent takes back a trial that came to wait behind a long one."""
        frames = self.codec.encode("heartbeat")
        now = time.monotonic()
        for agent in self.agents.alive():
            if self.agent_timeout is not None and now - agent.last_seen > self.agent_timeout:
                self.handlers.agent_gone(agent, f"silent for {now - agent.last_seen:.1f}s")
                continue
            self.send(agent, frames)
        self.scheduler.rebalance()
        self._beat_handle = self.loop.call_later(self.heartbeat, self._beat)

    # -- the lifecycle of an attempt ----------------------------------------------------------
    def start(self, trial: Trial, agents: list[AgentInfo], pack: list[Trial] | None = None) -> Attempt:
        """Run ``trial`` on ``agents`` (rank order), or ``pack``'s trials as lanes of one run on its
        one agent (one message): journal (written before the trial leaves), arm deadlines, send."""
        ids, verdicts, metric = pack and [t.id for t in pack], self.handlers.intake.verdicts, self.controller.metric
        attempts = [Attempt(t, list(agents), t.attempts + 1, verdicts=verdicts, pack=ids) for t in (pack or [trial])]
        for agent in agents:
            agent.state, agent.attempt = AgentState.BUSY, attempts[0]
        if pack:
            agents[0].lanes = {a.trial.id: a for a in attempts}
        for attempt in attempts:
            self.book.started(attempt)
            self._arm(self.deadlines.trial_started(attempt))
        if not self.folder.before_send():  # the journal failed: the experiment ends, this trial with it
            return attempts[0]
        if pack:
            sent = [self.listener.send(agents[0].peer, self.codec.encode_all(
                [["trial", gang.trial_fields(a, 0, self.folder, metric)] for a in attempts]))]
        else:
            sent = [self.listener.send(a.peer, self.codec.encode("trial", **gang.trial_fields(attempts[0], rank, self.folder, metric)))
                    for rank, a in enumerate(agents)]
        for agent, ok in zip(agents, sent):
            if not ok:
                self.handlers.agent_gone(agent, "unreachable")
        return attempts[0]

    def lease(self, agent: AgentInfo, trials: list[Trial]) -> None:
        """Hand ``trials`` to a busy ``agent`` ahead, in one message: each starts there the
        moment the one before it ends (its deadlines are armed then, in ``Handlers._promote``)."""
        items, verdicts = [], self.handlers.intake.verdicts
        for trial in trials:
            agent.queued.append(attempt := Attempt(trial, [agent], trial.attempts + 1, verdicts=verdicts, leased=True))
            items.append(["trial", gang.trial_fields(attempt, 0, self.folder, self.controller.metric)])
            self.book.leased(attempt)
        if self.folder.before_send() and not self.listener.send(agent.peer, self.codec.encode_all(items)):
            self.handlers.agent_gone(agent, "unreachable")

    def ranks_answered(self, attempt: Attempt, abort: AbortRanks | None) -> None:
        """A rank answered, or was lost: abort the others if it failed (one that cannot be
        reached answers for itself), and settle the attempt once every rank has."""
        if abort is not None:
            frames = self.codec.encode("abort", trial=attempt.trial.id, reason=abort.reason)
            for rank in abort.ranks:
                other = attempt.agents[rank]
                if not (other.alive and self.listener.send(other.peer, frames)):
                    gang.unreachable(attempt, rank)
        if gang.all_answered(attempt):
            self.handlers.settle(attempt)

    def request_stop(self, attempt: Attempt, notify: bool = True) -> None:
        """Stop ``attempt`` (once); ``notify=False`` when a verdict already told its agent."""
        if attempt.stop_sent or attempt.over:
            return
        attempt.stop_sent = True
        attempt.trial.stop_requested = time.time()
        if notify:
            frames = self.codec.encode("stop", trial=attempt.trial.id)
            for agent in attempt.agents:
                self.listener.send(agent.peer, frames)
        self._arm(self.deadlines.stop_sent(attempt))

    def act(self, decision: Any) -> None:
        """Carry out, at once, what a policy decided (decisions.py): the scheduler's way to act."""
        self._acts[type(decision)](decision)

    def _acting(self) -> dict[type, Callable[[Any], Any]]:
        return {Start: lambda d: self.start(d.trial, d.agents, d.pack), Lease: lambda d: self.lease(d.agent, d.trials),
                TakeBack: lambda d: self.take_back(d.attempt), EndAs: self._end_as,
                LookAgain: lambda d: self.loop.call_later(d.delay, self.scheduler.rebalance),
                RanksAnswered: lambda d: self.ranks_answered(d.attempt, d.abort),
                CheckDone: lambda d: self.check_done(), Stop: self._stop, Arm: self._arm,
                Send: self._send, Welcome: lambda d: self.send(d.agent, self._welcome),
                Abort: lambda d: self.abort(d.message)}

    def _send(self, d: Send) -> None:
        frames = self.codec.encode(d.msg_type, **d.fields)
        self.send(d.agent, frames) if d.agent is not None else self.listener.send(d.peer, frames)

    def _stop(self, d: Stop) -> None:
        if d.overtime is not None:  # it ran past its time limit: said in the journal, and in its end
            d.attempt.overtime = d.overtime
            records.overtime(self.folder, d.attempt.trial.id, d.overtime)
        self.request_stop(d.attempt, notify=d.notify)

    def _end_as(self, d: EndAs) -> None:
        if d.log:
            self.folder.log_lines(d.attempt.trial.id, list(d.log))
        if d.restart:
            self.kill(d.attempt, d.state, **d.fields)
        else:
            self.handlers.end_attempt(d.attempt, d.state, **d.fields)

    def _arm(self, arm: Arm | None) -> asyncio.TimerHandle | None:
        """Arm the timer a policy asked for (cancelled with its attempt, if it watches one)."""
        if arm is None:
            return None
        handle = self.loop.call_later(arm.delay, self._due, arm)
        if arm.attempt is not None:
            arm.attempt.timers.append(handle)
        return handle

    def _due(self, arm: Arm) -> None:
        """A deadline's timer fired: do what the deadlines say it means now."""
        decision = self.deadlines.due(arm)
        if isinstance(decision, TimeUp):
            self.handlers.time_up(decision.max_time)
        elif decision is not None:
            self.act(decision)  # a Stop for its time limit, or an EndAs

    def kill(self, attempt: Attempt, state: TrialState, **fields: Any) -> None:
        """End an attempt that will not end itself: its agent restarts in place, as a new agent."""
        self.listener.send(attempt.lead.peer + BEAT_SUFFIX, self.codec.encode("kill", trial=attempt.trial.id))
        self.handlers.killed(attempt, state, **fields)

    def take_back(self, attempt: Attempt) -> None:
        """Ask the agent holding a trial handed out ahead to drop it: a "skipped" final answers
        if it had not started (scheduler.unleased); if it had, it runs on (once the time is up,
        it is stopped when the kernel learns it started, in ``Handlers._promote``). Its heartbeat thread
        hears it too, so a trial queued behind a hung one comes back while that one hangs."""
        if not attempt.taken_back:
            attempt.taken_back = True
            frames = self.codec.encode("skip", trial=attempt.trial.id)
            self.listener.send(attempt.lead.peer, frames)
            self.listener.send(attempt.lead.peer + BEAT_SUFFIX, frames)  # heard while a long trial runs

    def expect_agents(self, count: int | None) -> None:
        self.agents.expected = count  # a launcher's promise: when all have exited, nothing can go on

    def agent_exited(self, agent_id: str, detail: Any) -> None:
        """A launcher saw an agent process end (thread-safe; ignored once the loop is closed).
        ``detail`` is a sentence, or an Exit (plugins/launchers/base.py) telling how it died and
        whether a replacement is on its way."""
        self.view.call_soon(self._agent_exited, agent_id, detail)

    def _agent_exited(self, agent_id: str, detail: Any) -> None:
        if self._outcome is None:  # before run(): remember, and decide when it starts
            self._early_exits.append((agent_id, detail))
        elif not self.ended:  # once decided, a trial cut short is interrupted (_wind_down), whatever its agent did
            self.handlers.agent_exited(agent_id, detail)

    def result(self) -> Result:
        return Result.of(self)
