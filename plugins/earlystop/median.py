"""The median stopping rule (Golovin et al., "Google Vizier", KDD 2017).

Stop a trial at its k-th broadcast when its best value so far is strictly worse than the median,
over the ended trials that broadcast at least k times, of their running averages over their
first k broadcasts. Trials are aligned by broadcast count, not by the step number they report,
so functions that count steps differently still compare like with like.

Running averages of ended trials are kept per broadcast count in sorted lists, so a decision
costs one lookup, whatever the number of trials.
"""
from __future__ import annotations

import bisect
from typing import Sequence

from ..optimizers.base import Observation
from .base import EarlyStopper


class MedianStopping(EarlyStopper):
    """``warmup`` broadcasts of each trial are never judged (``es_min`` in the context sets how
    many trials must have ended before the rule starts)."""

    def __init__(self, warmup: int = 0):
        if not isinstance(warmup, int) or warmup < 0:
            raise ValueError(f"warmup must be an integer >= 0, got {warmup!r}")
        self.warmup = warmup
        self._averages: list[list[float]] = []  # [k] -> sorted running averages after k+1 reports
        self._best: dict[int, tuple[int, float]] = {}  # running trial -> (reports seen, best)

    def _best_so_far(self, trial_id: int, history: Sequence[tuple[float, float]]) -> float:
        seen, best = self._best.get(trial_id, (0, None))
        better = self.direction.better
        for _, value in history[seen:]:
            if best is None or better(value, best):
                best = value
        self._best[trial_id] = (len(history), best)
        return best

    def median_at(self, k: int) -> float | None:
        """The median running average of ended trials after k+1 broadcasts (None if none)."""
        if k >= len(self._averages) or not self._averages[k]:
            return None
        col = self._averages[k]
        mid = len(col) // 2
        return col[mid] if len(col) % 2 else (col[mid - 1] + col[mid]) / 2

    def should_stop(self, trial_id, history) -> bool:
        if not history:
            return False
        best = self._best_so_far(trial_id, history)
        k = len(history) - 1
        if k < self.warmup:
            return False
        median = self.median_at(k)
        if median is None:
            return False
        return self.direction.better(median, best)

    def observe(self, obs: Observation) -> None:
        self._best.pop(obs.trial_id, None)
        if obs.state not in ("finished", "stopped") or not obs.history:
            return
        total = 0.0
        for k, (_, value) in enumerate(obs.history):
            total += value
            if k == len(self._averages):
                self._averages.append([])
            bisect.insort(self._averages[k], total / (k + 1))
