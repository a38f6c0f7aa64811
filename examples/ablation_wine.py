"""An ablation study of a small flax.nnx MLP on scikit-learn's wine data, on 2 local agents.

    python examples/ablation_wine.py

Leave-one-component-out over the 13 wine features plus a column of pure noise (which should
rank last), one hidden layer, the group of all hidden layers, and a custom linear model. The
same ``train`` also runs under Single and HyperparameterSearch (``study=``), where nothing is
left out.
"""
from __future__ import annotations

import argparse


def wine_table(seed: int = 0) -> dict:
    """Wine's 13 named features, a 'noise' column, and the 'target' label."""
    import numpy as np
    from sklearn.datasets import load_wine

    wine = load_wine()
    table = {name: wine.data[:, i] for i, name in enumerate(wine.feature_names)}
    table["noise"] = np.random.default_rng(seed).normal(size=len(wine.target))
    table["target"] = wine.target
    return table


def train(dataset, model, hparams, reporter):
    """5-fold cross-validated loss of the model on the data set: one split of 178 wines is too
    noisy to rank features by (a single lucky split moves the loss more than most features do)."""
    import jax
    import numpy as np
    import optax
    from flax import nnx

    x, y = dataset()  # the features of this trial (one may be left out), and the labels
    x = (x - x.mean(0)) / (x.std(0) + 1e-8)
    folds = np.array_split(np.random.default_rng(0).permutation(len(x)), 5)
    tx = optax.adamw(hparams.get("lr", 3e-3), weight_decay=1e-2)
    graphdef, _ = nnx.split(model(nnx.Rngs(0)))  # maybe without a layer: shapes are inferred

    def loss_fn(p, x, y):
        return optax.softmax_cross_entropy_with_integer_labels(nnx.merge(graphdef, p)(x), y).mean()

    @jax.jit
    def fit(p, xt, yt):
        def one(carry, _):
            p, s = carry
            grads = jax.grad(loss_fn)(p, xt, yt)
            updates, s = tx.update(grads, s, p)
            return (optax.apply_updates(p, updates), s), None
        (p, _), _ = jax.lax.scan(one, (p, tx.init(p)), None, length=hparams.get("steps", 150))
        return p

    @jax.jit
    def evaluate(p, xv, yv):
        logits = nnx.merge(graphdef, p)(xv)
        return optax.softmax_cross_entropy_with_integer_labels(logits, yv).mean(), (logits.argmax(-1) == yv).mean()

    losses, accs = [], []
    for k, val in enumerate(folds):
        train_idx = np.concatenate([f for j, f in enumerate(folds) if j != k])
        _, params = nnx.split(model(nnx.Rngs(hparams.get("seed", 0) + k)))
        params = fit(params, x[train_idx], y[train_idx])
        loss, acc = evaluate(params, x[val], y[val])
        losses.append(float(loss))
        accs.append(float(acc))
        reporter.broadcast(metric=float(np.mean(losses)), step=k)  # the running cross-validated loss
    return {"loss": float(np.mean(losses)), "accuracy": float(np.mean(accs))}


def make_study():
    from contexts import AblationStudy

    table = wine_table()
    study = AblationStudy(dataset=table, label="target")
    study.features.include_all()  # the 13 wine features and 'noise'
    study.model.set_base_model_generator([("input", 32), ("hidden_1", 32), ("hidden_2", 16), ("output", 3)])
    study.model.layers.include("hidden_2")
    study.model.layers.include_groups(prefix="hidden")

    def linear(rngs):  # a custom model generator: called on the agent, imports there
        from flax import nnx

        return nnx.Linear(len(table) - 1, 3, rngs=rngs)

    study.model.add_custom_model_generator(linear, "linear")
    return study


def main(argv=None):
    from contexts import Ablation
    from kernel import lagom

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--path", default=None)
    args = ap.parse_args(argv)
    result = lagom(train, Ablation(make_study(), ablator="loco", direction="min", metric="loss",
                                   workers=args.workers, hparams={"lr": 3e-3, "steps": 150}, name="wine"),
                   path=args.path)
    print(f"\nmost important: {result.ranking[0]['component']}; least: {result.ranking[-1]['component']}")
    print(f"chart: {result.path / 'ablation.png'}")
    return result


if __name__ == "__main__":
    main()
