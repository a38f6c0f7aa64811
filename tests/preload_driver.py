"""A user's script for tests/test_preload.py: ``python preload_driver.py SCENARIO RUNS`` prints
what it saw as JSON on its last line. Its agents come from the clean zygote (the test sets
LAGOM_FORK_DRIVER=0), which loads the libraries the function imports before it forks them. The
libraries are packages in a site-packages folder made for the test: one records the
environment and the process it was imported in, one starts JAX's backend as it is imported."""
import json
import os
import sys
from pathlib import Path

from contexts import HyperparameterSearch, Searchspace
from kernel import lagom, shipping
from plugins.launchers.local import LocalLauncher, _Zygote

LIBRARIES = {
    "envprobe/__init__.py": "import os\nSETTING = os.environ.get('PROBE_SETTING')\nPID = os.getpid()\n",
    # a submodule the package does not import itself
    "envprobe/deep.py": "import os\nPID = os.getpid()\n\ndef where():\n    return PID\n",
    "startsruntime/__init__.py": "import os, jax\njax.devices()\nPID = os.getpid()\n",
    "hangs/__init__.py": "import os, time\nif os.environ.get('PROBE_HANG'):\n    time.sleep(3600)\n",
    "grabssignals/__init__.py": "import signal\nsignal.signal(signal.SIGCHLD, signal.SIG_IGN)\n"
                                "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n",
    "startsthread/__init__.py": "import os, threading, time\nPID = os.getpid()\n"
                                "threading.Thread(target=time.sleep, args=(600,), daemon=True).start()\n",
}
USER = {  # the user's own modules, beside the script: never loaded ahead
    "probe_user": "import os, envprobe\nfrom envprobe.deep import where\n\ndef train(hparams):\n"
                  "    return {'score': float(hparams['n']), 'setting': envprobe.SETTING,\n"
                  "            'imported_by': envprobe.PID, 'deep_imported_by': where(),\n"
                  "            'agent': os.getpid(), 'zygote': os.getppid()}\n",
    "runtime_user": "import os, envprobe, startsruntime\n\ndef train(hparams):\n"
                    "    return {'score': float(hparams['n']), 'imported_by': startsruntime.PID,\n"
                    "            'safe_imported_by': envprobe.PID, 'agent': os.getpid(), 'zygote': os.getppid()}\n",
    "signals_user": "import os, grabssignals\n\ndef train(hparams):\n"
                    "    if hparams['n'] == 0 and os.environ.get('LAGOM_AGENT_RESTARTS', '0') == '0':\n"
                    "        os._exit(3)  # the agent dies: the zygote must hear of it\n"
                    "    return {'score': float(hparams['n'])}\n",
    "thread_user": "import os, startsthread\n\ndef train(hparams):\n"
                   "    return {'score': float(hparams['n']), 'imported_by': startsthread.PID,\n"
                   "            'agent': os.getpid()}\n",
}


def install(runs: str) -> None:
    site, user = Path(runs, "lib", "site-packages"), Path(runs, "user")
    for name, text in LIBRARIES.items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text(text)
    user.mkdir()
    for name, text in USER.items():
        (user / f"{name}.py").write_text(text)
    sys.path[:0] = [str(site), str(user)]


def search():
    return HyperparameterSearch(Searchspace(n=("DISCRETE", [0, 1])), "gridsearch", metric="score", workers=2)


def run(fn) -> list[dict]:
    result = lagom(fn, search(), launcher=LocalLauncher(), path=RUNS, verbose=0, report=False)
    return [{"state": t.state, **(t.result or {})} for t in result.trials]


def environments(runs: str) -> dict:
    """Two experiments, the environment changed between them."""
    import probe_user

    os.environ["PROBE_SETTING"] = "1"
    first = run(probe_user.train)
    os.environ["PROBE_SETTING"] = "2"
    second = run(probe_user.train)
    return {"libraries": shipping.libraries(shipping.pack(probe_user.train)), "first": first, "second": second}


def runtime(runs: str) -> dict:
    """A library that starts JAX's backend as it is imported, and one that starts a thread."""
    import runtime_user
    import thread_user

    return {"libraries": shipping.libraries(shipping.pack(runtime_user.train)), "trials": run(runtime_user.train),
            "thread_trials": run(thread_user.train), "never": sorted(_Zygote.never)}


def signals(runs: str) -> dict:
    """A library that sets the zygote's SIGCHLD and SIGTERM handlers as it is imported, and an
    agent that dies."""
    import signals_user

    result = lagom(signals_user.train, search(), launcher=LocalLauncher(), path=RUNS, verbose=0, report=False)
    return {"trials": [{"state": t.state, "error": t.error or ""} for t in result.trials]}


def hang(runs: str) -> dict:
    """A library whose import does not end in the zygote (given 2 s here, not 120)."""
    import hangs  # noqa: F401  (loaded here, as the user's script would have it)

    os.environ["PROBE_HANG"] = "1"
    zygote = _Zygote.get()
    why = zygote.preload(["hangs"], timeout=2.0)
    gone = zygote._reader.join(10) or not zygote._reader.is_alive()  # killed: its replies ended
    os.environ.pop("PROBE_HANG")
    os.environ["PROBE_SETTING"] = "1"
    trials = run(__import__("probe_user").train)
    return {"why": why, "retired": zygote.retired, "gone": gone, "dead": zygote.dead, "trials": trials,
            "new_zygote": _Zygote.get().pid != zygote.pid}


if __name__ == "__main__":
    RUNS = sys.argv[2]
    install(RUNS)
    print(json.dumps(globals()[sys.argv[1]](RUNS)))
