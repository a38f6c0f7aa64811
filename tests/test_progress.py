"""The live display: a rich panel on a terminal, plain lines elsewhere, nothing with verbose=0."""
import io

import pytest

import fns
from contexts import HyperparameterSearch, Searchspace
from kernel import lagom
from kernel.outputs.progress import Progress

SPACE = Searchspace(x=("DOUBLE", [0.0, 1.0]), sleep=("DISCRETE", [0.02]))


class Terminal(io.StringIO):
    def isatty(self):
        return True


def run(progress, runs):
    return lagom(fns.quadratic, HyperparameterSearch(SPACE, num_trials=6, metric="score", workers=2,
                                                     launcher="thread", seed=2),
                 path=runs, verbose=0, observers=[progress])


def test_a_terminal_gets_a_live_panel(runs):
    pytest.importorskip("rich")
    out = Terminal()
    result = run(Progress(stream=out), runs)
    text = out.getvalue()
    assert "lagom · HyperparameterSearch" in text and "6 done, 0 running" in text
    assert f"score = {result.best.metric:.4g}" in text


def test_a_log_gets_plain_lines(runs):
    out = io.StringIO()
    run(Progress(stream=out, interval=0.05), runs)
    last = out.getvalue().strip().splitlines()[-1]
    assert "6/6 trials" in last and "best score=" in last and "\\x1b" not in last


def test_verbose_zero_prints_nothing(runs, capsys):
    lagom(fns.quadratic, HyperparameterSearch(SPACE, num_trials=2, metric="score", workers=1, launcher="thread"),
          path=runs, verbose=0)
    assert capsys.readouterr().out == ""


def talks(hparams, reporter):
    print(f"epoch 0 of trial x={hparams['x']:.3f}", flush=True)
    reporter.broadcast(metric=0.5, step=0)
    return {"score": 0.5}


def test_a_running_trial_shows_its_last_broadcast_and_printed_line(runs):
    """A long trial, or a distributed run, shows it is alive before it ends."""
    from kernel import Observer

    progress, seen = Progress(stream=io.StringIO(), interval=0.05), []

    class Peek(Observer):  # called after Progress, on the kernel's loop, while the trial runs
        def trial_metric(self, view, trial, step, value):
            seen.append(progress.running())

        def trial_log(self, view, trial, lines):
            seen.append(progress.running())

    lagom(talks, HyperparameterSearch(SPACE, num_trials=2, metric="score", workers=1, launcher="thread"),
          path=runs, verbose=0, observers=[progress, Peek()])
    shown = " | ".join(line for lines in seen for line in lines)
    assert "step 0: 0.5" in shown and "epoch 0 of trial x=" in shown


def talks_in_parallel(hparams, reporter, strategy):
    print(f"epoch 0 on {strategy.num_devices} device(s)", flush=True)
    reporter.broadcast(metric=0.25, step=0)
    return {"score": 0.25}


@pytest.mark.slow
def test_a_distributed_run_shows_progress_before_it_ends(runs):
    """Its broadcasts and printed lines come through the agent's relay to the live display."""
    from contexts import Distributed
    from kernel import Observer

    progress, seen = Progress(stream=io.StringIO(), interval=0.05), []

    class Peek(Observer):
        def trial_metric(self, view, trial, step, value):
            seen.extend(progress.running())

        def trial_log(self, view, trial, lines):
            seen.extend(progress.running())

    lagom(talks_in_parallel, Distributed("pmap", cpu_devices=1, metric="score"), path=runs, verbose=0,
          observers=[progress, Peek()])
    shown = " | ".join(seen)
    assert "step 0: 0.25" in shown and "epoch 0 on 1 device(s)" in shown


def test_a_trial_that_runs_far_longer_than_the_others_is_named_once_and_no_stale_estimate_shows(runs, tmp_path):
    release = tmp_path / "release"
    stream = io.StringIO()
    progress = Progress(stream=stream, interval=0.05, overdue=3.0, overdue_min_s=0.3)
    space = Searchspace(n=("DISCRETE", list(range(6))), hang=("DISCRETE", [1]),
                        release=("CATEGORICAL", [str(release)]))
    run = fns.Background(fns.hangs_until_released, HyperparameterSearch(space, "gridsearch", metric="score",
                                                                        workers=2, launcher="thread"),
                         path=runs, verbose=0, observers=[progress])
    said = fns.wait_for(lambda: "trial_timeout=" in stream.getvalue() and stream.getvalue(), "the warning")
    assert "lagom: trial 1 has run" in said
    fns.wait_for(lambda: "waiting on trial 1" in stream.getvalue(), "a line naming the trial waited on")
    release.touch()
    run.join(30)
    assert run.result.count("finished") == 6
    text = stream.getvalue()
    assert text.count("trial_timeout=") == 1  # said once
    after = text[text.index("trial_timeout="):]
    assert "left" not in after.split("6/6 trials")[0]  # no estimate while it hung


def test_an_experiment_waiting_for_agents_says_again_how_to_start_one(runs, capsys, monkeypatch):
    import threading

    from kernel.outputs import progress
    from kernel.agent import Agent

    monkeypatch.setattr(progress, "REMIND_S", 0.2)
    token = "reminder-test-token-0123456789abcdef"
    run = fns.Background(fns.quadratic, HyperparameterSearch(Searchspace(x=("DOUBLE", [0.0, 1.0])), num_trials=1,
                                                             metric="score", workers=0),
                         listen="tcp://127.0.0.1:0", path=runs, verbose=0, token=token)
    said = ""

    def reminded():
        nonlocal said
        said += capsys.readouterr().err
        return said.count("no agent has joined yet") >= 2  # and again

    fns.wait_for(reminded, "two reminders")
    assert "-m kernel.agent --connect tcp://" in said and "--token-file" in said and token not in said
    url = said.split("--connect ")[1].split()[0]
    agent = threading.Thread(target=Agent(url, token, echo=False).run, daemon=True)
    agent.start()
    run.join(30)
    assert run.result.count("finished") == 1
