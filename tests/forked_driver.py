"""A user's script for tests/test_forked_agents.py: ``python forked_driver.py SCENARIO RUNS``
prints what it saw as JSON on its last line. A script, since that is where agents are forked
from the driver (a test runner's own process may have started JAX's backend by then, and its
agents come from the clean zygote)."""
import json
import os
import select
import signal
import sys
import threading
import time

import numpy as np

from contexts import HyperparameterSearch, Searchspace
from kernel import Observer, lagom
from plugins.launchers.local import LocalLauncher, _Zygote


def parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def cmdline(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode(errors="replace")


def draws(hparams, reporter):
    """What a fresh agent would not have: the driver's modules (``json.tool``, imported by this
    script alone); and the agent's first draw from numpy's global generator."""
    import numpy as np

    draw = float(np.random.random())  # before anything else of the agent's draws
    if "barrier" in hparams:  # the first trials wait until each agent has one
        from plugins.testing import barrier

        barrier(hparams["barrier"], 2, timeout=30.0)
    time.sleep(hparams.get("sleep", 0.0))  # stands for training
    return {"score": float(hparams["n"]), "pid": os.getpid(), "draw": draw,
            "driver_module": float("json.tool" in sys.modules), "marker": os.environ.get("LAGOM_TEST_MARKER", "")}


def search(n: int, **fixed):
    space = Searchspace(n=("DISCRETE", list(range(n))), **{k: ("CATEGORICAL", [v]) for k, v in fixed.items()})
    return HyperparameterSearch(space, "gridsearch", metric="score", workers=2)


def forked(runs: str) -> dict:
    np.random.seed(0)  # as a script that wants its own draws repeatable does: agents must not share them
    launcher, seen = LocalLauncher(), {}

    class Look(Observer):
        def trial_started(self, view, trial):
            if not seen:
                for pid in launcher.pids().values():
                    zygote = parent(pid)
                    seen[pid] = {"zygote": zygote, "its_parent": parent(zygote), "cmdline": cmdline(zygote)}

    result = lagom(draws, search(2, barrier=os.path.join(runs, "barrier")), launcher=launcher, path=runs,
                   verbose=0, report=False, observers=[Look()])
    return {"why_not": launcher.not_from_driver, "seen": list(seen.values()), "driver": os.getpid(),
            "driver_cmdline": cmdline(os.getpid()), "results": [t.result for t in result.trials],
            "driver_draw": float(np.random.random())}


def pipe(runs: str) -> dict:
    """The driver closes a pipe's writer mid-search: does its reader hear the end at once?"""
    readable, writable = os.pipe()
    heard = {}

    class CloseMidSearch(Observer):
        def trial_started(self, view, trial):
            if trial.id == 2 and not heard:
                os.close(writable)
                ready, _, _ = select.select([readable], [], [], 10)
                heard["eof"] = bool(ready) and os.read(readable, 1) == b""

    launcher = LocalLauncher()
    lagom(draws, search(4), launcher=launcher, path=runs, verbose=0, report=False, observers=[CloseMidSearch()])
    return {"why_not": launcher.not_from_driver, **heard}


def fallback(runs: str) -> dict:
    """lagom() in a thread of its own (as in a notebook), then agents with an environment of their own."""
    in_thread, out = LocalLauncher(), {}
    run = threading.Thread(target=lambda: out.update(result=lagom(draws, search(2), launcher=in_thread, path=runs,
                                                                    verbose=0, report=False)))
    run.start()
    run.join(120)
    other_env = LocalLauncher(env={"SOME_SETTING": "1", "LAGOM_TEST_MARKER": "m"})
    result = lagom(draws, search(2), launcher=other_env, path=runs, verbose=0, report=False)
    return {"thread": in_thread.not_from_driver, "thread_results": [t.result for t in out["result"].trials],
            "env": other_env.not_from_driver, "env_results": [t.result for t in result.trials]}


def kill(runs: str) -> dict:
    """kill -9 of the zygote forked from this script, mid-search."""
    launcher, seen = LocalLauncher(), {}

    class KillZygote(Observer):
        def trial_started(self, view, trial):
            if trial.id == 4 and not seen:  # each agent has finished a trial by then
                seen["zygote"] = launcher._zygote.pid
                seen["parents"] = sorted({parent(pid) for pid in launcher.pids().values()})
                os.kill(seen["zygote"], signal.SIGKILL)

    result = lagom(draws, search(8, sleep=0.2), launcher=launcher, path=runs, verbose=0, report=False,
                   observers=[KillZygote()])
    return {"why_not": launcher.not_from_driver, **seen, "clean_zygote": _Zygote.get().pid,
            "trials": [[t.state, t.attempts, t.result and t.result["pid"]] for t in result.trials]}


def hung(runs: str) -> dict:
    """A fork of the driver that hangs before it is ready (as one would on a lock a thread held
    at the fork): given up after READY_S, the agents come from the clean zygote."""
    import plugins.launchers.forking as forking
    import plugins.launchers.local as local

    local.READY_S = 1.0
    forking._become_zygote = lambda requests, replies: time.sleep(3600)
    launcher = LocalLauncher()
    began = time.monotonic()
    result = lagom(draws, search(2), launcher=launcher, path=runs, verbose=0, report=False)
    return {"why_not": launcher.not_from_driver, "states": [t.state for t in result.trials],
            "seconds": time.monotonic() - began}


def adds(hparams, reporter):
    import jax.numpy as jnp

    return {"score": float(jnp.add(jnp.ones(3), hparams["n"]).sum())}


def jax_loaded(runs: str) -> dict:
    """JAX imported by the script (not started): a function that never uses it reports no
    compile figures, and one that does compiles into the cache lagom() names."""
    import jax  # noqa: F401

    cache = os.path.join(runs, "cache")
    plain, jitted = LocalLauncher(), LocalLauncher()
    untouched = lagom(draws, search(2), launcher=plain, path=runs, verbose=0, report=False)
    compiled = lagom(adds, search(2), launcher=jitted, path=runs, verbose=0, report=False, compile_cache=cache)
    return {"why_not": [plain.not_from_driver, jitted.not_from_driver],
            "plain": [t.compile_s for t in untouched.trials], "jitted": [t.compile_s for t in compiled.trials],
            "cached_files": len(os.listdir(cache)) if os.path.isdir(cache) else 0}


if __name__ == "__main__":
    import json.tool  # noqa: F401  (this driver's alone: agents forked from it have it)

    print(json.dumps(globals()[sys.argv[1]](sys.argv[2])))
