"""Grid search: every combination of the space once (ranges need a resolution)."""
from __future__ import annotations

import warnings
from typing import Any, Iterator

from .base import FINISHED, Decision, Optimizer, Suggestion


def _key(params: dict[str, Any]) -> str:
    return repr(sorted(params.items()))


class GridSearch(Optimizer):
    """Visits the grid in order. ``num_trials`` smaller than the grid runs that many of its
    points, drawn at random without repeats (in order, the first points would all share the
    first parameters' values: one corner of the space), as Optuna's GridSampler does;
    ``resolution`` gives DOUBLE and INTEGER ranges that many evenly spaced points (log-spaced
    on a log range)."""

    adaptive = False

    def __init__(self, resolution: int | None = None, budget: float | int | None = None):
        if resolution is not None and (not isinstance(resolution, int) or resolution < 1):
            raise ValueError(f"resolution must be a positive integer, got {resolution!r}")
        self.resolution = resolution
        self.budget = budget
        self._grid: Iterator[dict[str, Any]] | None = None
        self._issued = 0
        self._ran: set[str] = set()  # points an edited study's journal says ran
        self._back: list[dict[str, Any]] = []  # points proposed on its resume that did not run: still to visit

    def setup(self, space, *, num_trials, direction, seed) -> None:
        super().setup(space, num_trials=num_trials, direction=direction, seed=seed)
        self.size = space.grid_size(self.resolution)  # raises with a clear message for bare ranges
        self._grid = space.grid(self.resolution)
        if num_trials is not None and num_trials < self.size:
            self._grid = iter(self._drawn(space, num_trials))
            warnings.warn(f"gridsearch: num_trials={num_trials} runs {num_trials} of the grid's {self.size} "
                          f"points, drawn at random; leave num_trials out to run them all", stacklevel=2)

    def _drawn(self, space, count: int) -> list[dict[str, Any]]:
        """``count`` points of the grid, drawn without repeats by index (the grid itself is
        listed only when a conditional space had to be walked to be counted anyway)."""
        picks = self.rng.sample(range(self.size), count)
        if space.conditional:
            points = list(space.grid(self.resolution))
            return [points[i] for i in picks]
        axes = [(p.name, p.grid(self.resolution)) for p in space]
        drawn = []
        for index in picks:  # mixed radix, the last parameter the fastest digit, as the grid's order
            point = {}
            for name, values in reversed(axes):
                index, digit = divmod(index, len(values))
                point[name] = values[digit]
            drawn.append({name: point[name] for name, _ in axes})
        return drawn

    def _next_point(self) -> dict[str, Any] | None:
        while True:
            params = self._back.pop(0) if self._back else next(self._grid, None)
            if params is None or _key(params) not in self._ran:
                return params

    def replayed(self, trial_id: int, journaled: Suggestion, proposed: Suggestion | None) -> None:
        """An edited study's resume (a value added to a choice: more points): the point the
        journal says ran is not visited again; the one proposed in its place still is."""
        self._ran.add(_key(journaled.params))
        if proposed is not None:
            self._back.append(dict(proposed.params))
        else:
            self._issued += 1

    def total_trials(self) -> int | None:
        return self.size if self.num_trials is None else min(self.size, self.num_trials)

    def suggest(self, trial_id: int) -> Decision:
        if self.num_trials is not None and self._issued >= self.num_trials:
            return FINISHED
        params = self.sample() if getattr(self, "_queued", None) else self._next_point()
        if params is None:
            return FINISHED
        self._issued += 1
        return Suggestion(params, self.budget)
