"""Packed search: many trials of one shape in one XLA program, against the same search unpacked.

    python bench/pack.py                      # MLP and CNN, K = 1, 4, 16 for 40 s each, and Optuna
    python bench/pack.py --models mlp --packs 1 16 64 --seconds 60

The functions are ``examples/packed_digits.py``'s ``train`` (a digits MLP written against
``strategy``; a random search over lr, weight decay, dropout and two widths) and ``train_cnn`` below (a
small CNN; lr and weight decay), ``--epochs`` epochs a trial,
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


def train_cnn(hparams, reporter, strategy):
    """A small CNN on the digits as 8x8 images (two 3x3 convolutions, 16 and 32 channels, a
    mean over the image, a dense layer), written against ``strategy`` as packed_digits' MLP is."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x, y = (x / 16).astype(np.float32).reshape(-1, 8, 8, 1), y.astype(np.int32)

    def make(h):
        k1, k2, k3 = jax.random.split(jax.random.key(int(h.get("seed", 0))), 3)
        p = {"c1": jax.random.normal(k1, (3, 3, 1, 16)) * 0.3, "c2": jax.random.normal(k2, (3, 3, 16, 32)) * 0.1,
             "d": jax.random.normal(k3, (32, 10)) * 0.1, "b": jnp.zeros(10)}
        return p, optax.adamw(0.0).init(p)

    def logits(p, xb):
        conv = lambda h, w: jax.lax.conv_general_dilated(h, w, (1, 1), "SAME",
                                                          dimension_numbers=("NHWC", "HWIO", "NHWC"))
        h = jax.nn.relu(conv(jax.nn.relu(conv(xb, p["c1"])), p["c2"]))
        return h.mean(axis=(1, 2)) @ p["d"] + p["b"]

    def train_step(state, batch, hparams):
        p, opt = state
        xb, yb = batch
        loss, grads = jax.value_and_grad(
            lambda p: optax.softmax_cross_entropy_with_integer_labels(logits(p, xb), yb).mean())(p)
        updates, opt = optax.adamw(hparams.get("lr", 3e-3), weight_decay=hparams.get("wd", 1e-4)).update(grads, opt, p)
        return (optax.apply_updates(p, updates), opt), loss

    def accuracy(state, xb, yb):
        return (logits(state[0], xb).argmax(-1) == yb).mean()

    state = strategy.init(make)
    step, evaluate = strategy.step(train_step), strategy.evaluate(accuracy)
    for epoch in range(int(hparams.get("budget", 3))):
        for i in range(0, 1400, 50):
            state, loss = step(state, strategy.shard((x[i:i + 50], y[i:i + 50])))
        acc = strategy.gather(evaluate(state, x[1400:], y[1400:]))
        reporter.broadcast(metric=acc, step=epoch)
    return {"accuracy": acc}


def cnn_space():
    from contexts import Searchspace

    return Searchspace(lr=("DOUBLE", [1e-4, 1e-1], "log"), wd=("DOUBLE", [1e-6, 1e-2], "log"))


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


def optuna_search(train, seconds: float, epochs: int, widths: list[int] | None) -> dict:
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
                   "budget": epochs}
        if widths:  # the MLP's space: its dropout rate too
            hparams["dropout"] = trial.suggest_float("dropout", 0.0, 0.5)
        if widths:
            hparams["width"] = trial.suggest_categorical("width", widths)
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
    ap.add_argument("--models", nargs="+", default=["mlp", "cnn"], choices=["mlp", "cnn"])
    ap.add_argument("--no-optuna", action="store_true")
    args = ap.parse_args()
    import packed_digits

    root = tempfile.mkdtemp(prefix="lagom-pack-")
    models = {"mlp": (packed_digits.train, packed_digits.space(), [32, 64]), "cnn": (train_cnn, cnn_space(), None)}
    out: dict = {"bench": "pack", "seconds": args.seconds, "epochs": args.epochs}
    for name in args.models:
        train, space, widths = models[name]
        figures: dict = {"packs": {}}
        for pack in args.packs:
            figures["packs"][pack] = packed_search(train, space, pack, args.seconds, args.epochs, root)
            print(f"{name}, pack={pack}: {figures['packs'][pack]}", flush=True)
        base = figures["packs"].get(1)
        if base:
            figures["vs_unpacked"] = {k: round(v["trials_per_min"] / base["trials_per_min"], 2)
                                      for k, v in figures["packs"].items()}
        if not args.no_optuna:
            figures["optuna"] = optuna_search(train, args.seconds, args.epochs, widths)
            print(f"{name}, optuna: {figures['optuna']}", flush=True)
        out[name] = figures
    emit(out)


if __name__ == "__main__":
    main()
