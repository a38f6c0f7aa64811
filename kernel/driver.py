"""The kernel: one asyncio loop, one dispatcher, the scheduler, the journal.

Everything that happens is a message from an agent. The receive loop decodes each one (the
codec drops and counts anything invalid before a handler sees it) and routes it by type to a
``_on_<type>`` handler. Assignment is pushed: the moment an agent is ready or returns a result,
the controller is asked for the next trial and it is sent to that agent. There is no polling:
between messages the loop sleeps, and the only timer is the heartbeat.

The kernel holds no optimizer and no JAX: the policy is the :class:`Controller` it was given.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Any, Callable, Iterable

from transports.codec import Codec, CodecError

from .controller import DONE, WAIT, Controller, ExperimentError, TrialSpec
from .journal import ExperimentFolder
from .registry import BEAT_SUFFIX, AgentInfo, AgentRegistry
from .trials import Result, Trial

log = logging.getLogger("lagom.kernel")


class Observer:
    """Hooks for things that watch an experiment (progress display, reports); all optional."""

    def experiment_started(self, kernel: "Kernel") -> None: ...
    def trial_started(self, kernel: "Kernel", trial: Trial) -> None: ...
    def trial_metric(self, kernel: "Kernel", trial: Trial, step: float, value: float) -> None: ...
    def trial_ended(self, kernel: "Kernel", trial: Trial) -> None: ...
    def experiment_ended(self, kernel: "Kernel", result: Result | None) -> None: ...


class Kernel:
    def __init__(self, *, experiment: str, context_name: str, function: bytes, controller: Controller,
                 listener: Any, codec: Codec, folder: ExperimentFolder, heartbeat: float = 1.0,
                 max_retries: int = 1, agent_env: dict[str, str] | None = None, inject: bytes | None = None,
                 agent_timeout: float | None = 5.0, stop_grace: float | None = 10.0,
                 observers: Iterable[Observer] = ()):
        self.experiment = experiment
        self.context_name = context_name
        self.controller = controller
        self.listener = listener
        self.codec = codec
        self.folder = folder
        self.heartbeat = heartbeat
        self.max_retries = max_retries
        self.agent_timeout = agent_timeout
        self.stop_grace = stop_grace
        self.observers = list(observers)
        # only those that want every broadcast are called per broadcast (the hot path)
        self._metric_observers = [ob for ob in self.observers
                                  if type(ob).trial_metric is not Observer.trial_metric]
        self.agents = AgentRegistry()
        self.trials: dict[int, Trial] = {}
        self.counts: collections.Counter[str] = collections.Counter()
        self.rejected: collections.Counter[str] = collections.Counter()
        self.best: Trial | None = None
        self.dispatch_latencies: list[float] = []  # a result's arrival -> the next trial starting there
        self._welcome = codec.encode("welcome", experiment=experiment, function=function,
                                     heartbeat=heartbeat, env=dict(agent_env or {}), inject=inject)
        self._retry: collections.deque[Trial] = collections.deque()
        self._waiting: dict[bytes, AgentInfo] = {}  # agents told WAIT, in arrival order
        self._next_id = 0
        self._controller_done = False
        self._expected_agents: int | None = None  # agents a launcher promised; None: any may join
        self._exited_agents = 0
        self._early_exits: list[tuple[str, str]] = []
        self._resumed: dict | None = None
        self._gang: Trial | None = None  # a distributed trial gathering its agents
        self._gang_agents: list[AgentInfo] = []
        self._handlers: dict[str, Callable[[AgentInfo | None, bytes, dict], None]] = {
            "hello": self._on_hello, "ready": self._on_ready, "metric": self._on_metric,
            "log": self._on_log, "final": self._on_final, "heartbeat": self._on_heartbeat,
            "bye": self._on_bye,
        }
        self._outcome: asyncio.Future | None = None
        self._loop = asyncio.get_running_loop()  # launchers report from their own threads
        self.started_at = time.time()
        self.first_trial_at: float | None = None

    # -- the loop ---------------------------------------------------------------------------
    async def run(self) -> Result:
        loop = self._loop
        self._outcome = loop.create_future()
        self.started_at = time.time()
        for agent_id, detail in self._early_exits:
            self._exited_agents -= 1
            self._agent_exited(agent_id, detail)
        if self._resumed is None:
            self.folder.record("experiment", id=self.experiment, context=self.context_name,
                               controller=self.controller.describe())
        else:
            self.folder.record("resumed", **self._resumed)
        for ob in self.observers:
            ob.experiment_started(self)
        receiver = asyncio.create_task(self._receive(), name="lagom-receive")
        self._beat_handle = loop.call_later(self.heartbeat, self._beat)
        deadline = None
        if self.controller.max_time is not None:
            deadline = loop.call_later(self.controller.max_time, self._time_is_up)
        try:
            await asyncio.wait({receiver, self._outcome}, return_when=asyncio.FIRST_COMPLETED)
            if receiver.done() and not self._outcome.done():
                receiver.result()  # a bug in a handler: surface it
            self._outcome.result()
        finally:
            for trial in self.trials.values():  # cut short by an abort or an interrupt
                if trial.state in ("running", "pending"):
                    trial.state, trial.error = "lost", "the experiment ended while it ran"
                    self.folder.close_log(trial.id)
            self._beat_handle.cancel()
            if deadline is not None:
                deadline.cancel()
            receiver.cancel()
            self._broadcast_shutdown("experiment over")
        return self.result()

    async def _receive(self) -> None:
        decode = self.codec.decode
        handlers = self._handlers
        agents = self.agents
        while True:
            batch = await self.listener.recv_batch()
            for peer, frames in batch:
                try:
                    msg = decode(frames)
                except CodecError as exc:
                    self.rejected[exc.reason] += 1
                    continue
                agent = agents.get(peer)
                if agent is None:
                    if msg["type"] != "hello":
                        self.rejected["unknown-peer"] += 1
                        continue
                else:
                    agent.last_seen = time.monotonic()
                handlers[msg["type"]](agent, peer, msg)
            if self._outcome.done():
                return
            await asyncio.sleep(0)  # let timers run even under a flood of messages

    def _finish(self, error: BaseException | None = None) -> None:
        if self._outcome is not None and not self._outcome.done():
            if error is None:
                self._outcome.set_result(None)
            else:
                self._outcome.set_exception(error)

    def abort(self, message: str) -> None:
        """End the experiment with an error the user sees; what was done stays in the folder."""
        err = ExperimentError(message)
        err.path = self.folder.path
        self.folder.record("aborted", reason=message)
        self._finish(err)

    # -- sending ----------------------------------------------------------------------------
    def _send(self, agent: AgentInfo, frames: list[bytes]) -> bool:
        if self.listener.send(agent.peer, frames):
            return True
        self._agent_gone(agent, "unreachable")
        return False

    def _beat(self) -> None:
        """Once per heartbeat interval: beat to every agent, and declare lost those silent for
        longer than ``agent_timeout`` (a frozen process, a host gone without closing its socket)."""
        frames = self.codec.encode("heartbeat")
        now = time.monotonic()
        for agent in self.agents.alive():
            if self.agent_timeout is not None and now - agent.last_seen > self.agent_timeout:
                self._agent_gone(agent, f"silent for {now - agent.last_seen:.1f}s")
                self.listener.send(agent.peer, self.codec.encode("shutdown", reason="declared lost"))
                continue
            self._send(agent, frames)
        self._beat_handle = self._loop.call_later(self.heartbeat, self._beat)

    def _broadcast_shutdown(self, reason: str) -> None:
        frames = self.codec.encode("shutdown", reason=reason)
        for agent in self.agents.alive():
            self.listener.send(agent.peer, frames)

    # -- handlers ---------------------------------------------------------------------------
    def _on_hello(self, agent: AgentInfo | None, peer: bytes, msg: dict) -> None:
        if agent is not None and agent.trial is not None:
            self._trial_interrupted(agent, "its agent restarted")
        agent = self.agents.add(peer, msg)
        self.folder.record("agent", id=agent.id, host=agent.host, pid=agent.pid, devices=agent.devices)
        self._send(agent, self._welcome)

    def _on_ready(self, agent: AgentInfo, peer: bytes, msg: dict) -> None:
        if not msg["ok"]:
            agent.state, agent.error = "broken", msg["error"]
            self.folder.record("agent-broken", id=agent.id, error=msg["error"])
            self._send(agent, self.codec.encode("shutdown", reason="cannot run the training function"))
            if not self.agents.alive() and self._no_more_agents():
                self.abort(f"agent {agent.id} on {agent.host}: {msg['error']}")
            return
        self._assign(agent)

    def _on_heartbeat(self, agent: AgentInfo, peer: bytes, msg: dict) -> None:
        """Nothing to do: every message from an agent refreshes ``last_seen`` in ``_receive``."""

    def _on_metric(self, agent: AgentInfo, peer: bytes, msg: dict) -> None:
        trial = self.trials.get(msg["trial"])
        if trial is None or trial.state != "running" or trial.agent != agent.id:
            self.rejected["stale"] += 1
            return
        for step, value in msg["points"]:
            trial.history.append((step, value))
            for ob in self._metric_observers:
                ob.trial_metric(self, trial, step, value)
            if self.controller.on_metric(trial, step, value) and not trial.info.get("stop_sent"):
                self._request_stop(agent, trial)

    def _on_log(self, agent: AgentInfo, peer: bytes, msg: dict) -> None:
        if msg["trial"] in self.trials:
            self.folder.log_lines(msg["trial"], msg["lines"])

    def _on_bye(self, agent: AgentInfo, peer: bytes, msg: dict) -> None:
        self._agent_gone(agent, msg["reason"])

    def _on_final(self, agent: AgentInfo, peer: bytes, msg: dict) -> None:
        now = time.time()
        trial = self.trials.get(msg["trial"])
        if trial is not None and trial.state == "running" and "ranks" in trial.info:
            self._on_gang_final(agent, trial, msg)
            return
        if trial is None or trial.state != "running" or trial.agent != agent.id:
            self.rejected["stale"] += 1
            return
        if agent.last_final_at is not None:  # agent clock vs kernel clock: one host, or NTP
            self.dispatch_latencies.append(msg["started"] - agent.last_final_at)
        trial.started = msg["started"]
        trial.ended = msg["started"] + msg["duration"]
        outcome = msg["outcome"]
        error = None
        if outcome == "error":
            trial.state, trial.error, trial.traceback = "failed", msg["error"], msg["traceback"]
            if msg["traceback"]:
                self.folder.log_lines(trial.id, [msg["traceback"]])
        else:
            trial.result = msg["result"]
            if outcome == "stopped" or trial.info.get("stop_sent"):
                trial.state = "stopped"
            else:
                trial.state = "finished"
            try:
                trial.metric = self.controller.score(trial.result) if outcome == "ok" else msg["value"]
            except ExperimentError as exc:
                trial.state, trial.error = "failed", str(exc)
                error = exc
        agent.trial = None
        agent.trials_done += 1
        agent.last_final_at = now
        self._trial_ended(trial)
        if error is not None:
            self.abort(str(error))
            return
        self._assign(agent)
        if self._waiting:
            self._wake_waiting()

    # -- scheduling -------------------------------------------------------------------------
    def _assign(self, agent: AgentInfo) -> None:
        """Give ``agent`` its next trial now, or park it until something changes."""
        if self._outcome.done() or not agent.alive:
            return
        if self._gang is not None:
            self._join_gang(agent)
            return
        if self._retry:
            trial = self._retry.popleft()
        else:
            decision = DONE if self._controller_done else self.controller.next_trial(self._next_id)
            if decision is WAIT:
                agent.state = "waiting"
                self._waiting[agent.peer] = agent
                self._check_done()
                return
            if decision is DONE:
                self._controller_done = True
                agent.state = "idle"
                self._waiting.pop(agent.peer, None)
                self._check_done()
                return
            if not isinstance(decision, TrialSpec):
                raise TypeError(f"controller.next_trial returned {decision!r}")
            trial = Trial(self._next_id, dict(decision.params), decision.budget, info=dict(decision.info),
                          parent=decision.parent)
            self._next_id += 1
            self.trials[trial.id] = trial
            trial.run, trial.extra = decision.run, decision.extra
            if decision.gang > 1:
                trial.info["gang"] = decision.gang
                self._gang, self._gang_agents = trial, []
                self._join_gang(agent)
                return
        self._waiting.pop(agent.peer, None)
        trial.state, trial.agent = "running", agent.id
        trial.attempts += 1
        agent.state, agent.trial = "busy", trial.id
        if self.controller.trial_timeout is not None:
            self._loop.call_later(self.controller.trial_timeout, self._overtime, trial.id, trial.attempts, agent)
        frames = self._trial_frames(trial, trial.run)
        if not self._send(agent, frames):
            return  # _agent_gone re-queued it
        self._started(trial)

    def _started(self, trial: Trial) -> None:
        if self.first_trial_at is None:
            self.first_trial_at = time.time()
        self.counts["running"] += 1
        self.folder.record("start", trial=trial.id, params=trial.params, budget=trial.budget,
                           agent=trial.agent, attempt=trial.attempts, info=trial.info, parent=trial.parent)
        for ob in self.observers:
            ob.trial_started(self, trial)

    def _trial_frames(self, trial: Trial, run: dict | None) -> list[bytes]:
        parent = None if trial.parent is None else self.folder.checkpoint_dir(trial.parent)
        return self.codec.encode("trial", trial=trial.id, params=trial.params, budget=trial.budget,
                                 checkpoint=self.folder.checkpoint_dir(trial.id), parent_checkpoint=parent,
                                 run=run, extra=trial.extra)

    def _join_gang(self, agent: AgentInfo) -> None:
        """A distributed trial starts once ``gang`` agents are free: rank 0 hosts the coordinator."""
        trial = self._gang
        self._waiting.pop(agent.peer, None)
        self._gang_agents = [a for a in self._gang_agents if a.alive]
        if agent not in self._gang_agents:
            self._gang_agents.append(agent)
            agent.state = "reserved"
        n = trial.info["gang"]
        if len(self._gang_agents) < n:
            return
        agents, self._gang, self._gang_agents = self._gang_agents[:n], None, []
        coordinator = f"{agents[0].address}:{agents[0].port}"
        trial.state, trial.agent, trial.attempts = "running", agents[0].id, trial.attempts + 1
        trial.info["ranks"] = [a.id for a in agents]
        trial.info["coordinator"] = coordinator
        self._gang_finals: dict[int, dict] = {}
        for rank, a in enumerate(agents):
            a.state, a.trial = "busy", trial.id
            run = dict(trial.run or {}, process_id=rank, num_processes=n, coordinator=coordinator)
            self._send(a, self._trial_frames(trial, run))
        self._started(trial)

    def _on_gang_final(self, agent: AgentInfo, trial: Trial, msg: dict) -> None:
        ranks = trial.info["ranks"]
        rank = msg["rank"]
        if not (0 <= rank < len(ranks)) or ranks[rank] != agent.id or rank in self._gang_finals:
            self.rejected["stale"] += 1
            return
        self._gang_finals[rank] = msg
        agent.trial, agent.state = None, "idle"
        if msg["outcome"] == "error" and not trial.info.get("aborting"):
            trial.info["aborting"] = rank  # one rank failed: end the others now, not at a timeout
            trial.error, trial.traceback = f"rank {rank}: {msg['error']}", msg["traceback"]
            for other_rank, other_id in enumerate(ranks):
                other = self.agents.by_id(other_id)
                if other_rank in self._gang_finals:
                    continue
                if other is not None and other.alive:
                    self._send(other, self.codec.encode("abort", trial=trial.id,
                                                        reason=f"rank {rank} failed: {msg['error']}"))
                else:  # nobody left to answer for that rank
                    self._gang_finals[other_rank] = dict(msg, outcome="error", error="its agent was lost")
        if len(self._gang_finals) < len(ranks):
            return
        lead = self._gang_finals[0]
        trial.started, trial.ended = lead["started"], lead["started"] + lead["duration"]
        if "aborting" in trial.info:
            trial.state = "failed"
            if trial.traceback:
                self.folder.log_lines(trial.id, [trial.traceback])
        else:
            trial.result = lead["result"]
            trial.state = "stopped" if lead["outcome"] == "stopped" else "finished"
            trial.metric = self.controller.score(trial.result) if lead["outcome"] == "ok" else lead["value"]
        self._trial_ended(trial)
        for other_id in ranks:
            other = self.agents.by_id(other_id)
            if other is not None and other.alive:
                self._assign(other)

    def _wake_waiting(self) -> None:
        for agent in list(self._waiting.values()):
            self._assign(agent)
            if agent.state == "waiting":
                break  # the controller still has nothing; the rest would hear the same

    def _trial_ended(self, trial: Trial) -> None:
        self.counts["running"] -= 1
        self.counts[trial.state] += 1
        self._note_best(trial)
        self.folder.close_log(trial.id)
        self.folder.record("end", trial=trial.to_dict())
        self.controller.on_end(trial)
        for ob in self.observers:
            ob.trial_ended(self, trial)

    def _note_best(self, trial: Trial) -> None:
        if trial.metric is not None and trial.state in ("finished", "stopped"):
            if self.best is None or (trial.metric > self.best.metric if self.controller.direction == "max"
                                     else trial.metric < self.best.metric):
                self.best = trial

    def _time_is_up(self) -> None:
        """The time budget is spent: start nothing more, and stop what runs (it ends "stopped")."""
        self.folder.record("time-up", max_time=self.controller.max_time)
        self._controller_done = True
        for agent in self.agents.alive():
            trial = self.trials.get(agent.trial) if agent.trial is not None else None
            if trial is not None and trial.state == "running" and not trial.info.get("stop_sent"):
                self._request_stop(agent, trial)
        self._check_done()

    def _request_stop(self, agent: AgentInfo, trial: Trial) -> None:
        """Push a stop; a trial still running ``stop_grace`` seconds later is ended by force."""
        trial.info["stop_sent"] = time.time()
        self._send(agent, self.codec.encode("stop", trial=trial.id))
        if self.stop_grace is not None and "ranks" not in trial.info:
            self._loop.call_later(self.stop_grace, self._enforce_stop, trial.id, trial.attempts, agent)

    def _overtime(self, trial_id: int, attempt: int, agent: AgentInfo) -> None:
        trial = self.trials.get(trial_id)
        if trial is not None and trial.state == "running" and trial.attempts == attempt and trial.agent == agent.id:
            trial.info["time_limit"] = self.controller.trial_timeout
            self.folder.record("overtime", trial=trial_id, limit=self.controller.trial_timeout)
            if not trial.info.get("stop_sent"):
                self._request_stop(agent, trial)

    def _enforce_stop(self, trial_id: int, attempt: int, agent: AgentInfo) -> None:
        """The trial ignored its stop: end it here, and have its agent restart (the only way to
        end a function that does not return); the agent comes back as a fresh one."""
        trial = self.trials.get(trial_id)
        if trial is None or trial.state != "running" or trial.attempts != attempt or trial.agent != agent.id:
            return
        limit = trial.info.get("time_limit")
        trial.state = "failed" if limit else "stopped"
        trial.error = (f"ran past its time limit of {limit}s" if limit else "ignored its stop") + \
            f" and was ended {self.stop_grace}s later; its agent restarted"
        if trial.history:
            trial.metric = trial.history[-1][1] if not limit else None
        trial.ended = time.time()
        self.listener.send(agent.peer + BEAT_SUFFIX, self.codec.encode("kill", trial=trial_id))
        agent.trial = None
        agent.state = "gone"
        self._waiting.pop(agent.peer, None)
        self.folder.record("killed", trial=trial_id, agent=agent.id)
        self._trial_ended(trial)
        if self._waiting:
            self._wake_waiting()
        self._check_done()

    def _check_done(self) -> None:
        if self._controller_done and not self._retry and self.counts["running"] == 0:
            self._finish()

    # -- agents that leave ------------------------------------------------------------------
    def _trial_interrupted(self, agent: AgentInfo, why: str) -> None:
        if self._gang is not None and agent in self._gang_agents:
            self._gang_agents.remove(agent)
        trial = self.trials.get(agent.trial) if agent.trial is not None else None
        agent.trial = None
        if trial is None or trial.state != "running":
            return
        if "ranks" in trial.info:  # a distributed run cannot go on without one of its processes
            rank = trial.info["ranks"].index(agent.id)
            self._on_gang_final(agent, trial, {
                "rank": rank, "outcome": "error", "error": f"its agent was lost ({why})", "traceback": None,
                "result": None, "started": time.time(), "duration": 0.0, "step": None, "value": None})
            return
        self.counts["running"] -= 1
        if trial.attempts <= self.max_retries:
            trial.state, trial.agent = "pending", None
            trial.history.clear()
            self.folder.record("requeue", trial=trial.id, reason=why)
            self._retry.append(trial)
            for other in list(self._waiting.values()) + [a for a in self.agents.alive() if a.state == "idle"]:
                if self._retry:
                    self._assign(other)
        else:
            trial.state, trial.error = "lost", f"lost: {why}"
            self.counts["running"] += 1  # _trial_ended decrements
            self._trial_ended(trial)
            self._check_done()

    def _agent_gone(self, agent: AgentInfo, why: str) -> None:
        if not agent.alive:
            return
        agent.state = "gone"
        self._waiting.pop(agent.peer, None)
        self.folder.record("agent-gone", id=agent.id, reason=why)
        self._trial_interrupted(agent, f"agent {agent.id} {why}")
        if not self.agents.alive() and self._no_more_agents() and not self._outcome.done():
            self._out_of_agents()

    def _no_more_agents(self) -> bool:
        return self._expected_agents is not None and self._exited_agents >= self._expected_agents

    def _out_of_agents(self) -> None:
        broken = [a for a in self.agents if a.state == "broken"]
        if broken:
            self.abort(f"agent {broken[0].id} on {broken[0].host}: {broken[0].error}")
        else:
            self.abort(f"every agent has exited; see their logs in {self.folder.agents_dir}")

    def expect_agents(self, count: int | None) -> None:
        """A launcher promised ``count`` agents; when all have exited the experiment cannot go on."""
        self._expected_agents = count

    def agent_exited(self, agent_id: str, detail: str) -> None:
        """A launcher saw an agent process end (thread-safe; ignored once the loop is closed)."""
        try:
            self._loop.call_soon_threadsafe(self._agent_exited, agent_id, detail)
        except RuntimeError:
            pass

    def _agent_exited(self, agent_id: str, detail: str) -> None:
        self._exited_agents += 1
        if self._outcome is None:  # before run(): remember, and decide when it starts
            self._early_exits.append((agent_id, detail))
            return
        agent = self.agents.by_id(agent_id)
        if agent is not None:
            self._agent_gone(agent, f"exited ({detail})")
        elif self._no_more_agents() and not self.agents.alive() and not self._outcome.done():
            self._out_of_agents()

    # -- resume -----------------------------------------------------------------------------
    def restore(self, events: list[dict]) -> dict[str, int]:
        """Replay a journal: the controller makes the same decisions again (same seed, same
        results in the same order), so the optimizer's and early stopper's state come back
        without either of them knowing; trials that had ended keep their results, and those
        that were running are queued to run again."""
        mismatched = 0
        for event in events:
            kind = event["event"]
            if kind == "start":
                tid = event["trial"]
                if tid not in self.trials:
                    decision = self.controller.next_trial(tid)
                    if not isinstance(decision, TrialSpec) or decision.params != event["params"]:
                        mismatched += 1  # the journal is the truth: run what was run
                    trial = Trial(tid, dict(event["params"]), event.get("budget"), info=dict(event.get("info") or {}),
                                  parent=event.get("parent"))
                    if isinstance(decision, TrialSpec):
                        trial.run, trial.extra = decision.run, decision.extra
                    self.trials[tid] = trial
                    self._next_id = max(self._next_id, tid + 1)
                trial = self.trials[tid]
                trial.state, trial.attempts = "running", event.get("attempt", trial.attempts + 1)
            elif kind == "end":
                ended = Trial.from_dict(event["trial"])
                known = self.trials.get(ended.id)
                if known is not None:
                    ended.run, ended.extra = known.run, known.extra
                self.trials[ended.id] = ended
                self.counts[ended.state] += 1
                self._note_best(ended)
                self.controller.on_end(ended)
        requeued = 0
        for trial in self.trials.values():
            if trial.state in ("running", "pending"):
                trial.state, trial.agent, trial.history = "pending", None, []
                self._retry.append(trial)
                requeued += 1
        ended = sum(1 for t in self.trials.values() if t.state not in ("pending",))
        self._resumed = {"ended": ended, "requeued": requeued, "replay_mismatches": mismatched}
        return dict(self._resumed)

    # -- the result -------------------------------------------------------------------------
    def result(self) -> Result:
        return Result(
            experiment=self.experiment, path=self.folder.path, context=self.context_name,
            metric=self.controller.metric, direction=self.controller.direction,
            trials=[self.trials[k] for k in sorted(self.trials)],
            duration=time.time() - self.started_at, rejected=dict(self.rejected),
            agents=len(self.agents),
        )
