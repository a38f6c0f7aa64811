"""Training functions for the tests: importable by agent processes (by reference)."""
import os
import time


def quadratic(hparams, reporter):
    """Peaks at x = 0.3; broadcasts three steps."""
    x = hparams["x"]
    time.sleep(hparams.get("sleep", 0.0))  # stands for training time
    value = 1.0 - (x - 0.3) ** 2
    for step in range(3):
        reporter.broadcast(metric=value * (step + 1) / 3, step=step)
    return {"score": value, "x": x}


def fails_on_odd(hparams, reporter):
    if hparams["n"] % 2:
        raise ValueError(f"odd n={hparams['n']} is not allowed")
    return {"score": float(hparams["n"])}


def prints(hparams, reporter):
    print(f"hello from trial with n={hparams['n']}")
    print("second line", flush=True)
    reporter.log("via reporter.log")
    return float(hparams["n"])


def returns_wrong_metric(hparams, reporter):
    return {"loss": 1.0}


def returns_number(hparams):
    return hparams["x"] * 2


def asks_for_nonsense(hparams, optimizer_state):
    return 0.0


def slow_until_stopped(hparams, reporter):
    """Broadcasts until the kernel stops it (or 2000 steps)."""
    for step in range(2000):
        reporter.broadcast(metric=float(step), step=step)
        time.sleep(0.001)
    return {"score": -1.0}


def pid_and_sleep(hparams, reporter):
    reporter.broadcast(metric=float(os.getpid()), step=0)
    time.sleep(hparams.get("sleep", 0.0))
    return {"score": float(hparams["n"]), "pid": os.getpid()}


def countdown(hparams, reporter):
    """Broadcasts n, n-1, ... down to -20, slowly enough for a stop to arrive."""
    n = hparams["n"]
    for step, value in enumerate(range(n, -21, -1)):
        time.sleep(0.01)
        reporter.broadcast(metric=float(value), step=step)
    return {"score": -20.0}


def flat_curve(hparams, reporter):
    """Broadcasts x ten times, 20 ms apart: a trial as good as its x."""
    for step in range(10):
        time.sleep(0.02)
        reporter.broadcast(metric=hparams["x"], step=step)
    return {"score": hparams["x"]}
