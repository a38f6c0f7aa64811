"""LCBench on a simulated clock: lagom's schedulers alone, without agents or sleeping, to
compare their settings on many seeds in seconds where bench/lcbench.py takes half an hour.

The same surrogate, scale and incumbent as bench/lcbench.py (the best validation accuracy
reported by any epoch, read at 25/50/100% of the budget), with W workers: a trial occupies its
worker for its epochs' scaled training time plus ``--overhead`` seconds (what a trial costs the
kernel and an agent, measured by bench/dispatch.py: well under a millisecond), a promoted trial
continues from its parent's epochs, and the scheduler is asked whenever a worker is free. What
it leaves out is everything real: processes sharing the cores, the kernel's own latency; the
verdict on a change comes from bench/lcbench.py, with the peers, in the same run.

    python bench/lcbench_sim.py                              # the default against its variants
    python bench/lcbench_sim.py --variants hyperband-tpe ladder --seeds 10 --workers 2

Variants: lagom's Hyperband with TPE as bench/lcbench.py runs it (``hyperband-tpe``), its modes
(``conservative``: five brackets; ``aggressive``: one, ASHA with TPE), fewer random proposals
(``random-10``), a model with fewer points (``min-points-4``), random proposals (``hyperband``),
and ``ladder``: until a first configuration reaches the top rung, a rung's best result so far
goes up at once (as a stopping ASHA lets its first trials train on), so that a search with few
workers has a fully trained configuration early.
"""
from __future__ import annotations

import argparse
import functools
import heapq
import os
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

import lcbench  # noqa: E402
from _common import emit  # noqa: E402

from plugins.optimizers import ASHA, FINISHED, WAIT, Hyperband, Observation  # noqa: E402


class Ladder(Hyperband):
    """Hyperband that, until some configuration has a result at the top rung, promotes a rung's
    best result so far (its top ceil(n/eta), not floor(n/eta))."""

    def _promotable(self, bracket: int, rung: int) -> int | None:
        if self._reached_max:
            return super()._promotable(bracket, rung)
        results = self._results[bracket][rung]
        top = -int(-len(results) // self.eta)
        ranked = self.best_first(sorted(results), key=lambda t: results[t])[:top]
        return next((t for t in ranked if t not in self._promoted[bracket][rung]), None)


E = lcbench.EPOCHS
VARIANTS = {
    "hyperband-tpe": lambda: Hyperband(3, 1, E, sampler="tpe"),
    "conservative": lambda: Hyperband(3, 1, E, sampler="tpe", mode="conservative"),
    "aggressive": lambda: ASHA(3, 1, E, sampler="tpe"),
    "random-10": lambda: Hyperband(3, 1, E, sampler="tpe", random_fraction=0.1),
    "min-points-4": lambda: Hyperband(3, 1, E, sampler="tpe", min_points=4),
    "hyperband": lambda: Hyperband(3, 1, E),
    "ladder": lambda: Ladder(3, 1, E, sampler="tpe"),
}


@functools.lru_cache(maxsize=None)
def _curve(code: int, config: tuple) -> tuple[list[float], list[float]]:
    return lcbench.curve(code, dict(config))


def simulate(variant: str, code: int, scale: float, seed: int, workers: int, budget: float,
             overhead: float) -> list[float | None]:
    """One search on the simulated clock: its incumbents at each fraction of ``budget``."""
    opt = VARIANTS[variant]()
    opt.setup(lcbench.lagom_space(), num_trials=None, direction="max", seed=seed)
    clock, running, points, epochs, trial, free = 0.0, [], [], {}, 0, workers
    while True:
        while free and clock < budget:
            s = opt.suggest(trial)
            if s is WAIT or s is FINISHED:
                break
            times, acc = _curve(code, tuple(sorted((k, s.params[k]) for k in lcbench.SPACE)))
            t, stop = clock + overhead, int(s.budget)
            for e in range(epochs.get(s.parent, 0), stop):
                t += max(0.0, times[e] - (times[e - 1] if e else 0.0)) / scale
                points.append((t, acc[e]))
            heapq.heappush(running, (t, trial, s, acc[stop - 1], stop))
            trial, free = trial + 1, free - 1
        if not running or running[0][0] > budget:
            break
        clock, done, s, value, stop = heapq.heappop(running)
        epochs[done], free = stop, free + 1
        opt.observe(Observation(done, s.params, s.budget, "finished", value, ((stop - 1, value),), dict(s.info)))
    return lcbench.incumbents(0.0, points, budget)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--tasks", type=int, default=8)
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--budget", type=float, default=12.0, help="simulated seconds per search (as bench/lcbench.py)")
    ap.add_argument("--full", type=float, default=0.5, help="seconds the median configuration's 52 epochs take")
    ap.add_argument("--overhead", type=float, default=0.002, help="seconds each trial costs besides its epochs")
    args = ap.parse_args(argv)
    table = {}
    for task in lcbench.TASKS[:args.tasks]:
        code = lcbench.task_code(task)
        scale = lcbench.scale_for(code, args.full)
        table[task] = {v: lcbench.mean_by_fraction([
            simulate(v, code, scale, seed, args.workers, args.budget, args.overhead) for seed in range(args.seeds)])
            for v in args.variants}
        print(f"task {task}: " + "  ".join(f"{v} {table[task][v][0]:.2f}" for v in args.variants), file=sys.stderr)
    ranks = lcbench.mean_ranks(table, args.variants)
    means = {v: [round(statistics.mean(table[t][v][i] for t in table), 3) for i in range(len(lcbench.FRACTIONS))]
             for v in args.variants}
    for v in args.variants:
        print(f"  {v:14s} rank " + " ".join(f"{r:5.2f}" for r in ranks[v].values())
              + "   mean incumbent " + " ".join(f"{m:6.2f}" for m in means[v]), file=sys.stderr)
    emit({"benchmark": "lcbench_sim", "tasks": list(table), "seeds": args.seeds, "workers": args.workers,
          "budget_s": args.budget, "overhead_s": args.overhead, "mean_rank": ranks, "mean_incumbent": means,
          "incumbent_val_accuracy": table})


if __name__ == "__main__":
    main()
