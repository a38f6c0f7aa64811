"""ASHA: asynchronous successive halving (Li et al., "A System for Massively Parallel
Hyperparameter Tuning", MLSys 2020), the promotion-based variant.

Budgets form rungs: ``min_budget * eta**k`` up to ``max_budget`` (the top rung is exactly
``max_budget``). Whenever an agent is free, the best configuration in the top ``1/eta`` of the
highest rung that has one not yet promoted goes up a rung; otherwise a new configuration starts
at the bottom rung. No rung ever waits to fill, so no agent idles while there is work.

A promoted trial names its parent (the same configuration's run on the rung below), so the
function can continue from the parent's checkpoint instead of starting over.
"""
from __future__ import annotations

import math
from typing import Any

from .base import FINISHED, WAIT, Decision, Observation, Optimizer, Suggestion


class ASHA(Optimizer):
    """``num_trials`` counts new configurations; with ``stop_at_max=True`` the search also ends
    as soon as one configuration has finished at ``max_budget``."""

    def __init__(self, reduction_factor: float = 3, min_budget: float = 1, max_budget: float = 27,
                 stop_at_max: bool = False):
        if not isinstance(reduction_factor, (int, float)) or reduction_factor < 2:
            raise ValueError(f"reduction_factor (eta) must be >= 2, got {reduction_factor!r}")
        if not (isinstance(min_budget, (int, float)) and isinstance(max_budget, (int, float))) \
                or not 0 < min_budget <= max_budget:
            raise ValueError(f"need 0 < min_budget <= max_budget, got min_budget={min_budget!r}, "
                             f"max_budget={max_budget!r}")
        self.eta = reduction_factor
        self.min_budget = min_budget
        self.max_budget = max_budget
        self.stop_at_max = stop_at_max
        self.budgets = self._rung_budgets()
        self._results: list[dict[int, float]] = [{} for _ in self.budgets]  # rung -> trial -> value
        self._promoted: list[set[int]] = [set() for _ in self.budgets]  # rung -> trials promoted from it
        self._trials: dict[int, tuple[int, dict[str, Any]]] = {}  # trial -> (rung, params)
        self._running: set[int] = set()
        self._configs = 0
        self._reached_max = False

    def _rung_budgets(self) -> list[float]:
        whole = all(float(x).is_integer() for x in (self.eta, self.min_budget, self.max_budget))
        budgets, b = [], float(self.min_budget)
        while b < self.max_budget * (1 - 1e-9):
            budgets.append(b)
            b *= self.eta
        budgets.append(float(self.max_budget))
        return [int(round(x)) for x in budgets] if whole else budgets

    def setup(self, space, *, num_trials, direction, seed) -> None:
        if num_trials is None and not self.stop_at_max:
            raise ValueError("asha needs num_trials (new configurations to try) or stop_at_max=True")
        super().setup(space, num_trials=num_trials, direction=direction, seed=seed)

    def total_trials(self) -> int | None:
        return None  # promotions come on top of num_trials configurations

    def _promotable(self, rung: int) -> int | None:
        results = self._results[rung]
        top = int(len(results) // self.eta)
        if top == 0:
            return None
        sign = self.direction.sign
        ranked = sorted(results, key=lambda t: (-sign * results[t], t))[:top]  # best first; ties: earlier trial
        for trial in ranked:
            if trial not in self._promoted[rung]:
                return trial
        return None

    def suggest(self, trial_id: int) -> Decision:
        if self.stop_at_max and self._reached_max:
            return FINISHED
        for rung in range(len(self.budgets) - 2, -1, -1):
            parent = self._promotable(rung)
            if parent is not None:
                self._promoted[rung].add(parent)
                params = self._trials[parent][1]
                return self._start(trial_id, rung + 1, params, parent)
        if self.num_trials is None or self._configs < self.num_trials:
            self._configs += 1
            return self._start(trial_id, 0, self.sample(), None)
        return WAIT if self._running else FINISHED

    def _start(self, trial_id: int, rung: int, params: dict[str, Any], parent: int | None) -> Suggestion:
        self._trials[trial_id] = (rung, params)
        self._running.add(trial_id)
        return Suggestion(dict(params), self.budgets[rung], info={"rung": rung}, parent=parent)

    def observe(self, obs: Observation) -> None:
        self._running.discard(obs.trial_id)
        entry = self._trials.get(obs.trial_id)
        if entry is None or obs.state not in ("finished", "stopped") or obs.value is None \
                or math.isnan(obs.value):
            return  # failed and lost trials are never promoted
        rung = entry[0]
        self._results[rung][obs.trial_id] = obs.value
        if rung == len(self.budgets) - 1:
            self._reached_max = True
