"""End to end with real agent processes (``python -m kernel.agent``) over tcp:// and ipc://."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zmq

import fns
from contexts import HyperparameterSearch, Searchspace
from kernel import ExperimentError, lagom
from kernel import Observer
from plugins.earlystop import EarlyStopper
from plugins.launchers.local import LocalLauncher
from plugins.optimizers import ASHA
from transports.codec import agent_codec, kernel_codec, token_key

TOKEN = "integration-test-token-0123456789"
SPACE = Searchspace(x=("DOUBLE", [0.0, 1.0]))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hpo(fn_metric="score", **kw):
    kw.setdefault("workers", 2)
    return HyperparameterSearch(kw.pop("space", SPACE), "randomsearch", metric=fn_metric, **kw)


@pytest.mark.parametrize("listen", ["tcp://127.0.0.1:0", None], ids=["tcp", "ipc"])
def test_twenty_trials_on_two_agent_processes(runs, listen):
    # the first trial on each agent waits until both agents have one: both surely work
    space = Searchspace(x=("DOUBLE", [0.0, 1.0]), barrier=("CATEGORICAL", [str(runs.parent / "barrier")]),
                        parties=("DISCRETE", [2]))
    result = lagom(fns.quadratic, hpo(num_trials=20, seed=0, space=space), listen=listen, path=runs, verbose=0)
    assert len(result.trials) == 20
    assert {t.state for t in result.trials} == {"finished"}
    assert len({t.agent for t in result.trials}) == 2  # both agents worked
    best = max(result.trials, key=lambda t: t.metric)
    assert result.best is best and result.best.result["score"] == best.metric
    assert all(t.history == [(s, t.metric * (s + 1) / 3) for s in range(3)] for t in result.trials)
    journal = [json.loads(line) for line in open(result.path / "journal.jsonl")]
    assert sum(e["event"] == "end" for e in journal) == 20
    assert sum(e["event"] == "agent" for e in journal) == 2
    assert len(list((result.path / "agents").glob("*.log"))) == 2


def test_a_failing_trial_is_recorded_and_the_search_goes_on(runs):
    space = Searchspace(n=("DISCRETE", [1, 2, 3, 4, 5, 6]))
    result = lagom(fns.fails_on_odd, HyperparameterSearch(space, "gridsearch", metric="score", workers=2),
                   path=runs, verbose=0)
    by_n = {t.params["n"]: t for t in result.trials}
    assert {n for n, t in by_n.items() if t.state == "failed"} == {1, 3, 5}
    assert {n for n, t in by_n.items() if t.state == "finished"} == {2, 4, 6}
    t1 = by_n[1]
    assert t1.error == "ValueError: odd n=1 is not allowed"
    assert "fns.py" in t1.traceback and "in fails_on_odd" in t1.traceback
    assert "kernel/agent/" not in t1.traceback  # the agent's own frames are trimmed
    assert "ValueError: odd n=1" in (result.path / "trials" / f"trial-{t1.id:05d}.log").read_text()
    assert result.best.params == {"n": 6}


def test_printed_output_reaches_the_trials_log(runs):
    space = Searchspace(n=("DISCRETE", [7, 8]))
    result = lagom(fns.prints, HyperparameterSearch(space, "gridsearch", metric="m", workers=1),
                   path=runs, verbose=0)
    for t in result.trials:
        text = (result.path / "trials" / f"trial-{t.id:05d}.log").read_text()
        assert f"hello from trial with n={t.params['n']}" in text
        assert "second line" in text and "via reporter.log" in text


def test_printed_output_is_kept_once_and_a_flood_of_it_is_cut_in_the_middle(runs, monkeypatch):
    """The trial's log holds its output; the agent's log does not hold it again. Past the cap
    (here 2,000 characters at each end) the middle is cut, with a line that says so."""
    from kernel import trial_logs

    monkeypatch.setattr(trial_logs, "LOG_HEAD", 2000)
    monkeypatch.setattr(trial_logs, "LOG_TAIL", 2000)
    space = Searchspace(lines=("DISCRETE", [5, 1000]))
    result = lagom(fns.prints_lines, HyperparameterSearch(space, "gridsearch", metric="score", workers=1),
                   path=runs, verbose=0)
    short, long = (result.path / "trials" / f"trial-{t.id:05d}.log" for t in result.trials)
    assert short.read_text() == "".join(f"line {i} of 5\n" for i in range(5))
    text = long.read_text()
    assert text.startswith("line 0 of 1000\n") and text.endswith("line 999 of 1000\n")
    assert "of this trial's output were cut here" in text and len(text) < 4500
    agent_logs = "".join(p.read_text() for p in (result.path / "agents").glob("*.log"))
    assert "of 1000" not in agent_logs and "of 5" not in agent_logs


def test_a_number_returned_is_the_metric(runs):
    result = lagom(fns.returns_number, hpo("anything", num_trials=4, workers=1), path=runs, verbose=0)
    assert all(t.metric == t.params["x"] * 2 for t in result.trials)


def test_unknown_argument_fails_before_any_agent_starts(runs):
    t0 = time.monotonic()
    with pytest.raises(TypeError) as info:
        lagom(fns.asks_for_nonsense, hpo(num_trials=3), path=runs, verbose=0)
    assert "'optimizer_state'" in str(info.value)
    assert "hparams, reporter, dataset, model, strategy" in str(info.value)
    assert not runs.exists() and time.monotonic() - t0 < 2


def test_wrong_metric_name_stops_with_the_names_returned(runs):
    with pytest.raises(ExperimentError, match="returned {loss}.*metric='accuracy'"):
        lagom(fns.returns_wrong_metric, hpo("accuracy", num_trials=5), path=runs, verbose=0)


def test_an_agent_started_by_hand_joins_a_listening_experiment(runs):
    url = f"tcp://127.0.0.1:{free_port()}"
    agent = subprocess.Popen(
        [sys.executable, "-m", "kernel.agent", "--connect", url, "--token", TOKEN, "--id", "by-hand"],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        result = lagom(fns.quadratic, hpo(num_trials=5, workers=0), listen=url, token=TOKEN,
                       path=runs, verbose=0)
        assert {t.agent for t in result.trials} == {"by-hand"}
        assert result.count("finished") == 5
        assert agent.wait(timeout=10) == 0  # told to shut down, it leaves cleanly
    finally:
        agent.kill()


def test_the_printed_agent_command_works_as_printed(runs, capsys):
    """It names this interpreter (not a bare python), a host other machines can reach (not the
    wildcard, not localhost), and a file holding the token that only this user can read; the
    token itself is printed nowhere, even with verbose=0 (it would land in CI logs). Run from /
    with a bare PATH, it joins (only the host is swapped for loopback: tests stay on this host)."""
    import shlex

    def train(hparams, reporter):  # by value: the agent needs nothing of this test's folder
        return {"score": 1.0}

    port, token = free_port(), "printed-nowhere-0123456789abcdef"
    run = fns.Background(train, hpo(num_trials=2, workers=0), listen=f"tcp://0.0.0.0:{port}", path=runs,
                         verbose=0, token=token)
    deadline, out = time.monotonic() + 30, ""
    while "--connect" not in out and time.monotonic() < deadline:
        out += capsys.readouterr().out
        time.sleep(0.01)
    command = next(line.strip() for line in out.splitlines() if "-m kernel.agent" in line)
    assert command.startswith(f"{shlex.quote(sys.executable)} -m kernel.agent")
    token_file = Path(shlex.split(command.split("--token-file")[1])[0])
    assert token_file.read_text() == token and token_file.stat().st_mode & 0o777 == 0o600
    host = command.split("--connect tcp://")[1].split()[0].rsplit(":", 1)[0]
    assert host not in ("0.0.0.0", "localhost", "") and not host.startswith("127.")
    agent = subprocess.run(command.replace(f"tcp://{host}:", "tcp://127.0.0.1:"), shell=True, cwd="/",
                           env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60)
    run.join(30)
    assert agent.returncode == 0, agent.stderr
    assert run.result.count("finished") == 2
    captured = capsys.readouterr()
    assert token not in out + captured.out + captured.err + agent.stdout + agent.stderr
    assert not token_file.exists()  # gone with the experiment


def test_no_process_lagom_starts_shows_the_token_to_other_users(runs):
    """As another user would look: every process's command line, and the agents' environment."""
    launcher, token, seen = LocalLauncher(), "ps-check-token-0123456789abcdef", {}
    attacker = ("import json, os, sys\n"
                "args = {}\n"
                "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
                "    try: args[pid] = open(f'/proc/{pid}/cmdline', 'rb').read().decode(errors='replace')\n"
                "    except OSError: pass\n"
                "env = {}\n"
                "for pid in sys.argv[1:]:\n"
                "    try: env[pid] = open(f'/proc/{pid}/environ', 'rb').read().decode(errors='replace')\n"
                "    except OSError as e: env[pid] = e.strerror\n"
                "print(json.dumps({'args': args, 'env': env}))\n")
    import shutil

    system_python = shutil.which("python3", path="/usr/bin:/bin")  # one that user "nobody" may run
    as_other = {"user": "nobody"} if os.geteuid() == 0 and system_python else {}
    python = system_python if as_other else sys.executable

    class Look(Observer):
        def trial_started(self, view, trial):
            if not seen:
                pids = [str(p) for p in launcher.pids().values()]
                out = subprocess.run([python, "-c", attacker, *pids], capture_output=True, text=True,
                                     timeout=30, cwd="/", **as_other)
                seen.update(json.loads(out.stdout), pids=pids)

    lagom(fns.quadratic, hpo(num_trials=2), launcher=launcher, token=token, path=runs, verbose=0,
          observers=[Look()])
    assert set(seen["pids"]) <= set(seen["args"])  # the agents were there to be looked at
    assert not [args for args in seen["args"].values() if token in args]
    if as_other:  # their environment (where the token is) is theirs alone
        assert all(token not in env for env in seen["env"].values())


def test_an_agent_with_the_wrong_token_gets_nothing_and_gives_up(runs):
    url = f"tcp://127.0.0.1:{free_port()}"
    intruder = subprocess.Popen(
        [sys.executable, "-m", "kernel.agent", "--connect", url, "--token", "wrong-token-wrong-token",
         "--wait", "3"], env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # The experiment stays open until the intruder has given up, so its hello surely arrived.
    space = Searchspace(pid=("DISCRETE", [intruder.pid]))
    result = lagom(fns.until_pid_exits, HyperparameterSearch(space, "gridsearch", metric="score", workers=1),
                   listen=url, path=runs, verbose=0)
    out, _ = intruder.communicate(timeout=30)
    assert result.trials[0].state == "finished"
    assert intruder.returncode == 1 and "token" in out
    assert {t.agent for t in result.trials} != {None} and all(t.agent.startswith("local-") for t in result.trials)
    # CurveZMQ: its handshake failed (it holds no key pair derived from the right token), so not
    # one of its messages reached the kernel, not even to be rejected
    assert not any(k in result.rejected for k in ("signature", "unknown-peer", "msgpack"))


def test_agent_leaves_when_the_kernel_goes_silent(tmp_path):
    """A fake kernel welcomes the agent, then says nothing: the agent exits on its own."""
    ctx = zmq.Context.instance()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    key = token_key(TOKEN)
    agent = subprocess.Popen(
        [sys.executable, "-m", "kernel.agent", "--connect", f"tcp://127.0.0.1:{port}", "--token", TOKEN,
         "--patience", "2", "--insecure"], env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert router.poll(20_000)
        peer, *frames = router.recv_multipart()
        assert kernel_codec(key).decode(frames)["type"] == "hello"
        import cloudpickle
        router.send_multipart([peer, *agent_codec(key).encode(
            "welcome", experiment="x", function=(fn := cloudpickle.dumps(fns.quadratic)), size=len(fn), heartbeat=0.5, env={},
            inject=None)])
        out, _ = agent.communicate(timeout=30)
        assert agent.returncode == 2 and "silent" in out
    finally:
        agent.kill()
        router.close()


def test_agent_help():
    out = subprocess.run([sys.executable, "-m", "kernel.agent", "--help"], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.returncode == 0 and "--connect" in out.stdout and "--token" in out.stdout


def test_a_killed_agent_loses_no_trial(runs):
    """SIGKILL one of two agents mid-trial: its trial is re-queued and the search finishes."""
    launcher = LocalLauncher()
    killed = {}

    class KillOnce(Observer):
        def trial_started(self, view, trial):
            if trial.id == 3 and not killed:
                killed["agent"] = trial.agent
                os.kill(launcher.pids()[trial.agent], signal.SIGKILL)

    space = Searchspace(n=("DISCRETE", list(range(8))), sleep=("DISCRETE", [0.3]))
    result = lagom(fns.pid_and_sleep, HyperparameterSearch(space, "gridsearch", metric="score", workers=2),
                   launcher=launcher, path=runs, verbose=0, observers=[KillOnce()])
    assert result.count("finished") == 8
    t3 = result.trials[3]
    assert t3.attempts == 2 and t3.agent != killed["agent"]
    journal = [json.loads(line) for line in open(result.path / "journal.jsonl")]
    assert any(e["event"] == "requeue" and e["trial"] == 3 for e in journal)


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def test_local_agents_are_forked_from_the_zygote_and_survive_its_kill(runs):
    """Agents come from one warm process (no interpreter start each); kill -9 of that process
    mid-search ends its agents, fresh ones come from a new zygote, and no trial is lost."""
    from plugins.launchers.local import _Zygote

    launcher, seen = LocalLauncher(from_driver=False), {}  # a fork of the driver: tests/test_forked_agents.py

    class KillZygote(Observer):
        def trial_started(self, view, trial):
            if trial.id == 4 and not seen:  # each agent has finished a trial by then
                zygote = _Zygote.get().pid
                seen["parents"] = {_parent(pid) for pid in launcher.pids().values()}
                seen["zygote"] = zygote
                os.kill(zygote, signal.SIGKILL)

    space = Searchspace(n=("DISCRETE", list(range(8))), sleep=("DISCRETE", [0.2]))
    result = lagom(fns.pid_and_sleep, HyperparameterSearch(space, "gridsearch", metric="score", workers=2),
                   launcher=launcher, path=runs, verbose=0, observers=[KillZygote()])
    assert seen["parents"] == {seen["zygote"]}  # both agents were forked by the zygote
    assert result.count("finished") == 8, [(t.id, t.state, t.error, t.interruptions) for t in result.trials]
    assert any(t.attempts == 2 for t in result.trials)  # the trials cut by the kill ran again
    assert _Zygote.get().pid != seen["zygote"]
    assert len({t.result["pid"] for t in result.trials}) >= 3  # replacements did the rest


def test_a_script_without_a_main_guard_runs_once(tmp_path):
    """Forked agents never run the user's script again (multiprocessing's spawn would, and
    start agents without end)."""
    script = tmp_path / "search.py"
    script.write_text("from contexts import HyperparameterSearch, Searchspace\n"
                      "from kernel import lagom\n"
                      "print('script ran', flush=True)\n"
                      "def train(hparams):\n"
                      "    return {'score': hparams['x']}\n"
                      "r = lagom(train, HyperparameterSearch(Searchspace(x=('DOUBLE', [0.0, 1.0])), num_trials=4,\n"
                      "          metric='score', workers=2), verbose=0)\n"
                      "print('finished', r.count('finished'))\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.count("script ran") == 1 and "finished 4" in out.stdout
    logs = list((tmp_path / "lagom-runs").glob("*/agents/*.log"))
    assert len(logs) == 2 and not any("script ran" in p.read_text() for p in logs)


def test_all_agents_dying_ends_the_experiment_with_an_error(runs):
    launcher = LocalLauncher(max_restarts=0)  # agents that die for good (replacements are the default)

    class KillAll(Observer):
        def trial_started(self, view, trial):
            for pid in launcher.pids().values():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    space = Searchspace(n=("DISCRETE", [1, 2, 3]), sleep=("DISCRETE", [5.0]))
    with pytest.raises(ExperimentError, match="every agent has exited"):
        lagom(fns.pid_and_sleep, HyperparameterSearch(space, "gridsearch", metric="score", workers=2),
              launcher=launcher, path=runs, verbose=0, observers=[KillAll()])


def test_the_median_rule_stops_poor_trials_on_real_agents(runs):
    """The first two trials are good and end; the poor ones that follow are stopped at the
    broadcast where the rule can first judge them (the agent waits for the kernel's verdict on
    each broadcast), the good one is left to finish. One agent keeps the order fixed."""
    space = Searchspace(x=("DISCRETE", [0.9, 0.8, 0.1, 0.2, 0.87]))
    result = lagom(fns.flat_curve, HyperparameterSearch(space, "gridsearch", metric="score", workers=1,
                                                        es_policy="median", es_min=2),
                   path=runs, verbose=0)
    state = {t.params["x"]: t for t in result.trials}
    assert state[0.9].state == state[0.8].state == state[0.87].state == "finished"
    assert state[0.1].state == state[0.2].state == "stopped"
    assert all(len(state[x].history) == 1 for x in (0.1, 0.2))  # stopped at the first judged broadcast
    assert state[0.1].metric == 0.1 and result.best.params == {"x": 0.9}


class StopWhenAsked(EarlyStopper):
    def should_stop(self, trial_id, history):
        return True


def test_a_stop_takes_effect_at_its_broadcast_and_spares_trials_that_did_their_budget(runs):
    """ASHA's budget-1 trials broadcast once, and that broadcast completes their budget: never
    judged, they finish. A promoted trial is judged first once past its parent's budget (at
    its second broadcast for budget 3, its fourth for budget 9), stopped there, and trains no
    further epoch. The best is the best of the largest budget finished, and says so."""
    result = lagom(fns.epochs_of_x, HyperparameterSearch(SPACE, ASHA(3, 1, 9), num_trials=9, metric="score",
                                                         es_policy=StopWhenAsked(), es_min=0,
                                                         seed=4, workers=2),
                   path=runs, verbose=0)
    by_budget = {b: [t for t in result.trials if t.budget == b] for b in (1, 3, 9)}
    assert len(by_budget[1]) == 9 and {t.state for t in by_budget[1]} == {"finished"}
    assert by_budget[3] and {t.state for t in by_budget[3] + by_budget[9]} == {"stopped"}
    for t in by_budget[3] + by_budget[9]:
        epochs = 2 if t.budget == 3 else 4  # one past the parent's budget (1, or 3)
        trained = (result.path / "trials" / f"trial-{t.id:05d}.log").read_text().split()
        assert trained.count("trained") == epochs and len(t.history) == epochs  # no epoch after the stop
    assert result.best.budget == 1 and result.best is max(by_budget[1], key=lambda t: t.metric)
    assert result.best_at(3).budget == 3 and "result.best_at" not in str(result)
    with pytest.raises(LookupError, match="budgets run: \\[1, 3"):
        result.best_at(27)


def test_a_frozen_agent_is_declared_lost_and_its_trial_runs_elsewhere(runs):
    """SIGSTOP: the process lives and its socket stays open, but it stops beating."""
    launcher = LocalLauncher()
    frozen = {}

    class Freeze(Observer):
        def trial_started(self, view, trial):
            if trial.id == 2 and not frozen:
                frozen["agent"], frozen["pid"] = trial.agent, launcher.pids()[trial.agent]
                frozen["at"] = time.monotonic()
                os.kill(frozen["pid"], signal.SIGSTOP)

        def trial_ended(self, view, trial):
            if trial.id == 2 and "pid" in frozen:
                frozen["detected_in"] = time.monotonic() - frozen["at"]
                os.kill(frozen["pid"], signal.SIGCONT)  # it may come back; it is a new agent then

    space = Searchspace(n=("DISCRETE", list(range(6))), sleep=("DISCRETE", [0.5]))
    result = lagom(fns.pid_and_sleep, HyperparameterSearch(space, "gridsearch", metric="score", workers=2),
                   launcher=launcher, path=runs, verbose=0, observers=[Freeze()], agent_timeout=2.0)
    assert result.count("finished") == 6
    t2 = result.trials[2]
    assert t2.attempts == 2 and t2.agent != frozen["agent"]
    journal = [json.loads(line) for line in open(result.path / "journal.jsonl")]
    gone = [e for e in journal if e["event"] == "agent-gone"]
    assert gone and gone[0]["id"] == frozen["agent"] and "silent" in gone[0]["reason"]
    assert frozen["detected_in"] < 10


def test_a_trial_that_ignores_stop_is_ended_and_its_agent_comes_back(runs):
    from plugins.earlystop import EarlyStopper

    class StopAt3(EarlyStopper):
        def should_stop(self, trial_id, history):
            return len(history) >= 3

    space = Searchspace(n=("DISCRETE", [1, 2]))
    t0 = time.monotonic()
    result = lagom(fns.ignores_stop, HyperparameterSearch(space, "gridsearch", metric="score", workers=1,
                                                          es_policy=StopAt3(), es_min=0),
                   path=runs, verbose=0, stop_grace=1.0)
    assert [t.state for t in result.trials] == ["stopped", "stopped"]
    assert all("ignored its stop" in t.error for t in result.trials)
    first, second = result.trials
    assert second.agent == first.agent + "~1"  # the same agent process, restarted
    assert time.monotonic() - t0 < 30


def test_a_hung_trial_past_its_time_limit_fails_and_the_search_goes_on(runs):
    space = Searchspace(n=("DISCRETE", [0, 1, 2, 3]))
    result = lagom(fns.hangs_or_returns, HyperparameterSearch(space, "gridsearch", metric="score", workers=1,
                                                              trial_timeout=1.0),
                   path=runs, verbose=0, stop_grace=0.5)
    states = {t.params["n"]: t.state for t in result.trials}
    assert states == {0: "finished", 1: "failed", 2: "finished", 3: "finished"}
    assert "time limit of 1.0s" in result.trials[1].error
    pids = {t.result["pid"] for t in result.trials if t.result}
    assert len(pids) == 1  # one agent process served them all, restarted in place
    journal = [json.loads(line) for line in open(result.path / "journal.jsonl")]
    assert any(e["event"] == "killed" and e["trial"] == 1 for e in journal)


def test_an_insecure_kernel_still_refuses_a_wrong_token(runs):
    """Without CurveZMQ, messages are still signed: a wrong token's hello is counted and dropped."""
    url = f"tcp://127.0.0.1:{free_port()}"
    intruder = subprocess.Popen(
        [sys.executable, "-m", "kernel.agent", "--connect", url, "--token", "wrong-token-wrong-token",
         "--wait", "3", "--insecure"], env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    space = Searchspace(pid=("DISCRETE", [intruder.pid]))
    result = lagom(fns.until_pid_exits, HyperparameterSearch(space, "gridsearch", metric="score", workers=1),
                   listen=url, path=runs, verbose=0, insecure=True)
    intruder.communicate(timeout=30)
    assert intruder.returncode == 1 and result.trials[0].state == "finished"
    assert result.rejected.get("signature", 0) >= 1


def test_agents_refuse_a_kernel_that_lacks_the_key(tmp_path):
    """An impostor kernel (right address, no key pair from the token) never gets an agent."""
    ctx = zmq.Context.instance()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    impostor_public, impostor_secret = zmq.curve_keypair()
    router.curve_server, router.curve_secretkey, router.curve_publickey = True, impostor_secret, impostor_public
    port = router.bind_to_random_port("tcp://127.0.0.1")
    agent = subprocess.Popen(
        [sys.executable, "-m", "kernel.agent", "--connect", f"tcp://127.0.0.1:{port}", "--token", TOKEN,
         "--wait", "3"], env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = agent.communicate(timeout=30)
        assert router.poll(0) == 0  # not even a hello arrived
        assert agent.returncode == 1
    finally:
        agent.kill()
        router.close()


def test_an_agent_without_a_token_says_how_to_get_one():
    env = {k: v for k, v in os.environ.items() if k != "LAGOM_TOKEN"}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    out = subprocess.run([sys.executable, "-m", "kernel.agent", "--connect", "tcp://127.0.0.1:9"],
                         capture_output=True, text=True, env=env, timeout=30)
    assert out.returncode == 2 and "no token" in out.stderr and "LAGOM_TOKEN" in out.stderr


def test_a_token_file_must_be_private_and_a_token_in_argv_is_warned_about(tmp_path, capsys):
    from kernel.agent.cli import _parser, _token, main

    path = tmp_path / "token"
    path.write_text("file-token-0123456789abcdef\n")
    path.chmod(0o644)
    with pytest.raises(SystemExit):
        main(["--connect", "tcp://127.0.0.1:9", "--token-file", str(path)])
    assert f"chmod 600 {path}" in capsys.readouterr().err
    path.chmod(0o600)
    assert _token(_parser().parse_args(["--connect", "x", "--token-file", str(path)])) == "file-token-0123456789abcdef"
    assert _token(_parser().parse_args(["--connect", "x", "--token", "argv-token"])) == "argv-token"
    assert "visible to every user" in capsys.readouterr().err


def held_while_partitioned(hparams, reporter):
    """On the agent behind the relay (``part_pid``) the first trial lasts until the partition
    has healed; every other trial waits for ``release``, looking for a stop as a training loop
    would (a trial the kernel gave up on ends there: it runs elsewhere)."""
    import pathlib

    folder = pathlib.Path(hparams["dir"])
    partitioned = os.getpid() == hparams["part_pid"] and not (folder / "healed").exists()
    marker = folder / ("healed" if partitioned else "release")
    if partitioned:  # the test cuts the link once the trial runs here, not once the kernel sent it
        (folder / "part-runs").touch()
    deadline = time.monotonic() + 60
    while not marker.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{marker} never appeared")
        reporter.should_stop()
        time.sleep(0.01)
    reporter.broadcast(metric=float(hparams["n"]), step=0)
    return {"score": float(hparams["n"])}


def wait_for_event(folder, match, timeout=60):
    """The first journal event for which ``match`` holds (the journal is written as things happen)."""
    from kernel.journal import read_journal

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (folder / "journal.jsonl").exists():
            found = [e for e in read_journal(folder)[0] if match(e)]
            if found:
                return found[0]
        time.sleep(0.02)
    raise AssertionError("the journal never showed the event awaited")


@pytest.mark.slow
def test_an_agent_started_before_its_kernel_says_hello_once(runs, tmp_path):
    """Before the kernel listens, the agent's connections are accepted and closed at once (as a
    proxy in front of a kernel not yet up does): those closings are not a kernel lost. Once
    welcomed it says no second hello, so the kernel runs none of its trials twice."""
    import threading

    port, tried = free_port(), threading.Event()
    server = socket.create_server(("127.0.0.1", port))
    accepted = []

    def accept_and_close():
        while len(accepted) < 2:
            conn, _ = server.accept()
            accepted.append(conn)
            conn.close()
        tried.set()

    threading.Thread(target=accept_and_close, daemon=True).start()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "LAGOM_TOKEN": TOKEN}
    log = open(tmp_path / "agent.log", "w+")
    agent = subprocess.Popen([sys.executable, "-m", "kernel.agent", "--connect", f"tcp://127.0.0.1:{port}",
                              "--id", "early", "--patience", "60"], env=env, stderr=log)
    try:
        assert tried.wait(30), "the agent never tried to connect"
        server.close()
        space = Searchspace(x=("DOUBLE", [0.0, 1.0]), sleep=("DISCRETE", [0.05]))
        result = lagom(fns.quadratic, HyperparameterSearch(space, "randomsearch", num_trials=4, metric="score",
                                                           workers=0), listen=f"tcp://127.0.0.1:{port}",
                       token=TOKEN, path=runs, verbose=0)
        assert result.count("finished") == 4 and {t.attempts for t in result.trials} == {1}
        events = [json.loads(line) for line in open(result.path / "journal.jsonl")]
        assert not [e for e in events if e["event"] == "requeue"]
        assert sum(e["event"] == "agent" for e in events) == 1  # one hello, one welcome
        assert agent.wait(timeout=30) == 0
        assert "connection closed" not in open(log.name).read()
    finally:
        agent.kill()


@pytest.mark.slow
def test_an_agent_cut_off_by_a_partition_is_replaced_then_rejoins(runs, tmp_path):
    """A real partition: the agent reaches the kernel through a TCP relay, frozen with SIGSTOP
    (no FIN, no RST: packets just stop) and thawed later."""
    import threading

    kernel_port, relay_port = free_port(), free_port()
    relay = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "relay.py"), str(relay_port),
                              str(kernel_port)], stdout=subprocess.PIPE, text=True)
    assert relay.stdout.readline().strip() == "ready"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "LAGOM_TOKEN": TOKEN}
    part = subprocess.Popen([sys.executable, "-m", "kernel.agent", "--connect", f"tcp://127.0.0.1:{relay_port}",
                             "--id", "part", "--patience", "60"], env=env)
    direct, folder, box = [], {}, {}
    space = Searchspace(n=("DISCRETE", list(range(4))), dir=("CATEGORICAL", [str(tmp_path)]),
                        part_pid=("DISCRETE", [part.pid]))

    def orchestrate():
        folder["path"] = next(iter(wait_for_dir(runs)))
        first = wait_for_event(folder["path"], lambda e: e["event"] == "start" and e["agent"] == "part")
        wait_for_file(tmp_path / "part-runs")  # the journal names a trial before it leaves: wait until it runs
        os.kill(relay.pid, signal.SIGSTOP)  # the partition begins while "part" runs a trial
        box["frozen_at"], box["trial"] = time.time(), first["trial"]
        direct.append(subprocess.Popen([sys.executable, "-m", "kernel.agent", "--connect",
                                        f"tcp://127.0.0.1:{kernel_port}", "--id", "direct"], env=env))
        gone = wait_for_event(folder["path"], lambda e: e["event"] == "agent-gone" and e["id"] == "part")
        box["requeue_s"] = gone["time"] - box["frozen_at"]
        (tmp_path / "healed").touch()
        os.kill(relay.pid, signal.SIGCONT)  # healed: its late messages now arrive
        wait_for_event(folder["path"], lambda e: e["event"] == "start" and e["agent"] == "part"
                       and e["time"] > box["frozen_at"])
        (tmp_path / "release").touch()

    def wait_for_file(path):
        deadline = time.monotonic() + 60
        while not path.exists():
            if time.monotonic() > deadline:
                raise AssertionError(f"{path} never appeared")
            time.sleep(0.01)

    def wait_for_dir(root):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = list(root.glob("*/journal.jsonl")) if root.exists() else []
            if found:
                return [found[0].parent]
            time.sleep(0.02)
        raise AssertionError("no experiment folder")

    helper = threading.Thread(target=orchestrate, daemon=True)
    helper.start()
    try:
        result = lagom(held_while_partitioned, HyperparameterSearch(space, "gridsearch", metric="score", workers=0),
                       listen=f"tcp://127.0.0.1:{kernel_port}", token=TOKEN, path=runs, verbose=0, agent_timeout=2.0)
        helper.join(10)
        cut = result.trials[box["trial"]]
        assert result.count("finished") == 4 and cut.attempts == 2 and "silent" in cut.interruptions[0]
        # declared lost on time: agent_timeout (2 s) after its last beat, at the next 1 s sweep, with
        # room for a loaded machine; never left waiting
        assert box["requeue_s"] < 2.0 + 3.0
        assert result.rejected.get("stale", 0) >= 1  # its late broadcast and final for the old attempt
        journal = [json.loads(line) for line in open(result.path / "journal.jsonl")]
        assert [e["id"] for e in journal if e["event"] == "agent"].count("part") == 2  # welcomed again
        assert any(e["event"] == "start" and e["agent"] == "part" and e["time"] > box["frozen_at"] for e in journal)
        ends = [e["trial"]["id"] for e in journal if e["event"] == "end"]
        assert sorted(ends) == [0, 1, 2, 3]  # no trial counted twice
        # status, the dashboard and the report read the partition's journal as the kernel ended it
        assert fns.readers_agree(result.path) == {t.id: str(t.state) for t in result.trials}
        assert "ran again after their agent was lost" in str(result)
        print(json.dumps({"requeue_s": round(box["requeue_s"], 2), "stale": result.rejected.get("stale", 0),
                          "ended_twice": len(ends) - len(set(ends))}))
    finally:
        for p in [part, relay, *direct]:
            p.kill()


def test_a_trial_that_kills_its_process_fails_with_the_cause_and_the_search_goes_on(runs):
    # Trials of 50 ms: none is taken back and run early by an idle agent, so trials are left
    # after both crashes (instant ones could all have run before the second, on its agent).
    space = Searchspace(n=("DISCRETE", list(range(6))), sleep=("DISCRETE", [0.05]))
    result = lagom(fns.crashes_on, HyperparameterSearch(space, "gridsearch", metric="score", workers=2),
                   path=runs, verbose=0)
    by_n = {t.params["n"]: t for t in result.trials}
    assert {n for n, t in by_n.items() if t.state == "finished"} == {0, 3, 4, 5}
    # Run once, or (its agent held the next trial, so the death might have been that one's) once
    # more alone, where the same death is its own; never a third time.
    assert by_n[1].state == "failed" and "exit code 3" in by_n[1].error and by_n[1].attempts in (1, 2)
    assert by_n[2].state == "failed" and "SIGSEGV" in by_n[2].error and by_n[2].attempts in (1, 2)
    assert "Segmentation fault" in by_n[2].traceback  # the dying process's own last words
    journal = [json.loads(line) for line in open(result.path / "journal.jsonl")]
    # a replacement agent joined: whichever way the two crashes fall, some trial after them needed one
    assert any(e["event"] == "agent" and "+" in e["id"] for e in journal)
    logs = "".join(p.read_text(errors="replace") for p in (result.path / "agents").glob("*.log"))
    assert "Segmentation fault" in logs


def test_stop_ends_an_agent_that_never_joined_instead_of_waiting_for_it(tmp_path):
    launcher = LocalLauncher()
    exits = []
    (agent_id,) = launcher.start(url="tcp://127.0.0.1:9", token="never-joins-token-0123456789", count=1,
                                 log_dir=tmp_path, on_exit=lambda *a: exits.append(a))
    proc = launcher._procs[agent_id]
    launcher.stop()  # it never heard a shutdown (it never reached a kernel): it is ended, not awaited
    assert proc.returncode == -signal.SIGTERM and exits == []


def test_a_trial_traceback_names_the_users_file_and_shows_the_line(runs):
    """A function defined here travels by value (cloudpickle would call its file <dynamic-code>)."""
    def train(hparams, reporter):
        table = {"a": 1}
        return {"score": table["no such column"]}  # the line the traceback must show

    result = lagom(train, hpo(num_trials=1, workers=1), path=runs, verbose=0, fail_fast=None)
    tb = result.trials[0].traceback
    assert f'File "{__file__}"' in tb and "<dynamic-code>" not in tb
    assert 'return {"score": table["no such column"]}' in tb


def test_a_single_run_raises_the_original_exception_chained(runs):
    def train(hparams):
        raise KeyError("budget")

    from contexts import Single, TrialFailed

    with pytest.raises(KeyError) as info:  # except KeyError works
        lagom(train, Single(), path=runs, verbose=0)
    error = info.value
    assert isinstance(error, TrialFailed) and error.result.trials[0].state == "failed"
    original = error.__cause__
    assert type(original) is KeyError and original.args == ("budget",)
    frames = []
    tb = original.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    assert frames[-1] == "train"  # pdb.post_mortem(original.__traceback__) lands in the function


def test_a_closure_over_a_large_array_runs_and_is_named_in_a_warning(runs, capsys):
    """Over the 64 MiB message limit: the function travels in parts, and the user hears why it is big."""
    import numpy as np

    big = np.random.default_rng(0).random(9_500_000)  # 76 MB

    def train(hparams, reporter):
        return {"score": float(big[int(hparams["x"] * 10)])}

    result = lagom(train, hpo(num_trials=2), path=runs, verbose=0)
    assert result.count("finished") == 2
    assert result.best.metric in (float(big[int(t.params["x"] * 10)]) for t in result.trials)
    err = capsys.readouterr().err
    assert "the training function is 76 MB pickled" in err and "it captures big (76 MB)" in err
    assert "with_data" in err


def test_with_data_hands_large_objects_to_trials_by_name(runs, capsys):
    import numpy as np

    from kernel import with_data

    images = np.arange(9_000_000, dtype=np.float64)  # 72 MB, sent once per agent

    def train(hparams, reporter, images):
        return {"score": float(images[int(hparams["x"] * 1000)]), "size": float(images.size)}

    result = lagom(with_data(train, images=images), hpo(num_trials=3), path=runs, verbose=0)
    assert result.count("finished") == 3 and all(t.result["size"] == images.size for t in result.trials)
    assert "warning" not in capsys.readouterr().err


def test_when_every_agent_has_exited_the_experiment_ends_instead_of_waiting(runs):
    """Agents that cannot even start (here, a "python" that exits at once), replaced until the
    launcher gives up: the kernel says so, it does not wait for agents that will never come."""
    launcher = LocalLauncher(python="/bin/false", max_restarts=2)
    with pytest.raises(ExperimentError, match="every agent has exited"):
        lagom(fns.quadratic, hpo(num_trials=3), launcher=launcher, path=runs, verbose=0)


def test_gpus_are_shared_out_between_local_agents():
    from plugins.launchers.local import gpu_environments

    assert gpu_environments(["0", "1", "2", "3"], 2) == [{"CUDA_VISIBLE_DEVICES": "0,1"}, {"CUDA_VISIBLE_DEVICES": "2,3"}]
    shared = gpu_environments(["0"], 2)  # two agents on one GPU: neither takes 75% of its memory
    assert shared == [{"CUDA_VISIBLE_DEVICES": "0", "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}] * 2
    assert gpu_environments([], 3) == [{}, {}, {}]


def test_each_local_agent_gets_its_own_gpus_and_says_which(runs, monkeypatch):
    """The host's GPUs as CUDA_VISIBLE_DEVICES names them (no GPU needed: the agents only report)."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    space = Searchspace(x=("DISCRETE", [0.1, 0.2]), barrier=("CATEGORICAL", [str(runs.parent / "barrier")]),
                        parties=("DISCRETE", [2]))  # each agent's first trial waits for the other: both join
    result = lagom(fns.quadratic, HyperparameterSearch(space, "gridsearch", metric="score", workers=2),
                   path=runs, verbose=0)
    journal = [json.loads(line) for line in open(result.path / "journal.jsonl")]
    gpus = sorted(tuple(d for d in e["devices"] if d.startswith("gpu")) for e in journal if e["event"] == "agent")
    assert gpus == [("gpu:0",), ("gpu:1",)]


def test_the_zygote_finds_the_in_process_strategy_before_it_forks_and_imports_no_jax():
    """Its agents start without reading every package's entry points (that lookup made 32
    agents on 2 cores start their first trials 0.15 s apart), and a fork stays safe (no JAX)."""
    probe = ("import sys, plugins.launchers.zygote; from kernel.agent import inprocess; "
             "print(inprocess._single.__name__, any(m == 'jax' or m.startswith('jax.') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["SingleDevice", "False"]
