"""TPE: the Tree-structured Parzen Estimator (Bergstra et al., NeurIPS 2011), asynchronous.

After ``n_startup`` random configurations, results are split into the best ``gamma`` fraction
and the rest; each parameter gets two Parzen densities, l(x) over the good configurations and
g(x) over the others, and the candidate drawn from l with the highest l(x)/g(x) is chosen.

Parameters are modelled one at a time (the classic, univariate TPE): ranges as mixtures of
truncated Gaussians on [0, 1] (after a log transform for log ranges; integers as intervals
around each value), choices as smoothed frequencies.

With ``multivariate=True`` the parameters that are always active are modelled jointly (as
Optuna's ``multivariate=True``): each good configuration is one kernel over all of them, so a
candidate is drawn whole from one good configuration's neighbourhood and scored by the joint
l(x)/g(x). That finds optima that lie along a diagonal (a learning rate that must shrink as the
batch grows), which a product of per-parameter densities cannot see. Conditional parameters
are then chosen one at a time, as in the univariate model.

A user's priors (``Searchspace(priors=...)``) weigh each candidate's score by prior ** (beta /
n) (πBO: n the results the model rests on), in the univariate model and the joint one alike.

Asynchrony: trials still running count as if they had returned the worst value seen (a
constant liar), so agents asking at the same time are pushed apart instead of all being sent
to the same promising corner.

TPE is also a :class:`~plugins.optimizers.base.Proposer`: ``propose(observed, pending)`` models
results it is handed (ASHA's ``sampler="tpe"`` hands it one rung's).
"""
from __future__ import annotations

import math
from typing import Any, Callable

from . import priors
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


class _Joint:
    """A Parzen estimator over several parameters at once: one kernel per configuration (a
    truncated Gaussian per range, a smoothed indicator per choice), plus a broad prior kernel.
    Bandwidths follow Scott's rule, as in Optuna's multivariate TPE."""

    def __init__(self, params: list, configs: list[dict], prior_weight: float):
        self.params = params
        self.units = [TPE._transform(p) if p.is_range else None for p in params]
        self.sizes = [0 if p.is_range else len(p.values) for p in params]
        self.index = [None if p.is_range else {repr(v): i for i, v in enumerate(p.values)} for p in params]
        points = [self._encode(c) for c in configs if all(p.name in c for p in params)]
        n, d = len(points), len(params)
        sigma = min(1.0, max(1.0 / min(100.0, 1.0 + n), 0.2 * max(n, 1) ** (-1.0 / (d + 4))))
        self.points = points
        self.sigma = sigma
        self.prior_weight = prior_weight
        self.log_weights = [math.log(1.0 / (n + prior_weight))] * n + [math.log(prior_weight / (n + prior_weight))]
        self.norm = [[_phi((1 - x) / sigma) - _phi(-x / sigma) if k == 0 else 1.0
                      for x, k in zip(pt, self.sizes)] for pt in points]

    def _encode(self, config: dict) -> list[float]:
        out = []
        for p, unit, index in zip(self.params, self.units, self.index):
            out.append(unit[0](config[p.name]) if unit else index[repr(config[p.name])])
        return out

    def _decode(self, x: list[float]) -> dict[str, Any]:
        return {p.name: (unit[1](v) if unit else p.values[int(v)])
                for p, unit, v in zip(self.params, self.units, x)}

    def sample(self, rng) -> list[float]:
        i = rng.randrange(len(self.points) + 1) if self.prior_weight == 1.0 else \
            rng.choices(range(len(self.points) + 1), weights=[math.exp(w) for w in self.log_weights])[0]
        if i == len(self.points):  # the prior: uniform over the space
            return [rng.random() if k == 0 else rng.randrange(k) for k in self.sizes]
        out = []
        for x, k in zip(self.points[i], self.sizes):
            if k:
                stay = (1.0 + self.prior_weight / k) / (1.0 + self.prior_weight)
                out.append(x if rng.random() < stay else rng.randrange(k))
                continue
            for _ in range(32):
                v = rng.gauss(x, self.sigma)
                if 0.0 <= v <= 1.0:
                    break
            out.append(min(1.0, max(0.0, v)))
        return out

    def log_pdf(self, x: list[float]) -> float:
        terms = []
        gauss = self.sigma * math.sqrt(2 * math.pi)
        for pt, norm, lw in zip(self.points, self.norm, self.log_weights):
            total = lw
            for v, mu, k, z in zip(x, pt, self.sizes, norm):
                if k:
                    total += math.log(((v == mu) + self.prior_weight / k) / (1.0 + self.prior_weight))
                else:
                    total += -0.5 * ((v - mu) / self.sigma) ** 2 - math.log(gauss * max(z, 1e-12))
            terms.append(total)
        terms.append(self.log_weights[-1] + sum(-math.log(k) for k in self.sizes if k))  # uniform prior
        top = max(terms)
        return top + math.log(sum(math.exp(t - top) for t in terms))

    @staticmethod
    def best_of(params: list, good: list[dict], bad: list[dict], prior_weight: float, rng, n: int,
                belief: Callable[[list[float]], float] | None = None) -> dict:
        """The candidate drawn from the good model that scores best; ``belief`` adds the user's
        priors' log density, weighted as in the univariate model."""
        l, g = _Joint(params, good, prior_weight), _Joint(params, bad, prior_weight)
        candidates = [l.sample(rng) for _ in range(n)]
        return l._decode(max(candidates, key=lambda x: l.log_pdf(x) - g.log_pdf(x) + (belief(x) if belief else 0.0)))


class TPE(Optimizer):
    needs_num_trials = True

    def __init__(self, n_startup: int = 10, n_candidates: int = 24, gamma: float = 0.25,
                 prior_weight: float = 1.0, budget: float | int | None = None, multivariate: bool = False,
                 prior_beta: float = 10.0):
        if not isinstance(n_startup, int) or n_startup < 1:
            raise ValueError(f"n_startup must be an integer >= 1, got {n_startup!r}")
        if not 0 < gamma < 1:
            raise ValueError(f"gamma must lie in (0, 1), got {gamma!r}")
        self.n_startup = n_startup
        self.n_candidates = n_candidates
        self.gamma = gamma
        self.prior_weight = prior_weight
        self.budget = budget
        self.multivariate = multivariate
        self.prior_beta = prior_beta  # a user's priors (Searchspace(priors=...)) weigh as prior ** (beta / n)
        self._evidence = 0  # results the model rests on now: n above
        self._done: list[tuple[dict[str, Any], float]] = []
        self._running: dict[int, dict[str, Any]] = {}
        self._issued = 0

    def suggest(self, trial_id: int) -> Decision:
        if self.num_trials is not None and self._issued >= self.num_trials:
            return FINISHED
        if len(self._done) < self.n_startup or getattr(self, "_queued", None):
            params = self.sample_believed()  # enqueued points first, then random (or the priors') until the model has data
        else:
            self._evidence = len(self._done)
            params = self._model_sample(*self._split(self._done, list(self._running.values())))
        self._issued += 1
        self._running[trial_id] = params
        return Suggestion(params, self.budget)

    def replayed(self, trial_id: int, journaled: Suggestion, proposed: Suggestion | None) -> None:
        """An edited study's resume: the model learns from what ran (and ``proposed`` was counted
        as issued; ``journaled`` takes its place)."""
        if proposed is None:
            self._issued += 1
        self._running[trial_id] = dict(journaled.params)

    def observe(self, obs: Observation) -> None:
        params = self._running.pop(obs.trial_id, None)
        value = self.outcome(obs)  # several objectives: a vector (MOTPE's split below)
        if params is not None and value is not None:
            self._done.append((params, value))

    def propose(self, observed, pending) -> dict[str, Any] | None:
        """A configuration modelled on ``observed`` (params, value) pairs, away from ``pending``
        ones; None while there are fewer than ``n_startup`` observations."""
        observed = [(p, v) for p, v in observed if v is not None and all(map(math.isfinite, _vector(v)))]
        if len(observed) < self.n_startup:
            return None
        self._evidence = len(observed)
        return self._model_sample(*self._split(observed, list(pending)))

    # -- the model --------------------------------------------------------------------------
    def _split(self, done: list, running: list) -> tuple[list[dict], list[dict]]:
        ranked = self.best_first(done, key=lambda pv: pv[1])  # best first (several objectives: by front)
        n_good = max(1, math.ceil(self.gamma * len(ranked)))
        good = [p for p, _ in ranked[:n_good]]
        bad = [p for p, _ in ranked[n_good:]] + running  # the liar: running ones count as worst
        return good, bad

    def _model_sample(self, good: list[dict], bad: list[dict]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.multivariate:
            joint = [p for p in self.space if not p.when]
            if len(joint) > 1:
                out.update(_Joint.best_of(joint, good, bad, self.prior_weight, self.rng, self.n_candidates,
                                          self._joint_belief(joint)))
        for p in self.space:  # in declaration order, so a conditional one sees its parents
            if p.name not in out and p.active(out):
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
        prior, w = self._prior_of(param)
        best = max(candidates, key=lambda u: l.log_pdf(u) - g.log_pdf(u)
                   + (w * priors.unit_log_density(param, prior, u) if prior else 0.0))
        return from_unit(best)

    def _prior_of(self, param) -> tuple[Any, float]:
        """The user's prior on ``param`` and its weight now (πBO: prior ** (beta / n), n the
        results the model rests on: evidence outvotes a misleading prior), or (None, 0)."""
        prior = getattr(self.space, "priors", {}).get(param.name)
        return (prior, self.prior_beta / max(1, self._evidence)) if prior is not None else (None, 0.0)

    def _joint_belief(self, params: list) -> Callable[[list[float]], float] | None:
        """The priors over the jointly modelled parameters, as the joint model encodes a point (a
        range on its unit scale, a choice by index): a sum of the weighted log densities, since
        a user's priors are independent per parameter; None when none of them has one."""
        held = [(i, p, *self._prior_of(p)) for i, p in enumerate(params)]
        held = [(i, p, prior, w) for i, p, prior, w in held if prior is not None]
        if not held:
            return None

        def belief(x: list[float]) -> float:
            return sum(w * (priors.unit_log_density(p, prior, x[i]) if p.is_range
                            else priors.log_density(p, prior, p.values[int(x[i])])) for i, p, prior, w in held)
        return belief

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
        prior, w = self._prior_of(param)
        best = max(picks, key=lambda i: math.log(wl[i]) - math.log(wg[i])
                   + (w * priors.log_density(param, prior, values[i]) if prior else 0.0))
        return values[best]

    @staticmethod
    def _transform(param):
        return priors.unit_scale(param)  # each integer owns an interval of width 1


def _vector(v: Any) -> tuple:
    return tuple(v) if isinstance(v, (list, tuple)) else (v,)
