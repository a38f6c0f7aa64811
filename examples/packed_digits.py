"""One function, every context, and packed: many trials of one shape in one XLA program.

    python examples/packed_digits.py

A small MLP on scikit-learn's digits leaves a core mostly idle: a step is almost all dispatch.
``HyperparameterSearch(..., pack=8)`` runs up to 8 trials of one width as the lanes of one
vmapped program (the ``packed`` strategy): the batch is loaded once, each lane trains with its
own learning rate, weight decay and dropout rate, ASHA judges and promotes each lane as a trial of its own,
and a stopped lane stops updating. The function is written once, against ``strategy``:

- ``strategy.init(make)`` builds the starting state from a trial's hyperparameters (each lane
  from its own), ``strategy.step(train_step)`` compiles the step, and a step that asks for
  ``hparams`` gets the learning rate, weight decay and dropout rate as traced values (one
  value per lane; each lane's dropout key is part of its state);
- ``strategy.evaluate(accuracy)`` reads the state (one accuracy per lane in a pack), and
  ``reporter.broadcast`` / the returned dict take those values, each to its own trial;
- ``strategy.save`` / ``strategy.restore`` keep each trial's state in its own folder, so a
  configuration ASHA promotes trains on from where its parent stopped.

The same ``train`` runs here as ``Single``, an unpacked search, a packed ASHA search and
``Distributed("pmap")`` over 2 CPU devices.
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def train(hparams, reporter, strategy):
    import jax
    import jax.numpy as jnp
    import optax
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x, y = (x / 16).astype(np.float32), y.astype(np.int32)
    width, batch = int(hparams.get("width", 64)), 50

    def make(h):  # a trial's starting state, from its own seed: weights, AdamW's state, a dropout key
        k1, k2, k3 = jax.random.split(jax.random.key(int(h.get("seed", 0))), 3)
        p = {"w1": jax.random.normal(k1, (64, width)) * 0.1, "b1": jnp.zeros(width),
             "w2": jax.random.normal(k2, (width, 10)) * 0.1, "b2": jnp.zeros(10)}
        return p, optax.adamw(0.0).init(p), k3  # AdamW's state depends on neither lr nor wd

    def logits(p, xb, drop=0.0, key=None):
        h = jax.nn.relu(xb @ p["w1"] + p["b1"])
        if key is not None:  # training: inverted dropout of the hidden units
            h = h * jax.random.bernoulli(key, 1.0 - drop, h.shape) / (1.0 - drop)
        return h @ p["w2"] + p["b2"]

    def train_step(state, batch, hparams):  # lr, wd and dropout traced: one program for every value
        p, opt, key = state
        key, sub = jax.random.split(key)
        xb, yb = batch
        drop = hparams.get("dropout", 0.0)
        loss, grads = jax.value_and_grad(
            lambda p: optax.softmax_cross_entropy_with_integer_labels(logits(p, xb, drop, sub), yb).mean())(p)
        grads = strategy.mean(grads)
        updates, opt = optax.adamw(hparams.get("lr", 3e-3), weight_decay=hparams.get("wd", 1e-4)).update(grads, opt, p)
        return (optax.apply_updates(p, updates), opt, key), loss

    def accuracy(state, xb, yb):
        return (logits(state[0], xb).argmax(-1) == yb).mean()

    state = strategy.init(make)
    state, saved = strategy.restore(state, reporter)  # promoted by ASHA: on from the parent's state
    step, evaluate = strategy.step(train_step), strategy.evaluate(accuracy)
    epochs = int(hparams.get("budget", 3))
    for epoch in range(saved.get("epochs", 0), epochs):
        for i in range(0, 1400, batch):
            state, loss = step(state, strategy.shard((x[i:i + batch], y[i:i + batch])))
        acc = strategy.gather(evaluate(state, x[1400:], y[1400:]))  # one per lane in a pack
        reporter.broadcast(metric=acc, step=epoch)
    strategy.save(state, reporter, epochs=epochs)  # each lane in its own trial's folder
    return {"accuracy": strategy.gather(evaluate(state, x[1400:], y[1400:]))}


def space():
    from contexts import Searchspace

    return Searchspace(lr=("DOUBLE", [1e-4, 1e-1], "log"), wd=("DOUBLE", [1e-6, 1e-2], "log"),
                       dropout=("DOUBLE", [0.0, 0.5]), width=("DISCRETE", [32, 64]))


def main(argv=None):
    from contexts import Distributed, HyperparameterSearch, Single
    from kernel import lagom
    from plugins.optimizers import ASHA

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=24)
    ap.add_argument("--pack", type=int, default=8)
    ap.add_argument("--path", default=None)
    args = ap.parse_args(argv)

    single = lagom(train, Single(hparams={"lr": 3e-3, "width": 64, "budget": 3}), path=args.path, verbose=0)
    print(f"single: accuracy {single.trials[0].result['accuracy']:.3f}")
    for pack in (1, args.pack):
        t0 = time.perf_counter()
        search = lagom(train, HyperparameterSearch(space(), ASHA(3, 1, 9), num_trials=args.trials, metric="accuracy",
                                                   workers=2, seed=0, pack=pack), path=args.path, verbose=0)
        print(f"ASHA, pack={pack}: {len(search.trials)} trials in {time.perf_counter() - t0:.1f}s, best "
              f"{search.best.metric:.3f} at {search.best.params}")
    dist = lagom(train, Distributed("pmap", cpu_devices=2, metric="accuracy",
                                    hparams={"lr": 3e-3, "width": 64, "budget": 3}), path=args.path, verbose=0)
    print(f"pmap over 2 devices: accuracy {dist.trials[0].result['accuracy']:.3f}")
    return single, search, dist


if __name__ == "__main__":
    main()
