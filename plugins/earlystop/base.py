"""The early-stopper interface: decide, from a running trial's metrics, whether to end it.

The kernel hands every broadcast to the context's controller, which asks ``judge`` (from the
``es_min``-th completed trial on, every ``es_interval`` broadcasts of a trial, never on the
broadcast that completes a trial's budget: stopping it there would save nothing). When it
answers True the trial stops at that very broadcast. ``observe`` tells the rule how each trial
ended, with its whole metric history, so a rule such as the median rule compares against
completed trials; replaying observations rebuilds its state.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

from kernel.direction import Direction

from ..optimizers.base import Observation


class EarlyStopper(ABC):
    direction: Direction = Direction.MAX

    def setup(self, *, direction: str) -> None:
        self.direction = Direction.of(direction)

    @abstractmethod
    def should_stop(self, trial_id: int, history: Sequence[tuple[float, float]]) -> bool:
        """True to stop ``trial_id`` now. ``history`` is its ``(step, value)`` broadcasts so far."""

    def judge(self, trial_id: int, history: Sequence[tuple[float, float]], budget: float | int | None) -> bool:
        """What the search asks: ``should_stop``, told the trial's budget as well (a rule that
        compares trials, under ASHA, compares trials of one budget only: override this)."""
        return self.should_stop(trial_id, history)

    def observe(self, obs: Observation) -> None:
        """A trial ended (optional)."""
