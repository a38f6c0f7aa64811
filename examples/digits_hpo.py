"""Hyperparameter search of a flax.nnx MLP on scikit-learn's digits, with ASHA, on 2 local agents.

    python examples/digits_hpo.py                   # 20 configurations, budgets 1, 3, 9 epochs
    python examples/digits_hpo.py --trials 8 --max-epochs 3
    python examples/digits_hpo.py --optimizer pbt --trials 8   # population-based training instead

The training function is plain JAX: build the model, split it into a pure state, compile one
train step with ``strategy.step``, loop over epochs, broadcast the validation accuracy after
each. The step asks for ``hparams``: the learning rate reaches it as a traced argument (the
optimizer is built inside the step), so trials that share a shape (width, depth, activation)
share one compiled program, loaded from the host's compilation cache (docs/compile.md); a
member of population-based training that continues another's weights trains with its own rate.

ASHA promotes the best configurations to larger budgets. A promoted trial does not start over:
it loads its parent's checkpoint (a msgpack-serialised pytree in ``reporter.parent_checkpoint_dir``)
and trains only the epochs its parent had not, then saves its own for its children. The same
function runs population-based training unchanged (``--optimizer pbt``): there the parent may be
another member, whose weights it continues with perturbed hyperparameters. After the search,
``load_best`` rebuilds the winning model from ``result.best.checkpoint_dir``.
"""
from __future__ import annotations

import argparse
import os

import jax
import numpy as np
import optax
from flax import nnx, serialization
from sklearn.datasets import load_digits


def load_digits_split(seed: int = 0):
    """Digits (1797 images of 8x8) scaled to [0, 1], split 80/20 with a fixed seed."""

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order].astype(np.int32)
    cut = int(0.8 * len(x))
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def save_checkpoint(folder, tree, epoch):

    leaves = {str(i): np.asarray(x) for i, x in enumerate(jax.tree_util.tree_leaves(tree))}
    with open(os.path.join(folder, "state.msgpack"), "wb") as f:
        f.write(serialization.msgpack_serialize({"leaves": leaves, "epoch": epoch}))


def load_checkpoint(folder, like):
    """The pytree saved in ``folder``, shaped like ``like`` (same model config), and its epoch."""

    with open(os.path.join(folder, "state.msgpack"), "rb") as f:
        saved = serialization.msgpack_restore(f.read())
    treedef = jax.tree_util.tree_structure(like)
    leaves = [saved["leaves"][str(i)] for i in range(treedef.num_leaves)]
    return jax.tree_util.tree_unflatten(treedef, leaves), int(saved["epoch"])


def build(hparams):
    """The model and optimizer of a configuration: (graphdef, params, optax transformation).
    Adam's state does not depend on the learning rate, which the step takes from ``hparams``."""

    width, depth = int(hparams.get("width", 64)), int(hparams.get("depth", 2))
    act = {"relu": nnx.relu, "tanh": nnx.tanh, "gelu": nnx.gelu}[hparams.get("act", "relu")]

    class MLP(nnx.Module):
        def __init__(self, rngs: nnx.Rngs):
            sizes = [64] + [width] * depth
            self.hidden = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes, sizes[1:])])
            self.out = nnx.Linear(sizes[-1], 10, rngs=rngs)

        def __call__(self, x):
            for layer in self.hidden:
                x = act(layer(x))
            return self.out(x)

    graphdef, params = nnx.split(MLP(nnx.Rngs(hparams.get("seed", 0))))
    return graphdef, params, optax.adam(hparams.get("lr", 1e-3))


def load_best(result):
    """The best trial's trained weights, from the checkpoint it saved (``result.best.checkpoint_dir``),
    and their accuracy on the validation split: the model to keep after a search."""

    best = result.best
    graphdef, params, tx = build(best.params)
    (params, _), epochs = load_checkpoint(best.checkpoint_dir, (params, tx.init(params)))
    _, (x_val, y_val) = load_digits_split()
    model = nnx.merge(graphdef, params)
    return model, epochs, float((model(x_val).argmax(-1) == y_val).mean())


def train(hparams, reporter, strategy):
    """The one training function: a trial of a search (strategy: one device), or a data-parallel
    run over many devices and hosts (strategy: pmap, multihost), unchanged."""

    (x_train, y_train), (x_val, y_val) = load_digits_split()
    epochs, batch = int(hparams.get("budget", 8)), 64  # ASHA's budget is a number of epochs
    graphdef, params, tx = build(hparams)
    state, start = (params, tx.init(params)), 0
    if reporter.parent_checkpoint_dir:  # promoted by ASHA: continue the parent's training
        state, start = load_checkpoint(reporter.parent_checkpoint_dir, state)
        print(f"continuing from epoch {start} (parent checkpoint)")

    def loss_fn(params, x, y):
        logits = nnx.merge(graphdef, params)(x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def train_step(state, batch, hparams):  # hparams["lr"] traced: one program for every rate
        params, opt_state = state
        loss, grads = jax.value_and_grad(loss_fn)(params, *batch)
        grads = strategy.mean(grads)  # averaged across devices (a no-op on one device)
        updates, opt_state = optax.adam(hparams.get("lr", 1e-3)).update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), strategy.mean(loss)

    @jax.jit
    def accuracy(params, x, y):
        return (nnx.merge(graphdef, params)(x).argmax(-1) == y).mean()

    step = strategy.step(train_step)
    state = strategy.replicate(state)
    rank, ranks = strategy.process_index, strategy.process_count
    rng = np.random.default_rng(start)  # the same order in every process
    acc, loss = 0.0, float("nan")
    for epoch in range(start, epochs):
        order = rng.permutation(len(x_train))
        for i in range(0, len(order) - batch + 1, batch):
            idx = order[i:i + batch][rank::ranks]  # this process's part of the global batch
            state, loss = step(state, strategy.shard((x_train[idx], y_train[idx])))
        params_now, loss = strategy.gather((state[0], loss))  # to the host (and blocks)
        acc = float(accuracy(params_now, x_val, y_val))
        reporter.broadcast(metric=acc, step=epoch)
        print(f"epoch {epoch}: loss {float(loss):.4f}, val accuracy {acc:.4f}")
    if reporter.checkpoint_dir and epochs > start and strategy.is_main:
        save_checkpoint(reporter.checkpoint_dir, strategy.gather(state), epochs)
    return {"accuracy": acc, "loss": float(loss)}


def searchspace():
    from contexts import Searchspace

    return Searchspace(
        lr=("DOUBLE", [1e-4, 3e-1], "log"),
        width=("DISCRETE", [16, 32, 64, 128]),   # powers of two: trials share compiled steps
        depth=("DISCRETE", [1, 2, 3]),
        act=("CATEGORICAL", ["relu", "tanh", "gelu"]),
    )


def main(argv=None):
    from contexts import HyperparameterSearch
    from kernel import lagom
    from plugins.optimizers import ASHA, PBT

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=20, help="new configurations to try")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--max-epochs", type=int, default=9, help="the top budget (epochs)")
    ap.add_argument("--optimizer", choices=["asha", "pbt"], default="asha",
                    help="asha, or pbt: --trials members, a perturbation every third of --max-epochs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--path", default=None, help="where experiment folders go (default ./lagom-runs)")
    args = ap.parse_args(argv)

    if args.optimizer == "pbt":
        optimizer = PBT(max_budget=args.max_epochs, perturbation_interval=max(1, args.max_epochs // 3))
    else:
        optimizer = ASHA(reduction_factor=3, min_budget=1, max_budget=args.max_epochs)  # or optimizer="asha"
    result = lagom(train, HyperparameterSearch(searchspace(), optimizer=optimizer, num_trials=args.trials,
                                               direction="max", metric="accuracy", workers=args.workers,
                                               seed=args.seed, name="digits"),
                   path=args.path, tensorboard=True)
    best = result.best
    print(f"\nbest configuration: {best.params} (trained {best.budget} epochs)")
    print(f"validation accuracy: {best.metric:.4f}")
    budgets = sorted({t.budget for t in result.trials if t.budget is not None})
    print("budgets run: " + ", ".join(f"{b} epochs x {sum(1 for t in result.trials if t.budget == b)}"
                                       for b in budgets))
    model, epochs, reloaded = load_best(result)  # the trained model itself, back from its checkpoint
    print(f"best model reloaded from {best.checkpoint_dir} ({epochs} epochs): validation accuracy {reloaded:.4f}")
    print(f"experiment folder: {result.path} (report.html, result.json, trials/*.log, journal.jsonl)")
    print(f"tensorboard --logdir {result.path / 'tensorboard'}")
    return result


if __name__ == "__main__":
    main()
