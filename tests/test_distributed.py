"""Strategies give the numbers one device gives; Distributed runs on real agents over tcp://."""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import fns
from contexts import ConfigError, Distributed, HyperparameterSearch, Searchspace, TrialFailed
from kernel import lagom

ROOT = Path(__file__).resolve().parent.parent
CHECK = str(ROOT / "tests" / "strategy_check.py")


def env(devices=2):
    return {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
            "PYTHONPATH": os.pathsep.join(sys.path)}


def test_pmap_and_literal_pmap_equal_one_device_on_the_whole_batch():
    out = subprocess.run([sys.executable, CHECK, "single-vs-local"], capture_output=True, text=True,
                         env=env(2), timeout=120)
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["devices"] == 2
    assert figures["single_vs_plain_jax"] < 1e-6  # single is plain JAX
    assert figures["step_changed_params_by"] > 0.01  # the comparison is not vacuous
    for name in ("pmap", "jaxpmap"):
        assert figures[name]["devices"] == 2
        assert figures[name]["param_diff"] < 1e-5 and figures[name]["loss_diff"] < 1e-5


@pytest.mark.slow
def test_multihost_two_processes_of_two_devices_equal_one_device():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [subprocess.Popen([sys.executable, CHECK, "multihost", str(i), "2", f"127.0.0.1:{port}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(2))
             for i in (0, 1)]
    outs = [p.communicate(timeout=180) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    lead = json.loads(outs[0][0].strip().splitlines()[-1])
    assert lead["devices"] == 4 and lead["local"] == 2
    assert lead["param_diff"] < 1e-5


def test_bad_distributed_configurations():
    with pytest.raises(ConfigError, match="multihost"):
        Distributed(strategy="pmap", agents=2)
    with pytest.raises(ConfigError, match="registered strategies: .*multihost.*pmap"):
        Distributed(strategy="ring-allreduce")
    with pytest.raises(ConfigError, match="agents"):
        Distributed(strategy="multihost", agents=0)
    assert Distributed("multihost").agents == 2 and Distributed().agents == 1


def test_trials_of_a_search_get_the_single_strategy(runs):
    space = Searchspace(n=("DISCRETE", [1, 2]))
    result = lagom(fns.reports_devices, HyperparameterSearch(space, "gridsearch", metric="devices", workers=1),
                   path=runs, verbose=0)
    assert all(t.result == {"devices": 1, "processes": 1, "rank": 0, "name": "single"} for t in result.trials)


@pytest.mark.slow
def test_pmap_on_one_agent_sees_its_cpu_devices(runs):
    result = lagom(fns.reports_devices, Distributed("pmap", cpu_devices=2), path=runs, verbose=0)
    assert result.trials[0].result == {"devices": 2, "processes": 1, "rank": 0, "name": "pmap"}


@pytest.mark.slow
def test_multihost_digits_on_two_agents_of_two_devices_over_tcp(runs):
    sys.path.insert(0, str(ROOT / "examples"))
    import digits_hpo

    hparams = {"lr": 3e-3, "width": 64, "depth": 2, "act": "relu", "budget": 4}
    result = lagom(digits_hpo.train, Distributed("multihost", agents=2, cpu_devices=2, hparams=hparams,
                                                 metric="accuracy"),
                   listen="tcp://127.0.0.1:0", path=runs, verbose=0)
    (trial,) = result.trials
    assert trial.state == "finished" and len(trial.ranks) == 2
    assert trial.result["accuracy"] > 0.9  # digits, really trained over 4 devices in 2 processes
    assert [s for s, _ in trial.history] == [0, 1, 2, 3]  # rank 0's broadcasts, once each
    log = (result.path / "trials" / "trial-00000.log").read_text()
    assert "[rank 1] epoch 3" in log and "\nepoch 3" in log


@pytest.mark.slow
def test_a_failing_rank_ends_the_run_everywhere_within_seconds(runs):
    t0 = time.monotonic()
    with pytest.raises(TrialFailed) as info:
        lagom(fns.dist_fails_on_rank1, Distributed("multihost", agents=2, cpu_devices=1, timeout=60),
              path=runs, verbose=0)
    elapsed = time.monotonic() - t0
    assert "rank 1" in str(info.value) and "boom on rank 1" in str(info.value)
    assert "dist_fails_on_rank1" in str(info.value)  # the function's own traceback
    assert elapsed < 40  # start-up included; JAX's own timeouts are 60 s here: the kernel ended it
    (trial,) = info.value.result.trials
    assert trial.state == "failed"


@pytest.mark.slow
def test_agents_started_by_hand_form_a_multihost_run(runs):
    """Two agents started with python -m kernel.agent (as on two hosts) join a listening run."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url, token = f"tcp://127.0.0.1:{port}", "multihost-by-hand-token-0123456789"
    agents = [subprocess.Popen([sys.executable, "-m", "kernel.agent", "--connect", url, "--token", token,
                                "--id", f"host-{i}"], env=env(1), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL) for i in range(2)]
    try:
        result = lagom(fns.reports_devices, Distributed("multihost", agents=2, cpu_devices=2, start_agents=False),
                       listen=url, token=token, path=runs, verbose=0)
        (trial,) = result.trials
        assert sorted(trial.ranks) == ["host-0", "host-1"]
        assert trial.result == {"devices": 4, "processes": 2, "rank": 0, "name": "multihost"}
        assert all(a.wait(timeout=30) == 0 for a in agents)
    finally:
        for a in agents:
            a.kill()


def test_a_search_of_gang_trials_needs_a_multihost_strategy_and_enough_workers():
    space = Searchspace(lr=("DOUBLE", [0.01, 0.2]))
    with pytest.raises(ConfigError, match="spans one agent's devices"):
        HyperparameterSearch(space, strategy="pmap", agents_per_trial=2)
    with pytest.raises(ConfigError, match="need a strategy"):
        HyperparameterSearch(space, agents_per_trial=2)
    with pytest.raises(ConfigError, match="start at least that many workers"):
        HyperparameterSearch(space, strategy="multihost", agents_per_trial=2, workers=1)


@pytest.mark.slow
def test_an_asha_search_of_two_agent_multihost_trials_survives_a_rank_killed_mid_trial(runs):
    """Every trial a gang of 2 agents x 2 CPU devices; rank 1's agent of trial 1 is SIGKILLed
    mid-trial: rank 0 is aborted and the trial runs again whole, on a gang gathered anew."""
    import signal

    from kernel import Observer
    from plugins.launchers.local import LocalLauncher
    from plugins.optimizers import ASHA

    launcher, killed = LocalLauncher(), {}

    class KillRank1(Observer):
        def trial_metric(self, view, trial, step, value):
            if trial.id == 1 and not killed:
                killed["agent"] = trial.ranks[1]
                os.kill(launcher.pids()[trial.ranks[1]], signal.SIGKILL)

    space = Searchspace(lr=("DOUBLE", [0.01, 0.2]), sleep=("DISCRETE", [0.3]))
    ctx = HyperparameterSearch(space, ASHA(3, 1, 3), num_trials=4, metric="score", workers=2, seed=1,
                               strategy="multihost", agents_per_trial=2, cpu_devices=2)
    result = lagom(fns.gang_train, ctx, launcher=launcher, path=runs, verbose=0, observers=[KillRank1()])
    assert killed and result.count("finished") == len(result.trials), [(t.id, t.state, t.error) for t in result.trials]
    assert all(t.result["processes"] == 2 and t.result["devices"] == 4 and len(t.ranks) == 2 for t in result.trials)
    again = result.trials[1]
    assert again.attempts == 2 and killed["agent"] not in again.ranks and "rank 1's agent was lost" in again.interruptions[0]
    assert any(t.parent is not None and t.budget == 3 for t in result.trials)  # ASHA promoted a gang trial
    journal = [json.loads(line) for line in open(result.path / "journal.jsonl")]
    assert [e["trial"] for e in journal if e["event"] == "requeue"] == [1]


def test_an_ablation_runs_each_trial_as_a_gang_too():
    from contexts import Ablation, AblationStudy

    study = AblationStudy(dataset={"a": [0.0, 1.0], "b": [1.0, 0.0], "y": [0, 1]}, label="y")
    study.features.include("a", "b")
    ctx = Ablation(study, metric="loss", strategy="multihost", agents_per_trial=2, cpu_devices=2)
    spec = ctx.controller().next_trial(0)
    assert spec.gang == 2 and spec.run["strategy"] == "multihost"
    assert "--xla_force_host_platform_device_count=2" in spec.run["env"]["XLA_FLAGS"]
    search = HyperparameterSearch(Searchspace(lr=("DOUBLE", [0.01, 0.2])), num_trials=2, strategy="multihost",
                                  agents_per_trial=2)
    assert search.controller().next_trial(0).gang == 2
    assert HyperparameterSearch(Searchspace(lr=("DOUBLE", [0.01, 0.2])), num_trials=2).controller().next_trial(0).gang == 1
