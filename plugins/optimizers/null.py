"""The null optimizer: suggests nothing, so a search with it ends at once (a starting point
for a new optimizer, and a way to open an experiment that only resumes or inspects)."""
from __future__ import annotations

from .base import FINISHED, Decision, Optimizer


class NullOptimizer(Optimizer):
    def suggest(self, trial_id: int) -> Decision:
        return FINISHED

    def total_trials(self) -> int | None:
        return 0
