"""How a trial ends: every rule that decides it, in one place; the handlers carry it out
(``Handlers.end_attempt``, through ``TrialBook.end``, the one place a trial's end is recorded).

- :func:`outcome`: its ranks answered: finished, stopped, or failed (an error, a metric that
  cannot be scored, a NaN);
- :func:`ignored_stop`: it did not end within ``stop_grace`` of its stop (or of its time limit);
- :func:`after_loss`: its agent was lost or its process died: it runs again (once), or it
  failed (its process crashed, or was killed twice), or it is lost; :func:`gang_again` for a
  distributed run that lost one of its ranks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .controller import ExperimentError
from .decisions import EndAs
from .trials import TrialState

if TYPE_CHECKING:
    from .controller import Controller
    from .lifecycle import Attempt


@dataclass(frozen=True)
class Again:
    """The trial runs again, elsewhere (its agent was lost)."""

    attempt: "Attempt"
    why: str


def outcome(attempt: "Attempt", controller: "Controller") -> tuple[TrialState, dict[str, Any], ExperimentError | None]:
    """How the trial ended, from its ranks' finals: (state, trial fields, an error that ends
    the experiment or None). Rank 0 speaks for the run."""
    lead = attempt.finals[0]
    fields: dict[str, Any] = {"started": lead["started"], "ended": lead["started"] + lead["duration"],
                              "checkpointed": any(f.get("saved", False) for f in attempt.finals.values())}
    if lead.get("compile") is not None:  # rank 0's: the ranks compile the same programs side by side
        fields["compile_s"], fields["programs_compiled"], fields["programs_cached"] = lead["compile"]
    if attempt.failed_rank is not None:
        failed = attempt.finals[attempt.failed_rank]
        return TrialState.FAILED, dict(fields, error=f"rank {attempt.failed_rank}: {failed['error']}",
                                       traceback=failed["traceback"]), None
    if lead["outcome"] == "error":
        return TrialState.FAILED, dict(fields, error=lead["error"], traceback=lead["traceback"]), None
    fields["result"] = lead["result"]
    state = TrialState.STOPPED if lead["outcome"] == "stopped" else TrialState.FINISHED  # a stop it never saw: it did all its work
    try:
        fields["metric"] = metric = controller.score(lead["result"]) if lead["outcome"] == "ok" else lead["value"]
        if lead["outcome"] == "ok" and controller.objectives:
            fields["values"] = controller.values(lead["result"])
    except ExperimentError as exc:
        return TrialState.FAILED, dict(fields, error=str(exc)), exc
    if metric is not None and math.isnan(metric):  # a diverged run: never a finished one, never the best
        name = repr(controller.metric) if controller.metric else "the metric"
        return TrialState.FAILED, dict(fields, metric=None, error=f"{name} is NaN (the run diverged?)"), None
    return state, fields, None


def ignored_stop(attempt: "Attempt", grace: float | None) -> EndAs:
    """The trial ignored its stop: it ends, and its agent restarts (see Kernel.kill)."""
    history = attempt.trial.history
    if attempt.overtime:
        state, error, metric = TrialState.FAILED, f"ran past its time limit of {attempt.overtime}s", None
    else:
        state, error = TrialState.STOPPED, "ignored its stop"
        metric = history[-1][1] if history else None
    return EndAs(attempt, state, {"metric": metric,
                                  "error": f"{error} and was ended {grace}s later; its agent restarted"}, restart=True)


def after_loss(attempt: "Attempt", why: str, death: Any, max_retries: int) -> EndAs | Again:
    """An attempt whose agent is gone. ``death`` (a launcher's Exit, or None) tells how its
    process died: one that ended itself or crashed was killed by the trial, which fails with
    the cause and the process's last output and is not retried; so does one killed in a trial
    that was already retried (SIGKILL twice: the OOM killer, say). Otherwise it runs again,
    until ``max_retries`` is spent: then it is lost."""
    trial = attempt.trial
    if death is not None and (death.crashed or trial.attempts > max_retries):
        return EndAs(attempt, TrialState.FAILED, {"error": f"its process died while it ran: {death}",
                                                  "traceback": f"last lines of the agent's output:\n{death.output}"},
                     log=(f"its process died: {death}", death.output))
    if trial.attempts > max_retries:
        return EndAs(attempt, TrialState.LOST, {"error": f"lost: {why}"})
    return Again(attempt, why)


def gang_again(attempt: "Attempt", death: Any, max_retries: int) -> bool:
    """A distributed run that lost a rank's agent runs again, whole (once), unless that rank's
    process crashed (then the trial did it, and it fails with that rank's error)."""
    return not (death is not None and death.crashed) and attempt.trial.attempts <= max_retries
