"""The median stopping rule (Golovin et al., "Google Vizier", KDD 2017; Optuna's MedianPruner).

Stop a trial at its k-th broadcast when its best value so far is strictly worse than the median,
over the completed trials that broadcast at least k times, of their running averages over their
first k broadcasts. Completed means finished: a stopped trial's curve is the curve of a trial
judged bad, and counting it would pull the median down and stop ever fewer trials. Trials are
compared with trials of the same budget only (under ASHA, a rung with its rung), and aligned
by broadcast count, not by the step number they report, so functions that count steps
differently still compare like with like.

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
        self._averages: dict[object, list[list[float]]] = {}  # budget -> [k] -> sorted running averages
        self._best: dict[int, tuple[int, float]] = {}  # running trial -> (reports seen, best)

    def _best_so_far(self, trial_id: int, history: Sequence[tuple[float, float]]) -> float:
        seen, best = self._best.get(trial_id, (0, None))
        better = self.direction.better
        for _, value in history[seen:]:
            if best is None or better(value, best):
                best = value
        self._best[trial_id] = (len(history), best)
        return best

    def median_at(self, k: int, budget: float | int | None = None) -> float | None:
        """The median running average of completed trials of ``budget`` after k+1 broadcasts
        (None if none)."""
        columns = self._averages.get(budget, ())
        if k >= len(columns) or not columns[k]:
            return None
        col = columns[k]
        mid = len(col) // 2
        return col[mid] if len(col) % 2 else (col[mid - 1] + col[mid]) / 2

    def should_stop(self, trial_id, history) -> bool:
        return self.judge(trial_id, history, None)

    def judge(self, trial_id, history, budget) -> bool:
        if not history:
            return False
        best = self._best_so_far(trial_id, history)
        k = len(history) - 1
        if k < self.warmup:
            return False
        median = self.median_at(k, budget)
        if median is None:
            return False
        return self.direction.better(median, best)

    def observe(self, obs: Observation) -> None:
        self._best.pop(obs.trial_id, None)
        if obs.state != "finished" or not obs.history:
            return
        columns = self._averages.setdefault(obs.budget, [])
        total = 0.0
        for k, (_, value) in enumerate(obs.history):
            total += value
            if k == len(columns):
                columns.append([])
            bisect.insort(columns[k], total / (k + 1))
