"""The kernel: one asyncio loop that turns agents' messages into an experiment.

- Everything that happens is a message from an agent, a launcher's notice that an agent
  process ended, or a timer. The receive loop decodes each message (the codec drops and counts
  anything invalid first) and routes it by type through one table to an ``_on_<type>``
  handler. Nothing else reads the socket. Handlers run to completion on the loop, so the
  kernel's state needs no locks; other threads reach it through ``call_soon_threadsafe``.
- Policy lives beside it and decides; this module acts. The scheduler (who runs what), the
  rules for trials handed out ahead (ahead.py), the gang rules (gang.py), the deadlines and
  how a trial ends (endings.py) return decisions (decisions.py) or hand them to :meth:`act`;
  only this module sends, and arms timers. Every trial ends in :meth:`TrialBook.end
  <kernel.lifecycle.TrialBook.end>`, which journals it (kernel/records.py).
- Assignment is pushed, never polled; an agent whose trials are short holds some ahead, so a
  run of short trials costs batches, not messages. Its timers are the heartbeat and the
  deadlines the user asked for, each armed only when it can matter.
- It holds no optimizer and no JAX: what to run and what a result is worth come from the
  :class:`Controller` it is given; observers see a read-only :class:`KernelView`.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Any, Callable, Iterable

from transports.base import Listener
from transports.codec import PART_SIZE, PROTOCOL, Codec, CodecError

from . import ahead, endings, gang, records
from .controller import Controller, ExperimentError, Interrupted
from .deadlines import Deadlines
from .decisions import (AbortRanks, Arm, CheckDone, EndAs, Lease, LookAgain, RanksAnswered, Start, Stop, TakeBack,
                        TimeUp)
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

Handler = Callable[[AgentInfo, bytes, dict], None]


class Kernel:
    """One experiment's driver: agents, the trial book, the scheduler, and the loop that feeds them.

    Built by :func:`kernel.lagom` from a context; ``await kernel.run()`` returns the
    :class:`Result` when the controller has nothing left to run, or raises
    :class:`ExperimentError` when the experiment cannot go on. Must be built on a running loop.
    """

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
        self.book = TrialBook(folder, controller)
        self.scheduler = Scheduler(self.book, controller, self.agents, self.act, lambda: self.ended,
                                   lambda: self.view.total_trials, max_retries)
        self._acts = self._acting()
        self.view = KernelView(self)
        self.observers = list(observers)
        self.book.view, self.book.observers = self.view, self.observers
        folder.schedule = self.loop.call_later  # deferred fsyncs of the journal
        folder.on_error = lambda exc: self.loop.call_soon(self.abort, folder.describe_failure())
        self.intake = Intake(controller, self.view, self.observers)
        self.gc = GcPolicy()
        self.rejected: collections.Counter[str] = collections.Counter()
        self.dispatch_latencies: list[float] = []  # a result's arrival -> the next trial starting there
        self.resumed: dict | None = None  # what a journal replay restored (replay.py)
        self.started_at = time.time()
        self._function = function  # sent whole in the welcome, or (large) fetched by agents in parts
        inline = function if len(function) <= PART_SIZE else b""
        self._welcome = codec.encode("welcome", experiment=experiment, function=inline, size=len(function),
                                     heartbeat=heartbeat, env=dict(agent_env or {}), inject=inject)
        self._told_version: set[bytes] = set()  # peers told they speak another protocol
        self._early_exits: list[tuple[str, str]] = []
        self._outcome: asyncio.Future | None = None
        self._beat_handle: asyncio.TimerHandle | None = None
        self._budget: asyncio.TimerHandle | None = None  # max_time's timer
        self._handlers: dict[str, Handler] = {
            "hello": self._on_hello, "ready": self._on_ready, "metric": self._on_metric,
            "log": self._on_log, "final": self._on_final, "heartbeat": self._on_heartbeat,
            "bye": self._on_bye, "fetch": self._on_fetch, "batch": self._on_batch,
        }

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
        if self.resumed is None:
            c = self.controller
            records.experiment(self.folder, self.experiment, self.context_name, c.metric, str(c.direction),
                               c.describe(), c.objectives, c.directions)
        else:
            records.resumed(self.folder, **self.resumed)
        for ob in self.observers:
            ob.experiment_started(self.view)
        self.gc.serving()
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
        decode, handlers, agents, rejected = self._decode, self._handlers, self.agents, self.rejected
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
        # Trials cut short by an abort or an interrupt are not journaled as ended: a resume runs them.
        for agent in self.agents:  # handed out ahead, never started here: a resume runs them too
            while agent.queued:
                self.book.withdraw(agent.queued.popleft().trial)
        cut = self.book.unfinished()
        for trial in cut:
            trial.state, trial.error = TrialState.INTERRUPTED, "the experiment ended while it ran"
            self.folder.close_log(trial.id)
        if cut:
            records.interrupted(self.folder, (t.id for t in cut))
        self._beat_handle.cancel()
        if self._budget is not None:
            self._budget.cancel()
        self.gc.done()
        receiver.cancel()
        self._broadcast(self.codec.encode("shutdown", reason="experiment over"))

    def finish(self, error: BaseException | None = None) -> None:
        """Decide the experiment's outcome: done, or ``error`` for ``run`` to raise."""
        if self._outcome is None or self._outcome.done():
            return
        if error is None:
            self._outcome.set_result(None)
        else:
            self._outcome.set_exception(error)

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
        self.agent_gone(agent, "unreachable")
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
                self.agent_gone(agent, f"silent for {now - agent.last_seen:.1f}s")
                continue
            self.send(agent, frames)
        self.scheduler.rebalance()
        self._beat_handle = self.loop.call_later(self.heartbeat, self._beat)

    # -- handlers ---------------------------------------------------------------------------
    def _on_hello(self, agent: AgentInfo | None, peer: bytes, msg: dict) -> None:
        """A new agent, or a known one again: it restarted, or it rejoins after hearing nothing
        (a partition healed, or this kernel is a resumed one). Its old self is gone."""
        if agent is not None and agent.alive:
            agent.state = AgentState.GONE
            self.scheduler.forget(agent)
            self.scheduler.interrupted(agent, "its agent restarted")
        agent = self.agents.add(peer, msg)
        records.agent(self.folder, agent.id, agent.host, agent.pid, agent.devices)
        self.send(agent, self._welcome)

    def _on_ready(self, agent: AgentInfo, peer: bytes, msg: dict) -> None:
        if msg["ok"]:
            agent.state = AgentState.IDLE
            self.scheduler.assign(agent)
            return
        agent.state, agent.error = AgentState.BROKEN, msg["error"]
        records.agent_broken(self.folder, agent.id, msg["error"])
        self.send(agent, self.codec.encode("shutdown", reason="cannot run the training function"))
        if not self.agents.alive() and self._no_more_agents():
            self.abort(f"agent {agent.id} on {agent.host}: {msg['error']}")

    def _decode(self, peer: bytes, frames: list[bytes]) -> dict | None:
        """The message in ``frames``, or None (counted by reason) when it is not a valid one."""
        try:
            return self.codec.decode(frames)
        except CodecError as exc:
            self.rejected[exc.reason] += 1
            if exc.reason == "protocol":
                self._other_version(peer, exc)
            return None

    def _other_version(self, peer: bytes, exc: CodecError) -> None:
        """A peer with this experiment's token (its message was signed) that speaks another
        protocol: an agent of another lagom-kernel version. Told once why it is not welcome."""
        if peer in self._told_version or len(self._told_version) >= 1024:
            return
        self._told_version.add(peer)
        reason = (f"{exc}: this kernel speaks protocol {PROTOCOL}; install the same lagom-kernel version on every "
                  f"host")
        self.listener.send(peer, self.codec.encode("shutdown", reason=reason))

    def _on_heartbeat(self, agent: AgentInfo, peer: bytes, msg: dict) -> None:
        """Nothing to do: every message from an agent refreshes ``last_seen`` in ``_receive``."""

    def _on_metric(self, agent: AgentInfo, peer: bytes, msg: dict) -> None:
        attempt = agent.attempt
        if attempt is None or attempt.trial.id != msg["trial"]:
            self.rejected["stale"] += 1
            self.listener.send(peer, self.codec.encode("verdict", trial=msg["trial"], stop=True))
            return
        stop = self.intake.points(attempt.trial, msg["points"])
        if attempt.verdicts:  # the agent waits for this answer before the function goes on
            self.listener.send(peer, self.codec.encode("verdict", trial=attempt.trial.id, stop=stop))
        if stop:
            self.request_stop(attempt, notify=not attempt.verdicts)

    def _on_log(self, agent: AgentInfo, peer: bytes, msg: dict) -> None:
        trial = self.book.trials.get(msg["trial"])
        if trial is not None:
            self.folder.log_lines(trial.id, msg["lines"])
            self.intake.log(trial, msg["lines"])

    def _on_fetch(self, agent: AgentInfo, peer: bytes, msg: dict) -> None:
        """An agent fetches a large function part by part, at its own pace (no size ceiling,
        and no gigabytes queued in the kernel for slow agents)."""
        offset = msg["offset"]
        if 0 <= offset < len(self._function):
            self.send(agent, self.codec.encode("part", offset=offset, data=self._function[offset:offset + PART_SIZE]))

    def _on_bye(self, agent: AgentInfo, peer: bytes, msg: dict) -> None:
        self.agent_gone(agent, msg["reason"])

    def _on_batch(self, agent: AgentInfo, peer: bytes, msg: dict) -> None:
        """Several messages in one (the codec validated each): handled in the order sent."""
        handlers = self._handlers
        for item in msg["items"]:
            handlers[item["type"]](agent, peer, item)

    def _on_final(self, agent: AgentInfo, peer: bytes, msg: dict) -> None:
        if msg["outcome"] == "skipped":
            self._on_skipped(agent, msg["trial"])
            return
        attempt = agent.attempt
        rank = msg["rank"]
        if attempt is None or attempt.trial.id != msg["trial"] or not gang.is_rank(attempt, agent, rank):
            self.rejected["stale"] += 1
            if agent.state == AgentState.GONE:  # back from a partition: what it holds runs elsewhere
                self.listener.send(peer, self.codec.encode("rejoin"))
            return
        if msg["points"]:  # its last broadcasts (a stop they would call for is moot: it has ended)
            self.intake.points(attempt.trial, msg["points"])
        agent.attempt = None
        if not attempt.distributed:
            latency = ahead.paced(agent, attempt.leased, msg["started"], msg["duration"], time.time())
            if latency is not None:
                self.dispatch_latencies.append(latency)
            self._promote(agent)
        else:
            agent.state = AgentState.IDLE
        abort = gang.record_final(attempt, rank, msg)
        if abort is None and len(attempt.finals) == len(attempt.agents):
            self.settle(attempt)  # the common case: one rank, and it answered
        else:
            self.ranks_answered(attempt, abort)

    def _promote(self, agent: AgentInfo) -> None:
        """The agent started the next trial it was handed ahead as soon as the last one ended
        (before that one's end is counted: something always runs while a queue is held)."""
        if agent.queued:
            attempt = agent.attempt = agent.queued.popleft()
            self.book.started(attempt)
            self._arm(self.deadlines.trial_started(attempt))
            if attempt.taken_back and self.scheduler.time_is_up:  # it started before it heard
                self.request_stop(attempt)

    def _on_skipped(self, agent: AgentInfo, trial_id: int) -> None:
        """The agent dropped a trial handed out ahead, as asked, before it started."""
        if agent.attempt is not None and agent.attempt.trial.id == trial_id and not agent.attempt.distributed:
            attempt, agent.attempt = agent.attempt, None
            self._promote(agent)
        else:
            attempt = next((a for a in agent.queued if a.trial.id == trial_id), None)
            if attempt is None:
                self.rejected["stale"] += 1
                return
            agent.queued.remove(attempt)
        self.scheduler.unleased(attempt)
        self.scheduler.assign(agent)
        self.check_done()

    # -- the lifecycle of an attempt ----------------------------------------------------------
    def start(self, trial: Trial, agents: list[AgentInfo]) -> Attempt:
        """Run ``trial`` on ``agents`` (rank order): send it, journal it, arm its deadlines."""
        attempt = Attempt(trial, list(agents), trial.attempts + 1, verdicts=self.intake.verdicts)
        for agent in agents:
            agent.state, agent.attempt = AgentState.BUSY, attempt
        sent = [self.listener.send(a.peer, self.codec.encode("trial", **self._trial_fields(attempt, rank)))
                for rank, a in enumerate(agents)]
        self.book.started(attempt)
        self._arm(self.deadlines.trial_started(attempt))
        for agent, ok in zip(agents, sent):
            if not ok:
                self.agent_gone(agent, "unreachable")
        return attempt

    def lease(self, agent: AgentInfo, trials: list[Trial]) -> None:
        """Hand ``trials`` to a busy ``agent`` ahead, in one message: each starts there the
        moment the one before it ends (its deadlines are armed then, in ``_promote``)."""
        items = []
        for trial in trials:
            attempt = Attempt(trial, [agent], trial.attempts + 1, verdicts=self.intake.verdicts, leased=True)
            agent.queued.append(attempt)
            items.append(["trial", self._trial_fields(attempt, 0)])
            self.book.leased(attempt)
        if not self.listener.send(agent.peer, self.codec.encode_all(items)):
            self.agent_gone(agent, "unreachable")

    def _trial_fields(self, attempt: Attempt, rank: int) -> dict[str, Any]:
        trial = attempt.trial
        parent = None if trial.parent is None else self.folder.checkpoint_dir(trial.parent)
        return {"trial": trial.id, "params": trial.params, "budget": trial.budget,
                "checkpoint": self.folder.checkpoint_dir(trial.id), "parent_checkpoint": parent,
                "run": gang.run_for_rank(attempt, rank), "extra": trial.extra,
                "verdicts": attempt.verdicts, "metric": self.controller.metric, "traced": trial.traced}

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
            self.settle(attempt)

    def settle(self, attempt: Attempt) -> None:
        """Every rank has answered: end the trial with what they sent, and give its agents more
        (a gang that lost an agent runs again instead)."""
        if attempt.requeue is not None:
            self.scheduler.requeue_gang(attempt)
            return
        state, fields, error = endings.outcome(attempt, self.controller)
        if fields.get("traceback"):
            self.folder.log_lines(attempt.trial.id, [fields["traceback"]])
        self.end_attempt(attempt, state, **fields)
        if error is not None:
            self.abort(str(error))
            return
        for agent in attempt.agents:
            self.scheduler.assign(agent)
        self.scheduler.wake()

    def end_attempt(self, attempt: Attempt, state: TrialState, **fields: Any) -> None:
        """End ``attempt`` and its trial (through the book, which counts and journals it)."""
        attempt.close()
        for agent in attempt.agents:
            if agent.attempt is attempt:
                agent.attempt = None
        self.book.end(attempt.trial, state, **fields)
        self.gc.trial_ended()
        first = self.book.failing_alike(self.fail_fast) if self.fail_fast and state == TrialState.FAILED else None
        if first is not None:
            self.abort(f"the first {self.fail_fast} trials all failed with {first.error}, and none finished, so "
                       f"the search stopped: fix the function (trial {first.id}'s traceback is below, and in "
                       f"its log), or pass fail_fast=None to run every trial anyway\n\n{first.traceback or ''}")

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
        return {Start: lambda d: self.start(d.trial, d.agents), Lease: lambda d: self.lease(d.agent, d.trials),
                TakeBack: lambda d: self.take_back(d.attempt), EndAs: self._end_as,
                LookAgain: lambda d: self.loop.call_later(d.delay, self.scheduler.rebalance),
                RanksAnswered: lambda d: self.ranks_answered(d.attempt, d.abort),
                CheckDone: lambda d: self.check_done()}

    def _end_as(self, d: EndAs) -> None:
        if d.log:
            self.folder.log_lines(d.attempt.trial.id, list(d.log))
        if d.restart:
            self.kill(d.attempt, d.state, **d.fields)
        else:
            self.end_attempt(d.attempt, d.state, **d.fields)

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
            records.time_up(self.folder, decision.max_time)
            self.time_up()
        elif isinstance(decision, Stop):
            decision.attempt.overtime = decision.overtime
            records.overtime(self.folder, decision.attempt.trial.id, decision.overtime)
            self.request_stop(decision.attempt)
        elif isinstance(decision, EndAs):
            self.act(decision)

    def kill(self, attempt: Attempt, state: TrialState, **fields: Any) -> None:
        """End an attempt that will not end itself: its agent restarts in place, as a new agent."""
        agent = attempt.lead
        self.listener.send(agent.peer + BEAT_SUFFIX, self.codec.encode("kill", trial=attempt.trial.id))
        agent.state = AgentState.GONE
        self.scheduler.forget(agent, suspect=False)  # what it held waited behind this trial, unstarted
        records.killed(self.folder, attempt.trial.id, agent.id)
        self.end_attempt(attempt, state, ended=time.time(), **fields)
        self.scheduler.wake()
        self.check_done()

    def time_up(self) -> None:
        """The time budget is spent: start nothing more, stop what runs (it ends "stopped"),
        and take back what was handed out ahead (never started, it is not a trial of this run)."""
        self.scheduler.drain(time_up=True)
        for agent in self.agents.alive():
            for attempt in agent.queued:  # first: the agent has dropped them when it hears the stop
                self.take_back(attempt)
            if agent.attempt is not None:
                self.request_stop(agent.attempt)
        self.check_done()

    def take_back(self, attempt: Attempt) -> None:
        """Ask the agent holding a trial handed out ahead to drop it: a "skipped" final answers
        if it had not started (scheduler.unleased); if it had, it runs on (once the time is up,
        it is stopped when the kernel learns it started, in ``_promote``). Its heartbeat thread
        hears it too, so a trial queued behind a hung one comes back while that one hangs."""
        if not attempt.taken_back:
            attempt.taken_back = True
            frames = self.codec.encode("skip", trial=attempt.trial.id)
            self.listener.send(attempt.lead.peer, frames)
            self.listener.send(attempt.lead.peer + BEAT_SUFFIX, frames)  # heard while a long trial runs

    # -- agents that leave ------------------------------------------------------------------
    def agent_gone(self, agent: AgentInfo, why: str, death: Any = None) -> None:
        """``agent`` is gone (left, died, unreachable, silent): its work runs elsewhere, unless
        ``death`` (a launcher's Exit) says its trial killed it; when it also names the trial the
        process died running (a local agent's blackbox), what it held ahead is not suspected."""
        if not agent.alive:
            return
        agent.state = AgentState.GONE
        culprit = getattr(death, "trial", None)  # the trial its process died running, when its launcher knows
        known = culprit is not None and agent.attempt is not None and agent.attempt.trial.id == culprit
        held = self.scheduler.forget(agent, suspect=not known)
        records.agent_gone(self.folder, agent.id, why)
        self.scheduler.interrupted(agent, f"agent {agent.id} {why}", death, unsure=held > 0 and not known)
        if not self.agents.alive() and self._no_more_agents() and not self.ended:
            self._out_of_agents()

    def _no_more_agents(self) -> bool:
        return self.agents.none_to_come()

    def _out_of_agents(self) -> None:
        broken = [a for a in self.agents if a.state == AgentState.BROKEN]
        if broken:
            self.abort(f"agent {broken[0].id} on {broken[0].host}: {broken[0].error}")
        else:
            self.abort(f"every agent has exited; see their logs in {self.folder.agents_dir}")

    def expect_agents(self, count: int | None) -> None:
        """A launcher promised ``count`` agents; when all have exited the experiment cannot go on."""
        self.agents.expected = count

    def agent_exited(self, agent_id: str, detail: Any) -> None:
        """A launcher saw an agent process end (thread-safe; ignored once the loop is closed).
        ``detail`` is a sentence, or an Exit (plugins/launchers/base.py) telling how it died and
        whether a replacement is on its way."""
        self.view.call_soon(self._agent_exited, agent_id, detail)

    def _agent_exited(self, agent_id: str, detail: Any) -> None:
        if self._outcome is None:  # before run(): remember, and decide when it starts
            self._early_exits.append((agent_id, detail))
            return
        if self.ended:  # decided: a trial cut short is interrupted (_wind_down), whatever its agent did
            return
        if not getattr(detail, "restarting", False):
            self.agents.exited += 1
        agent = self.agents.by_id(agent_id)
        if agent is not None:
            self.agent_gone(agent, f"exited ({detail})", death=detail if hasattr(detail, "crashed") else None)
        if self._no_more_agents() and not self.agents.alive() and not self.ended:
            self._out_of_agents()  # every agent the launcher started has exited: never wait on nobody

    def result(self) -> Result:
        return Result.of(self)
