"""The strongest installable peers on bench/lcbench.py's scaled surrogate, driven through their
ask/tell interfaces by the same worker threads, with the same epochs slept and reported:
Syne Tune's asynchronous multi-fidelity schedulers (ASHA, BOHB, ASHA with BORE), SMAC3's
Hyperband facade (a random forest over Hyperband's configurations), and the baseline of Egele
et al. (2023): every configuration trained one epoch, the best k trained to the end.

    pip install -e ".[bench]"     # syne-tune, smac (2.4 needs no pyrfr)

DEHB's own package (dehb 0.1.2) requires numpy < 2, which JAX 0.10 does not run with: it runs in
an environment of its own, asked and told through a pipe (bench/dehb_bridge.py), whose Python
``--dehb-python`` names:

    python -m venv ~/dehb-env && ~/dehb-env/bin/pip install dehb==0.1.2
"""
from __future__ import annotations

import itertools
import json
import os
import subprocess
import threading
import time
from datetime import datetime

from lcbench import EPOCHS, SPACE, curve, sample, train_epochs

PEERS = ["syne-asha", "syne-bohb", "syne-asha-bore", "smac-hyperband", "dehb", "top-k-1epoch"]
DEHB_PYTHON = os.environ.get("DEHB_PYTHON", "")  # the Python of DEHB's environment (--dehb-python)


class _Stop(Exception):
    """A trial the scheduler stopped, or the clock ran out on."""


def _workers(n: int, body) -> None:
    threads = [threading.Thread(target=body, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _continue(config: dict, stop: int, code: int, scale: float, trained: dict, lock, points: list,
              deadline: float) -> tuple[float, int]:
    """Train ``config`` to ``stop`` epochs from those it trained before (a configuration asked
    for again at a larger budget continues, as lagom's ASHA continues its checkpoint): its
    accuracy then and the epoch it started from; raises _Stop at the deadline."""
    key = tuple(sorted(config.items()))
    with lock:
        start = min(trained.get(key, 0), stop)

    def report(e: int, acc: float) -> None:
        with lock:
            points.append((time.time(), acc))
        if time.time() > deadline:
            raise _Stop

    acc = train_epochs(config, code, scale, start, stop, report) if stop > start else curve(code, config)[1][stop - 1]
    with lock:
        trained[key] = max(trained.get(key, 0), stop)
    return acc, start


def run_syne(method: str, code: int, scale: float, budget: float, seed: int, workers: int = 2):
    from syne_tune.backend.trial_status import Trial
    from syne_tune.config_space import lograndint, loguniform, randint, uniform
    from syne_tune.optimizer import baselines

    space = {name: ((lograndint if log else randint)(low, high) if integer else (loguniform if log else uniform)(low, high))
             for name, (low, high, log, integer) in SPACE.items()}
    kind = {"syne-asha": baselines.ASHA, "syne-bohb": baselines.BOHB, "syne-asha-bore": baselines.ASHABORE}[method]
    scheduler = kind(space, metric="acc", time_attr="epoch", max_t=EPOCHS, do_minimize=False, random_seed=seed,
                     grace_period=1, reduction_factor=3)
    lock, points, starts, ids = threading.Lock(), [], [], itertools.count()
    curve(code, sample(__import__("random").Random(0)))  # the session, loaded before the clock starts
    deadline = time.time() + budget + 1

    def one() -> None:
        while time.time() < deadline:
            with lock:
                suggestion = scheduler.suggest()
                if suggestion is None:
                    return
                trial = Trial(next(ids), suggestion.config, datetime.now())
                scheduler.on_trial_add(trial)
                starts.append(time.time())

            def report(e: int, acc: float) -> None:
                with lock:
                    points.append((time.time(), acc))
                    decision = scheduler.on_trial_result(trial, {"acc": acc, "epoch": e + 1})
                if decision != "CONTINUE" or time.time() > deadline:
                    raise _Stop

            try:
                acc = train_epochs({k: suggestion.config[k] for k in SPACE}, code, scale, 0, EPOCHS, report)
            except _Stop:
                continue
            with lock:
                scheduler.on_trial_complete(trial, {"acc": acc, "epoch": EPOCHS})

    _workers(workers, one)
    return min(starts), points, len(starts)


def run_smac(method: str, code: int, scale: float, budget: float, seed: int, workers: int = 2):
    """SMAC3's HyperbandFacade through ask/tell; a configuration asked for again at a larger
    budget continues from the epochs it trained (``_continue``)."""
    import tempfile

    import ConfigSpace as CS
    from smac import HyperbandFacade, Scenario
    from smac.runhistory.dataclasses import TrialValue

    cs = CS.ConfigurationSpace(seed=seed)
    for name, (low, high, log, integer) in SPACE.items():
        cs.add((CS.UniformIntegerHyperparameter if integer else CS.UniformFloatHyperparameter)(name, low, high, log=log))
    lock, points, starts, trained = threading.Lock(), [], [], {}
    curve(code, sample(__import__("random").Random(0)))
    with tempfile.TemporaryDirectory() as tmp:
        scenario = Scenario(cs, deterministic=True, n_trials=100000, min_budget=1, max_budget=EPOCHS, seed=seed,
                            output_directory=tmp)
        smac = HyperbandFacade(scenario, lambda config, seed=0, budget=1: 0.0, overwrite=True, logging_level=40)
        deadline = time.time() + budget + 1

        def one() -> None:
            while time.time() < deadline:
                with lock:
                    info = smac.ask()
                    starts.append(time.time())
                try:
                    acc, _ = _continue(dict(info.config), int(round(info.budget)), code, scale, trained, lock, points,
                                       deadline)
                except _Stop:
                    return
                with lock:
                    smac.tell(info, TrialValue(cost=-acc))

        _workers(workers, one)
    return min(starts), points, len(starts)


def run_dehb(method: str, code: int, scale: float, budget: float, seed: int, workers: int = 2):
    """DEHB (Awad et al. 2021) at its recommended settings (eta 3, fidelities 1.9 to 52 epochs),
    asked and told through bench/dehb_bridge.py; a configuration asked for again at a larger
    fidelity continues from the epochs it trained (``_continue``)."""
    if not DEHB_PYTHON:
        raise SystemExit("dehb runs in an environment of its own: give --dehb-python (see bench/dehb_bridge.py)")
    setup = {"space": {name: list(spec) for name, spec in SPACE.items()}, "seed": seed, "min_fidelity": 1,
             "max_fidelity": EPOCHS, "eta": 3}
    bridge = subprocess.Popen([DEHB_PYTHON, os.path.join(os.path.dirname(__file__), "dehb_bridge.py"),
                               json.dumps(setup)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def call(request: dict) -> dict:
        bridge.stdin.write(json.dumps(request) + "\n")
        bridge.stdin.flush()
        return json.loads(bridge.stdout.readline())

    lock, points, starts, trained = threading.Lock(), [], [], {}
    curve(code, sample(__import__("random").Random(0)))
    waiting = [call({"op": "ask"})]  # DEHB imported and its first job drawn before the clock starts
    deadline = time.time() + budget + 1

    def one() -> None:
        while time.time() < deadline:
            with lock:
                job = waiting.pop() if waiting else call({"op": "ask"})
                starts.append(time.time())
            config = {k: (int(round(v)) if SPACE[k][3] else v) for k, v in job["config"].items()}
            stop = max(1, int(round(job["fidelity"])))
            try:
                acc, start = _continue(config, stop, code, scale, trained, lock, points, deadline)
            except _Stop:
                return
            with lock:
                call({"op": "tell", "id": job["id"], "fitness": -acc, "cost": float(stop - start)})

    try:
        _workers(workers, one)
    finally:
        bridge.stdin.close()
        bridge.wait(timeout=30)
    return min(starts), points, len(starts)


def run_top_k(method: str, code: int, scale: float, budget: float, seed: int, workers: int = 2, k: int = 3):
    """Egele et al.'s baseline: random configurations trained one epoch each for the first half
    of the budget, then the best ``k`` of them trained to the end."""
    import random

    rng = random.Random(seed)
    lock, points, starts, screened = threading.Lock(), [], [], []
    curve(code, sample(random.Random(0)))
    t0 = time.time()
    half, deadline = t0 + budget / 2, t0 + budget + 1

    def report(e: int, acc: float) -> None:
        with lock:
            points.append((time.time(), acc))
        if time.time() > deadline:
            raise _Stop

    def screen() -> None:
        while time.time() < half:
            with lock:
                config = sample(rng)
                starts.append(time.time())
            acc = train_epochs(config, code, scale, 0, 1, report)
            with lock:
                screened.append((acc, config))

    _workers(workers, screen)
    best = [config for _, config in sorted(screened, key=lambda pair: -pair[0])[:k]]

    def finish() -> None:
        while True:
            with lock:
                if not best:
                    return
                config = best.pop(0)
                starts.append(time.time())
            try:
                train_epochs(config, code, scale, 1, EPOCHS, report)
            except _Stop:
                return

    _workers(workers, finish)
    return min(starts), points, len(starts)


def run_peer(method: str, code: int, scale: float, budget: float, seed: int, workers: int = 2):
    runner = (run_syne if method.startswith("syne") else run_smac if method.startswith("smac")
              else run_dehb if method == "dehb" else run_top_k)
    return runner(method, code, scale, budget, seed, workers)
