"""Time from ``lagom()`` to the first trial running, per launcher, 2 agents on this machine.

    python bench/launchers.py                 # local, thread, ray, dask, slurm (those here), 3 runs each

Each run is a fresh search of 4 trivial trials; the figure is the journal's first ``start``
minus the moment ``lagom()`` was called (engine start-up included: a local Ray or a Dask
LocalCluster made by the launcher), and the whole call. Then one search per launcher whose
agent of trial 2 is killed through its engine when that trial starts (kill -9 of a local agent,
``ray.kill`` of its actor, kill -9 of its Dask worker, ``scancel`` of its SLURM task): the time from the kill to the kernel's
``agent-gone``. Figures (last line, JSON): per launcher, the medians, and that detection time.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

from _common import emit  # noqa: E402

from contexts import HyperparameterSearch, Searchspace  # noqa: E402
from kernel import lagom  # noqa: E402


def trivial(hparams, reporter):
    return {"score": hparams["x"]}


def launcher(name: str):
    if name == "ray":
        from plugins.launchers.ray_cluster import RayLauncher

        return RayLauncher(init_kwargs={"num_cpus": 2})
    if name == "dask":
        from plugins.launchers.dask_cluster import DaskLauncher

        return DaskLauncher()
    if name == "slurm":
        from plugins.launchers.slurm import SlurmLauncher

        return SlurmLauncher()
    return name


def slurm_up() -> bool:
    import shutil
    import subprocess

    return shutil.which("scontrol") is not None and "UP" in subprocess.run(
        ["scontrol", "ping"], capture_output=True, text=True).stdout


def once(name: str, root: str) -> tuple[float, float]:
    t0 = time.time()
    result = lagom(trivial, HyperparameterSearch(Searchspace(x=("DOUBLE", [0.0, 1.0])), num_trials=4, metric="score",
                                                 workers=2), launcher=launcher(name), path=root, verbose=0, report=False)
    total = time.time() - t0
    first = min(json.loads(line)["time"] for line in open(result.path / "journal.jsonl") if '"start"' in line)
    return first - t0, total


def detection(name: str, root: str) -> float | None:
    """Seconds from killing trial 2's agent through the engine to the kernel declaring it gone."""
    import signal

    from kernel import Observer

    chosen, killed = launcher(name), {}

    class Kill(Observer):
        def trial_started(self, view, trial):
            if trial.id != 2 or killed:
                return
            killed["at"], agent = time.time(), trial.agent
            if name == "ray":
                import ray

                ray.kill(chosen.actors[agent])
            elif name == "slurm":
                import subprocess

                subprocess.run(["scancel", f"{chosen.job}_{agent.rsplit('-', 1)[1]}"], check=True)
            else:
                os.kill(next(a["pid"] for a in view.agents if a["id"] == agent), signal.SIGKILL)

    def slow(hparams, reporter):
        time.sleep(0.5)
        return {"score": hparams["x"]}

    result = lagom(slow, HyperparameterSearch(Searchspace(x=("DOUBLE", [0.0, 1.0])), num_trials=6, metric="score",
                                              workers=2), launcher=chosen, path=root, verbose=0, report=False,
                   observers=[Kill()])
    gone = [json.loads(line)["time"] for line in open(result.path / "journal.jsonl") if '"agent-gone"' in line]
    after = [t - killed["at"] for t in gone if "at" in killed and t >= killed["at"]]
    return round(min(after), 3) if after else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="lagom-launch-")
    names = ["local", "thread"] + [n for n, mod in (("ray", "ray"), ("dask", "distributed"))
                                   if importlib.util.find_spec(mod) is not None] + (["slurm"] if slurm_up() else [])
    figures = {}
    for name in names:
        runs = [once(name, root) for _ in range(args.runs)]
        figures[name] = {"first_trial_s": round(statistics.median(r[0] for r in runs), 3),
                         "lagom_s": round(statistics.median(r[1] for r in runs), 3),
                         "kill_detected_s": None if name == "thread" else detection(name, root)}
        print(f"{name}: first trial {figures[name]['first_trial_s']:.2f} s after lagom(), whole call "
              f"{figures[name]['lagom_s']:.2f} s; an agent killed through it declared gone after "
              f"{figures[name]['kill_detected_s']} s", flush=True)
    emit({"bench": "launchers", "agents": 2, **figures})


if __name__ == "__main__":
    main()
