"""kill -9 the kernel mid-experiment, then resume from its folder."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import fns
import resume_victim
from kernel import lagom
from kernel.journal import read_journal
from kernel.timeline import Timeline
from kernel.trials import ENDED

HERE = Path(__file__).resolve().parent


def events(folder):
    return read_journal(folder)[0]


def kill_after(kind, runs, ended, *extra):
    """Start the victim in its own process group; SIGKILL kernel and agents once ``ended`` trials ended."""
    proc = subprocess.Popen([sys.executable, str(HERE / "resume_victim.py"), kind, str(runs), *extra],
                            start_new_session=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    deadline = time.monotonic() + 60
    folder = None
    try:
        while time.monotonic() < deadline:  # wait for the journal to show enough ended trials
            found = list(runs.glob(f"victim-{kind}-*/journal.jsonl"))
            if found:
                folder = found[0].parent
                if sum(e["event"] == "end" for e in events(folder)) >= ended:
                    break
            time.sleep(0.05)
        else:
            raise AssertionError("the victim never got far enough")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return folder


@pytest.mark.slow
def test_resume_after_kill_9_runs_no_finished_trial_again_and_restores_the_optimizer(runs, tmp_path):
    folder = kill_after("random", runs, ended=4)
    before = events(folder)
    ended_before = {e["trial"]["id"] for e in before if e["event"] == "end"}
    states = fns.readers_agree(folder)  # status, the dashboard and the report, of a kernel killed -9
    assert "running" not in states.values() and {i for i, s in states.items() if s == "finished"} == ended_before
    to_run = Timeline.read(folder).unfinished()
    with open(folder / "journal.jsonl", "a") as f:
        f.write('{"event": "end", "trial": {"id": 99, "par')  # a record cut off mid-write
    t0 = time.monotonic()
    result = lagom(fns.quadratic, resume_victim.context("random"), path=runs, resume=True, verbose=0)
    resume_s = time.monotonic() - t0
    assert result.path == folder and len(result.trials) == 12 and result.count("finished") == 12
    after = events(folder)
    marker = next(i for i, e in enumerate(after) if e["event"] == "resumed")
    restarted = {e["trial"] for e in after[marker:] if e["event"] == "start"}
    assert not restarted & ended_before  # no finished trial ran again
    # resume read the journal as they did: the trials they showed unfinished are those it ran again
    assert after[marker]["requeued"] == len(to_run) and after[marker]["ended"] == len(ended_before)
    # The optimizer's state came back: the configurations are those of an uninterrupted run.
    fresh = lagom(fns.quadratic, resume_victim.context("random"), path=tmp_path / "fresh", verbose=0)
    assert [t.params for t in result.trials] == [t.params for t in fresh.trials]
    assert resume_s < 30


@pytest.mark.slow
def test_a_resumed_search_may_run_more_trials_and_says_so(runs, tmp_path):
    folder = kill_after("random", runs, ended=3)
    with pytest.raises(ValueError, match="fewer than the .* trials this study has already proposed"):
        lagom(fns.quadratic, resume_victim.context("random").edit(num_trials=1), path=runs, resume=folder, verbose=0)
    result = lagom(fns.quadratic, resume_victim.context("random").edit(num_trials=14), path=runs, resume=folder,
                   verbose=0)
    assert len(result.trials) == 14 and result.count("finished") == 14
    resumed = [e for e in events(folder) if e["event"] == "resumed"]
    assert resumed[-1]["edits"] == {"num_trials": [12, 14]}
    fresh = lagom(fns.quadratic, resume_victim.context("random"), path=tmp_path / "fresh", verbose=0)
    assert [t.params for t in result.trials[:12]] == [t.params for t in fresh.trials]  # the same study, longer
    out = subprocess.run([sys.executable, "-m", "kernel", "resume", str(folder), "--num-trials", "16", "--verbose",
                          "0"], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.returncode == 0, out.stderr[-2000:]
    status = subprocess.run([sys.executable, "-m", "kernel", "status", str(folder)], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}).stdout
    assert "edited on resume: num_trials 14 -> 16" in status and status.count("finished") >= 16
    fns.readers_agree(folder)


@pytest.mark.slow
def test_resumed_asha_keeps_its_rungs(runs):
    folder = kill_after("asha", runs, ended=5)
    result = lagom(fns.quadratic, resume_victim.context("asha"), path=runs, resume=True, verbose=0)
    assert result.path == folder
    configs = [t for t in result.trials if t.parent is None]
    assert len(configs) == 12  # not 12 more: the optimizer knew what it had started
    assert all(t.state == "finished" for t in result.trials)
    promoted = [t for t in result.trials if t.parent is not None]
    assert promoted and all(result.trials[t.parent].params == t.params for t in promoted)


@pytest.mark.slow
def test_a_resumed_packed_search_runs_what_was_cut_short_and_proposes_what_it_would_have(runs, tmp_path):
    folder = kill_after("packed", runs, ended=3)
    before = events(folder)
    ended_before = {e["trial"]["id"] for e in before if e["event"] == "end"}
    fns.readers_agree(folder)
    result = lagom(fns.climb, resume_victim.context("packed"), path=runs, resume=True, verbose=0)
    assert result.path == folder and len(result.trials) == 12 and result.count("finished") == 12
    after = events(folder)
    marker = next(i for i, e in enumerate(after) if e["event"] == "resumed")
    assert after[marker]["replay_mismatches"] == 0  # proposals waiting for a pack were journaled in order
    assert not {e["trial"] for e in after[marker:] if e["event"] == "start"} & ended_before
    assert any(e["pack"] and len(e["pack"]) > 1 for e in after[marker:] if e["event"] == "start")
    fresh = lagom(fns.climb, resume_victim.context("packed"), path=tmp_path / "fresh", verbose=0)
    assert [t.params for t in result.trials] == [t.params for t in fresh.trials]
    fns.readers_agree(folder)


@pytest.mark.slow
def test_a_resumed_pbt_search_continues_the_same_population_from_its_checkpoints(runs):
    folder = kill_after("pbt", runs, ended=7)
    before = {e["trial"]["id"]: e["trial"] for e in events(folder) if e["event"] == "end"}
    result = lagom(fns.pbt_toy, resume_victim.context("pbt"), path=runs, resume=True, verbose=0)
    assert result.path == folder and result.count("finished") == len(result.trials)
    trials = {t.id: t for t in result.trials}
    for tid, t in before.items():  # what ended before the kill is kept as it was, not run again
        assert trials[tid].params == t["params"] and trials[tid].result == t["result"]
    assert sum(t.parent is None for t in result.trials) == 4  # the same four members, none started anew
    assert sorted(t.info["member"] for t in result.trials if t.budget == 6) == [0, 1, 2, 3]
    for t in result.trials:  # across the kill too, every segment loaded exactly its parent's checkpoint
        if t.parent is not None:
            assert t.result["loaded"] == trials[t.parent].result["saved"]


def test_resume_needs_a_journal(runs):
    with pytest.raises(FileNotFoundError, match="no experiment named 'victim-random'"):
        lagom(fns.quadratic, resume_victim.context("random"), path=runs, resume=True, verbose=0)


def test_a_folder_that_cannot_be_written_fails_before_any_agent_starts(tmp_path):
    from kernel.journal import FolderError

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(FolderError, match=f"cannot write the experiment folder {blocker}.*path="):
        lagom(fns.quadratic, resume_victim.context("random"), path=blocker / "runs", verbose=0)


@pytest.mark.slow
def test_a_disk_that_fills_mid_run_ends_the_experiment_cleanly_and_it_resumes(runs):
    import json

    import full_disk_victim

    out = subprocess.run([sys.executable, str(HERE / "full_disk_victim.py"), str(runs)], capture_output=True,
                         text=True, timeout=120, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    said = json.loads(out.stdout.strip().splitlines()[-1])
    assert "cannot write the journal" in said["error"] and "python -m kernel resume" in said["error"]
    folder = Path(said["path"])
    ended_before = {e["trial"]["id"] for e in events(folder) if e["event"] == "end"}
    assert 0 < len(ended_before) < 120  # it stopped part way, and what it had journaled is readable
    result = lagom(fns.quadratic, full_disk_victim.context(), path=runs, resume=folder, verbose=0)
    assert len(result.trials) == 120 and result.count("finished") == 120
    marker = next(i for i, e in enumerate(events(folder)) if e["event"] == "resumed")
    assert not {e["trial"] for e in events(folder)[marker:] if e["event"] == "start"} & ended_before


def test_a_result_json_that_cannot_be_written_is_an_error_and_report_writes_it_from_the_journal(runs):
    """The journal could be written, result.json not (here its temporary file's name is taken
    by a folder: the write fails as on a full disk): the run does not end as if all were well."""
    from kernel import ExperimentError, Observer
    from kernel.cli import main

    class TakeTheName(Observer):
        def experiment_started(self, view):
            (view.path / "result.json.tmp").mkdir()

    with pytest.raises(ExperimentError, match="cannot write result.json") as err:
        lagom(fns.quadratic, resume_victim.context("random"), path=runs, verbose=0, observers=[TakeTheName()])
    folder = Path(err.value.path)
    assert "python -m kernel report" in str(err.value) and not (folder / "result.json").exists()
    (folder / "result.json.tmp").rmdir()
    assert main(["report", str(folder)]) == 0
    import json
    written = json.loads((folder / "result.json").read_text())
    assert written["counts"]["finished"] == 12 and [t["id"] for t in written["trials"]] == list(range(12))
    assert written["best"]["metric"] == max(t["metric"] for t in written["trials"])


@pytest.mark.slow
def test_agents_started_by_hand_outlive_a_killed_kernel_and_finish_the_resumed_search(runs, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    token = "outlive-the-kernel-token-0123456789"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "LAGOM_TOKEN": token}
    logs = [open(tmp_path / f"hand-{i}.log", "w+") for i in range(2)]
    agents = [subprocess.Popen([sys.executable, "-m", "kernel.agent", "--connect", url, "--id", f"hand-{i}",
                                "--patience", "60"], env=env, stdout=subprocess.DEVNULL, stderr=logs[i])
              for i in range(2)]
    try:
        folder = kill_after("byhand", runs, 4, url, token)
        assert all(a.poll() is None for a in agents)  # the kernel died; its agents did not
        t0 = time.time()
        result = lagom(fns.quadratic, resume_victim.context("byhand"), listen=url, token=token, path=runs,
                       resume=folder, verbose=0)
        assert result.count("finished") == 12
        after = events(folder)[next(i for i, e in enumerate(events(folder)) if e["event"] == "resumed"):]
        rerun = [e for e in after if e["event"] == "start"]
        assert rerun and {e["agent"] for e in rerun} <= {"hand-0", "hand-1"}  # the same agents, not new ones
        assert rerun[0]["time"] - t0 < 15  # they noticed the silence and said hello again
        assert [a.wait(timeout=30) for a in agents] == [0, 0]  # and left when the search was over
        for log in logs:  # the socket monitor told them: the kernel's end closed, and came back
            said = open(log.name).read()
            assert "the kernel's end of the connection closed" in said and "the kernel's end is back" in said, said
    finally:
        for a in agents:
            a.kill()


@pytest.mark.slow
def test_resume_from_the_shell_with_listen_takes_back_the_agents_started_by_hand(runs):
    """``python -m kernel resume <folder> --listen URL``: the token the agents hold is the one
    the killed kernel left in its folder, so they re-attach and finish the search."""
    import json
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    token = "resume-cli-token-0123456789abcdef"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("LAGOM_TOKEN", None)
    agents = [subprocess.Popen([sys.executable, "-m", "kernel.agent", "--connect", url, "--id", f"shell-{i}",
                                "--patience", "60"], env={**env, "LAGOM_TOKEN": token},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(2)]
    try:
        folder = kill_after("byhand", runs, 4, url, token)
        assert (folder / ".agent-token").read_text() == token  # what the killed kernel left
        (folder / ".agent-token").rename(folder / "kept")
        refused = subprocess.run([sys.executable, "-m", "kernel", "resume", str(folder), "--listen", url],
                                 env=env, capture_output=True, text=True, timeout=60)
        assert refused.returncode != 0 and "--token-file" in refused.stderr and "LAGOM_TOKEN" in refused.stderr
        (folder / "kept").rename(folder / ".agent-token")
        out = subprocess.run([sys.executable, "-m", "kernel", "resume", str(folder), "--listen", url,
                              "--verbose", "0"], env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        result = json.loads((folder / "result.json").read_text())
        assert result["counts"]["finished"] == 12
        after = events(folder)[next(i for i, e in enumerate(events(folder)) if e["event"] == "resumed"):]
        assert {e["agent"] for e in after if e["event"] == "start"} <= {"shell-0", "shell-1"}
        assert [a.wait(timeout=30) for a in agents] == [0, 0]
    finally:
        for a in agents:
            a.kill()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupt_ends_the_experiment_in_one_line_resumable(runs, sig):
    """Ctrl-C at a terminal, SIGTERM from a cluster's scheduler: result.json written, the trials
    cut short recorded as interrupted, the agents gone within a second, one line saying how to go on."""
    import json

    proc = subprocess.Popen([sys.executable, str(HERE / "resume_victim.py"), "signal", str(runs)],
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = list(runs.glob("victim-signal-*/journal.jsonl"))
        if found and sum(e["event"] == "end" for e in events(found[0].parent)) >= 2:
            break
        time.sleep(0.02)
    folder = found[0].parent
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    gone_at = time.monotonic()
    assert proc.returncode != 0
    assert f"continue with python -m kernel resume {folder}" in err and err.count("Traceback") <= 1
    saved = json.loads((folder / "result.json").read_text())
    assert saved["counts"]["interrupted"] >= 1 and "running" not in {t["state"] for t in saved["trials"]}
    pids = [e["pid"] for e in events(folder) if e["event"] == "agent"]
    while any(os.path.exists(f"/proc/{p}") for p in pids) and time.monotonic() - gone_at < 1.0:
        time.sleep(0.02)
    assert not [p for p in pids if os.path.exists(f"/proc/{p}")]  # the agents went with it
    states = fns.readers_agree(folder)
    assert "running" not in states.values() and "interrupted" in states.values()
    to_run, ended = Timeline.read(folder).unfinished(), sum(s in ENDED for s in states.values())
    result = lagom(fns.quadratic, resume_victim.context("signal"), path=runs, resume=folder, verbose=0)
    resumed = next(e for e in events(folder) if e["event"] == "resumed")
    assert resumed["requeued"] == len(to_run) and resumed["ended"] == ended
    assert result.count("finished") == 12


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"  # a zombie has ended
    except FileNotFoundError:
        return True


@pytest.mark.slow
def test_local_agents_end_at_once_when_their_kernel_is_killed(runs):
    """Only the kernel's process is killed (not its group): its agents, in a session of their
    own, end within a second or two instead of waiting out their patience (30 s)."""
    proc = subprocess.Popen([sys.executable, str(HERE / "resume_victim.py"), "signal", str(runs)],
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        folder = fns.wait_for(lambda: next(runs.glob("victim-signal-*/journal.jsonl"), None), "a journal").parent
        fns.wait_for(lambda: sum(e["event"] == "start" for e in events(folder)) >= 2, "two running trials")
        pids = [e["pid"] for e in events(folder) if e["event"] == "agent"]
        assert len(pids) == 2 and not any(_gone(pid) for pid in pids)
    finally:
        proc.kill()
        proc.wait()
    began = time.monotonic()
    fns.wait_for(lambda: all(_gone(pid) for pid in pids), "the agents' end", timeout=10)
    assert time.monotonic() - began < 5


@pytest.mark.parametrize("space, said", [
    (dict(rate=("DOUBLE", [0.0, 1.0]), sleep=("DISCRETE", [0.15])), "renamed to 'rate'"),
    (dict(x=("DOUBLE", [0.0, 1.0]), sleep=("DISCRETE", [0.15]), wd=("DOUBLE", [0.0, 0.1])), "'wd' is new"),
    (dict(x=("INTEGER", [0, 1]), sleep=("DISCRETE", [0.15])), "keeps its type"),
    (dict(x=("DOUBLE", [0.01, 1.0], "log"), sleep=("DISCRETE", [0.15])), "keeps its scale and its condition"),
], ids=["renamed", "added", "retyped", "rescaled"])
def test_a_resume_with_a_changed_search_space_fails_before_anything_runs(runs, tmp_path, space, said):
    """A change the journal's replay could not honour is named, with what to do, and the folder
    is left as it was."""
    from contexts import HyperparameterSearch, Searchspace

    folder = kill_after("random", runs, 4)
    before = (folder / "journal.jsonl").read_bytes()
    context = HyperparameterSearch(Searchspace(**space), "randomsearch", num_trials=12, metric="score", workers=2,
                                   seed=5, name="victim-random")
    with pytest.raises(ValueError, match="start a new study") as err:
        lagom(fns.quadratic, context, path=runs, resume=folder, verbose=0)
    assert said in str(err.value)
    assert (folder / "journal.jsonl").read_bytes() == before
