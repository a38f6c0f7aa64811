"""What agents' messages and exits change in the kernel's state, and what follows from them.

One handler per message type (the driver routes each decoded message here by its type), and
the transitions they share: a trial settled from its ranks' finals, an attempt ended, an agent
gone. They update the agents, the trial book and the scheduler, hand whatever must go out or
be armed to ``act`` as a decision (decisions.py) and what the journal records to ``journal``
(decisions.Journal): the driver sends, writes and arms timers, at once, in the order decided.
They hold no kernel.
"""
from __future__ import annotations

import collections
import time
from typing import TYPE_CHECKING, Any, Callable

from transports.codec import PART_SIZE, PROTOCOL, Codec, CodecError

from . import ahead, endings, gang, records
from .decisions import Abort, CheckDone, RanksAnswered, Send, Stop, TakeBack, Welcome
from .registry import AgentInfo, AgentState
from .trials import TrialState

if TYPE_CHECKING:
    from .controller import Controller
    from .deadlines import Deadlines
    from .intake import Intake
    from .journal import ExperimentFolder
    from .lifecycle import Attempt, TrialBook
    from .memory import GcPolicy
    from .registry import AgentRegistry
    from .scheduler import Scheduler

Handler = Callable[[AgentInfo, bytes, dict], None]


class Handlers:
    def __init__(self, *, agents: "AgentRegistry", book: "TrialBook", scheduler: "Scheduler",
                 controller: "Controller", intake: "Intake", gc: "GcPolicy", deadlines: "Deadlines",
                 folder: "ExperimentFolder", function: bytes, fail_fast: int | None, codec: "Codec",
                 act: Callable[[Any], Any], ended: Callable[[], bool], journal: "records.Writer"):
        self.agents, self.book, self.scheduler, self.controller = agents, book, scheduler, controller
        self.intake, self.gc, self.deadlines, self.folder = intake, gc, deadlines, folder
        self.journal = journal  # what the journal records, carried out by the driver (decisions.Journal)
        self.function, self.fail_fast, self.codec, self.act, self._ended = function, fail_fast, codec, act, ended
        self._told_version: set[bytes] = set()  # peers told they speak another protocol
        self.rejected: collections.Counter[str] = collections.Counter()
        self.dispatch_latencies: list[float] = []  # a result's arrival -> the next trial starting there
        self.table: dict[str, Handler] = {
            "hello": self.on_hello, "ready": self.on_ready, "metric": self.on_metric, "log": self.on_log,
            "final": self.on_final, "heartbeat": self.on_heartbeat, "bye": self.on_bye, "fetch": self.on_fetch,
            "batch": self.on_batch,
        }

    def started(self, experiment: str, context: str, resumed: dict | None) -> None:
        """The experiment starts (or a resumed one carries on): said first in the journal."""
        if resumed is None:
            c = self.controller
            records.experiment(self.journal, experiment, context, c.metric, str(c.direction), c.describe(),
                               c.objectives, c.directions)
        else:
            records.resumed(self.journal, **resumed)
        self.gc.serving()

    # -- messages ---------------------------------------------------------------------------
    def decode(self, peer: bytes, frames: list[bytes]) -> dict | None:
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
        reason = f"{exc}: this kernel speaks protocol {PROTOCOL}; install the same lagom-kernel version on every host"
        self.act(Send(peer, "shutdown", {"reason": reason}))

    def on_hello(self, agent: AgentInfo | None, peer: bytes, msg: dict) -> None:
        """A new agent, or a known one again: it restarted, or it rejoins after hearing nothing
        (a partition healed, or this kernel is a resumed one). Its old self is gone."""
        if agent is not None and agent.alive:
            agent.state = AgentState.GONE
            self.scheduler.forget(agent)
            self.scheduler.interrupted(agent, "its agent restarted")
        agent = self.agents.add(peer, msg)
        records.agent(self.journal, agent.id, agent.host, agent.pid, agent.devices)
        self.act(Welcome(agent))

    def on_ready(self, agent: AgentInfo, peer: bytes, msg: dict) -> None:
        if msg["ok"]:
            agent.state = AgentState.IDLE
            self.scheduler.assign(agent)
            return
        agent.state, agent.error = AgentState.BROKEN, msg["error"]
        records.agent_broken(self.journal, agent.id, msg["error"])
        self.act(Send(peer, "shutdown", {"reason": "cannot run the training function"}, agent))
        if not self.agents.alive() and self.agents.none_to_come():
            self.act(Abort(f"agent {agent.id} on {agent.host}: {msg['error']}"))

    def on_heartbeat(self, agent: AgentInfo, peer: bytes, msg: dict) -> None:
        """Nothing to do: every message from an agent refreshes ``last_seen`` as it arrives."""

    def on_metric(self, agent: AgentInfo, peer: bytes, msg: dict) -> None:
        attempt = agent.attempt
        if (attempt is None or attempt.trial.id != msg["trial"]) and \
                (attempt := agent.lanes.get(msg["trial"]) if agent.lanes else None) is None:
            self.rejected["stale"] += 1
            self.act(Send(peer, "verdict", {"trial": msg["trial"], "stop": True}))
            return
        stop = self.intake.points(attempt.trial, msg["points"])
        if attempt.verdicts:  # the agent waits for this answer before the function goes on
            self.act(Send(peer, "verdict", {"trial": attempt.trial.id, "stop": stop}))
        if stop:
            self.act(Stop(attempt, notify=not attempt.verdicts))

    def on_log(self, agent: AgentInfo, peer: bytes, msg: dict) -> None:
        trial = self.book.trials.get(msg["trial"])
        if trial is not None:
            self.folder.log_lines(trial.id, msg["lines"])
            self.intake.log(trial, msg["lines"])

    def on_fetch(self, agent: AgentInfo, peer: bytes, msg: dict) -> None:
        """An agent fetches a large function part by part, at its own pace (no size ceiling,
        and no gigabytes queued in the kernel for slow agents)."""
        offset = msg["offset"]
        if 0 <= offset < len(self.function):
            self.act(Send(peer, "part", {"offset": offset, "data": self.function[offset:offset + PART_SIZE]}, agent))

    def on_bye(self, agent: AgentInfo, peer: bytes, msg: dict) -> None:
        self.agent_gone(agent, msg["reason"])

    def on_batch(self, agent: AgentInfo, peer: bytes, msg: dict) -> None:
        """Several messages in one (the codec validated each): handled in the order sent."""
        table = self.table
        for item in msg["items"]:
            table[item["type"]](agent, peer, item)

    def on_final(self, agent: AgentInfo, peer: bytes, msg: dict) -> None:
        if msg["outcome"] == "skipped":
            self._skipped(agent, msg["trial"])
            return
        if agent.lanes:
            self._lane_final(agent, msg)
            return
        attempt = agent.attempt
        rank = msg["rank"]
        if attempt is None or attempt.trial.id != msg["trial"] or not gang.is_rank(attempt, agent, rank):
            self.rejected["stale"] += 1
            if agent.state == AgentState.GONE:  # back from a partition: what it holds runs elsewhere
                self.act(Send(peer, "rejoin", {}))
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
            self.act(RanksAnswered(attempt, abort))

    def _lane_final(self, agent: AgentInfo, msg: dict) -> None:
        """A lane of the pack ``agent`` runs has ended: it settles as a trial of its own; the
        agent takes more work once every lane has."""
        attempt = agent.lanes.pop(msg["trial"], None)
        if attempt is None or msg["rank"] != 0:
            self.rejected["stale"] += 1
            return
        if msg["points"]:
            self.intake.points(attempt.trial, msg["points"])
        if agent.attempt is attempt and agent.lanes:
            agent.attempt = next(iter(agent.lanes.values()))  # the agent stays busy with the rest
        gang.record_final(attempt, 0, msg)
        self.settle(attempt)

    def _promote(self, agent: AgentInfo) -> None:
        """The agent started the next trial it was handed ahead as soon as the last one ended
        (before that one's end is counted: something always runs while a queue is held)."""
        if agent.queued:
            attempt = agent.attempt = agent.queued.popleft()
            self.book.started(attempt)
            arm = self.deadlines.trial_started(attempt)
            if arm is not None:
                self.act(arm)
            if attempt.taken_back and self.scheduler.time_is_up:  # it started before it heard
                self.act(Stop(attempt))

    def _skipped(self, agent: AgentInfo, trial_id: int) -> None:
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
        self.act(CheckDone())

    # -- trials that end --------------------------------------------------------------------
    def settle(self, attempt: "Attempt") -> None:
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
            self.act(Abort(str(error)))
            return
        for agent in attempt.agents:
            if not agent.lanes:  # a pack's agent: once every lane has ended
                self.scheduler.assign(agent)
        self.scheduler.wake()

    def end_attempt(self, attempt: "Attempt", state: TrialState, **fields: Any) -> None:
        """End ``attempt`` and its trial (through the book, which counts and journals it)."""
        attempt.close()
        for agent in attempt.agents:
            if agent.attempt is attempt:
                agent.attempt = None
        self.book.end(attempt.trial, state, **fields)
        self.gc.trial_ended()
        first = self.book.failing_alike(self.fail_fast) if self.fail_fast and state == TrialState.FAILED else None
        if first is not None:
            self.act(Abort(f"the first {self.fail_fast} trials all failed with {first.error}, and none finished, "
                           f"so the search stopped: fix the function (trial {first.id}'s traceback is below, and "
                           f"in its log), or pass fail_fast=None to run every trial anyway\n\n{first.traceback or ''}"))

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
        records.agent_gone(self.journal, agent.id, why)
        self.scheduler.interrupted(agent, f"agent {agent.id} {why}", death, unsure=held > 0 and not known)
        self._unless_agents_left()

    def killed(self, attempt: "Attempt", state: TrialState, **fields: Any) -> None:
        """An attempt that would not end itself ended as ``state``; its agent, told to restart
        in place, comes back as a new agent (what it held waited behind this trial, unstarted)."""
        agent = attempt.lead
        agent.state = AgentState.GONE
        self.scheduler.forget(agent, suspect=False)
        records.killed(self.journal, attempt.trial.id, agent.id)
        self.end_attempt(attempt, state, ended=time.time(), **fields)
        others, agent.lanes = [a for a in agent.lanes.values() if a is not attempt], {}
        for lane in others:  # the pack's process restarts: lanes past their limit too end alike, the rest run again
            if lane.overtime is not None:
                self.end_attempt(lane, state, ended=time.time(), **fields)
            else:
                self.scheduler.lost(agent, lane, f"agent {agent.id} restarted: trial {attempt.trial.id} of its pack "
                                                 f"would not stop")
        self.scheduler.wake()
        self.act(CheckDone())

    def agent_exited(self, agent_id: str, detail: Any) -> None:
        """A launcher saw an agent process end: ``detail`` is a sentence, or an Exit telling how
        it died and whether a replacement is on its way."""
        if not getattr(detail, "restarting", False):
            self.agents.exited += 1
        agent = self.agents.by_id(agent_id)
        if agent is not None:
            self.agent_gone(agent, f"exited ({detail})", death=detail if hasattr(detail, "crashed") else None)
        self._unless_agents_left()

    def _unless_agents_left(self) -> None:
        """Every agent the launcher promised has exited and none is alive: never wait on nobody."""
        if self.agents.alive() or not self.agents.none_to_come() or self._ended():
            return
        broken = [a for a in self.agents if a.state == AgentState.BROKEN]
        if broken:
            self.act(Abort(f"agent {broken[0].id} on {broken[0].host}: {broken[0].error}"))
        else:
            self.act(Abort(f"every agent has exited; see their logs in {self.folder.agents_dir}"))

    def wind_down(self) -> None:
        """The experiment ended: trials cut short by an abort or an interrupt are interrupted, not
        ended (a resume runs them), and those handed out ahead and never started are withdrawn."""
        for agent in self.agents:
            while agent.queued:
                self.book.withdraw(agent.queued.popleft().trial)
        self.scheduler.withdraw_spare()
        cut = self.book.unfinished()
        for trial in cut:
            trial.state, trial.error = TrialState.INTERRUPTED, "the experiment ended while it ran"
            self.folder.close_log(trial.id)
        if cut:
            records.interrupted(self.journal, (t.id for t in cut))
        self.gc.done()

    def time_up(self, max_time: float | None = None) -> None:
        """The time budget is spent: start nothing more, stop what runs (it ends "stopped"),
        and take back what was handed out ahead (never started, it is not a trial of this run)."""
        records.time_up(self.journal, max_time)
        self.scheduler.drain(time_up=True)
        self.scheduler.withdraw_spare()
        for agent in self.agents.alive():
            for attempt in agent.queued:  # first: the agent has dropped them when it hears the stop
                self.act(TakeBack(attempt))
            for attempt in agent.running():
                self.act(Stop(attempt))
        self.act(CheckDone())
