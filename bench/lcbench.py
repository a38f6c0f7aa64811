"""LCBench, the standard offline multi-fidelity benchmark, run through real agents and the real
kernel, with Optuna and Ray Tune on the same scaled surrogate in the same run.

A trial of configuration c "trains" epoch e by sleeping the surrogate's training time for that
epoch, scaled down so that the median configuration of the task trains its 52 epochs in
``--full`` seconds, then broadcasts the surrogate's validation accuracy. A promoted ASHA trial
continues from its parent's checkpoint (the epochs done). Every method gets 2 parallel workers
and ``--budget`` seconds of wall clock from its first trial's start; its incumbent (the best
validation accuracy reported so far, at any epoch) is read at 25%, 50% and 100% of that.

    pip install -e ".[bench]"              # onnxruntime, optuna, ray[tune], hpbandster, ConfigSpace,
                                           # syne-tune, smac
    python bench/lcbench.py --workers 8    # 8 parallel trials for every method
    python bench/lcbench.py --methods lagom-hyperband-tpe lagom-rs top-k-1epoch syne-asha syne-bohb \
        syne-asha-bore smac-hyperband      # the strongest peers and two baselines (bench/lcbench_peers.py)
    python bench/lcbench.py                # 8 tasks x 3 seeds x 9 methods x 12 s: about 50 minutes
    python bench/lcbench.py --tasks 2 --seeds 1 --methods lagom-asha-tpe optuna-tpe-sh
    python bench/lcbench.py --methods lagom-hyperband-tpe lagom-hyperband-tpe-goodprior \
        lagom-hyperband-tpe-badprior lagom-rs     # user priors: a good one, a misleading one

Methods: lagom's ASHA (random), ASHA with TPE proposals, asynchronous Hyperband with TPE,
random search with the median rule; Optuna's TPE + SuccessiveHalvingPruner, random +
MedianPruner, random; Ray Tune's ASHA (random) and BOHB (HyperBandForBOHB + TuneBOHB); and on
request Hyperband with TPE given a user's prior, good (the best of 256 configurations drawn
apart from the runs, by their final accuracy) or misleading (the worst of them). The
surrogate: YAHPO Gym's LCBench ONNX model (../shared/benchmarks/lcbench, see its README).

Prints a table per task, then one JSON object on its last line: per task and method the mean
incumbent over seeds at each fraction, and each method's mean rank across tasks (1 is best).
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _common import emit  # noqa: E402

MODEL_DIR = os.environ.get("LCBENCH_DIR", str(ROOT.parent / "shared" / "benchmarks" / "lcbench"))
TASKS = ["3945", "7593", "34539", "126025", "126029", "146212", "167104", "167149", "167152", "167161",
         "167168", "167181", "167184", "167185", "167190", "167200", "167201", "168329", "168330",
         "168331", "168335", "168868", "168908", "168910", "189354", "189862", "189865", "189866",
         "189873", "189905", "189906", "189908", "189909", "126026"]
EPOCHS = 52
WORKERS = 2  # parallel trials of every method (--workers)
FRACTIONS = (0.25, 0.5, 1.0)
SPACE = {  # name: (low, high, log, integer), in the order the model reads them after the epoch
    "batch_size": (16, 512, True, True),
    "learning_rate": (1e-4, 1e-1, True, False),
    "momentum": (0.1, 0.99, False, False),
    "weight_decay": (1e-5, 0.1, False, False),
    "num_layers": (1, 5, False, True),
    "max_units": (64, 1024, True, True),
    "max_dropout": (0.0, 1.0, False, False),
}


def surrogate(model_dir: str = MODEL_DIR):
    """The surrogate's ONNX session, loaded once per process (never shipped with a function)."""
    import types

    cache = sys.modules.setdefault("_lcbench_session", types.ModuleType("_lcbench_session")).__dict__
    if cache.get("session") is None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        cache["session"] = ort.InferenceSession(os.path.join(model_dir, "model.onnx"), options,
                                                providers=["CPUExecutionProvider"])
    return cache["session"]


def curve(task_code: int, config: dict, model_dir: str = MODEL_DIR) -> tuple[list[float], list[float]]:
    """Cumulative training time and validation accuracy (%) after each of the 52 epochs."""
    import numpy as np

    session = surrogate(model_dir)
    row = [float(config[name]) for name in SPACE]
    x = np.array([[e + 1.0, *row] for e in range(EPOCHS)], dtype=np.float32)
    out = session.run(None, {"x_cat": np.full((EPOCHS, 1), task_code, np.int32), "x_cont": x})[0]
    times = np.maximum.accumulate(np.maximum(out[:, 0], 0.0))
    return [float(t) for t in times], [float(a) for a in out[:, 1]]


def task_code(task: str) -> int:
    with open(os.path.join(MODEL_DIR, "encoding.json")) as f:
        return json.load(f)["OpenML_task_id"][task]


def scale_for(code: int, full_seconds: float, seed: int = 0) -> float:
    """The factor that makes the median configuration's 52 epochs take ``full_seconds``."""
    import random

    rng = random.Random(seed)
    totals = [curve(code, sample(rng))[0][-1] for _ in range(64)]
    return statistics.median(totals) / full_seconds


def sample(rng) -> dict:
    out = {}
    for name, (low, high, log, integer) in SPACE.items():
        u = rng.random()
        v = math.exp(math.log(low) + u * (math.log(high) - math.log(low))) if log else low + u * (high - low)
        out[name] = int(round(v)) if integer else v
    return out


def train_epochs(config: dict, code: int, scale: float, start: int, stop: int, report) -> float:
    """Sleep the scaled time of epochs ``start``..``stop-1``, calling ``report(epoch, acc)`` after
    each (it may raise to stop); the accuracy of the last epoch."""
    times, acc = curve(code, config)
    for e in range(start, stop):
        time.sleep(max(0.0, times[e] - (times[e - 1] if e else 0.0)) / scale)
        report(e, acc[e])
    return acc[stop - 1]


# -- lagom ------------------------------------------------------------------------------------
class lagom_trial:
    """The training function for one task: continues from the parent's epochs when promoted.

    An agent loads the surrogate as it unpickles the function, before its first trial, as every
    peer's workers (threads of this process) have it before theirs: otherwise lagom's first
    trials would time importing onnxruntime and loading the model (0.1-0.2 s per agent, a
    twentieth of the first quarter's 3 s at 2 workers), which the peers never pay."""

    def __init__(self, code: int, scale: float):
        self.code, self.scale = code, scale

    def __call__(self, hparams, reporter):
        return _lagom_trial(hparams, reporter, self.code, self.scale)

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        surrogate()


def _lagom_trial(hparams, reporter, code, scale):
    budget = int(hparams.get("budget", EPOCHS))
    start = 0
    if reporter.parent_checkpoint_dir:
        with open(os.path.join(reporter.parent_checkpoint_dir, "epochs")) as f:
            start = int(f.read())
    config = {k: hparams[k] for k in SPACE}
    acc = train_epochs(config, code, scale, start, budget,
                       lambda e, a: reporter.broadcast(acc=a, wall=time.time(), step=e))
    with open(os.path.join(reporter.checkpoint_dir, "epochs"), "w") as f:
        f.write(str(budget))
    return {"acc": acc}


def lagom_space(priors: dict | None = None):
    from contexts import Searchspace

    return Searchspace(priors=priors, **{name: ("INTEGER" if integer else "DOUBLE", [low, high], *(["log"] if log else []))
                                         for name, (low, high, log, integer) in SPACE.items()})


PRIORS = {"lagom-hyperband-tpe-goodprior": "good", "lagom-hyperband-tpe-badprior": "bad"}


@functools.lru_cache(maxsize=None)  # 256 surrogate curves: once per task and kind, not per run
def known_config(code: int, kind: str) -> dict:
    """What a user might believe: the best ("good") or the worst ("bad") of 256 configurations
    drawn independently of every run, by their accuracy after 52 epochs (medium confidence)."""
    import random

    rng = random.Random(12345)
    configs = [sample(rng) for _ in range(256)]
    ranked = sorted(configs, key=lambda c: curve(code, c)[1][-1])
    return ranked[-1] if kind == "good" else ranked[0]


def run_lagom(method: str, code: int, scale: float, budget: float, seed: int) -> tuple[float, list]:
    from contexts import HyperparameterSearch
    from kernel import lagom
    from plugins.optimizers import ASHA, TPE, Hyperband

    es, optimizer = "none", None
    if method == "lagom-asha":
        optimizer = ASHA(3, 1, EPOCHS)
    elif method == "lagom-asha-tpe":
        optimizer = ASHA(3, 1, EPOCHS, sampler="tpe")
    elif method == "lagom-asha-mvtpe":
        optimizer = ASHA(3, 1, EPOCHS, sampler=TPE(multivariate=True))
    elif method == "lagom-hyperband":
        optimizer = Hyperband(3, 1, EPOCHS)
    elif method == "lagom-hyperband-tpe" or method in PRIORS:
        optimizer = Hyperband(3, 1, EPOCHS, sampler="tpe")
    elif method == "lagom-rs-median":
        optimizer, es = "randomsearch", "median"
    elif method == "lagom-rs":
        optimizer = "randomsearch"
    fn = lagom_trial(code, scale)
    with tempfile.TemporaryDirectory() as tmp:
        priors = known_config(code, PRIORS[method]) if method in PRIORS else None
        result = lagom(fn, HyperparameterSearch(lagom_space(priors), optimizer, metric="acc", direction="max",
                                                workers=WORKERS, es_policy=es, seed=seed, max_time=budget + 6),
                       path=tmp, verbose=0, report=False)  # a report drawn after lagom() returns
        # would write into the folder while it is removed
    t0 = min(t.started for t in result.trials if t.started is not None)
    points = []
    for t in result.trials:
        walls = dict(t.series.get("wall", []))
        points += [(walls[step], acc) for step, acc in t.series.get("acc", []) if step in walls]
    return t0, points, sum(1 for t in result.trials if t.started is not None and t.started <= t0 + budget)


# -- Optuna -----------------------------------------------------------------------------------
def run_optuna(method: str, code: int, scale: float, budget: float, seed: int) -> tuple[float, list]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed) if method == "optuna-tpe-sh" \
        else optuna.samplers.RandomSampler(seed=seed)
    pruner = {"optuna-tpe-sh": optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3),
              "optuna-rs-median": optuna.pruners.MedianPruner(n_startup_trials=5),
              "optuna-rs": optuna.pruners.NopPruner()}[method]
    points, starts, lock = [], [], threading.Lock()

    def objective(trial):
        with lock:
            starts.append(time.time())
        config = {}
        for name, (low, high, log, integer) in SPACE.items():
            config[name] = trial.suggest_int(name, low, high, log=log) if integer else \
                trial.suggest_float(name, low, high, log=log)

        def report(e, acc):
            with lock:
                points.append((time.time(), acc))
            trial.report(acc, e)
            if trial.should_prune():
                raise optuna.TrialPruned()

        return train_epochs(config, code, scale, 0, EPOCHS, report)

    curve(code, sample(__import__("random").Random(0)))  # the session, loaded before the clock starts
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    study.optimize(objective, n_jobs=WORKERS, timeout=budget)
    return min(starts), points, len(starts)


# -- Ray Tune ---------------------------------------------------------------------------------
def run_ray(method: str, code: int, scale: float, budget: float, seed: int) -> tuple[float, list]:
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, HyperBandForBOHB

    if not ray.is_initialized():
        ray.init(num_cpus=WORKERS, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    report_fn = getattr(tune, "report", None)
    if report_fn is None:
        from ray.train import report as report_fn

    def trainable(config):
        start = time.time()
        train_epochs(config, code, scale, 0, EPOCHS,
                     lambda e, acc: report_fn({"acc": acc, "wall": time.time(), "start": start}))

    search_alg = None
    if method == "ray-bohb":
        import ConfigSpace as CS
        from ray.tune.search.bohb import TuneBOHB

        cs = CS.ConfigurationSpace(seed=seed)
        for name, (low, high, log, integer) in SPACE.items():
            kind = CS.UniformIntegerHyperparameter if integer else CS.UniformFloatHyperparameter
            cs.add(kind(name, low, high, log=log))
        search_alg = TuneBOHB(space=cs, metric="acc", mode="max", seed=seed)
        scheduler = HyperBandForBOHB(time_attr="training_iteration", max_t=EPOCHS, reduction_factor=3)
        param_space = None
    else:
        scheduler = ASHAScheduler(time_attr="training_iteration", max_t=EPOCHS, grace_period=1, reduction_factor=3)
        param_space = {name: (tune.lograndint(low, high + 1) if integer else tune.loguniform(low, high)) if log
                       else (tune.randint(low, high + 1) if integer else tune.uniform(low, high))
                       for name, (low, high, log, integer) in SPACE.items()}
    with tempfile.TemporaryDirectory() as tmp:
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": 1}),
            param_space=param_space,
            tune_config=tune.TuneConfig(metric="acc", mode="max", scheduler=scheduler, search_alg=search_alg,
                                        num_samples=-1, time_budget_s=budget + 8, max_concurrent_trials=WORKERS,
                                        reuse_actors=True),
            run_config=tune.RunConfig(storage_path=tmp, verbose=0),
        )
        results = tuner.fit()
        points, starts = [], []
        for r in results:
            df = r.metrics_dataframe
            if df is None or "acc" not in df:
                continue
            points += list(zip(df["wall"].tolist(), df["acc"].tolist()))
            starts += df["start"].tolist()
    t0 = min(starts)
    return t0, points, sum(1 for s in starts if s <= t0 + budget)


# -- the comparison ---------------------------------------------------------------------------
METHODS = ["lagom-asha", "lagom-asha-tpe", "lagom-hyperband-tpe", "lagom-rs-median",
           "optuna-tpe-sh", "optuna-rs-median", "optuna-rs", "ray-asha", "ray-bohb"]
MORE = ["lagom-asha-mvtpe", "lagom-hyperband", "lagom-rs", *PRIORS]  # not in the default run
try:  # Syne Tune, SMAC3 and the one-epoch baseline (bench/lcbench_peers.py)
    from lcbench_peers import PEERS
except ImportError:  # run as a module from elsewhere
    PEERS = []


def incumbents(t0: float, points: list, budget: float) -> list[float | None]:
    out = []
    for f in FRACTIONS:
        seen = [acc for wall, acc in points if wall <= t0 + f * budget]
        out.append(max(seen) if seen else None)
    return out


def run(method: str, code: int, scale: float, budget: float, seed: int) -> tuple[list[float | None], int]:
    """The incumbents at each fraction of the budget, and how many trials started within it."""
    if method in PEERS:
        from lcbench_peers import run_peer

        t0, points, trials = run_peer(method, code, scale, budget, seed, WORKERS)
        return incumbents(t0, points, budget), trials
    runner = run_lagom if method.startswith("lagom") else run_optuna if method.startswith("optuna") else run_ray
    t0, points, trials = runner(method, code, scale, budget, seed)
    return incumbents(t0, points, budget), trials


def mean_ranks(table: dict, methods: list[str]) -> dict:
    """Per fraction: each method's rank on each task (1 best, ties share), averaged over tasks."""
    ranks = {m: [[] for _ in FRACTIONS] for m in methods}
    for per_method in table.values():
        for i in range(len(FRACTIONS)):
            values = {m: per_method[m][i] if per_method[m][i] is not None else -1.0 for m in methods}
            for m in methods:
                better = sum(v > values[m] for v in values.values())
                equal = sum(v == values[m] for v in values.values())
                ranks[m][i].append(1 + better + (equal - 1) / 2)
    return {m: {f"{int(f * 100)}%": round(statistics.mean(r[i]), 3) for i, f in enumerate(FRACTIONS)}
            for m, r in ranks.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=8, help="how many tasks, from the first (default 8)")
    ap.add_argument("--task-ids", nargs="*", help="OpenML task ids instead of the first --tasks")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds are FIRST .. FIRST+SEEDS-1 (a second run: 3)")
    ap.add_argument("--combine", nargs="+", metavar="JSON",
                    help="only rank again: the per-task incumbents of earlier runs' last lines (same tasks; "
                         "the methods they share), averaged with equal weight per run, as one table")
    ap.add_argument("--budget", type=float, default=12.0, help="seconds of wall clock per method and run")
    ap.add_argument("--full", type=float, default=0.5, help="seconds the median configuration's 52 epochs take")
    ap.add_argument("--methods", nargs="*", default=METHODS, choices=METHODS + MORE + PEERS)
    ap.add_argument("--workers", type=int, default=2, help="parallel trials of every method (default 2)")
    ap.add_argument("--dehb-python", help="the Python of an environment with dehb installed (bench/dehb_bridge.py)")
    args = ap.parse_args(argv)
    if args.combine:
        combine(args.combine)
        return
    global WORKERS
    WORKERS = args.workers
    if args.dehb_python:
        import lcbench_peers

        lcbench_peers.DEHB_PYTHON = args.dehb_python
    tasks = args.task_ids or TASKS[:args.tasks]
    methods = list(args.methods)
    table: dict = {}
    trial_counts: dict = {}
    started = time.time()
    for task in tasks:
        code = task_code(task)
        scale = scale_for(code, args.full)
        runs, counts = {m: [] for m in methods}, {m: [] for m in methods}
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            order = methods[seed % len(methods):] + methods[:seed % len(methods)]  # no method always first
            for m in order:
                values, trials = run(m, code, scale, args.budget, seed)
                runs[m].append(values)
                counts[m].append(trials)
        trial_counts[task] = {m: statistics.mean(c) for m, c in counts.items()}
        table[task] = {m: mean_by_fraction(runs[m]) for m in methods}
        print(f"task {task} (scale 1/{scale:.0f}):", file=sys.stderr)
        for m in methods:
            print(f"  {m:22s} " + "  ".join("   -  " if v is None else f"{v:6.2f}" for v in table[task][m])
                  + f"   {trial_counts[task][m]:6.1f} trials", file=sys.stderr, flush=True)
    ranks = mean_ranks(table, methods)
    print("mean rank across tasks (25% / 50% / 100% of the budget):", file=sys.stderr)
    for m in sorted(methods, key=lambda m: ranks[m]["100%"]):
        print(f"  {m:22s} " + "  ".join(f"{v:5.2f}" for v in ranks[m].values()), file=sys.stderr)
    emit({"benchmark": "lcbench", "tasks": tasks, "seeds": args.seeds, "budget_s": args.budget,
          "full_s": args.full, "workers": WORKERS, "fractions": list(FRACTIONS), "methods": methods,
          "incumbent_val_accuracy": {t: {m: [None if v is None else round(v, 3) for v in vals]
                                         for m, vals in per.items()} for t, per in table.items()},
          "mean_rank": ranks,
          "trials_mean": {m: round(statistics.mean(c[m] for c in trial_counts.values()), 1) for m in methods},
          "wall_s": round(time.time() - started, 1)})


def mean_by_fraction(rows: list[list[float | None]]) -> list[float | None]:
    """Per fraction of the budget, the mean of the rows' incumbents that exist (None: none)."""
    return [statistics.mean(r[i] for r in rows if r[i] is not None) if any(r[i] is not None for r in rows) else None
            for i in range(len(FRACTIONS))]


def combine(paths: list[str]) -> None:
    """Mean ranks of several runs taken as one (runs of 3 seeds each: their mean is the mean of
    every seed), among the methods every run has: prints them, and the figures as one JSON line."""
    runs = [json.loads(open(p).read().strip().splitlines()[-1]) for p in paths]
    tasks = runs[0]["tasks"]
    methods = [m for m in runs[0]["methods"] if all(m in r["methods"] for r in runs)]  # those every run has
    table = {}
    for t in tasks:
        table[t] = {}
        for m in methods:
            table[t][m] = mean_by_fraction([r["incumbent_val_accuracy"][str(t)][m] for r in runs])
    ranks = mean_ranks(table, methods)
    for m in sorted(methods, key=lambda m: ranks[m]["25%"]):
        print(f"  {m:22s} " + "  ".join(f"{v:5.2f}" for v in ranks[m].values()), file=sys.stderr)
    emit({"benchmark": "lcbench-combined", "runs": paths, "tasks": tasks, "methods": methods,
          "seeds": sum(r["seeds"] for r in runs), "workers": runs[0]["workers"], "mean_rank": ranks})


if __name__ == "__main__":
    main()
