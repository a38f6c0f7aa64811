"""Trials that wait for the compiler: the README's search, and the main job, measured by the
agents' own compile accounting, before and after hyperparameters reach the jitted step as
arguments, in one run.

    python bench/compile.py                 # both, cold and warm caches
    python bench/compile.py --no-main       # the README's search only
    python bench/compile.py --fresh-agents  # agents that import the function's modules themselves

The README's search (random over ``lr`` and 3 widths, 20 trials, 2 agents, seed 0) runs per
variant: *before*, the README's ``train`` as it was (a jitted step nested in the function and
closing over ``optax.adam(lr)``: the learning rate is a constant of the program, compiled anew
by every trial; parameters made by eager calls), and *after*, the README's first block as it
is now (``init`` and ``step`` defined once, ``lr`` an argument). Each variant starts on a
compilation cache of its own, empty (cold: the first search a host ever runs), then runs again
on it with another seed (warm: the programs of an earlier run, and learning rates it never
drew), and once more with trials of 100 epochs (``--long``, warm: trials of a third of a second
rather than hundredths, where what is paid per shape and agent weighs less).

Figures per run: the compile share of the trials' own time (tracing, lowering and compiling,
as JAX reports it to the agents), programs compiled and loaded per trial, ``lagom()``'s wall
clock, trials per minute, the best accuracy; and how soon a trial whose shape was compiled
before has its parameters made and its first step done: by another agent of the host (the
programs in the cache), by the same agent (its functions already compiled), and in an agent's
first trial (JAX starting too). Local agents are forked from this process, which has
imported JAX, optax and scikit-learn (the README's first block does), as a user's script has;
``--fresh-agents`` starts them from the clean zygote instead, each importing them itself, as
every agent did before agents were forked from the driver. The main job (``examples/digits_hpo.py``: ASHA over lr, width,
depth and activation) runs cold and warm, with how many of its trials met a shape for the
first time.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

from _common import emit  # noqa: E402

from contexts import HyperparameterSearch, Searchspace  # noqa: E402
from kernel import lagom  # noqa: E402


def readme_before(hparams, reporter):
    """The README's ``train`` before: its jitted step closes over ``tx = optax.adam(lr)``."""
    import jax
    import jax.numpy as jnp
    import optax
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x, y = jnp.asarray(x / 16, jnp.float32), jnp.asarray(y)
    width, tx = hparams.get("width", 64), optax.adam(hparams.get("lr", 3e-3))
    k1, k2 = jax.random.split(jax.random.key(0))
    params = {"w1": jax.random.normal(k1, (64, width)) * 0.1, "b1": jnp.zeros(width),
              "w2": jax.random.normal(k2, (width, 10)) * 0.1, "b2": jnp.zeros(10)}
    opt = tx.init(params)

    def logits(p, xb):
        return jax.nn.relu(xb @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]

    @jax.jit
    def step(p, opt, xb, yb):
        loss = lambda p: optax.softmax_cross_entropy_with_integer_labels(logits(p, xb), yb).mean()
        updates, opt = tx.update(jax.grad(loss)(p), opt)
        return optax.apply_updates(p, updates), opt

    for epoch in range(hparams.get("budget", 5)):
        for i in range(0, 1400, 50):
            params, opt = step(params, opt, x[i:i + 50], y[i:i + 50])
        val_acc = float((logits(params, x[1400:]).argmax(-1) == y[1400:]).mean())
        reporter.broadcast(metric=val_acc, step=epoch)
    return {"accuracy": val_acc}


def readme_after() -> dict:
    """The README's first block as it is now, without its search: ``train`` and its step."""
    readme = open(os.path.join(ROOT, "README.md")).read()
    block = re.findall(r"```python\n(.*?)```", readme, re.S)[0]
    head, found, _ = block.partition("\nsp = Searchspace(")
    if not found:
        raise SystemExit("the README's first block no longer defines its search as expected")
    namespace = {"__name__": "readme"}
    exec(compile(head, "README.md, block 1", "exec"), namespace)
    return namespace


def first_step_probe(start_of):
    """A trial that times how soon its first step is done, from the trial's start: the
    parameters made and one step of the README's MLP taken (``start_of`` gives, for this
    trial's hyperparameters, the function that makes them and takes the step)."""
    def probe(hparams, reporter):
        import jax
        import numpy as np

        t0 = time.perf_counter()
        start = start_of(hparams)
        x = (np.random.default_rng(0).random((50, 64))).astype(np.float32)
        jax.block_until_ready(start(hparams["width"], hparams["lr"], x, np.zeros(50, np.int32)))
        return {"first_step_s": time.perf_counter() - t0}
    return probe


def search(fn, cache: str, runs: str, seed: int, budget: int | None = None, workers: int = 2) -> dict:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = cache
    if budget is not None:
        fn = with_budget(fn, budget)
    sp = Searchspace(lr=("DOUBLE", [1e-4, 1e-1], "log"), width=("DISCRETE", [32, 64, 128]))
    began = time.perf_counter()
    result = lagom(fn, HyperparameterSearch(sp, optimizer="randomsearch", num_trials=20, direction="max",
                                            metric="accuracy", workers=workers, seed=seed), path=runs, verbose=0,
                   report=False)
    return figures(result, time.perf_counter() - began)


def with_budget(fn, budget: int):
    """``fn`` training ``budget`` epochs: trials as long as a user's, where a compile per shape
    and agent is a small part."""
    def train(hparams, reporter):
        return fn({**hparams, "budget": budget}, reporter)
    return train


def figures(result, wall: float) -> dict:
    timed = [t for t in result.trials if t.compile_s is not None and t.duration]
    own = sum(t.duration for t in timed)
    spent = sum(t.compile_s for t in timed)
    return {"wall_s": round(wall, 2), "trials_per_min": round(60 * len(result.trials) / wall, 1),
            "compile_share": round(spent / own, 3) if own else None, "compile_s": round(spent, 2),
            "trial_s": round(own, 2),
            "compiled_per_trial": round(sum(t.programs_compiled for t in timed) / max(1, len(timed)), 2),
            "loaded_per_trial": round(sum(t.programs_cached for t in timed) / max(1, len(timed)), 2),
            "best": round(result.best.metric, 4)}


def first_step(fn, cache: str, runs: str) -> dict:
    """How soon a trial's first step is done, for a shape compiled before: one agent compiles
    width 64; then a fresh agent runs width 32 (its first JAX work), width 64 (another agent's
    shape, new to it) and width 64 again (its own), each with a learning rate of its own."""
    os.environ["JAX_COMPILATION_CACHE_DIR"] = cache

    def run(trials):
        sp = Searchspace(width=("DISCRETE", sorted({w for w, _ in trials})), lr=("DISCRETE", sorted({lr for _, lr in trials})))
        r = lagom(fn, HyperparameterSearch(sp, "gridsearch", metric="first_step_s", direction="min", workers=1,
                                           points_to_evaluate=[{"width": w, "lr": lr} for w, lr in trials],
                                           num_trials=len(trials)), path=runs, verbose=0, report=False)
        return [t.result["first_step_s"] for t in r.trials]

    run([(64, 0.01)])
    fresh, others, own = run([(32, 0.02), (64, 0.03), (64, 0.04)])
    return {"agents_first_jax_work": round(fresh, 4), "another_agents_shape": round(others, 4),
            "its_own_shape": round(own, 4)}


def baked_start(hparams):
    """``readme_before``'s way: eager parameters, a new jitted step closing over ``optax.adam(lr)``."""
    import jax
    import jax.numpy as jnp
    import optax

    tx = optax.adam(hparams["lr"])

    @jax.jit
    def step(p, opt, xb, yb):
        def loss(p):
            h = jax.nn.relu(xb @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]
            return optax.softmax_cross_entropy_with_integer_labels(h, yb).mean()
        updates, opt = tx.update(jax.grad(loss)(p), opt)
        return optax.apply_updates(p, updates), opt

    def start(width, lr, x, y):
        k1, k2 = jax.random.split(jax.random.key(0))
        params = {"w1": jax.random.normal(k1, (64, width)) * 0.1, "b1": jnp.zeros(width),
                  "w2": jax.random.normal(k2, (width, 10)) * 0.1, "b2": jnp.zeros(10)}
        return step(params, tx.init(params), x, y)
    return start


def readme_start(readme: dict):
    """The README's way: its jitted ``init`` and ``step``, ``lr`` an argument."""
    def start(width, lr, x, y):
        params, opt = readme["init"](0, width)
        return readme["step"](params, opt, x, y, lr)
    return lambda hparams: start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-main", action="store_true", help="skip the main job (examples/digits_hpo.py)")
    ap.add_argument("--long", type=int, default=100, metavar="EPOCHS",
                    help="epochs per trial of the long search, on the warm cache (default 100)")
    ap.add_argument("--fresh-agents", action="store_true",
                    help="agents from the clean zygote, importing JAX and the rest themselves (not forked from this process)")
    args = ap.parse_args()
    if args.fresh_agents:
        os.environ["LAGOM_FORK_DRIVER"] = "0"
    out: dict = {"bench": "compile", "fresh_agents": args.fresh_agents}
    root = tempfile.mkdtemp(prefix="lagom-compile-")
    runs = os.path.join(root, "runs")
    after = readme_after()
    for name, fn in (("before", readme_before), ("after", after["train"])):
        cache = os.path.join(root, f"cache-{name}")
        # warm: the cache of the cold run, and a new seed (other learning rates, the same widths)
        out[name] = {"cold": search(fn, cache, runs, seed=0), "warm": search(fn, cache, runs, seed=1)}
        out[name]["long"] = search(fn, cache, runs, seed=2, budget=args.long)
        print(f"README search, {name}: cold {out[name]['cold']}\n    warm {out[name]['warm']}\n"
              f"    long {out[name]['long']}", flush=True)
    probes = {"before": first_step_probe(baked_start), "after": first_step_probe(readme_start(after))}
    for name, probe in probes.items():
        out[name]["first_step_s"] = first_step(probe, os.path.join(root, f"probe-{name}"), runs)
        print(f"first step of a shape compiled before, {name}: {out[name]['first_step_s']}", flush=True)
    out["trials_per_min_ratio"] = {k: round(out["after"][k]["trials_per_min"] / out["before"][k]["trials_per_min"], 2)
                                   for k in ("cold", "warm", "long")}
    if not args.no_main:
        sys.path.insert(0, os.path.join(ROOT, "examples"))
        import digits_hpo

        cache = os.path.join(root, "cache-main")
        out["main"] = {}
        for temperature in ("cold", "warm"):
            os.environ["JAX_COMPILATION_CACHE_DIR"] = cache
            os.environ["LAGOM_REPORT"] = "0"
            began = time.perf_counter()
            result = digits_hpo.main(["--path", runs])
            out["main"][temperature] = figures(result, time.perf_counter() - began)
            shapes = {(t.params["width"], t.params["depth"], t.params["act"]) for t in result.trials}
            out["main"][temperature]["shapes"] = len(shapes)
            print(f"main job, {temperature}: {out['main'][temperature]}", flush=True)
    emit(out)


if __name__ == "__main__":
    main()
