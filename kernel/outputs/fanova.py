"""Which hyperparameters mattered, the functional-ANOVA way (Hutter et al., ICML 2014): the share
of the metric's variance each parameter explains on its own.

A random forest (scikit-learn) learns the metric from the parameters; for each parameter, its
main effect is the forest's prediction averaged over the other parameters as the trials drew
them (a partial dependence, over up to GRID of its values), and its importance is the variance
of that effect over the total variance of the predictions: what varying it alone moves. Unlike
importance.py's estimate (how much the best trials prefer certain values), it says how much of
the spread the parameter explains, everywhere in the space; shares need not sum to 1 (the rest
is interactions). Each tree gives its own shares: a parameter's importance is their median, its
interval their 5-95% range, and the parameters whose intervals all lie above every other's stand
out. Numbers enter by rank (no scale needed), choices by their codes, an absent conditional
parameter as a value of its own.

Cost: a forest of TREES on up to FIT_ROWS trials, then GRID x parameters predictions per tree on
BACKGROUND trials: about a second at 10,000 trials (bench/importance.py). Needs scikit-learn
(not a core dependency: ``pip install scikit-learn``).
"""
from __future__ import annotations

from typing import Any, Sequence

from .importance import MIN_TRIALS, _ABSENT, _codes, ranked

TREES, FIT_ROWS, BACKGROUND, GRID = 32, 5000, 256, 16


def functional_anova(params: Sequence[dict[str, Any]], scores: Sequence[float], seed: int = 0) -> list[dict[str, Any]]:
    """Each parameter's share of the variance it explains alone, most first, with the 5-95%
    range over the forest's trees: ``[{"param", "importance", "interval", "stands_out"}]``."""
    import numpy as np
    from sklearn.ensemble import RandomForestRegressor

    n = len(scores)
    if n < MIN_TRIALS:
        raise ValueError(f"importance needs at least {MIN_TRIALS} trials with a metric, got {n}")
    names = sorted({k for p in params for k in p})
    x = np.stack([_encoded([p.get(k, _ABSENT) for p in params]) for k in names], axis=1)
    y = np.asarray(scores, dtype=float)
    rng = np.random.default_rng(seed)
    fit = rng.permutation(n)[:FIT_ROWS]
    forest = RandomForestRegressor(n_estimators=TREES, min_samples_leaf=3, max_features=0.5, random_state=seed,
                                   n_jobs=1).fit(x[fit], y[fit])
    background = x[rng.permutation(n)[:BACKGROUND]]
    shares = np.zeros((len(names), TREES))
    for t, tree in enumerate(forest.estimators_):
        total = tree.predict(background).var()
        for i in range(len(names)):
            effect = [tree.predict(_with(background, i, g)).mean() for g in _grid(x[:, i])]
            shares[i, t] = np.var(effect) / total if total > 0 else 0.0
    return ranked(names, shares)


def _encoded(values: list[Any]) -> Any:
    """Numbers by rank in [0, 1], anything else by code; -1 where absent."""
    import numpy as np

    present = [v for v in values if v is not _ABSENT]
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        here = np.array([v is not _ABSENT for v in values])
        x = np.asarray(present, dtype=float)
        out = np.full(len(values), -1.0)
        out[here] = np.searchsorted(np.sort(x), x, side="left") / max(1, len(x) - 1)  # ties: one rank
        return out
    codes = _codes(values, bins=1)  # choices: a code per value
    return np.where(codes >= 0, codes / max(1, codes.max()), -1.0)


def _grid(column: Any) -> Any:
    """Up to GRID of the values the trials took, spread as they were drawn (their quantiles)."""
    import numpy as np

    values = np.unique(column)
    if len(values) <= GRID:
        return values
    return np.unique(np.quantile(column, np.linspace(0, 1, GRID), method="nearest"))


def _with(rows: Any, i: int, value: float) -> Any:
    changed = rows.copy()
    changed[:, i] = value
    return changed
