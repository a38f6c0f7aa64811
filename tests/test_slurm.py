"""Agents as a SLURM job array on a real single-node SLURM (.ci/slurm-up.sh starts one)."""
import shutil
import subprocess

import pytest

import fns
from contexts import HyperparameterSearch, Searchspace
from kernel import Observer, lagom
from plugins.launchers import LauncherError
from plugins.launchers.slurm import SlurmLauncher, parse_tasks
from plugins.testing import LauncherContract


def _slurm_up() -> bool:
    if shutil.which("scontrol") is None:
        return False
    out = subprocess.run(["scontrol", "ping"], capture_output=True, text=True)
    return "UP" in out.stdout


up = pytest.mark.skipif(not _slurm_up(), reason="no SLURM here (bash .ci/slurm-up.sh starts one, as root)")


def test_scontrol_s_lines_give_each_array_task_s_state():
    text = ("JobId=12 ArrayJobId=11 ArrayTaskId=1 JobName=x JobState=CANCELLED Reason=None ExitCode=0:15\n"
            "JobId=11 ArrayJobId=11 ArrayTaskId=0 JobName=x JobState=RUNNING Reason=None ExitCode=0:0\n")
    assert parse_tasks(text) == {1: ("CANCELLED", "0:15"), 0: ("RUNNING", "0:0")}


def test_without_sbatch_the_launcher_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(LauncherError, match="needs SLURM's sbatch"):
        SlurmLauncher().start(url="ipc:///x", token="t" * 32, count=1, log_dir=tmp_path, on_exit=print)


@up
@pytest.mark.slow
class TestSlurmLauncher(LauncherContract):
    @pytest.fixture
    def launcher(self):
        return SlurmLauncher()


@up
@pytest.mark.slow
def test_an_agent_scancelled_mid_trial_is_detected_its_trial_runs_again_and_ps_shows_no_token(runs):
    launcher, seen = SlurmLauncher(time="00:10:00"), {}

    class Cancel(Observer):
        def trial_started(self, view, trial):
            if trial.id == 2 and not seen:
                seen["ps"] = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout
                task = trial.agent.rsplit("-", 1)[1]
                seen["agent"] = trial.agent
                subprocess.run(["scancel", f"{launcher.job}_{task}"], check=True)

    space = Searchspace(n=("DISCRETE", list(range(6))), sleep=("DISCRETE", [0.5]))
    token = "slurm-test-token-0123456789abcdef"
    result = lagom(fns.pid_and_sleep, HyperparameterSearch(space, "gridsearch", metric="score", workers=2),
                   launcher=launcher, path=runs, verbose=0, token=token, observers=[Cancel()])
    assert result.count("finished") == 6, [(t.id, t.state, t.error) for t in result.trials]
    again = result.trials[2]
    assert again.attempts == 2 and again.agent != seen["agent"]
    assert "kernel.agent" in seen["ps"] and "--token-file" in seen["ps"] and token not in seen["ps"]
    assert not list((result.path / "agents").glob(".*.token"))  # the token file is gone with the job


@up
def test_a_job_slurm_refuses_fails_at_once_with_its_words(runs):
    with pytest.raises(LauncherError, match="SLURM refused the agents' job: .*[Pp]artition"):
        lagom(fns.pid_and_sleep, HyperparameterSearch(Searchspace(n=("DISCRETE", [1])), "gridsearch",
                                                      metric="score", workers=1),
              launcher=SlurmLauncher(partition="no-such-partition"), path=runs, verbose=0)
