"""Attempts by rank: every attempt is a gang of one or more agents, and ends when each rank has
sent its final.

Most attempts have one rank. A distributed run has several: it gathers ``size`` free agents,
rank 0 hosts JAX's coordinator at the address and port it announced, and each rank is told its
place in the process group. When one rank fails (or its agent is lost), the others are aborted
at once rather than left to a collective's timeout, and the trial fails with that rank's error.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from transports.codec import final_fields

from .decisions import AbortRanks
from .registry import AgentInfo, AgentState
from .trials import Trial

if TYPE_CHECKING:
    from .lifecycle import Attempt


class Gathering:
    """A distributed trial waiting for ``size`` free agents."""

    def __init__(self, trial: Trial, size: int):
        self.trial, self.size = trial, size
        self.agents: list[AgentInfo] = []

    def join(self, agent: AgentInfo) -> list[AgentInfo] | None:
        """Reserve ``agent``; the agents by rank once there are enough, else None."""
        self.agents = [a for a in self.agents if a.alive]
        if agent not in self.agents:
            self.agents.append(agent)
            agent.state = AgentState.RESERVED
        if len(self.agents) < self.size:
            return None
        return self.agents[: self.size]

    def leave(self, agent: AgentInfo) -> None:
        if agent in self.agents:
            self.agents.remove(agent)


def run_for_rank(attempt: "Attempt", rank: int) -> dict[str, Any] | None:
    """How ``rank`` runs the trial: the trial's run, plus its place in the process group."""
    run = attempt.trial.run
    if not attempt.distributed:
        return run
    lead = attempt.lead
    return dict(run or {}, process_id=rank, num_processes=len(attempt.agents),
                coordinator=f"{lead.address}:{lead.port}")


def trial_fields(attempt: "Attempt", rank: int, folder: Any, metric: str | None) -> dict[str, Any]:
    """The fields of the "trial" message for ``rank``: what to run, where its checkpoints go."""
    trial = attempt.trial
    parent = None if trial.parent is None else folder.checkpoint_dir(trial.parent)
    return {"trial": trial.id, "params": trial.params, "budget": trial.budget,
            "checkpoint": folder.checkpoint_dir(trial.id), "parent_checkpoint": parent,
            "run": run_for_rank(attempt, rank), "extra": trial.extra,
            "verdicts": attempt.verdicts, "metric": metric, "traced": trial.traced, "pack": attempt.pack}


def is_rank(attempt: "Attempt", agent: AgentInfo, rank: int) -> bool:
    """True when ``agent`` runs ``rank`` of ``attempt`` and has not answered yet."""
    agents = attempt.agents
    return 0 <= rank < len(agents) and agents[rank] is agent and rank not in attempt.finals


def record_final(attempt: "Attempt", rank: int, final: dict[str, Any]) -> AbortRanks | None:
    """Keep one rank's final; the first failure of a distributed run means the ranks that have
    not answered are aborted now (rather than left to a collective's timeout)."""
    attempt.finals[rank] = final
    if final["outcome"] != "error" or not attempt.distributed or attempt.failed_rank is not None:
        return None
    attempt.failed_rank = rank
    others = tuple(r for r in range(len(attempt.agents)) if r not in attempt.finals)
    return AbortRanks(attempt, others, f"rank {rank} failed: {final['error']}") if others else None


def unreachable(attempt: "Attempt", rank: int) -> None:
    """An aborted rank whose agent cannot be reached: nobody will answer for it."""
    attempt.finals[rank] = final_fields(attempt.trial.id, rank=rank, outcome="error", error="its agent was lost",
                                        started=time.time())


def all_answered(attempt: "Attempt") -> bool:
    return len(attempt.finals) == len(attempt.agents)


def rank_lost(attempt: "Attempt", agent: AgentInfo, why: str, again: bool = False) -> tuple[bool, AbortRanks | None]:
    """A rank's agent is gone: (whether that changed anything, the ranks to abort). The attempt
    settles once every rank answered: run ``again`` whole (``attempt.requeue``), or failed with
    that rank's error."""
    rank = attempt.agents.index(agent)
    if rank in attempt.finals:
        return False, None
    if again and attempt.failed_rank is None and attempt.requeue is None:
        attempt.requeue = f"rank {rank}'s agent was lost ({why})"
    lost = final_fields(attempt.trial.id, rank=rank, outcome="error", error=f"its agent was lost ({why})",
                        started=time.time())
    return True, record_final(attempt, rank, lost)
