"""A study resumed with a larger budget against one run with that budget from the start, on
LCBench: does raising ``max_budget`` on resume reach the same best?

    python bench/raise_budget.py                   # 8 tasks x 3 seeds, about 6 minutes
    python bench/raise_budget.py --tasks 2 --seeds 1

Per task and seed, the same search twice (2 agents, trials that sleep their scaled epochs and
continue their parent's checkpoint, as bench/lcbench.py runs them; ``--configs`` configurations):
"from the start", ASHA(3, 2, 52) (rungs 2, 6, 18, 52 epochs); "raised", ASHA(3, 2, 18) run to its
end, then resumed from its folder as ASHA(3, 2, 52): the new top rung opens and the best of the
18-epoch rung are promoted into it. Figures: each run's best validation accuracy at 52 epochs,
the epochs trained in all, and the paired difference; the seed-to-seed spread of "from the
start" is the noise it is measured against.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _common import emit  # noqa: E402
from lcbench import EPOCHS, TASKS, lagom_space, lagom_trial, scale_for, task_code  # noqa: E402


def search(code: int, scale: float, configs: int, seed: int, max_budget: int, path: str, resume=None):
    from contexts import HyperparameterSearch
    from kernel import lagom
    from plugins.optimizers import ASHA

    context = HyperparameterSearch(lagom_space(), ASHA(3, 2, max_budget), metric="acc", direction="max", workers=2,
                                   seed=seed, num_trials=configs, name="raise")
    return lagom(lagom_trial(code, scale), context, path=path, resume=resume, verbose=0, report=False)


def figures(result) -> tuple[float, int]:
    """The best accuracy at the largest budget, and the epochs trained (a promotion continues
    its parent: only its new epochs count)."""
    top = max(t.budget for t in result.trials if t.state == "finished")
    best = max(t.metric for t in result.trials if t.state == "finished" and t.budget == top)
    by_id = {t.id: t for t in result.trials}
    epochs = sum(t.budget - (by_id[t.parent].budget if t.parent is not None else 0) for t in result.trials)
    return best, int(epochs)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=8)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--configs", type=int, default=27)
    ap.add_argument("--full", type=float, default=2.0, help="seconds the median configuration trains 52 epochs in")
    args = ap.parse_args(argv)
    rows = []
    for task in TASKS[:args.tasks]:
        code = task_code(task)
        scale = scale_for(code, args.full)
        for seed in range(args.seeds):
            with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
                start = figures(search(code, scale, args.configs, seed, EPOCHS, tmp))
            with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
                first = search(code, scale, args.configs, seed, 18, tmp)
                raised = figures(search(code, scale, args.configs, seed, EPOCHS, tmp, resume=first.path))
            rows.append({"task": task, "seed": seed, "start": start[0], "raised": raised[0],
                         "start_epochs": start[1], "raised_epochs": raised[1]})
            print(f"task {task} seed {seed}: best at 52 epochs, from the start {start[0]:.4f} ({start[1]} epochs), "
                  f"raised on resume {raised[0]:.4f} ({raised[1]} epochs)", flush=True)
    diffs = [r["raised"] - r["start"] for r in rows]
    spread = statistics.mean(statistics.pstdev([r["start"] for r in rows if r["task"] == t])
                             for t in {r["task"] for r in rows}) if args.seeds > 1 else None
    same = sum(abs(d) < 1e-9 for d in diffs)
    print(f"raised - from the start: mean {statistics.mean(diffs):+.4f}, max |diff| {max(map(abs, diffs)):.4f}; "
          f"the same best in {same} of {len(rows)} runs; seed-to-seed spread of 'from the start' "
          f"{spread if spread is None else round(spread, 4)}")
    emit({"bench": "raise_budget", "runs": len(rows), "configs": args.configs, "mean_diff": statistics.mean(diffs),
          "max_abs_diff": max(map(abs, diffs)), "same_best": same, "seed_spread": spread,
          "epochs": {"start": statistics.mean(r["start_epochs"] for r in rows),
                     "raised": statistics.mean(r["raised_epochs"] for r in rows)}, "rows": rows})


if __name__ == "__main__":
    main()
