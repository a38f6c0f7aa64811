"""Who runs what next: retries first, then the controller's next trial; agents parked on WAIT.

The scheduler is asked whenever an agent is free (it joined, or its trial ended). A trial whose
agent was lost runs again elsewhere, once (``max_retries``), before the controller is asked for
anything new. When the controller answers WAIT the agent is parked, and woken the moment any
trial ends; when it answers DONE (or the time budget is spent) the scheduler is drained and
the experiment ends with the last running trial. A distributed trial gathers its agents here
(gang.py) and starts when enough are free.

Trials handed out ahead (leases) follow the rules of ahead.py; the scheduler proposes them.
Which of several proposals a free agent takes (one of a shape it compiled) is affinity.py's.
"""
from __future__ import annotations

import collections
import time
from typing import TYPE_CHECKING, Any, Callable

from . import affinity, ahead, endings, gang, packing
from .controller import DONE, WAIT, TrialSpec
from .decisions import CheckDone, Lease, LookAgain, RanksAnswered, Start, TakeBack
from .registry import AgentInfo, AgentState
from .trials import Trial, TrialState

if TYPE_CHECKING:
    from .controller import Controller
    from .lifecycle import Attempt, TrialBook
    from .registry import AgentRegistry


class Scheduler:
    """Decides who runs what; holds no kernel. It reads the trial book, the controller and the
    agents it is given, and hands each decision (decisions.py) to ``act``, which the driver
    carries out at once; ``ended`` and ``total_trials`` ask the kernel what it knows."""

    def __init__(self, book: "TrialBook", controller: "Controller", agents: "AgentRegistry",
                 act: Callable[[Any], Any], ended: Callable[[], bool], total_trials: Callable[[], int | None],
                 max_retries: int = 1):
        self.book, self.controller, self.agents, self.act = book, controller, agents, act
        self._ended, self._total_trials = ended, total_trials
        self.max_retries = max_retries
        self.retry: collections.deque[Trial] = collections.deque()
        self.spare: collections.deque[Trial] = collections.deque()  # proposed, waiting for a pack or an agent of their shape
        self.waiting: dict[bytes, AgentInfo] = {}  # agents told WAIT, in arrival order
        self.next_id = 0
        self.exhausted = False  # the controller said DONE, or the time is up
        self.time_is_up = False
        self.gathering: gang.Gathering | None = None  # a distributed trial collecting agents
        self._held: dict[bytes, AgentInfo] | None = None  # agents to hand trials ahead after a batch
        self._looking = False  # a look for trials waiting behind a long one is due

    @property
    def drained(self) -> bool:
        """Nothing more will start: the controller is done and no trial waits to run again."""
        return self.exhausted and not self.retry and not self.spare

    def drain(self, time_up: bool = False) -> None:
        """Start nothing new from now on (the time budget is spent)."""
        self.exhausted = True
        self.time_is_up = self.time_is_up or time_up

    def assign(self, agent: AgentInfo) -> None:
        """Give ``agent`` its next trial now, or park it until something changes; then hand it
        trials ahead if its trials are short."""
        if self._ended() or not agent.alive:
            return
        if agent.attempt is None:
            self._give(agent)
        if agent.attempt is not None and self.controller.lease and not agent.attempt.trial.suspect \
                and len(agent.queued) < self.lease_depth(agent):
            if self._held is not None:
                self._held[agent.peer] = agent
            else:
                self._lease(agent)

    def _give(self, agent: AgentInfo) -> None:
        if self.gathering is not None:
            self._gather(agent)
            return
        trial = self.retry.popleft() if self.retry else self._ask(agent)
        if trial is not None and trial.gang > 1:  # a gang run again: gathered anew
            self.gathering = gang.Gathering(trial, trial.gang)
            self._gather(agent)
        elif trial is not None:
            self.waiting.pop(agent.peer, None)
            if affinity.applies(self.controller, agent):
                affinity.met(agent, trial)
            lanes = self._fill(trial) if self.controller.pack > 1 and packing.packable(trial) else None
            self.act(Start(trial, [agent], lanes))
            if self.spare:
                self._offer()

    def _fill(self, first: Trial) -> list[Trial] | None:
        """The lanes of a pack ``first`` opens (packing.py), or None when it runs alone: trials
        of its shape that wait, then the controller's proposals, until the pack is full or
        the controller has nothing now; a proposal of another shape waits in ``spare``."""
        want, shape = self.controller.pack, packing.key(first)
        lanes = [first] + packing.take_matching(self.retry, shape, want - 1)
        lanes += packing.take_matching(self.spare, shape, want - len(lanes))
        for _ in range(packing.LOOKAHEAD * want):
            if len(lanes) >= want:
                break
            trial = self._propose()
            if not isinstance(trial, Trial):
                break
            if packing.packable(trial) and packing.key(trial) == shape:
                lanes.append(trial)
            else:
                self.spare.append(trial)
                self.book.proposed(trial)
        return lanes if len(lanes) > 1 else None

    def _ask(self, agent: AgentInfo) -> Trial | None:
        """The next trial for ``agent``, or None (the agent is parked, or there is no more)."""
        decision = self._draw(agent, affinity.applies(self.controller, agent))
        if decision is WAIT:
            agent.state = AgentState.WAITING
            self.waiting[agent.peer] = agent
            return None
        if decision is DONE:
            agent.state = AgentState.IDLE
            self.waiting.pop(agent.peer, None)
            self._steal_for(agent)
            self.act(CheckDone())
            return None
        return decision

    def _draw(self, agent: AgentInfo, steer: bool) -> Trial | Any:
        """What waits for a pack or an agent, else a new proposal (or WAIT, or DONE); steered
        by shape when ``steer`` (affinity.applies): one ``agent`` met, among up to LOOKAHEAD."""
        if not steer:
            return self.spare.popleft() if self.spare else self._propose()
        found, decision = affinity.take_own(self.spare, agent.shapes), DONE
        for _ in range(affinity.LOOKAHEAD if found is None else 0):
            decision = self._propose()
            if not isinstance(decision, Trial):
                break
            if affinity.suits(decision, agent, self.agents.alive()):
                return decision
            self.spare.append(decision)
            self.book.proposed(decision)
        if found is None and self.spare:
            found = affinity.take_best(self.spare, self.agents.alive())
        return decision if found is None else found

    def _propose(self) -> Trial | Any:
        """A new trial from the controller, or WAIT, or DONE."""
        decision = DONE if self.exhausted else self.controller.next_trial(self.next_id)
        if decision is DONE:
            self.exhausted = True
        if decision is WAIT or decision is DONE:
            return decision
        if not isinstance(decision, TrialSpec):
            raise TypeError(f"controller.next_trial returned {decision!r}")
        trial = self.book.new(self.next_id, decision)
        self.next_id += 1
        return trial

    # -- trials handed out ahead ------------------------------------------------------------
    def lease_depth(self, agent: AgentInfo) -> int:
        """How many trials ``agent`` should hold beyond the one it runs (ahead.depth)."""
        return ahead.depth(agent.pace, self._plenty)

    def _plenty(self) -> bool:
        """More trials remain to be proposed than there are agents (a search bounded by time
        alone has no end in sight)."""
        total = self._total_trials()
        return total is None or total - self.next_id + len(self.spare) > len(self.agents.alive())

    def _lease(self, agent: AgentInfo) -> None:
        trials: list[Trial] = []
        want = self.lease_depth(agent) - len(agent.queued)
        steer = affinity.applies(self.controller, agent)
        while len(trials) < want:
            trial = self.retry.popleft() if self.retry else self._draw(agent, steer)
            if not isinstance(trial, Trial):
                break
            if trial.gang > 1 or trial.run is not None or trial.suspect:  # gathered, in a process of its own, or alone
                self.retry.appendleft(trial)
                break
            trials.append(trial)
            if steer:
                affinity.met(agent, trial)
        if trials:
            self.act(Lease(agent, trials))

    def hold(self) -> None:
        """Hand trials out ahead once per agent, at ``release``, not once per final."""
        self._held = {}

    def release(self) -> None:
        held, self._held = self._held, None
        for agent in (held or {}).values():
            if agent.alive and agent.attempt is not None and not self._ended():
                self._lease(agent)

    def unleased(self, attempt: "Attempt") -> None:
        """A trial handed out ahead comes back unstarted: it runs elsewhere (not counted as an
        attempt), or, once the time is up, is not part of this run at all."""
        self._hand_back(attempt)
        self._offer()

    def _hand_back(self, attempt: "Attempt") -> None:
        attempt.close()
        trial = attempt.trial
        self.book.unleased(trial)
        if self.time_is_up:
            self.book.withdraw(trial)
        else:
            self.retry.appendleft(trial)

    def _steal_for(self, agent: AgentInfo) -> None:
        """``agent`` is idle for good: take back what ahead.steal picks, or look again when it
        says to."""
        if self.time_is_up or self.retry:
            return
        decision = ahead.steal(self.agents.alive(), time.monotonic())
        if isinstance(decision, TakeBack):
            self.act(decision)
        elif isinstance(decision, LookAgain) and not self._looking:
            self._looking = True
            self.act(decision)  # the driver arms a timer that calls rebalance

    def rebalance(self) -> None:
        """After the controller is done (at each heartbeat, and when a queue's trial comes of
        age): an agent left idle takes back a trial that has come to wait behind a long one."""
        self._looking = False
        if self.exhausted and not self._ended():
            for agent in self.agents.alive():
                if agent.state == AgentState.IDLE:
                    self._steal_for(agent)

    def _offer(self) -> None:
        """Trials wait to run again: give them to agents that have nothing."""
        for other in list(self.waiting.values()) + [a for a in self.agents.alive()
                                                    if a.state == AgentState.IDLE]:
            if self.retry or self.spare:
                self.assign(other)

    def _gather(self, agent: AgentInfo) -> None:
        self.waiting.pop(agent.peer, None)
        agents = self.gathering.join(agent)
        if agents is not None:
            trial, self.gathering = self.gathering.trial, None
            self.act(Start(trial, agents))

    def wake(self) -> None:
        """A trial ended: parked agents may have work now (stop at the first still told WAIT)."""
        for agent in list(self.waiting.values()):
            self.assign(agent)
            if agent.state == AgentState.WAITING:
                break  # the controller still has nothing; the rest would hear the same

    def forget(self, agent: AgentInfo, suspect: bool = True) -> int:
        """``agent`` will take no more work: what it was handed ahead runs elsewhere; returns
        how many. ``suspect``: it may have run some of it already and died of one (its last
        finals died with it), so each runs alone; not when the trial it died running is known."""
        self.waiting.pop(agent.peer, None)
        if self.gathering is not None:
            self.gathering.leave(agent)
        held = len(agent.queued)
        while agent.queued:
            attempt = agent.queued.pop()  # the last first: the queue comes back in order
            attempt.trial.suspect = attempt.trial.suspect or suspect
            self._hand_back(attempt)
        if held:
            self._offer()
        return held

    def interrupted(self, agent: AgentInfo, why: str, death: Any = None, unsure: bool = False) -> None:
        """``agent`` stopped mid-trial: its trial runs again elsewhere, or ends, as
        :func:`kernel.endings.after_loss` decides from ``death`` (a launcher's Exit: how its
        process died). A distributed run cannot go on without one of its processes: the others
        are aborted (gang.py), and once they answered the whole gang runs again (once), unless
        that rank's process crashed: then it fails. ``unsure``: the agent held trials handed out
        ahead, so its death may be theirs (it runs trials back to back, and its last finals may
        have died with it): the trial runs again, alone (``suspect``), where a second death is
        its own. Each lane of a pack is judged so, as a trial of its own.
        """
        running = agent.running()
        agent.attempt, agent.lanes = None, {}
        for attempt in running:
            self.lost(agent, attempt, why, death, unsure)

    def lost(self, agent: AgentInfo, attempt: "Attempt", why: str, death: Any = None,
             unsure: bool = False) -> None:
        """``attempt`` (one of ``agent``'s) was cut short: see ``interrupted``."""
        if attempt.over:
            return
        trial = attempt.trial
        if attempt.distributed:  # the whole gang runs again, unless that rank's process did it
            again = endings.gang_again(attempt, death, self.max_retries)
            recorded, abort = gang.rank_lost(attempt, agent, why, again=again)
            if recorded:
                self.act(RanksAnswered(attempt, abort))
            return
        if unsure:
            trial.suspect, death = True, None
        decision = endings.after_loss(attempt, why, death, self.max_retries)
        if isinstance(decision, endings.Again):
            self._requeue(attempt, why)
            return
        self.act(decision)  # an EndAs: failed (with how its process died) or lost
        self.wake()
        self.act(CheckDone())

    def _requeue(self, attempt: "Attempt", why: str) -> None:
        trial = attempt.trial
        attempt.close()
        self.book.requeued(trial, why)
        self.retry.append(trial)
        self._offer()

    def requeue_gang(self, attempt: "Attempt") -> None:
        """Every rank of a gang whose agent was lost has answered: the trial runs again, whole,
        on a gang gathered anew; the ranks that are left take work again."""
        for agent in attempt.agents:
            if agent.attempt is attempt:
                agent.attempt = None
        self._requeue(attempt, attempt.requeue or "a rank's agent was lost")
        for agent in attempt.agents:
            if agent.alive and agent.state == AgentState.BUSY:
                self.assign(agent)
        self.wake()

    def withdraw_spare(self) -> None:
        """The run ends (or its time is up) with proposals that waited for a pack: not trials
        of this run (a resume runs them)."""
        while self.spare:
            self.book.withdraw(self.spare.popleft())

    def requeue_unfinished(self) -> int:
        """After a journal replay: every trial that had not ended runs again (returns how many)."""
        count = 0
        for trial in self.book.unfinished():
            trial.state, trial.agent, trial.history = TrialState.PENDING, None, []
            self.retry.append(trial)
            count += 1
        return count
