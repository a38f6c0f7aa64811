"""When the kernel steps in on time: a search's budget, one trial's limit, the grace after a stop.

- ``max_time``: seconds for the whole experiment; then nothing new starts and running trials
  are stopped (they end "stopped", with their last metric).
- ``trial_timeout``: seconds one trial may run; then it is stopped, and it ends "failed".
- ``stop_grace``: seconds a trial has to end after it was told to stop; one that does not is
  ended by restarting its agent process (a function that ignores stops cannot hold an agent).

Each is a timer, armed only when set and cancelled with the attempt it watches. This module
decides which timers to arm (:class:`~kernel.decisions.Arm`) and what one means when it fires
(:meth:`Deadlines.due`); the driver arms them and carries out what they mean. A distributed run
is bounded by its processes' own timeouts instead.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import endings
from .decisions import Arm, Stop, TimeUp

if TYPE_CHECKING:
    from .lifecycle import Attempt


@dataclass
class Deadlines:
    max_time: float | None = None
    trial_timeout: float | None = None
    stop_grace: float | None = 10.0

    def experiment_started(self) -> Arm | None:
        return None if self.max_time is None else Arm(self.max_time, "time-up")

    def trial_started(self, attempt: "Attempt") -> Arm | None:
        if self.trial_timeout is None or attempt.distributed:
            return None
        return Arm(self.trial_timeout, "overtime", attempt)

    def stop_sent(self, attempt: "Attempt") -> Arm | None:
        if self.stop_grace is None or attempt.distributed:
            return None
        return Arm(self.stop_grace, "stop-grace", attempt)

    def due(self, arm: Arm) -> Any:
        """What a timer that fired means now: a TimeUp, a Stop, an EndAs (endings.py), or
        None (its attempt is over)."""
        if arm.due == "time-up":
            return TimeUp(self.max_time)
        attempt = arm.attempt
        if attempt is None or attempt.over:
            return None
        if arm.due == "overtime":
            return Stop(attempt, overtime=self.trial_timeout)
        return endings.ignored_stop(attempt, self.stop_grace)
