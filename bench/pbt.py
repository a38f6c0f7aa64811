"""PBT against random search and ASHA on a problem whose best learning rate changes as training
goes: noisy SGD on an ill-conditioned quadratic (100 directions, curvatures 10^-2.5 to 1).

Early on a large learning rate makes progress along the flat directions; later it holds the
iterate at a noise floor that only a small one lowers: a log-linear decay from 1.3 to 0.01 ends
at an expected loss of 0.145, the best constant learning rate (0.039) at 0.330. The function
follows the SGD's mean and variance exactly, so the scores are expected losses, not draws. Random search and ASHA can only pick constants; PBT can change the learning rate
between segments.

    python bench/pbt.py                  # seeds 0, 1, 2
    python bench/pbt.py --seeds 5

Equal budget, counted in training units (25 SGD steps each) actually run: PBT 16 members x 24
units (a perturbation every unit); random search 16 configurations x 24; ASHA (rungs 3, 9, 24,
continuing from checkpoints) with about as many new configurations as fit in the same total. Figures (last line, JSON): each
method's final loss per seed (the best trial at the full 24 units), its mean, the units each
spent, and whether PBT beat both on every seed.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

from _common import emit  # noqa: E402

from contexts import HyperparameterSearch, Searchspace  # noqa: E402
from kernel import lagom  # noqa: E402
from plugins.optimizers import ASHA, PBT  # noqa: E402

UNITS = 24      # budget units a full training run has
STEPS = 25      # SGD steps per unit
DIM = 100


def sgd(hparams, reporter):
    """SGD with unit gradient noise from w = 0 (or the parent's checkpoint) up to ``budget``
    units, followed exactly: the mean and variance of each coordinate's error evolve in closed
    form, so the loss reported is the expected one (no luck of a draw decides the comparison)."""
    import numpy as np

    curvature = np.logspace(-2.5, 0, DIM)
    mean, var, start = -np.ones(DIM), np.zeros(DIM), 0  # the error w - w*, starting at w = 0, w* = 1
    if reporter.parent_checkpoint_dir:
        saved = np.load(os.path.join(reporter.parent_checkpoint_dir, "state.npz"))
        mean, var, start = saved["mean"], saved["var"], int(saved["units"])
    budget, lr = int(hparams.get("budget", UNITS)), hparams["lr"]
    shrink = 1 - lr * curvature
    loss = lambda: float(min(1e6, 0.5 * np.sum(curvature * (mean ** 2 + var))))  # noqa: E731
    for unit in range(start, budget):
        for _ in range(STEPS):
            mean, var = shrink * mean, np.minimum(1e12, shrink ** 2 * var + lr ** 2 * curvature)
        reporter.broadcast(metric=-loss(), step=unit)
    np.savez(os.path.join(reporter.checkpoint_dir, "state.npz"), mean=mean, var=var, units=budget)
    return {"score": -loss(), "trained": budget - start}


def search(optimizer, seed: int, num_trials: int, root: str):
    space = Searchspace(lr=("DOUBLE", [1e-3, 1.5], "log"))
    result = lagom(sgd, HyperparameterSearch(space, optimizer, num_trials=num_trials, metric="score", workers=2,
                                             seed=seed, name=type(optimizer).__name__.lower()),
                   path=root, verbose=0, report=False)
    full = [t for t in result.trials if t.state == "finished" and (t.budget or UNITS) == UNITS]
    best = max(full, key=lambda t: t.metric)
    return -best.metric, sum(t.result["trained"] for t in result.trials if t.result), result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--members", type=int, default=16, help="PBT's population (= random search's trials)")
    ap.add_argument("--interval", type=int, default=1, help="PBT's perturbation_interval (units)")
    ap.add_argument("--quantile", type=float, default=0.25)
    ap.add_argument("--asha-trials", type=int, default=52, help="new ASHA configurations (about PBT's units)")
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="lagom-pbt-")
    out = {m: {"loss": [], "units": []} for m in ("pbt", "random", "asha")}
    schedules = []
    for seed in range(args.seeds):
        runs = {"pbt": (PBT(UNITS, args.interval, population=args.members, quantile=args.quantile), None),
                "random": ("randomsearch", args.members),
                "asha": (ASHA(3, 3, UNITS), args.asha_trials)}
        for method, (optimizer, n) in runs.items():
            loss, units, result = search(optimizer, seed, n, root)
            out[method]["loss"].append(round(loss, 5))
            out[method]["units"].append(units)
            if method == "pbt":
                best = result.lineage[0]["steps"]
                schedules.append([round(s["params"]["lr"], 4) for s in best])
        print(f"seed {seed}: final loss PBT {out['pbt']['loss'][-1]:.4f}, random {out['random']['loss'][-1]:.4f}, "
              f"ASHA {out['asha']['loss'][-1]:.4f} (units {out['pbt']['units'][-1]}, {out['random']['units'][-1]}, "
              f"{out['asha']['units'][-1]}); PBT's winning lr by segment: {schedules[-1]}", flush=True)
    wins = all(p < r and p < a for p, r, a in zip(out["pbt"]["loss"], out["random"]["loss"], out["asha"]["loss"]))
    emit({"bench": "pbt", "seeds": args.seeds, **{f"{m}_loss": v["loss"] for m, v in out.items()},
          **{f"{m}_mean_loss": round(statistics.fmean(v["loss"]), 5) for m, v in out.items()},
          **{f"{m}_units": v["units"] for m, v in out.items()}, "pbt_lr_schedules": schedules,
          "pbt_beats_both_every_seed": wins})


if __name__ == "__main__":
    main()
