"""Agents on Ray (a local Ray) and on Dask (a LocalCluster): they join, work and leave; an agent
killed through the engine is detected and its trial runs again; a launcher that cannot start its
agents says why at once."""
import os
import signal
import subprocess
import sys

import pytest

import fns
from contexts import HyperparameterSearch, Searchspace
from kernel import Observer, lagom
from plugins.launchers import LauncherError
from plugins.testing import LauncherContract

ray = pytest.importorskip("ray")
distributed = pytest.importorskip("distributed")
from plugins.launchers.dask_cluster import DaskLauncher  # noqa: E402
from plugins.launchers.ray_cluster import RayLauncher  # noqa: E402

pytestmark = pytest.mark.slow


def _search(**kw):
    space = Searchspace(n=("DISCRETE", list(range(6))), sleep=("DISCRETE", [0.3]))
    return HyperparameterSearch(space, "gridsearch", metric="score", workers=2, **kw)


class TestRayLauncher(LauncherContract):
    @pytest.fixture
    def launcher(self):
        return RayLauncher(init_kwargs={"num_cpus": 2})


class TestDaskLauncher(LauncherContract):
    @pytest.fixture
    def launcher(self):
        return DaskLauncher()


def test_a_ray_actor_killed_mid_trial_is_detected_and_its_trial_runs_again(runs):
    launcher, killed = RayLauncher(init_kwargs={"num_cpus": 2}), {}

    class KillActor(Observer):
        def trial_started(self, view, trial):
            if trial.id == 2 and not killed:
                killed["agent"] = trial.agent
                ray.kill(launcher.actors[trial.agent])

    result = lagom(fns.pid_and_sleep, _search(), launcher=launcher, path=runs, verbose=0, observers=[KillActor()])
    assert result.count("finished") == 6, [(t.id, t.state, t.error) for t in result.trials]
    again = result.trials[2]
    assert again.attempts == 2 and again.agent != killed["agent"] and "Ray actor died" in again.interruptions[0]


def test_a_dask_worker_killed_mid_trial_is_found_and_its_trial_runs_again(runs):
    launcher, killed = DaskLauncher(), {}

    class KillWorker(Observer):
        def trial_started(self, view, trial):
            if trial.id == 2 and not killed:  # the agent runs in the worker's process: kill -9 it
                killed["pid"] = next(a["pid"] for a in view.agents if a["id"] == trial.agent)
                os.kill(killed["pid"], signal.SIGKILL)

    result = lagom(fns.pid_and_sleep, _search(), launcher=launcher, path=runs, verbose=0, agent_timeout=2.0,
                   observers=[KillWorker()])
    assert result.count("finished") == 6, [(t.id, t.state, t.error) for t in result.trials]
    again = result.trials[2]
    # elsewhere: another agent, or the same one's task run again by Dask in the restarted worker
    assert again.attempts == 2 and again.result["pid"] != killed["pid"]


def test_a_ray_cluster_without_the_resources_fails_at_once_naming_them(runs):
    with pytest.raises(LauncherError, match=r"has 0 GPU but 2 agents need 2"):
        lagom(fns.pid_and_sleep, _search(), launcher=RayLauncher(resources_per_agent={"CPU": 1, "GPU": 1},
                                                                 init_kwargs={"num_cpus": 2}), path=runs, verbose=0)
    assert not ray.is_initialized()  # the Ray it started for nothing is gone


def test_a_dask_scheduler_that_is_not_there_fails_at_once(runs):
    with pytest.raises(LauncherError, match="no scheduler at tcp://127.0.0.1:9"):
        lagom(fns.pid_and_sleep, _search(), launcher=DaskLauncher(address="tcp://127.0.0.1:9"), path=runs, verbose=0)
    assert not list(runs.glob("*"))  # nothing ran: no experiment folder left behind


def test_without_ray_installed_the_ray_launcher_says_so_and_leaves_no_folder(runs, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if it were not installed: import ray fails
    with pytest.raises(LauncherError, match=r'needs Ray: pip install "lagom-kernel\[ray\]"'):
        lagom(fns.pid_and_sleep, _search(), launcher="ray", path=runs, verbose=0)
    assert not runs.exists() or not list(runs.glob("*"))


NO_GUARD = """
import sys
sys.path[:0] = {path!r}
import fns
from contexts import HyperparameterSearch, Searchspace
from kernel import lagom

lagom(fns.pid_and_sleep, HyperparameterSearch(Searchspace(n=("DISCRETE", [1])), "gridsearch", metric="score",
                                              workers=1), launcher="dask", path={runs!r}, verbose=0)
"""


def test_a_dask_script_without_a_main_guard_is_told_to_add_one_and_leaves_no_folder(runs, tmp_path):
    script = tmp_path / "no_guard.py"
    script.write_text(NO_GUARD.format(path=sys.path, runs=str(runs)))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode != 0
    assert "LauncherError" in out.stderr and 'if __name__ == "__main__":' in out.stderr.splitlines()[-1]
    assert not runs.exists() or not list(runs.glob("*"))


def test_the_engines_resolve_by_name():
    from plugins.registry import resolve
    from plugins.launchers import Launcher

    assert isinstance(resolve("lagom.launchers", "ray", Launcher), RayLauncher)
    assert isinstance(resolve("lagom.launchers", "dask", Launcher), DaskLauncher)


def test_a_dask_task_cancelled_mid_trial_is_reported_at_once_and_its_trial_runs_again(runs):
    launcher, cancelled = DaskLauncher(), {}

    class Cancel(Observer):
        def trial_started(self, view, trial):
            if trial.id == 2 and not cancelled:
                cancelled["agent"] = trial.agent
                launcher.futures[trial.agent].cancel()

    result = lagom(fns.pid_and_sleep, _search(), launcher=launcher, path=runs, verbose=0, observers=[Cancel()])
    assert result.count("finished") == 6, [(t.id, t.state, t.error) for t in result.trials]
    again = result.trials[2]
    # (a cancelled task's thread lives on: its agent may be welcomed back and run it again itself)
    assert again.attempts == 2 and "cancelled" in again.interruptions[0]
