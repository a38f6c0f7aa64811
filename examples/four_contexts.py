"""One training function, unchanged, in all four contexts: the journey of the seed talk.

    python examples/four_contexts.py

1. Single: one run, here, as on a laptop.
2. HyperparameterSearch with ASHA: which learning rate and width, on 2 agents.
3. Ablation: which wine features and which layers matter.
4. Distributed: one data-parallel run over 2 agents x 2 CPU devices (multihost).

The function asks by name for what it uses: ``dataset`` and ``model`` generators (nothing is left
out except in the ablation), ``hparams``, ``reporter``, and ``strategy`` (one device except in
the distributed run). Small budgets: the whole journey takes about a minute here.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def train(dataset, model, hparams, reporter, strategy):
    import jax
    import numpy as np
    import optax
    from flax import nnx

    x, y = dataset()
    x = (x - x.mean(0)) / (x.std(0) + 1e-8)
    order = np.random.default_rng(0).permutation(len(x))
    cut = int(0.75 * len(x))
    (xt, yt), (xv, yv) = (x[order[:cut]], y[order[:cut]]), (x[order[cut:]], y[order[cut:]])

    graphdef, params = nnx.split(model(nnx.Rngs(0)))
    adamw = lambda lr: optax.adamw(lr, weight_decay=1e-2)  # its state does not depend on lr

    def loss_fn(p, x, y):
        return optax.softmax_cross_entropy_with_integer_labels(nnx.merge(graphdef, p)(x), y).mean()

    def train_step(state, batch, hparams):  # lr traced: one compiled program for every rate
        p, s = state
        loss, grads = jax.value_and_grad(loss_fn)(p, *batch)
        grads = strategy.mean(grads)  # averaged across devices; nothing to do on one
        updates, s = adamw(hparams.get("lr", 3e-3)).update(grads, s, p)
        return (optax.apply_updates(p, updates), s), strategy.mean(loss)

    @jax.jit
    def accuracy(p, x, y):
        return (nnx.merge(graphdef, p)(x).argmax(-1) == y).mean()

    step = strategy.step(train_step)
    state = strategy.replicate((params, adamw(hparams.get("lr", 3e-3)).init(params)))
    rank, ranks, batch = strategy.process_index, strategy.process_count, 32
    rng = np.random.default_rng(1)
    acc = 0.0
    for epoch in range(int(hparams.get("budget", 10))):
        idx_all = rng.permutation(len(xt))
        for i in range(0, len(idx_all) - batch + 1, batch):
            idx = idx_all[i:i + batch][rank::ranks]  # this process's part of the global batch
            state, loss = step(state, strategy.shard((xt[idx], yt[idx])))
        params_now = strategy.gather(state[0])
        acc = float(accuracy(params_now, xv, yv))
        reporter.broadcast(metric=acc, step=epoch)
    return {"accuracy": acc, "loss": float(strategy.gather(loss))}


def make_study():
    from ablation_wine import wine_table

    from contexts import AblationStudy

    study = AblationStudy(dataset=wine_table(), label="target")
    study.features.include("proline", "flavanoids", "color_intensity", "noise")
    study.model.set_base_model_generator([("input", 32), ("hidden_1", 32), ("hidden_2", 16), ("output", 3)])
    study.model.layers.include("hidden_1")
    return study


def main(argv=None):
    import cloudpickle

    import ablation_wine
    from contexts import Ablation, Distributed, HyperparameterSearch, Searchspace, Single
    from kernel import lagom
    from plugins.optimizers import ASHA

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--path", default=None)
    args = ap.parse_args(argv)
    cloudpickle.register_pickle_by_value(ablation_wine)  # agents need not import the examples
    study = make_study()

    print("\n== 1. Single: one run, here")
    single = lagom(train, Single(hparams={"lr": 3e-3, "budget": 10}, study=study), path=args.path, verbose=0)
    print(f"accuracy {single.trials[0].result['accuracy']:.3f}")

    print("\n== 2. HyperparameterSearch with ASHA, 2 agents")
    space = Searchspace(lr=("DOUBLE", [1e-4, 3e-2], "log"))
    search = lagom(train, HyperparameterSearch(space, ASHA(3, 1, 9), num_trials=9, metric="accuracy",
                                               workers=2, seed=0, study=study), path=args.path)
    best = search.best

    print("\n== 3. Ablation: leave one feature or layer out")
    ablation = lagom(train, Ablation(study, metric="accuracy", workers=2,
                                     hparams={"lr": best.params["lr"], "budget": 10}), path=args.path)

    print("\n== 4. Distributed: multihost, 2 agents x 2 CPU devices")
    dist = lagom(train, Distributed("multihost", agents=2, cpu_devices=2, study=study, metric="accuracy",
                                    hparams={"lr": best.params["lr"], "budget": 10}), path=args.path)
    print(f"\nthe same function: single {single.trials[0].result['accuracy']:.3f}, best of the search "
          f"{best.metric:.3f} (lr={best.params['lr']:.2g}), ablation's most important component "
          f"'{ablation.ranking[0]['component']}', distributed over 4 devices "
          f"{dist.trials[0].result['accuracy']:.3f}")
    return single, search, ablation, dist


if __name__ == "__main__":
    main()
