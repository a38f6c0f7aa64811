"""Who runs what next: retries first, then the controller's next trial; agents parked on WAIT.

The scheduler is asked whenever an agent is free (it joined, or its trial ended). A trial whose
agent was lost runs again elsewhere, once (``max_retries``), before the controller is asked for
anything new. When the controller answers WAIT the agent is parked, and woken the moment any
trial ends; when it answers DONE (or the time budget is spent) the scheduler is drained and
the experiment ends with the last running trial. A distributed trial gathers its agents here
(gang.py) and starts when enough are free.
"""
from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Any

from . import gang
from .controller import DONE, WAIT, TrialSpec
from .registry import AgentInfo, AgentState
from .trials import Trial, TrialState

if TYPE_CHECKING:
    from .driver import Kernel
    from .lifecycle import Attempt


class Scheduler:
    def __init__(self, kernel: "Kernel", max_retries: int = 1):
        self.kernel = kernel
        self.max_retries = max_retries
        self.retry: collections.deque[Trial] = collections.deque()
        self.waiting: dict[bytes, AgentInfo] = {}  # agents told WAIT, in arrival order
        self.next_id = 0
        self.exhausted = False  # the controller said DONE, or the time is up
        self.gathering: gang.Gathering | None = None  # a distributed trial collecting agents

    @property
    def drained(self) -> bool:
        """Nothing more will start: the controller is done and no trial waits to run again."""
        return self.exhausted and not self.retry

    def drain(self) -> None:
        """Start nothing new from now on (the time budget is spent)."""
        self.exhausted = True

    def assign(self, agent: AgentInfo) -> None:
        """Give ``agent`` its next trial now, or park it until something changes."""
        kernel = self.kernel
        if kernel.ended or not agent.alive or agent.attempt is not None:
            return
        if self.gathering is not None:
            self._gather(agent)
            return
        trial = self.retry.popleft() if self.retry else self._ask(agent)
        if trial is not None and trial.gang > 1:  # a gang run again: gathered anew
            self.gathering = gang.Gathering(trial, trial.gang)
            self._gather(agent)
        elif trial is not None:
            self.waiting.pop(agent.peer, None)
            kernel.start(trial, [agent])

    def _ask(self, agent: AgentInfo) -> Trial | None:
        """The controller's next trial, or None (the agent is parked, or there is no more)."""
        decision = DONE if self.exhausted else self.kernel.controller.next_trial(self.next_id)
        if decision is WAIT:
            agent.state = AgentState.WAITING
            self.waiting[agent.peer] = agent
            return None
        if decision is DONE:
            self.exhausted = True
            agent.state = AgentState.IDLE
            self.waiting.pop(agent.peer, None)
            self.kernel.check_done()
            return None
        if not isinstance(decision, TrialSpec):
            raise TypeError(f"controller.next_trial returned {decision!r}")
        trial = self.kernel.book.new(self.next_id, decision)
        self.next_id += 1
        return trial

    def _gather(self, agent: AgentInfo) -> None:
        self.waiting.pop(agent.peer, None)
        agents = self.gathering.join(agent)
        if agents is not None:
            trial, self.gathering = self.gathering.trial, None
            self.kernel.start(trial, agents)

    def wake(self) -> None:
        """A trial ended: parked agents may have work now (stop at the first still told WAIT)."""
        for agent in list(self.waiting.values()):
            self.assign(agent)
            if agent.state == AgentState.WAITING:
                break  # the controller still has nothing; the rest would hear the same

    def forget(self, agent: AgentInfo) -> None:
        """``agent`` will take no more work."""
        self.waiting.pop(agent.peer, None)
        if self.gathering is not None:
            self.gathering.leave(agent)

    def interrupted(self, agent: AgentInfo, why: str, death: Any = None) -> None:
        """``agent`` stopped mid-trial: run its trial again elsewhere (once), else it is lost.

        ``death`` (a launcher's Exit) tells how its process died. A process that ended itself or
        crashed (``os._exit``, a segfault, an abort) was killed by the trial: it fails, with the
        cause and the process's last output, and is not retried; a process killed twice in the
        same trial (SIGKILL: the OOM killer, say) fails the same way. A distributed run cannot go
        on without one of its processes: the others are aborted (gang.py), and once they answered
        the whole gang runs again (once), unless that rank's process crashed: then it fails.
        """
        attempt, agent.attempt = agent.attempt, None
        if attempt is None or attempt.over:
            return
        trial = attempt.trial
        if attempt.distributed:  # the whole gang runs again, unless that rank's process did it
            again = not (death is not None and death.crashed) and trial.attempts <= self.max_retries
            gang.rank_lost(self.kernel, attempt, agent, why, again=again)
            return
        if death is not None and (death.crashed or trial.attempts > self.max_retries):
            self.kernel.folder.log_lines(trial.id, [f"its process died: {death}", death.output])
            self.kernel.end_attempt(attempt, TrialState.FAILED, error=f"its process died while it ran: {death}",
                                    traceback=f"last lines of the agent's output:\n{death.output}")
        elif trial.attempts > self.max_retries:
            self.kernel.end_attempt(attempt, TrialState.LOST, error=f"lost: {why}")
        else:
            self._requeue(attempt, why)
            return
        self.wake()
        self.kernel.check_done()

    def _requeue(self, attempt: "Attempt", why: str) -> None:
        trial = attempt.trial
        attempt.close()
        self.kernel.book.requeued(trial, why)
        self.retry.append(trial)
        for other in list(self.waiting.values()) + [a for a in self.kernel.agents.alive()
                                                    if a.state == AgentState.IDLE]:
            if self.retry:
                self.assign(other)

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

    def requeue_unfinished(self) -> int:
        """After a journal replay: every trial that had not ended runs again (returns how many)."""
        count = 0
        for trial in self.kernel.book.unfinished():
            trial.state, trial.agent, trial.history = TrialState.PENDING, None, []
            self.retry.append(trial)
            count += 1
        return count
