"""TPE: the Tree-structured Parzen Estimator (Bergstra et al., NeurIPS 2011), asynchronous.

After ``n_startup`` random configurations, results are split into the best ``gamma`` fraction
and the rest; each parameter gets two Parzen densities, l(x) over the good configurations and
g(x) over the others, and the candidate drawn from l with the highest l(x)/g(x) is chosen.

Parameters are modelled one at a time (the classic, univariate TPE): ranges as mixtures of
truncated Gaussians on [0, 1] (after a log transform for log ranges; integers as intervals
around each value), choices as smoothed frequencies.

Asynchrony: trials still running count as if they had returned the worst value seen (a
constant liar), so agents asking at the same time are pushed apart instead of all being sent
to the same promising corner.
"""
from __future__ import annotations

import math
from typing import Any

from .base import FINISHED, Decision, Observation, Optimizer, Suggestion

_SQRT2 = math.sqrt(2.0)


def _phi(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / _SQRT2))


class _Parzen:
    """A mixture of Gaussians truncated to [0, 1], with a broad prior component."""

    def __init__(self, points: list[float], prior_weight: float):
        mus = sorted(points)
        n = len(mus)
        low_sigma = 1.0 / min(100.0, 1.0 + n)
        sigmas = []
        for i, mu in enumerate(mus):
            left = mu - (mus[i - 1] if i > 0 else 0.0)
            right = (mus[i + 1] if i + 1 < n else 1.0) - mu
            sigmas.append(min(1.0, max(low_sigma, left, right)))
        self.mus = mus + [0.5]
        self.sigmas = sigmas + [1.0]
        weights = [1.0] * n + [prior_weight]
        total = sum(weights)
        self.weights = [w / total for w in weights]
        self.norms = [_phi((1 - m) / s) - _phi(-m / s) for m, s in zip(self.mus, self.sigmas)]

    def sample(self, rng) -> float:
        i = rng.choices(range(len(self.mus)), weights=self.weights)[0]
        mu, sigma = self.mus[i], self.sigmas[i]
        for _ in range(32):
            x = rng.gauss(mu, sigma)
            if 0.0 <= x <= 1.0:
                return x
        return min(1.0, max(0.0, mu))

    def log_pdf(self, x: float) -> float:
        total = 0.0
        for w, mu, s, z in zip(self.weights, self.mus, self.sigmas, self.norms):
            total += w * math.exp(-0.5 * ((x - mu) / s) ** 2) / (s * math.sqrt(2 * math.pi) * max(z, 1e-12))
        return math.log(max(total, 1e-300))


class TPE(Optimizer):
    def __init__(self, n_startup: int = 10, n_candidates: int = 24, gamma: float = 0.25,
                 prior_weight: float = 1.0, budget: float | int | None = None):
        if not isinstance(n_startup, int) or n_startup < 1:
            raise ValueError(f"n_startup must be an integer >= 1, got {n_startup!r}")
        if not 0 < gamma < 1:
            raise ValueError(f"gamma must lie in (0, 1), got {gamma!r}")
        self.n_startup = n_startup
        self.n_candidates = n_candidates
        self.gamma = gamma
        self.prior_weight = prior_weight
        self.budget = budget
        self._done: list[tuple[dict[str, Any], float]] = []
        self._running: dict[int, dict[str, Any]] = {}
        self._issued = 0

    def setup(self, space, *, num_trials, direction, seed) -> None:
        if num_trials is None:
            raise ValueError("tpe needs num_trials (how many configurations to try)")
        super().setup(space, num_trials=num_trials, direction=direction, seed=seed)

    def suggest(self, trial_id: int) -> Decision:
        if self._issued >= self.num_trials:
            return FINISHED
        if len(self._done) < self.n_startup or getattr(self, "_queued", None):
            params = self.sample()  # enqueued points first, then random until the model has data
        else:
            params = self._model_sample()
        self._issued += 1
        self._running[trial_id] = params
        return Suggestion(params, self.budget)

    def observe(self, obs: Observation) -> None:
        params = self._running.pop(obs.trial_id, None)
        if params is not None and obs.state in ("finished", "stopped") and obs.value is not None \
                and math.isfinite(obs.value):
            self._done.append((params, obs.value))

    # -- the model --------------------------------------------------------------------------
    def _split(self) -> tuple[list[dict], list[dict]]:
        ranked = self.direction.ranked(self._done, key=lambda pv: pv[1])  # best first
        n_good = max(1, math.ceil(self.gamma * len(ranked)))
        good = [p for p, _ in ranked[:n_good]]
        bad = [p for p, _ in ranked[n_good:]] + list(self._running.values())  # the liar: worst
        return good, bad

    def _model_sample(self) -> dict[str, Any]:
        good, bad = self._split()
        out: dict[str, Any] = {}
        for p in self.space:  # in declaration order, so a conditional one sees its parents
            if p.active(out):
                out[p.name] = self._choose(p, [g[p.name] for g in good if p.name in g],
                                           [b[p.name] for b in bad if p.name in b])
        return out

    def _choose(self, param, good: list, bad: list) -> Any:
        if not param.is_range:
            return self._choose_choice(param, good, bad)
        to_unit, from_unit = self._transform(param)
        l = _Parzen([to_unit(x) for x in good], self.prior_weight)
        g = _Parzen([to_unit(x) for x in bad], self.prior_weight)
        candidates = [l.sample(self.rng) for _ in range(self.n_candidates)]
        best = max(candidates, key=lambda u: l.log_pdf(u) - g.log_pdf(u))
        return from_unit(best)

    def _choose_choice(self, param, good: list, bad: list) -> Any:
        values = list(param.values)
        index = {repr(v): i for i, v in enumerate(values)}
        def weights(obs):
            w = [self.prior_weight] * len(values)
            for v in obs:
                w[index[repr(v)]] += 1.0
            total = sum(w)
            return [x / total for x in w]
        wl, wg = weights(good), weights(bad)
        picks = self.rng.choices(range(len(values)), weights=wl, k=self.n_candidates)
        best = max(picks, key=lambda i: math.log(wl[i]) - math.log(wg[i]))
        return values[best]

    @staticmethod
    def _transform(param):
        low, high = param.values
        if param.type == "INTEGER":
            low, high = low - 0.5, high + 0.5  # each integer owns an interval of width 1
        f = math.log if param.log else (lambda v: v)
        finv = math.exp if param.log else (lambda v: v)
        a, b = f(low), f(high)

        def to_unit(x):
            return (f(x) - a) / (b - a)

        def from_unit(u):
            x = finv(a + u * (b - a))
            if param.type == "INTEGER":
                return int(min(param.values[1], max(param.values[0], round(x))))
            return float(min(param.values[1], max(param.values[0], x)))

        return to_unit, from_unit
