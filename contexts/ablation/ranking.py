"""An ablation's ranking: each component's effect against the baseline, with an interval.

With ``repeats=k`` the baseline and every component run with the same k seeds, so effects are
paired by seed (the seed's luck cancels): the effect is the mean of the k differences, and its
95% confidence interval is Student's t over them. A component whose interval holds zero is
indistinguishable from no effect at all, and is marked so; with one run there is no interval,
and nothing tells noise from an effect (which is why repeats exist).

Each row says what its effect means (``verdict``): "important" when leaving the component out
makes the metric worse, "harmful" when leaving it out makes it better (a noise feature the
model overfits, say: a real effect, but not importance), "indistinguishable" when its interval
holds zero. Without an interval (one run each, or repeats of a function that ignores its seed)
nothing is judged: the verdict says only which way the effect goes, "hurts" or "helps".

Repeats that are not repeats claim nothing: when the baseline gave the very same value for
every seed, the function ignores ``hparams["seed"]``, every interval has width zero, and the
smallest rounding difference would look "significant"; ``significant`` is then None throughout.
"""
from __future__ import annotations

import math
import statistics
from typing import Any

# two-sided 95% quantiles of Student's t, by degrees of freedom; beyond 30 the normal's
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)


def t975(df: int) -> float:
    return _T975[df - 1] if df <= len(_T975) else 1.960 + 2.4 / df  # within 0.3% of the true value


def interval(effects: list[float]) -> tuple[float, float] | None:
    """The 95% confidence interval of the mean of ``effects`` (None for fewer than two)."""
    if len(effects) < 2:
        return None
    mean = statistics.fmean(effects)
    half = t975(len(effects) - 1) * statistics.stdev(effects) / math.sqrt(len(effects))
    return (mean - half, mean + half)


def seed_ignored(baseline: dict[int, float]) -> bool:
    """The baseline ran with several seeds and gave the same value for each."""
    return len(baseline) >= 2 and len(set(baseline.values())) == 1


def rank(trials: list[Any], direction: Any) -> tuple[dict[int, float], list[dict[str, Any]]]:
    """(the baseline's metric by seed, the ranking rows, most important first).

    ``trials``: the ablation's trials, each with ``info`` naming its component, kind and seed.
    """
    by: dict[str, dict[int, Any]] = {}
    kinds: dict[str, str] = {}
    for t in trials:
        label = t.info["ablated"]
        by.setdefault(label, {})[t.info.get("seed", 0)] = t
        kinds[label] = t.info["kind"]
    ok = lambda t: t is not None and t.state == "finished" and t.metric is not None and not math.isnan(t.metric)
    baseline = {seed: t.metric for seed, t in by.pop("baseline", {}).items() if ok(t)}
    judged = not seed_ignored(baseline)
    rows = []
    for label, runs in by.items():
        paired = {seed: t.metric for seed, t in runs.items() if ok(t) and seed in baseline}
        effects = [paired[s] - baseline[s] for s in sorted(paired)]
        ci = interval(effects)
        first = min(runs.values(), key=lambda t: t.id)
        rows.append({
            "component": label, "kind": kinds[label], "trial": first.id,
            "trials": sorted(t.id for t in runs.values()),
            "metric": statistics.fmean(paired.values()) if paired else None,
            "effect": statistics.fmean(effects) if effects else None,
            "effects": effects, "repeats": len(effects),
            "ci": list(ci) if ci else None,
            "significant": None if ci is None or not judged else not (ci[0] <= 0.0 <= ci[1]),
            "state": first.state if len(runs) == 1 else
            ("finished" if len(paired) == len(runs) else f"{len(runs) - len(paired)} of {len(runs)} failed"),
        })
    sign = direction.sign
    for row in rows:
        row["verdict"] = verdict(row, sign)
    # Most important first: leaving it out hurts the most. Failed components go last.
    rows.sort(key=lambda r: (r["effect"] is None, sign * (r["effect"] or 0.0), r["trial"]))
    return baseline, rows


VERDICTS = {"important": "important (leaving it out hurts)", "harmful": "harmful (leaving it out helps)",
            "indistinguishable": "indistinguishable from zero", "hurts": "leaving it out hurts (not judged)",
            "helps": "leaving it out helps (not judged)"}


def verdict(row: dict[str, Any], sign: float) -> str | None:
    """What a row's effect means; None for a component that failed."""
    if row["effect"] is None:
        return None
    worse = sign * row["effect"] < 0
    if row["significant"] is None:
        return "hurts" if worse else "helps"
    if row["significant"] is False or row["effect"] == 0:
        return "indistinguishable"
    return "important" if worse else "harmful"
