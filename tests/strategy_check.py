"""One SGD step of a small MLP under each strategy, against one device on the whole batch.

Run as a script in a fresh process (XLA_FLAGS must give N CPU devices before JAX starts):
    python tests/strategy_check.py single-vs-local         # prints one JSON line of max |diff|
    python tests/strategy_check.py multihost ID N ADDR     # one process of a multihost run
SGD, not Adam: a gradient off by a factor of N shows in the parameters (Adam would hide it).
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

GLOBAL_BATCH = 16


def data():
    rng = np.random.default_rng(0)
    params = {"w1": rng.normal(size=(5, 8)).astype(np.float32), "b1": np.zeros(8, np.float32),
              "w2": rng.normal(size=(8, 3)).astype(np.float32), "b2": np.zeros(3, np.float32)}
    x = rng.normal(size=(GLOBAL_BATCH, 5)).astype(np.float32)
    y = rng.integers(0, 3, size=GLOBAL_BATCH).astype(np.int32)
    return params, x, y


def make_step(strategy):
    import jax
    import jax.numpy as jnp

    def loss_fn(p, x, y):
        h = jnp.tanh(x @ p["w1"] + p["b1"])
        logits = h @ p["w2"] + p["b2"]
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))

    def train_step(p, batch):
        x, y = batch
        loss, grads = jax.value_and_grad(loss_fn)(p, x, y)
        grads = strategy.mean(grads)  # the one line a strategy-agnostic step needs
        return jax.tree_util.tree_map(lambda a, g: a - 0.5 * g, p, grads), strategy.mean(loss)

    return strategy.step(train_step)


def run(strategy, params, x, y):
    strategy.setup()
    step = make_step(strategy)
    p = strategy.replicate(params)
    p, loss = step(p, strategy.shard((x, y)))
    p, loss = step(p, strategy.shard((x, y)))  # two steps: the state stays well placed
    return strategy.gather(p), float(np.asarray(strategy.gather(loss)))


def max_diff(a, b):
    return max(float(np.max(np.abs(np.asarray(a[k]) - np.asarray(b[k])))) for k in a)


def main():
    from plugins.strategies import DataParallel, LiteralPmap, MultiHost, SingleDevice

    params, x, y = data()
    mode = sys.argv[1]
    if mode == "single-vs-local":
        import jax
        ref, ref_loss = run(SingleDevice(), params, x, y)
        out = {"devices": jax.local_device_count(), "single_vs_plain_jax": max_diff(ref, plain_jax(params, x, y))}
        for name, s in (("pmap", DataParallel()), ("jaxpmap", LiteralPmap())):
            got, loss = run(s, params, x, y)
            out[name] = {"param_diff": max_diff(ref, got), "loss_diff": abs(loss - ref_loss),
                         "devices": s.num_devices}
        changed = max_diff(ref, params)
        out["step_changed_params_by"] = changed
        print(json.dumps(out))
    elif mode == "multihost":
        pid, n, addr = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
        s = MultiHost(addr, n, pid, timeout_s=30)
        s.setup()
        per = GLOBAL_BATCH // n
        got, loss = run(s, params, x[pid * per:(pid + 1) * per], y[pid * per:(pid + 1) * per])
        out = {"process": pid, "devices": s.num_devices, "local": len(__import__("jax").local_devices())}
        if pid == 0:  # the reference, on one local device and the whole batch
            import jax
            ref_p = make_step_single_ref(params, x, y)
            out["param_diff"] = max_diff(ref_p, got)
        print(json.dumps(out), flush=True)
    else:
        raise SystemExit(f"unknown mode {mode}")


def plain_jax(params, x, y):
    """The same two steps written without any strategy: what ``single`` must reproduce."""
    import jax
    import jax.numpy as jnp

    def loss_fn(p, x, y):
        h = jnp.tanh(x @ p["w1"] + p["b1"])
        logits = h @ p["w2"] + p["b2"]
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))

    @jax.jit
    def step(p, x, y):
        return jax.tree_util.tree_map(lambda a, g: a - 0.5 * g, p, jax.grad(loss_fn)(p, x, y))

    return jax.device_get(step(step(params, x, y), x, y))


def make_step_single_ref(params, x, y):
    """Two steps with plain jit pinned to this process's first device."""
    import jax

    from plugins.strategies import SingleDevice

    dev = jax.local_devices()[0]
    s = SingleDevice()
    step = make_step(s)
    p = jax.device_put(params, dev)
    batch = jax.device_put((x, y), dev)
    p, _ = step(p, batch)
    p, _ = step(p, batch)
    return jax.device_get(p)


if __name__ == "__main__":
    main()
