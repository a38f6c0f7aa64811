"""What a user believes before searching: a likely value per hyperparameter, and how sure.

``Searchspace(..., priors={"lr": 3e-3, "act": ("relu", "high")})``: a value alone is held with
"medium" confidence. A range's prior is a normal distribution around the value on the range's
own scale (log for a log range), truncated to the range, with a standard deviation of half,
a quarter or an eighth of the range for low, medium and high confidence (NePS's scale); a
choice's prior gives its value 2, 4 or 8 times the weight of each other value.

The space validates them (contexts/searchspace.py); this module is their distributions. The
optimizers use them two ways: TPE weights its proposals by the prior to
a power that decays as results accumulate (πBO: Hvarfner et al., ICLR 2022), so a misleading
prior is outvoted by evidence; ASHA and Hyperband start with the prior's own configuration and
draw part of their random configurations from the prior, a share that shrinks when the best
results disagree with it (PriorBand's idea: Mallik et al., NeurIPS 2023).
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Callable

SPREAD = {"low": 0.5, "medium": 0.25, "high": 0.125}  # a range prior's standard deviation, on the unit scale
WEIGHT = {"low": 2.0, "medium": 4.0, "high": 8.0}  # a choice prior's value, against each other value


@dataclass(frozen=True)
class Prior:
    value: Any
    confidence: str = "medium"


def unit_scale(param: Any) -> tuple[Callable[[Any], float], Callable[[float], Any]]:
    """A range onto [0, 1] and back, on its own scale (log for a log range; an integer owns the
    interval of width 1 around it)."""
    low, high = param.values
    if param.type == "INTEGER":
        low, high = low - 0.5, high + 0.5
    f = math.log if param.log else (lambda v: v)
    finv = math.exp if param.log else (lambda v: v)
    a, b = f(low), f(high)

    def to_unit(x: Any) -> float:
        return (f(x) - a) / (b - a)

    def from_unit(u: float) -> Any:
        x = finv(a + u * (b - a))
        if param.type == "INTEGER":
            return int(min(param.values[1], max(param.values[0], round(x))))
        return float(min(param.values[1], max(param.values[0], x)))

    return to_unit, from_unit


def sample(param: Any, prior: Prior, rng: random.Random) -> Any:
    """A value drawn from the prior."""
    if not param.is_range:
        weights = [WEIGHT[prior.confidence] if _same(v, prior.value) else 1.0 for v in param.values]
        return param.values[rng.choices(range(len(param.values)), weights=weights)[0]]
    to_unit, from_unit = unit_scale(param)
    mu, sd = to_unit(prior.value), SPREAD[prior.confidence]
    for _ in range(100):  # truncated to the range: redraw what falls outside
        u = rng.gauss(mu, sd)
        if 0.0 <= u <= 1.0:
            return from_unit(u)
    return from_unit(min(1.0, max(0.0, mu)))


def log_density(param: Any, prior: Prior, value: Any) -> float:
    """The prior's log density at ``value`` (on the unit scale for a range), up to a constant."""
    if not param.is_range:
        total = sum(WEIGHT[prior.confidence] if _same(v, prior.value) else 1.0 for v in param.values)
        return math.log((WEIGHT[prior.confidence] if _same(value, prior.value) else 1.0) / total)
    return unit_log_density(param, prior, unit_scale(param)[0](value))


def unit_log_density(param: Any, prior: Prior, u: float) -> float:
    mu, sd = unit_scale(param)[0](prior.value), SPREAD[prior.confidence]
    return -0.5 * ((u - mu) / sd) ** 2 - math.log(sd)


def _same(a: Any, b: Any) -> bool:
    return a == b and type(a) is type(b)
