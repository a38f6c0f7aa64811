"""Multi-objective search: the hypervolume of the front found at equal budget, random search
against MO-TPE and MO-ASHA, on ZDT1 (Zitzler, Deb and Thiele, 2000), whose front is known.

    python bench/multiobjective.py            # 3 seeds
    python bench/multiobjective.py --seeds 5

ZDT1 with 6 parameters in [0, 1], both objectives minimised: f1 = x1, g = 1 + 9 mean(x2..x6),
f2 = g (1 - sqrt(f1 / g)); the front is x2..x6 = 0, f2 = 1 - sqrt(f1). A trial of budget b (1,
3 or 9 "epochs") measures f2 with a bias of up to 0.5 / b that depends on x1, so a low budget
tells roughly, not exactly, how good a configuration is (what ASHA's lower rungs see).

Equal budget in budget units: random search and MO-TPE run N configurations at 9 (9N units);
MO-ASHA (rungs 1, 3, 9; trials start over, no checkpoints) 2N new configurations, about 9N
units (asynchronous promotions make it vary from run to run; each run prints what it spent).
The hypervolume (reference point (1.1, 11)) is that of the front among trials measured at 9;
the true front's is given for scale. Figures (last line, JSON): each method's hypervolume per
seed, the mean, the units spent, and whether MO-ASHA >= random search on every seed.
"""
from __future__ import annotations

import argparse
import math
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
from kernel.pareto import front, hypervolume  # noqa: E402
from plugins.optimizers import ASHA, TPE  # noqa: E402

REFERENCE = (1.1, 11.0)
SIGNS = (-1.0, -1.0)
TOP = 9


def zdt1(hparams, reporter):
    xs = [hparams[f"x{i}"] for i in range(1, 7)]
    g = 1 + 9 * sum(xs[1:]) / 5
    f1, f2 = xs[0], g * (1 - math.sqrt(xs[0] / g))
    budget = hparams.get("budget", TOP)
    f2 += (0.5 / budget) * (0.5 + 0.5 * math.sin(7 * xs[0]))  # what a short run gets wrong
    reporter.broadcast(metric=f1, step=0)
    return {"f1": f1, "f2": f2}


def space() -> Searchspace:
    return Searchspace(**{f"x{i}": ("DOUBLE", [0.0, 1.0]) for i in range(1, 7)})


def run(optimizer, n: int, seed: int, root: str) -> tuple[float, int]:
    result = lagom(zdt1, HyperparameterSearch(space(), optimizer, num_trials=n, metric=["f1", "f2"],
                                              direction=["min", "min"], workers=2, seed=seed),
                   path=root, verbose=0, report=False)
    full = [t.values for t in result.trials if t.values and (t.budget or TOP) == TOP]
    units = sum(t.budget or TOP for t in result.trials)
    return hypervolume([full[i] for i in front(full, SIGNS)], REFERENCE, SIGNS), units


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--configs", type=int, default=40, help="N: configurations of random search and MO-TPE")
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="lagom-mo-")
    true_front = [(x, 1 - math.sqrt(x)) for x in (i / 2000 for i in range(2001))]
    ideal = hypervolume(true_front, REFERENCE, SIGNS)
    out = {m: {"hv": [], "units": []} for m in ("random", "motpe", "moasha")}
    for seed in range(args.seeds):
        for method, opt, n in (("random", "randomsearch", args.configs), ("motpe", TPE(n_startup=10), args.configs),
                               ("moasha", ASHA(3, 1, TOP), 2 * args.configs)):
            hv, units = run(opt, n, seed, root)
            out[method]["hv"].append(round(hv, 4))
            out[method]["units"].append(units)
        print(f"seed {seed}: hypervolume random {out['random']['hv'][-1]:.3f}, MO-TPE {out['motpe']['hv'][-1]:.3f}, "
              f"MO-ASHA {out['moasha']['hv'][-1]:.3f} (units {out['random']['units'][-1]}, "
              f"{out['motpe']['units'][-1]}, {out['moasha']['units'][-1]}); true front {ideal:.3f}", flush=True)
    emit({"bench": "multiobjective", "seeds": args.seeds, "true_front_hv": round(ideal, 4),
          **{f"{m}_hv": v["hv"] for m, v in out.items()},
          **{f"{m}_mean_hv": round(statistics.fmean(v["hv"]), 4) for m, v in out.items()},
          **{f"{m}_units": v["units"] for m, v in out.items()},
          "moasha_ge_random_every_seed": all(a >= r for a, r in zip(out["moasha"]["hv"], out["random"]["hv"]))})


if __name__ == "__main__":
    main()
