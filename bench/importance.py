"""Hyperparameter importance: does it find what was planted, and what does it cost?

    python bench/importance.py
    python bench/importance.py --trials 300 10000 --seeds 10 --no-optuna

A planted objective (tests/fns.py's ``planted``): ``a`` and ``b`` decide the score, ``c``
weakly, ``d``, ``e`` and a three-way choice not at all, plus Gaussian noise. For each number of
trials: over ``--seeds`` seeds, how often ``a`` and ``b`` are ranked first, and how often with
intervals clear of the rest (``clear``; with many trials the weak ``c`` stands out from the
noise too, as it should), and the median seconds one estimate takes
(100 rounds of half-samples, for the intervals); the same for lagom's functional ANOVA
(``fanova``: the variance each parameter explains alone, a random forest; "clear": exactly the
planted two stand out, intervals over its trees). Optuna's PED-ANOVA and fANOVA evaluators run on
the same trials (fANOVA up to 1,000 trials: it takes minutes beyond), timed, and judged only on
their ranking (they give no interval).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from _common import emit  # noqa: E402

PLANTED = {"a", "b"}


def ours(params, scores, seed) -> tuple[bool, bool, float]:
    from kernel.outputs.importance import importance

    t0 = time.perf_counter()
    rows = importance(params, scores, seed=seed)
    spent = time.perf_counter() - t0
    first, rest = rows[:2], rows[2:]
    clear = min(r["interval"][0] for r in first) > max(r["interval"][1] for r in rest)
    return {r["param"] for r in first} == PLANTED, {r["param"] for r in first} == PLANTED and clear, spent


def ours_fanova(params, scores, seed) -> tuple[bool, bool, float]:
    from kernel.outputs.fanova import functional_anova

    t0 = time.perf_counter()
    rows = functional_anova(params, scores, seed=seed)
    spent = time.perf_counter() - t0
    first = {r["param"] for r in rows[:2]}
    return first == PLANTED, {r["param"] for r in rows if r["stands_out"]} == PLANTED, spent


def optuna_rank(params, scores, evaluator) -> tuple[bool, float]:
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    dists = {k: FloatDistribution(0.0, 1.0) for k in "abcde"}
    dists["kind"] = CategoricalDistribution(["x", "y", "z"])
    study = optuna.create_study(direction="maximize")
    study.add_trials([optuna.trial.create_trial(params=p, distributions=dists, value=s) for p, s in zip(params, scores)])
    t0 = time.perf_counter()
    got = optuna.importance.get_param_importances(study, evaluator=evaluator)
    spent = time.perf_counter() - t0
    return set(list(got)[:2]) == PLANTED, spent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, nargs="+", default=[100, 300, 1000, 10000])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--no-optuna", action="store_true")
    args = ap.parse_args()
    from test_importance import planted_trials

    out: dict = {"bench": "importance", "seeds": args.seeds, "by_trials": {}}
    for n in args.trials:
        runs = [ours(*planted_trials(n, seed), seed) for seed in range(args.seeds)]
        row = {"ranked_first": sum(r[0] for r in runs), "clear": sum(r[1] for r in runs),
               "seconds": round(statistics.median(r[2] for r in runs), 4)}
        forest = [ours_fanova(*planted_trials(n, seed), seed) for seed in range(args.seeds)]
        row["fanova"] = {"ranked_first": sum(r[0] for r in forest), "clear": sum(r[1] for r in forest),
                         "seconds": round(statistics.median(r[2] for r in forest), 4)}
        if not args.no_optuna:
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            evaluators = {"optuna_ped_anova": optuna.importance.PedAnovaImportanceEvaluator}
            if n <= 1000:
                evaluators["optuna_fanova"] = lambda: optuna.importance.FanovaImportanceEvaluator(seed=0)
            for name, make in evaluators.items():
                theirs = [optuna_rank(*planted_trials(n, seed), make()) for seed in range(args.seeds)]
                row[name] = {"ranked_first": sum(r[0] for r in theirs),
                             "seconds": round(statistics.median(r[1] for r in theirs), 4)}
        out["by_trials"][n] = row
        print(f"{n} trials: {row}", flush=True)
    emit(out)


if __name__ == "__main__":
    main()
