"""Layer ablation of a small flax.nnx CNN on scikit-learn's digits (8x8 images), on 2 local agents.

    python examples/ablation_cnn_digits.py              # one run per component
    python examples/ablation_cnn_digits.py --repeats 3  # 3 seeds each: effects with 95% intervals

The model is a sequence of named layers, each built for the shape that reaches it
(contexts/ablation/layers.py): leaving one out rebuilds the rest for the new shapes. The study
leaves out a residual conv block, the pooling layer, a dense layer, and the group of dense
layers; leaving out the flatten layer would change the output's shape, and the study refuses it
when it is built.
"""
from __future__ import annotations

import argparse


def train(model, hparams, reporter):
    """Adam on 1,500 digits, validation accuracy on the other 297; ``hparams["seed"]`` seeds the
    initialisation and the batch order (the ablation sets it when it repeats)."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from flax import nnx
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32).reshape(-1, 8, 8, 1)
    x_train, y_train, x_val, y_val = (jnp.asarray(a) for a in (x[:1500], y[:1500], x[1500:], y[1500:]))
    seed = hparams.get("seed", 0)
    graphdef, params = nnx.split(model(nnx.Rngs(seed)))  # the CNN without this trial's layers
    # The learning rate lives in the optimizer's state and the data come as arguments: a jitted
    # function closing over them would bake them into its program as constants (docs/compile.md).
    tx = optax.inject_hyperparams(optax.adam)(learning_rate=hparams.get("lr", 3e-3))
    batch, epochs = 100, hparams.get("epochs", 8)

    def loss_fn(p, xb, yb):
        return optax.softmax_cross_entropy_with_integer_labels(nnx.merge(graphdef, p)(xb), yb).mean()

    @jax.jit
    def epoch(p, s, xs, ys, order):
        def step(carry, idx):
            p, s = carry
            grads = jax.grad(loss_fn)(p, xs[idx], ys[idx])
            updates, s = tx.update(grads, s, p)
            return (optax.apply_updates(p, updates), s), None
        (p, s), _ = jax.lax.scan(step, (p, s), order.reshape(-1, batch))
        return p, s

    @jax.jit
    def accuracy(p, xs, ys):
        return (nnx.merge(graphdef, p)(xs).argmax(-1) == ys).mean()

    state, rng, acc = tx.init(params), np.random.default_rng(seed), 0.0
    for e in range(epochs):
        params, state = epoch(params, state, x_train, y_train, jnp.asarray(rng.permutation(len(x_train))))
        acc = float(accuracy(params, x_val, y_val))
        reporter.broadcast(metric=acc, step=e)
    return {"accuracy": acc}


def make_study():
    from contexts import AblationStudy
    from contexts.ablation.layers import Conv, Dense, Flatten, Pool, Residual

    study = AblationStudy()
    study.model.set_base_model_generator([
        ("conv1", Conv(16)),
        ("block", Residual(Conv(16), Conv(16, activation=None))),  # a residual conv block
        ("pool", Pool("max", 2)),
        ("flatten", Flatten()),
        ("dense1", Dense(64, "relu")),
        ("dense2", Dense(32, "relu")),
        ("out", Dense(10)),
    ], input_shape=(8, 8, 1))
    study.model.layers.include("block", "pool", "dense1")
    study.model.layers.include_groups(prefix="dense", name="dense layers")
    return study


def main(argv=None):
    from contexts import Ablation
    from kernel import lagom

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--path", default=None)
    args = ap.parse_args(argv)
    result = lagom(train, Ablation(make_study(), direction="max", metric="accuracy", workers=args.workers,
                                   repeats=args.repeats, hparams={"epochs": args.epochs}, name="cnn-digits"),
                   path=args.path)
    print(f"\nmost important: {result.ranking[0]['component']}; chart: {result.path / 'ablation.png'}")
    return result


if __name__ == "__main__":
    main()
