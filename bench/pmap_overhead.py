"""What the ``pmap`` strategy costs against the fastest hand-written JAX loop.

Steps per second of one Adam step of an MLP, on the same model, batch and devices:
- ``jit_1dev``: plain ``jax.jit`` on one device, the whole batch (hand-written);
- ``jit_sharded``: hand-written ``jax.jit`` with NamedSharding over N devices (when N > 1);
- ``strategy``: the framework's ``pmap`` strategy (strategy.replicate / shard / step / mean);
- ``literal_pmap``: ``jax.pmap`` with ``lax.pmean`` (the framework's ``jaxpmap``), for reference.
``ratio`` = strategy / the faster hand-written loop on the same devices (jit_1dev on one
device, jit_sharded on N). Variants run interleaved, ``--rounds`` times; medians are reported.

    XLA_FLAGS=--xla_force_host_platform_device_count=2 python bench/pmap_overhead.py
    python bench/pmap_overhead.py --preset gpu           # bench/gpu_check.sh does this

Needs only jax, optax and numpy (it imports no kernel or transport module).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import emit  # noqa: E402

PRESETS = {
    "cpu": [(784, 256, 256, 10, 256)],
    "gpu": [(784, 512, 512, 10, 1024), (784, 4096, 4096, 10, 4096)],
}


def model(sizes, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    return [{"w": (rng.normal(size=(a, b)) / np.sqrt(a)).astype(np.float32), "b": np.zeros(b, np.float32)}
            for a, b in zip(sizes, sizes[1:])]


def make_train_step(strategy, tx):
    import jax
    import optax

    def loss_fn(params, x, y):
        h = x
        for layer in params[:-1]:
            h = jax.nn.relu(h @ layer["w"] + layer["b"])
        logits = h @ params[-1]["w"] + params[-1]["b"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def train_step(state, batch):
        params, opt_state = state
        loss, grads = jax.value_and_grad(loss_fn)(params, *batch)
        grads = strategy.mean(grads)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), strategy.mean(loss)

    return train_step


def timed(step, state, batch, steps, block_every=20):
    import jax

    state, loss = step(state, batch)  # compile and warm
    jax.block_until_ready(loss)
    t0 = time.perf_counter()
    for i in range(steps):
        state, loss = step(state, batch)
        if (i + 1) % block_every == 0:  # queue no more than 20 collective steps (a CPU trap)
            jax.block_until_ready(loss)
    jax.block_until_ready(loss)
    return steps / (time.perf_counter() - t0)


def variants(sizes, batch_size):
    import jax
    import numpy as np
    import optax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

    from plugins.strategies import DataParallel, LiteralPmap, SingleDevice

    tx = optax.adam(1e-3)
    params = model(sizes)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(batch_size, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], size=batch_size).astype(np.int32)
    n = jax.local_device_count()
    out = {}

    single = SingleDevice()
    step1 = jax.jit(make_train_step(single, tx))  # hand-written: nothing of ours but mean (identity)
    dev0 = jax.local_devices()[0]
    out["jit_1dev"] = (step1, jax.device_put((params, tx.init(params)), dev0), jax.device_put((x, y), dev0))

    if n > 1:
        mesh = Mesh(np.array(jax.local_devices()), ("dp",))
        rep, split = NamedSharding(mesh, P()), NamedSharding(mesh, P("dp"))
        out["jit_sharded"] = (jax.jit(make_train_step(single, tx)),
                              jax.device_put((params, tx.init(params)), rep), jax.device_put((x, y), split))

    dp = DataParallel()
    dp.setup()
    out["strategy"] = (dp.step(make_train_step(dp, tx)), dp.replicate((params, tx.init(params))),
                       dp.shard((x, y)))

    lp = LiteralPmap()
    out["literal_pmap"] = (lp.step(make_train_step(lp, tx)), lp.replicate((params, tx.init(params))),
                           lp.shard((x, y)))
    return out, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default=None, help="default: by backend")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per round")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    import jax

    backend = jax.default_backend()
    preset = args.preset or ("cpu" if backend == "cpu" else "gpu")
    steps = args.steps or (200 if preset == "cpu" else 500)
    configs = []
    for *sizes, batch in PRESETS[preset]:
        runs, n = variants(sizes, batch)
        rates = {k: [] for k in runs}
        names = list(runs)
        for r in range(args.rounds):  # rotate the order: no variant always runs first
            for name in names[r % len(names):] + names[:r % len(names)]:
                step, state, data = runs[name]
                rates[name].append(timed(step, state, data, steps))
        med = {k: round(statistics.median(v), 1) for k, v in rates.items()}
        baseline = med["jit_sharded"] if n > 1 else med["jit_1dev"]
        configs.append({"sizes": sizes, "batch": batch, "devices": n, "steps_per_s": med,
                        "ratio": round(med["strategy"] / baseline, 3),
                        "literal_pmap_ratio": round(med["literal_pmap"] / baseline, 3)})
        print(f"{sizes} batch {batch} on {n} device(s): {med}", flush=True)
    emit({
        "bench": "pmap_overhead", "backend": backend, "jax": jax.__version__,
        "device": str(jax.devices()[0].device_kind), "devices": jax.local_device_count(),
        "ratio": min(c["ratio"] for c in configs),
        "literal_pmap_ratio": min(c["literal_pmap_ratio"] for c in configs),
        "configs": configs,
    })


if __name__ == "__main__":
    main()
