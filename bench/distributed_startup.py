"""Time from ``lagom()`` to the first training step of a Distributed run.

    python bench/distributed_startup.py                       # multihost, 2 agents x 2 CPU devices
    python bench/distributed_startup.py --strategy pmap --agents 1 --cpu-devices 0   # a GPU host

Each repetition starts agents, spawns the runs' processes, forms the JAX runtime (multihost),
compiles and runs one step of the digits MLP; the function returns the wall time of its first
finished step. Prints the median over ``--repeats`` as one JSON object on its last line.
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


def first_step(hparams, reporter, strategy):
    import time as _time

    import jax
    import jax.numpy as jnp
    import numpy as np

    def step_fn(w, x):
        g = jax.grad(lambda w: jnp.mean(jnp.tanh(x @ w) ** 2))(w)
        return w - 0.1 * strategy.mean(g)

    step = strategy.step(step_fn)
    w = strategy.replicate(np.ones((64, 64), np.float32))
    per_process = 8 * strategy.num_devices // strategy.process_count
    w = step(w, strategy.shard(np.ones((per_process, 64), np.float32)))
    jax.block_until_ready(w)
    return {"first_step_at": _time.time(), "devices": strategy.num_devices}


def main() -> None:
    from contexts import Distributed
    from kernel import lagom

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--strategy", default="multihost")
    ap.add_argument("--agents", type=int, default=2)
    ap.add_argument("--cpu-devices", type=int, default=2, help="0: the host's real devices")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    times, devices = [], None
    with tempfile.TemporaryDirectory() as root:
        for _ in range(args.repeats):
            t0 = time.time()
            result = lagom(first_step, Distributed(args.strategy, agents=args.agents,
                                                   cpu_devices=args.cpu_devices or None),
                           path=root, verbose=0)
            trial = result.trials[0]
            times.append(trial.result["first_step_at"] - t0)
            devices = trial.result["devices"]
    emit({"bench": "distributed_startup", "strategy": args.strategy, "agents": args.agents,
          "devices": devices, "first_step_s": round(statistics.median(times), 3),
          "all_s": [round(t, 3) for t in times]})


if __name__ == "__main__":
    main()
