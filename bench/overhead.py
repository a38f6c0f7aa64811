"""The shape of Ray Tune's scalability benchmark, with real agent processes on this machine:
``--agents`` local agents run ``--trials`` trials that each sleep ``--duration`` seconds in
``--broadcasts`` steps (a metric after each). The ideal is trials x duration / agents; the
overhead is the time taken over that ideal. When Ray Tune is installed (the ``bench`` extra),
the same work runs through it in the same script (a function trainable, ``max_concurrent_trials``
= agents, the same sleeps and reports), so both overheads come from one run.

    python bench/overhead.py                         # 32 agents, 2,000 trials of 0.25 s
    python bench/overhead.py --agents 64 --trials 640 --duration 1 --broadcasts 10

Figures (last line, JSON), per framework: ``overhead_pct`` (first trial's start to the last
trial's end, over the ideal), ``steady_overhead_pct`` (each worker's idle share between its
first trial's start and its last one's end: what dispatch costs once everything runs),
``first_trial_s`` (the call to the first trial running) and ``all_busy_s`` (the call to every
worker having started a trial: the ramp-up), ``trial_own_s`` (a trial's mean measured run time:
sleep overshoots on a loaded machine) with ``overhead_over_own_pct`` (the span over the ideal of
trials that take that long), ``floor_pct`` (the overhead no scheduler could avoid: whole trials of
that length per worker), and ``wall_s``.
"""
from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

from _common import emit  # noqa: E402


def figures(t_call: float, spans: list[tuple[str, float, float]], trials: int, agents: int,
            duration: float, wall: float) -> dict:
    """From (worker, start, end) of every trial."""
    first = min(s for _, s, _ in spans)
    last = max(e for _, _, e in spans)
    ideal = trials * duration / agents
    by_worker = collections.defaultdict(list)
    for worker, s, e in spans:
        by_worker[worker].append((s, e))
    firsts = sorted(min(s for s, _ in v) for v in by_worker.values())
    busy = [sum(e - s for s, e in v) / (max(e for _, e in v) - min(s for s, _ in v)) for v in by_worker.values()]
    own = sum(e - s for _, s, e in spans) / len(spans)
    return {
        "trials": len(spans),
        "workers_used": len(by_worker),
        "ideal_s": round(ideal, 2),
        "span_s": round(last - first, 2),
        "overhead_pct": round(100 * ((last - first) / ideal - 1), 2),
        "steady_overhead_pct": round(100 * (len(busy) / sum(busy) - 1), 2),
        "first_trial_s": round(first - t_call, 2),
        "all_busy_s": round(firsts[-1] - t_call, 2) if len(firsts) >= agents else None,
        "trial_own_s": round(own, 4),
        "overhead_over_own_pct": round(100 * ((last - first) / (trials * own / agents) - 1), 2),
        # what a perfect scheduler could not avoid: trials as long as these were, and whole
        # trials per worker (2,000 on 32: half the workers run 63, not 62.5)
        "floor_pct": round(100 * (-(-trials // agents) * own / ideal - 1), 2),
        "wall_s": round(wall, 2),
    }


def run_lagom(args) -> dict:
    from contexts import HyperparameterSearch, Searchspace
    from kernel import ahead, lagom

    if args.no_lease:
        ahead.LEASE_MAX = 0

    duration, broadcasts = args.duration, args.broadcasts

    def sleeper(hparams, reporter):
        import time as _time

        for step in range(broadcasts):
            _time.sleep(duration / broadcasts)
            reporter.broadcast(metric=hparams["x"], step=step)
        return {"value": hparams["x"]}

    with tempfile.TemporaryDirectory() as root:
        t_call = time.time()
        result = lagom(sleeper, HyperparameterSearch(Searchspace(x=("DOUBLE", [0.0, 1.0])), "randomsearch",
                                                     num_trials=args.trials, metric="value",
                                                     workers=args.agents, seed=0),
                       path=root, verbose=0, report=False)
        wall = time.time() - t_call
    assert result.count("finished") == args.trials, "every trial must finish"
    spans = [(t.agent, t.started, t.ended) for t in result.trials]
    return figures(t_call, spans, args.trials, args.agents, duration, wall)


def run_ray(args) -> dict | None:
    try:
        import ray
        from ray import tune
    except ImportError:
        return None
    duration, broadcasts = args.duration, args.broadcasts
    report = getattr(tune, "report", None)
    if report is None:
        from ray.train import report

    def sleeper(config):
        import os as _os
        import time as _time

        start = _time.time()
        for step in range(broadcasts):
            _time.sleep(duration / broadcasts)
            report({"value": config["x"], "start": start, "end": _time.time(), "pid": _os.getpid()})

    t_call = time.time()
    ray.init(num_cpus=args.agents, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    with tempfile.TemporaryDirectory() as root:
        tuner = tune.Tuner(
            tune.with_resources(sleeper, {"cpu": 1}),
            param_space={"x": tune.uniform(0.0, 1.0)},
            tune_config=tune.TuneConfig(metric="value", mode="max", num_samples=args.trials,
                                        max_concurrent_trials=args.agents, reuse_actors=True),
            run_config=tune.RunConfig(storage_path=root, verbose=0),
        )
        results = tuner.fit()
        spans = []
        for r in results:
            df = r.metrics_dataframe
            if df is not None and len(df):
                spans.append((str(df["pid"].iloc[-1]), float(df["start"].iloc[0]), float(df["end"].iloc[-1])))
    wall = time.time() - t_call
    ray.shutdown()
    return figures(t_call, spans, args.trials, args.agents, duration, wall)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", type=int, default=32)
    ap.add_argument("--trials", type=int, default=2000)
    ap.add_argument("--duration", type=float, default=0.25, help="seconds per trial")
    ap.add_argument("--broadcasts", type=int, default=5, help="metrics per trial")
    ap.add_argument("--no-ray", action="store_true", help="only lagom, even if Ray Tune is installed")
    ap.add_argument("--no-lease", action="store_true", help="hand each lagom agent one trial at a time")
    args = ap.parse_args()
    out = {"bench": "overhead", "agents": args.agents, "trials": args.trials, "trial_s": args.duration,
           "broadcasts": args.broadcasts, "lagom": run_lagom(args)}
    print("lagom:", out["lagom"], file=sys.stderr, flush=True)
    if not args.no_ray:
        out["ray_tune"] = run_ray(args)
        print("ray tune:", out["ray_tune"], file=sys.stderr, flush=True)
    emit(out)


if __name__ == "__main__":
    main()
