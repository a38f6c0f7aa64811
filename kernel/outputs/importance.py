"""Which hyperparameters mattered: how far the best trials' values stray from all trials'.

A PED-ANOVA-like estimate (Watanabe et al., IJCAI 2023): for each parameter, the Pearson
divergence between its distribution among the top ``top`` share of trials and among all of
them. A parameter the best trials share no preference on scores near 0; one they all agree on
scores high. Numbers are binned by rank (no range or scale needed, log or not), choices by value,
and a conditional parameter's absence is a value of its own. Each of ``rounds`` rounds takes
half the trials at random (none twice: a bootstrap's repeats would make noise look like a
preference); a parameter's importance is its median share over the rounds, its interval the
5-95% range of its shares, and the parameters whose intervals all lie above every other's are
said to stand out. Several objectives: the top trials are the first in
Pareto order (fronts, then crowding).

Cost: a few array passes per round; 10,000 trials x 6 parameters x 100 rounds take well under
a second (bench/importance.py). Needs numpy (not a core dependency): without it, importance is
left out of result.json, and ``result.importance()`` says what to install.
"""
from __future__ import annotations

import random
from typing import Any, Sequence

MIN_TRIALS = 10  # below this, the top share is a handful of trials: no importance is claimed


def importance(params: Sequence[dict[str, Any]], scores: Sequence[float], top: float = 0.1, rounds: int = 100,
               seed: int = 0) -> list[dict[str, Any]]:
    """Each parameter's share of importance (``scores``: higher is better), most important
    first, with its bootstrap interval: ``[{"param", "importance", "interval"}]``."""
    import numpy as np

    n = len(scores)
    if n < MIN_TRIALS:
        raise ValueError(f"importance needs at least {MIN_TRIALS} trials with a metric, got {n}")
    names = sorted({k for p in params for k in p})
    share = max(top, 5 / n)  # at least 5 trials in the top group
    bins = min(10, max(2, int((share * n) ** 0.5)))
    codes = np.stack([_codes([p.get(k, _ABSENT) for p in params], bins) for k in names])  # (params, n); -1: absent
    width = max(1, int(codes.max()) + 1)
    rng = np.random.default_rng(seed)
    m = n // 2  # half the trials each round, none twice: repeats would make noise look like preference
    draws = np.argsort(rng.random((rounds, n)), axis=1)[:, :m]
    s = np.asarray(scores, dtype=float)[draws]
    is_top = s >= np.quantile(s, 1 - share, axis=1, method="higher")[:, None]
    rows = np.arange(draws.shape[0])[:, None] * width
    divergence = np.empty((len(names), draws.shape[0]))
    size = draws.shape[0] * width
    for i in range(len(names)):
        c = codes[i][draws]
        here = c >= 0  # a conditional parameter: judged among the trials that have it
        c = c + rows
        every = np.bincount(c[here], minlength=size).reshape(-1, width).astype(float)
        best = np.bincount(c[here & is_top], minlength=size).reshape(-1, width).astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            every /= every.sum(axis=1, keepdims=True)
            best /= best.sum(axis=1, keepdims=True)  # no top trial has it: nothing to prefer (0 below)
            terms = np.where((every > 0) & np.isfinite(best), every * (best / every - 1.0) ** 2, 0.0)
        divergence[i] = terms.sum(axis=1)
    total = divergence.sum(axis=0)
    shares = np.divide(divergence, total, out=np.zeros_like(divergence), where=total > 0)
    return ranked(names, shares)


def ranked(names: Sequence[str], shares: Any) -> list[dict[str, Any]]:
    """Rows from each parameter's shares over samples (rounds, trees): the median, the 5-95%
    interval, most important first, and which stand out."""
    import numpy as np

    mid, lo, hi = np.quantile(shares, [0.5, 0.05, 0.95], axis=1)
    out = [{"param": name, "importance": round(float(mid[i]), 4),
            "interval": [round(float(lo[i]), 4), round(float(hi[i]), 4)]} for i, name in enumerate(names)]
    out.sort(key=lambda r: -r["importance"])
    clear = standing_out(out)
    for i, r in enumerate(out):
        r["stands_out"] = i < clear
    return out


def standing_out(rows: list[dict[str, Any]]) -> int:
    """How many of the first parameters stand out: the most whose every interval lies above
    every interval of the rest (0: none is told apart from the others)."""
    for k in range(len(rows) - 1, 0, -1):
        if min(r["interval"][0] for r in rows[:k]) > max(r["interval"][1] for r in rows[k:]):
            return k
    return 0


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


_ABSENT = _Absent()


def _codes(values: list[Any], bins: int) -> Any:
    """Each trial's bin: by rank for numbers (ties share one), by value for anything else; -1
    where the parameter is absent (a conditional one)."""
    import numpy as np

    here = [v is not _ABSENT for v in values]
    present = [v for v in values if v is not _ABSENT]
    codes = np.full(len(values), -1)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present) and len(set(present)) > bins:
        x = np.asarray(present, dtype=float)
        ranks = np.searchsorted(np.sort(x), x, side="left") / len(x)  # ties: the same rank
        codes[here] = np.minimum((ranks * bins).astype(int), bins - 1)
    elif present:
        labels: dict[str, int] = {}
        codes[here] = [labels.setdefault(repr(v), len(labels)) for v in present]
    return codes


def of_trials(trials: Sequence[Any], directions: Sequence[str], budget: Any = None, top: float = 0.1,
              rounds: int = 100, method: str = "ped", sample: int | None = None) -> list[dict[str, Any]]:
    """Importance over finished trials (objects or dicts with ``params``, ``metric``, ``values``,
    ``budget``, ``state``) at ``budget``: by default the largest budget at which at least
    MIN_TRIALS trials finished (ASHA's top rung holds a few; a lower one, many), else the largest.
    ``sample``: at most this many of them, drawn at random (seeded), for a quick look at a huge
    search; each row says how many it used (``sampled``) of how many (``of``)."""
    from ..direction import Direction
    from ..pareto import order

    get = (lambda t, k: t.get(k)) if trials and isinstance(trials[0], dict) else getattr
    done = [t for t in trials if str(get(t, "state")) == "finished" and get(t, "metric") is not None
            and "audit" not in (get(t, "info") or {})]  # a stopped trial run on, after the search, is not of it
    budgets = [get(t, "budget") for t in done if get(t, "budget") is not None]
    if budget is None and budgets:
        enough = [b for b in set(budgets) if budgets.count(b) >= MIN_TRIALS]
        budget = max(enough or budgets)
    done = [t for t in done if budget is None or get(t, "budget") == budget]
    total = len(done)
    if sample is not None and total > sample:
        done = random.Random(0).sample(done, sample)
    signs = [Direction.of(d).sign for d in directions]
    if len(signs) > 1:
        points = [get(t, "values") for t in done]
        done = [t for t, p in zip(done, points) if p is not None]
        ranked = order([get(t, "values") for t in done], signs)  # best first
        scores = [0.0] * len(done)
        for position, i in enumerate(ranked):
            scores[i] = -float(position)
    else:
        scores = [signs[0] * float(get(t, "metric")) for t in done]
    if method == "fanova":  # the share of variance each explains alone (fanova.py)
        from .fanova import functional_anova
        rows = functional_anova([get(t, "params") for t in done], scores)
    elif method == "ped":
        rows = importance([get(t, "params") for t in done], scores, top=top, rounds=rounds)
    else:
        raise ValueError(f"importance method={method!r}: 'ped' (how much the best trials prefer certain "
                         f"values) or 'fanova' (the variance each parameter explains alone)")
    for r in rows:
        r["budget"], r["method"] = budget, method  # which trials it speaks of, and how
        if sample is not None:
            r["sampled"], r["of"] = len(done), total
    return rows


def chart(plt: Any, trials: Sequence[Any], directions: Sequence[str]) -> Any:
    """report.html's bar chart of the shares with their intervals (None: nothing to draw)."""
    try:
        rows = of_trials(trials, directions)[::-1]  # the most important at the top
    except (ImportError, ValueError):
        return None
    fig, ax = plt.subplots(figsize=(6.5, 0.4 * max(3, len(rows)) + 1.2))
    shares = [r["importance"] for r in rows]
    errors = [[s - r["interval"][0] for s, r in zip(shares, rows)], [r["interval"][1] - s for s, r in zip(shares, rows)]]
    ax.barh([r["param"] for r in rows], shares, xerr=errors, capsize=3,
            color=["#2e86c1" if r["stands_out"] else "#aab7b8" for r in rows])
    ax.set_xlabel("importance (share; 90% interval)")
    return fig


def lines(rows: list[dict[str, Any]], shown: int = 6) -> list[str]:
    """The summary's lines: each parameter's share and interval, and which stand out."""
    clear = sum(1 for r in rows if r.get("stands_out"))
    verdict = f"{', '.join(r['param'] for r in rows[:clear])} stand{'s' if clear == 1 else ''} out" if clear \
        else "none stands out from the others"
    budget = rows[0].get("budget") if rows else None
    at = f", trials of budget {budget}" if budget is not None else ""
    what = "the metric's variance each explains alone" if rows and rows[0].get("method") == "fanova" \
        else "how much the best trials prefer certain values"
    out = [f"  importance ({what}; 90% interval{at}): {verdict}"]
    for r in rows[:shown]:
        lo, hi = r["interval"]
        out.append(f"    {r['param']:<20s} {r['importance']:6.1%}  [{lo:.0%}, {hi:.0%}]")
    return out
