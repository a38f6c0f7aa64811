"""How often early stopping throws away a trial that would have won, on LCBench, measured with
the audit itself (``HyperparameterSearch(audit_stops=N)``) and checked against the surrogate.

    python bench/stop_audit.py                     # 8 tasks x 2 seeds, ASHA and the median rule
    python bench/stop_audit.py --tasks 2 --seeds 1

Per method and run: a search of ``--configs`` configurations on the LCBench surrogate (2 agents,
trials that sleep their scaled epochs, as bench/lcbench.py runs them), then ``--audit`` of its
stopped trials run to 52 epochs by the audit. Figures: per method, the audited trials that would
have ranked in the top 10% of the search's full-budget trials, summed over runs, with Wilson's
95% interval; and the truth the surrogate knows without running anything: the same rate over
every stopped trial of the run, from each one's own 52-epoch accuracy.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _common import emit  # noqa: E402
from lcbench import EPOCHS, SPACE, TASKS, curve, lagom_space, lagom_trial, scale_for, task_code  # noqa: E402

from contexts.audit import TOP, wilson  # noqa: E402


def search(method: str, code: int, scale: float, configs: int, audit: int, seed: int):
    from contexts import HyperparameterSearch
    from kernel import lagom
    from plugins.optimizers import ASHA

    optimizer, es = (ASHA(3, 1, EPOCHS), "none") if method == "asha" else ("randomsearch", "median")
    with tempfile.TemporaryDirectory() as tmp:
        return lagom(lagom_trial(code, scale), HyperparameterSearch(
            lagom_space(), optimizer, metric="acc", direction="max", workers=2, es_policy=es, seed=seed,
            num_trials=configs, audit_stops=audit), path=tmp, verbose=0)


def truth(result, code: int) -> tuple[int, int]:
    """Of every stopped trial (by the rule, or a configuration never at 52 epochs), how many
    would have ranked in the top 10% of the run's 52-epoch trials: the surrogate's own answer."""
    own = [t for t in result.trials if "audit" not in t.info]
    budget = max((t.budget for t in own if t.state == "finished" and t.budget is not None), default=None)
    full = [t.metric for t in own if t.state == "finished" and t.budget == budget]
    if not full:
        return 0, 0
    cut = sorted(full, reverse=True)[max(1, math.ceil(TOP * len(full))) - 1]
    reached = {tuple(sorted(t.params.items())) for t in own if t.state == "finished" and t.budget == budget}
    stopped = {tuple(sorted(t.params.items())) for t in own if t.state in ("finished", "stopped")} - reached
    epochs = EPOCHS if budget is None else int(budget)
    finals = [curve(code, {k: dict(p)[k] for k in SPACE})[1][epochs - 1] for p in stopped]
    return sum(acc >= cut for acc in finals), len(finals)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=8)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--configs", type=int, default=60, help="configurations per search")
    ap.add_argument("--audit", type=int, default=10, help="stopped trials audited per search")
    ap.add_argument("--full", type=float, default=0.5, help="seconds the median configuration's 52 epochs take")
    args = ap.parse_args(argv)
    out: dict = {"bench": "stop_audit", "tasks": TASKS[:args.tasks], "seeds": args.seeds, "configs": args.configs,
                 "audit": args.audit}
    for method in ("asha", "median"):
        audited = top = true_top = true_n = 0
        per_run = []
        for task in TASKS[:args.tasks]:
            code = task_code(task)
            scale = scale_for(code, args.full)
            for seed in range(args.seeds):
                result = search(method, code, scale, args.configs, args.audit, seed)
                report = result.extras.get("stop_audit") or {"audited": 0, "in_top": 0}
                k, n = truth(result, code)
                audited, top, true_top, true_n = audited + report["audited"], top + report["in_top"], \
                    true_top + k, true_n + n
                per_run.append(report["in_top"] / report["audited"] if report["audited"] else None)
                print(f"{method} task {task} seed {seed}: audit {report['in_top']}/{report['audited']}, "
                      f"surrogate {k}/{n}", file=sys.stderr, flush=True)
        lo, hi = wilson(top, audited) if audited else (None, None)
        tlo, thi = wilson(true_top, true_n) if true_n else (None, None)
        out[method] = {"audited": audited, "in_top": top, "rate": round(top / audited, 4) if audited else None,
                       "interval": [round(lo, 4), round(hi, 4)] if audited else None,
                       "runs": len(per_run), "rate_median_per_run": statistics.median([r for r in per_run if r is not None] or [0]),
                       "surrogate_stopped": true_n, "surrogate_in_top": true_top,
                       "surrogate_rate": round(true_top / true_n, 4) if true_n else None,
                       "surrogate_interval": [round(tlo, 4), round(thi, 4)] if true_n else None}
        print(f"{method}: {out[method]}", file=sys.stderr, flush=True)
    emit(out)


if __name__ == "__main__":
    main()
