"""Random search: ``num_trials`` independent draws from the search space."""
from __future__ import annotations

from typing import Any

from .base import FINISHED, Decision, Optimizer, Suggestion


class RandomSearch(Optimizer):
    """Draws each configuration independently; with a finite space, never the same one twice
    until every configuration has been drawn."""

    needs_num_trials = True
    adaptive = False

    def __init__(self, budget: float | int | None = None):
        self.budget = budget
        self._issued = 0
        self._seen: set[tuple] = set()

    def setup(self, space: Any, **kw: Any) -> None:
        super().setup(space, **kw)
        # Only a finite space can repeat itself: only then are draws remembered (a set of
        # 100,000 continuous configurations would cost memory and a repr per trial for nothing).
        self._finite = all(not p.is_range for p in space)

    def suggest(self, trial_id: int) -> Decision:
        if self.num_trials is not None and self._issued >= self.num_trials:
            return FINISHED
        if getattr(self, "_queued", None):
            params = self.sample()  # an enqueued point, as given
        else:
            params = self._draw()
        if self._finite:
            self._seen.add(tuple(map(repr, params.values())))
        self._issued += 1
        return Suggestion(params, self.budget)

    def _draw(self) -> dict:
        params = self.space.sample(self.rng)
        if self._finite:
            size = self.space.grid_size()
            if len(self._seen) >= size:
                self._seen.clear()
            for _ in range(100 * size):
                key = tuple(map(repr, params.values()))
                if key not in self._seen:
                    break
                params = self.space.sample(self.rng)
        return params
