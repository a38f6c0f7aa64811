"""Packed search: many trials of one shape in one XLA program, against the same search unpacked.

    python bench/pack.py                      # K = 1, 4, 16 for 40 s each, and Optuna
    python bench/pack.py --packs 1 16 64 --seconds 60

The function is ``examples/packed_digits.py``'s ``train`` (a digits MLP written against
``strategy``), a random search over lr, weight decay and two widths, ``--epochs`` epochs a trial,
on 2 local agents, for the same wall clock (``max_time``) at each pack size K: trials finished
per minute, seconds of wall clock per trial, the share of trial time spent compiling, and the
best accuracy reached. Optuna (random sampler, in one process) runs the same function on the
same space for the same time, each trial its own unpacked run (``SingleDevice``). The persistent
compilation cache is a fresh folder per run, so every run pays its own compiles.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "examples")]

from _common import emit  # noqa: E402


def packed_search(train, space, pack: int, seconds: float, epochs: int, root: str) -> dict:
    from contexts import HyperparameterSearch
    from kernel import lagom

    os.environ["JAX_COMPILATION_CACHE_DIR"] = os.path.join(root, f"cache-{pack}")

    def fixed_budget(hparams, reporter, strategy):
        return train({**hparams, "budget": epochs}, reporter, strategy)

    began = time.perf_counter()
    result = lagom(fixed_budget, HyperparameterSearch(space, "randomsearch", max_time=seconds, metric="accuracy",
                                                      workers=2, seed=0, pack=pack),
                   path=os.path.join(root, "runs"), verbose=0, report=False)
    wall = time.perf_counter() - began
    done = [t for t in result.trials if t.state == "finished"]
    timed = [t for t in done if t.compile_s is not None and t.duration]
    own = sum(t.duration for t in timed)
    return {"finished": len(done), "wall_s": round(wall, 1), "trials_per_min": round(60 * len(done) / wall, 1),
            "s_per_trial": round(wall / max(1, len(done)), 3),
            "compile_share": round(sum(t.compile_s for t in timed) / own, 3) if own else None,
            "best": round(max((t.metric for t in done if t.metric is not None), default=float("nan")), 4)}


def optuna_search(train, seconds: float, epochs: int) -> dict:
    import optuna

    from kernel.reporter import Reporter
    from plugins.strategies import SingleDevice

    class Quiet:
        def send_metric(self, *a, **k): pass
        def send_log(self, lines): pass
        def stop_requested(self): return False

    def objective(trial):
        hparams = {"lr": trial.suggest_float("lr", 1e-4, 1e-1, log=True),
                   "wd": trial.suggest_float("wd", 1e-6, 1e-2, log=True),
                   "width": trial.suggest_categorical("width", [32, 64]), "budget": epochs}
        strategy = SingleDevice()
        strategy.bind(hparams)
        return float(train(hparams, Reporter(trial.number, Quiet()), strategy)["accuracy"])

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    began = time.perf_counter()
    study.optimize(objective, timeout=seconds)
    wall = time.perf_counter() - began
    done = len(study.trials)
    return {"finished": done, "wall_s": round(wall, 1), "trials_per_min": round(60 * done / wall, 1),
            "s_per_trial": round(wall / max(1, done), 3), "best": round(study.best_value, 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packs", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--seconds", type=float, default=40.0, help="wall clock of each search")
    ap.add_argument("--epochs", type=int, default=5, help="epochs per trial")
    ap.add_argument("--no-optuna", action="store_true")
    args = ap.parse_args()
    import packed_digits

    root = tempfile.mkdtemp(prefix="lagom-pack-")
    out: dict = {"bench": "pack", "seconds": args.seconds, "epochs": args.epochs, "packs": {}}
    for pack in args.packs:
        out["packs"][pack] = packed_search(packed_digits.train, packed_digits.space(), pack, args.seconds,
                                           args.epochs, root)
        print(f"pack={pack}: {out['packs'][pack]}", flush=True)
    base = out["packs"].get(1)
    if base:
        out["vs_unpacked"] = {k: round(v["trials_per_min"] / base["trials_per_min"], 2)
                              for k, v in out["packs"].items()}
    if not args.no_optuna:
        out["optuna"] = optuna_search(packed_digits.train, args.seconds, args.epochs)
        print(f"optuna: {out['optuna']}", flush=True)
    emit(out)


if __name__ == "__main__":
    main()
