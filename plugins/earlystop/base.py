"""The early-stopper interface: decide, from a running trial's metrics, whether to end it.

The kernel calls ``should_stop`` for every broadcast of a running trial and, when it answers
True, pushes a stop to that trial at once; ``observe`` tells it how trials ended, so a rule
such as the median rule can compare against finished trials.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Literal

from ..optimizers.base import Observation


class EarlyStopper(ABC):
    direction: Literal["max", "min"] = "max"

    def setup(self, *, direction: Literal["max", "min"]) -> None:
        self.direction = direction

    @abstractmethod
    def should_stop(self, trial_id: int, step: int | float, value: float) -> bool:
        """True to stop ``trial_id`` now."""

    def observe(self, obs: Observation) -> None:
        """A trial ended (optional)."""
