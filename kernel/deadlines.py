"""When the kernel steps in on time: a search's budget, one trial's limit, the grace after a stop.

- ``max_time``: seconds for the whole experiment; then nothing new starts and running trials
  are stopped (they end "stopped", with their last metric).
- ``trial_timeout``: seconds one trial may run; then it is stopped, and it ends "failed".
- ``stop_grace``: seconds a trial has to end after it was told to stop; one that does not is
  ended by restarting its agent process (a function that ignores stops cannot hold an agent).

Each is a timer on the kernel's loop, armed only when set, and cancelled with the attempt it
watches. A distributed run is bounded by its processes' own timeouts instead.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import records
from .trials import TrialState

if TYPE_CHECKING:
    import asyncio

    from .driver import Kernel
    from .lifecycle import Attempt


@dataclass
class Deadlines:
    max_time: float | None = None
    trial_timeout: float | None = None
    stop_grace: float | None = 10.0
    _budget: "asyncio.TimerHandle | None" = field(default=None, repr=False)

    def experiment_started(self, kernel: "Kernel") -> None:
        if self.max_time is not None:
            self._budget = kernel.loop.call_later(self.max_time, self._time_is_up, kernel)

    def experiment_ended(self) -> None:
        if self._budget is not None:
            self._budget.cancel()

    def trial_started(self, kernel: "Kernel", attempt: "Attempt") -> None:
        if self.trial_timeout is not None and not attempt.distributed:
            attempt.timers.append(kernel.loop.call_later(self.trial_timeout, self._overtime, kernel, attempt))

    def stop_sent(self, kernel: "Kernel", attempt: "Attempt") -> None:
        if self.stop_grace is not None and not attempt.distributed:
            attempt.timers.append(kernel.loop.call_later(self.stop_grace, self._enforce, kernel, attempt))

    def _time_is_up(self, kernel: "Kernel") -> None:
        records.time_up(kernel.folder, self.max_time)
        kernel.time_up()

    def _overtime(self, kernel: "Kernel", attempt: "Attempt") -> None:
        if attempt.over:
            return
        attempt.overtime = self.trial_timeout
        records.overtime(kernel.folder, attempt.trial.id, self.trial_timeout)
        kernel.request_stop(attempt)

    def _enforce(self, kernel: "Kernel", attempt: "Attempt") -> None:
        """The trial ignored its stop: end it, and have its agent restart (see Kernel.kill)."""
        if attempt.over:
            return
        history = attempt.trial.history
        if attempt.overtime:
            state, error, metric = TrialState.FAILED, f"ran past its time limit of {attempt.overtime}s", None
        else:
            state, error = TrialState.STOPPED, "ignored its stop"
            metric = history[-1][1] if history else None
        kernel.kill(attempt, state, metric=metric,
                    error=f"{error} and was ended {self.stop_grace}s later; its agent restarted")
