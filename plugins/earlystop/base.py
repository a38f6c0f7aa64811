"""The early-stopper interface: decide, from a running trial's metrics, whether to end it.

The kernel hands every broadcast to the context's controller, which asks ``should_stop`` (from
the ``es_min``-th finished trial on, every ``es_interval`` broadcasts of a trial). When it
answers True the kernel pushes a stop to that trial at once. ``observe`` tells the rule how
each trial ended, with its whole metric history, so a rule such as the median rule compares
against finished trials; replaying observations rebuilds its state.
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

    def observe(self, obs: Observation) -> None:
        """A trial ended (optional)."""
