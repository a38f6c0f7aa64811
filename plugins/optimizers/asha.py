"""ASHA: asynchronous successive halving (Li et al., "A System for Massively Parallel
Hyperparameter Tuning", MLSys 2020), the promotion-based variant, and asynchronous Hyperband.

Budgets form rungs: ``min_budget * eta**k`` up to ``max_budget`` (the top rung is exactly
``max_budget``). Whenever an agent is free, the best configuration in the top ``1/eta`` of the
highest rung that has one not yet promoted goes up a rung; otherwise a new configuration starts
at the bottom rung. No rung ever waits to fill, so no agent idles while there is work.

A promoted trial names its parent (the same configuration's run on the rung below), so the
function can continue from the parent's checkpoint instead of starting over.

Brackets (asynchronous Hyperband, the same paper): bracket ``s`` is an ASHA whose bottom rung is
rung ``s``, so bracket 0 stops most aggressively and the last one runs every configuration at
``max_budget``. Each new configuration goes to a bracket drawn with Hyperband's proportions,
which hedges a ``min_budget`` too small to tell good configurations from bad.

New configurations are random, or, with a ``sampler``, proposed by a model of the results of the
highest rung that has enough of them (the rule of BOHB, Falkner et al., ICML 2018), pooled
over brackets by budget; ``random_fraction`` of them stay random, for exploration.
"""
from __future__ import annotations

import copy
from typing import Any

from .base import FINISHED, WAIT, Decision, Observation, Optimizer, Suggestion


def rung_budgets(eta: float, min_budget: float, max_budget: float) -> list[float]:
    """``min_budget * eta**k`` below ``max_budget``, then ``max_budget`` (integers if all are)."""
    whole = all(float(x).is_integer() for x in (eta, min_budget, max_budget))
    budgets, b = [], float(min_budget)
    while b < max_budget * (1 - 1e-9):
        budgets.append(b)
        b *= eta
    budgets.append(float(max_budget))
    return [int(round(x)) for x in budgets] if whole else budgets


def _check(reduction_factor: Any, min_budget: Any, max_budget: Any) -> None:
    if not isinstance(reduction_factor, (int, float)) or reduction_factor < 2:
        raise ValueError(f"reduction_factor (eta) must be >= 2, got {reduction_factor!r}")
    if not (isinstance(min_budget, (int, float)) and isinstance(max_budget, (int, float))) \
            or not 0 < min_budget <= max_budget:
        raise ValueError(f"need 0 < min_budget <= max_budget, got min_budget={min_budget!r}, "
                         f"max_budget={max_budget!r}")


class ASHA(Optimizer):
    """``num_trials`` counts new configurations (optional under a ``max_time``); with
    ``stop_at_max=True`` the search also ends as soon as one configuration has finished at
    ``max_budget``.

    ``sampler``: the name of a registered optimizer that proposes from observations (``"tpe"``),
    or such an instance; None draws at random. ``min_points``: results a rung needs before the
    model uses it (default: the sampler's ``n_startup``, at least one more than the number of
    parameters).
    """

    def __init__(self, reduction_factor: float = 3, min_budget: float = 1, max_budget: float = 27,
                 stop_at_max: bool = False, *, brackets: int = 1, sampler: Any = None,
                 random_fraction: float = 1 / 3, min_points: int | None = None):
        _check(reduction_factor, min_budget, max_budget)
        self.eta = reduction_factor
        self.min_budget = min_budget
        self.max_budget = max_budget
        self.stop_at_max = stop_at_max
        self.budgets = rung_budgets(reduction_factor, min_budget, max_budget)
        if not isinstance(brackets, int) or not 1 <= brackets <= len(self.budgets):
            raise ValueError(f"brackets must be an integer from 1 to {len(self.budgets)} (the number of "
                             f"rungs, {self.budgets}), got {brackets!r}")
        if not 0 <= random_fraction <= 1:
            raise ValueError(f"random_fraction must lie in [0, 1], got {random_fraction!r}")
        self.brackets = brackets
        self.random_fraction = random_fraction
        self.min_points = min_points
        self.sampler: Any = sampler
        n = len(self.budgets)
        self._results: list[list[dict[int, float]]] = [[{} for _ in range(n)] for _ in range(brackets)]
        self._promoted: list[list[set[int]]] = [[set() for _ in range(n)] for _ in range(brackets)]
        self._trials: dict[int, tuple[int, dict[str, Any]]] = {}  # trial -> (rung, params)
        self._bracket: dict[int, int] = {}
        self._seen: list[list[tuple[dict[str, Any], float]]] = [[] for _ in range(n)]  # rung -> results
        self._running: set[int] = set()
        self._configs = 0
        self._reached_max = False
        self._args = {"reduction_factor": reduction_factor, "min_budget": min_budget, "stop_at_max": stop_at_max,
                      "brackets": brackets, "sampler": sampler, "random_fraction": random_fraction,
                      "min_points": min_points}

    def raised(self, max_budget: float) -> "ASHA":
        """This scheduler as it was built, with a larger ``max_budget``: a study resumed from the
        shell (``python -m kernel resume --max-budget``) builds it anew, as a user would in Python."""
        return type(self)(**copy.deepcopy(self._args), max_budget=max_budget)

    @property
    def needs_num_trials(self) -> bool:
        return not self.stop_at_max

    def setup(self, space, *, num_trials, direction, seed) -> None:
        super().setup(space, num_trials=num_trials, direction=direction, seed=seed)
        if self.sampler is not None:
            self.sampler = _proposer(self.sampler, space, direction, seed, self.directions)
            if self.min_points is None:
                self.min_points = max(getattr(self.sampler, "n_startup", 1), len(list(space)) + 1)

    def total_trials(self) -> int | None:
        return None  # promotions come on top of num_trials configurations

    def _promotable(self, bracket: int, rung: int) -> int | None:
        results = self._results[bracket][rung]
        top = int(len(results) // self.eta)
        if top == 0:
            return None
        # best first (ties: the earlier trial); several objectives: non-dominated sorting, then crowding
        ranked = self.best_first(sorted(results), key=lambda t: results[t])[:top]
        for trial in ranked:
            if trial not in self._promoted[bracket][rung]:
                return trial
        return None

    def suggest(self, trial_id: int) -> Decision:
        if self.stop_at_max and self._reached_max:
            return FINISHED
        for bracket in range(self.brackets):
            for rung in range(len(self.budgets) - 2, bracket - 1, -1):
                parent = self._promotable(bracket, rung)
                if parent is not None:
                    self._promoted[bracket][rung].add(parent)
                    return self._start(trial_id, bracket, rung + 1, self._trials[parent][1], parent)
        if self.num_trials is None or self._configs < self.num_trials:
            self._configs += 1
            bracket = self._pick_bracket()
            return self._start(trial_id, bracket, bracket, self._new_config(), None)
        return WAIT if self._running else FINISHED

    def _pick_bracket(self) -> int:
        """Hyperband's proportions: a bracket with r rungs gets eta**(r-1)/r of the configurations."""
        if self.brackets == 1:
            return 0
        n = len(self.budgets)
        weights = [self.eta ** (n - s - 1) / (n - s) for s in range(self.brackets)]
        return self.rng.choices(range(self.brackets), weights=weights)[0]

    def _new_config(self) -> dict[str, Any]:
        if getattr(self.space, "priors", None) and not getattr(self, "_queued", None) and (
                not getattr(self, "_prior_tried", False) or self.rng.random() < self._prior_share()):
            return self.sample_believed()  # the priors' own configuration first, then draws from them
        if self.sampler is None or getattr(self, "_queued", None) or self.rng.random() < self.random_fraction:
            return self.sample()
        for rung in range(len(self.budgets) - 1, -1, -1):
            if len(self._seen[rung]) >= self.min_points:
                proposed = self.sampler.propose(self._seen[rung], self._worse_than(rung))
                if proposed is not None:
                    return proposed
                break
        return self.sample()

    def _prior_share(self) -> float:
        """How many new configurations to draw from the user's priors: half, while the highest
        rung with results says nothing against them; then half the share of that rung's top
        third that the priors rate above the rung's median (a misleading prior: none)."""
        for rung in range(len(self.budgets) - 1, -1, -1):
            seen = self._seen[rung]
            if len(seen) >= max(3, self.eta):
                density = [self.space.prior_log_density(params) for params, _ in seen]
                ranked = self.best_first(list(range(len(seen))), key=lambda i: seen[i][1])
                top = ranked[:max(1, len(seen) // self.eta)]
                median = sorted(density)[len(density) // 2]
                return 0.5 * sum(density[i] >= median for i in top) / len(top)
        return 0.5

    def _worse_than(self, rung: int) -> list[dict[str, Any]]:
        """What the model of ``rung`` counts as worse than all its results: running trials (a
        constant liar) and the configurations that ended below ``rung`` without reaching it.
        Without the second, a model of a high rung, which holds only survivors, would see its
        worse half as the bad region and send new configurations away from every good one."""
        reached = {repr(params) for params, _ in self._seen[rung]}
        worse = [self._trials[t][1] for t in sorted(self._running)]
        for below in range(rung):
            worse += [params for params, _ in self._seen[below] if repr(params) not in reached]
        return worse

    def _start(self, trial_id: int, bracket: int, rung: int, params: dict[str, Any],
               parent: int | None) -> Suggestion:
        self._trials[trial_id] = (rung, params)
        self._bracket[trial_id] = bracket
        self._running.add(trial_id)
        info = {"rung": rung} if self.brackets == 1 else {"rung": rung, "bracket": bracket}
        return Suggestion(dict(params), self.budgets[rung], info=info, parent=parent)

    def replayed(self, trial_id: int, journaled: Suggestion, proposed: Suggestion | None) -> None:
        """Hold the journal's configuration, rung, bracket and parent for ``trial_id``: a resumed
        study whose space was widened proposes other configurations, one whose ``max_budget``
        was raised has more rungs (and Hyperband other brackets). A trial at a budget this
        scheduler no longer has stays in the study's results, out of its rungs."""
        if proposed is not None and trial_id in self._trials:  # forget what it proposed
            rung, bracket = self._trials.pop(trial_id)[0], self._bracket.pop(trial_id, 0)
            if proposed.parent is not None:
                self._promoted[bracket][rung - 1].discard(proposed.parent)
            else:
                self._configs -= 1
            self._running.discard(trial_id)
        rung = journaled.info.get("rung")
        if not isinstance(rung, int) or rung >= len(self.budgets) or self.budgets[rung] != journaled.budget:
            rung = self.budgets.index(journaled.budget) if journaled.budget in self.budgets else None
        if rung is None:
            return
        if journaled.parent is not None and journaled.parent in self._trials:
            bracket = self._bracket[journaled.parent]
            self._promoted[bracket][self._trials[journaled.parent][0]].add(journaled.parent)
        else:
            bracket = min(journaled.info.get("bracket", 0), self.brackets - 1, rung)
            self._configs += 1
        self._trials[trial_id] = (rung, dict(journaled.params))
        self._bracket[trial_id] = bracket
        self._running.add(trial_id)

    def observe(self, obs: Observation) -> None:
        self._running.discard(obs.trial_id)
        entry, value = self._trials.get(obs.trial_id), self.outcome(obs)
        if entry is None or value is None:
            return  # failed and lost trials are never promoted
        rung, params = entry
        self._results[self._bracket[obs.trial_id]][rung][obs.trial_id] = value
        self._seen[rung].append((params, value))
        if rung == len(self.budgets) - 1:
            self._reached_max = True


class Hyperband(ASHA):
    """Asynchronous Hyperband: ASHA over several brackets.

    ``mode`` picks how many brackets when ``brackets`` is not given: ``"aggressive"`` one (plain
    ASHA), ``"standard"`` about half the rungs, ``"conservative"`` all of them (down to one that
    runs every configuration at ``max_budget``).
    """

    MODES = ("aggressive", "standard", "conservative")

    def __init__(self, reduction_factor: float = 3, min_budget: float = 1, max_budget: float = 27,
                 stop_at_max: bool = False, *, brackets: int | None = None, mode: str = "standard",
                 sampler: Any = None, random_fraction: float = 1 / 3, min_points: int | None = None):
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {', '.join(self.MODES)}, got {mode!r}")
        _check(reduction_factor, min_budget, max_budget)
        given = brackets
        if brackets is None:
            rungs = len(rung_budgets(reduction_factor, min_budget, max_budget))
            brackets = {"aggressive": 1, "standard": (rungs + 1) // 2, "conservative": rungs}[mode]
        self.mode = mode
        super().__init__(reduction_factor, min_budget, max_budget, stop_at_max, brackets=brackets,
                         sampler=sampler, random_fraction=random_fraction, min_points=min_points)
        self._args.update(brackets=given, mode=mode)  # brackets follow the mode, as when first built


def _proposer(spec: Any, space: Any, direction: Any, seed: int | None, directions: Any = None) -> Any:
    """The sampler named or given, set up on the same space, checked for ``propose``."""
    from ..registry import PluginError, resolve

    try:
        sampler = resolve("lagom.optimizers", spec, Optimizer)
    except PluginError as exc:
        raise ValueError(f"sampler: {exc}") from None
    if not callable(getattr(sampler, "propose", None)):
        raise ValueError(f"sampler {type(sampler).__name__} cannot propose from observations: it needs a "
                         f"propose(observed, pending) method (as TPE has); use sampler='tpe'")
    sampler.directions = directions
    sampler.setup(space, num_trials=None, direction=direction, seed=None if seed is None else seed + 1)
    return sampler
