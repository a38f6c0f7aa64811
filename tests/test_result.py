"""Which trial a result calls best, and how it says so."""
import math
import os
from pathlib import Path

import pytest

from kernel.result import NoBestTrial, Result, compile_lines
from kernel.trials import Trial


def result(*trials, direction="max"):
    return Result("exp", path=".", context="hpo", metric="acc", direction=direction, trials=list(trials),
                  duration=1.0)


def t(i, metric, budget=None, state="finished"):
    return Trial(i, {"i": i}, budget=budget, state=state, metric=metric)


def test_the_best_comes_from_the_largest_budget_any_trial_finished():
    r = result(t(0, 0.99, 3), t(1, 0.90, 9), t(2, 0.95, 9), t(3, 0.999, 9, "stopped"), t(4, 0.97, 1))
    assert r.best.id == 2  # not trial 0 (3 of 9 epochs), nor the stopped 3
    assert "at budget 9, the largest any trial finished (result.best_at(3) for a lower one)" in str(r)
    assert r.to_dict()["best"]["budget"] == 9
    assert r.best_at(3).id == 0 and r.best_at(1).id == 4
    assert r.best_at(9).id == 3  # at one budget, stopped and finished alike
    with pytest.raises(NoBestTrial, match=r"budget 27.*\[1, 3, 9\]"):
        r.best_at(27)


def test_minimize_and_ties_within_the_top_budget():
    r = result(t(0, 0.1, 3), t(1, 0.5, 9), t(2, 0.4, 9), t(3, 0.4, 9), direction="min")
    assert r.best.id == 2  # the smaller value; of equals, the earlier trial


def test_stopped_trials_rank_only_when_none_finished():
    r = result(t(0, 0.5, None, "stopped"), t(1, 0.7, None, "stopped"), t(2, None, None, "failed"))
    assert r.best.id == 1 and "a stopped trial (none finished)" in str(r)
    assert result(t(0, 0.9, None, "stopped"), t(1, 0.1)).best.id == 1


def test_without_budgets_the_summary_names_none():
    r = result(t(0, 0.5), t(1, 0.7), t(2, math.nan, state="finished"))
    assert r.best.id == 1 and "budget" not in str(r)


def test_dataframe_has_one_row_per_trial_with_params_and_returned_metrics():
    pd = pytest.importorskip("pandas")
    a = Trial(0, {"lr": 0.1, "act": "relu"}, budget=3, state="finished", metric=0.9, result={"acc": 0.9, "loss": 0.2},
              started=100.0, ended=101.5, agent="a1", attempts=1)
    b = Trial(1, {"lr": 0.01, "act": "tanh"}, state="failed", error="ValueError: boom", agent="a2", attempts=1)
    c = Trial(2, {"lr": 0.5, "act": "gelu"}, state="finished", metric=0.7, result=0.7, info={"ablated": "noise"})
    frame = result(a, b, c).dataframe()
    assert list(frame.index) == [0, 1, 2]
    assert frame.loc[0, "params_lr"] == 0.1 and frame.loc[2, "params_act"] == "gelu"
    assert frame.loc[0, "metrics_loss"] == 0.2 and frame.loc[2, "metrics_metric"] == 0.7
    assert pd.isna(frame.loc[1, "metric"]) and frame.loc[1, "error"] == "ValueError: boom"
    assert frame.loc[0, "duration"] == 1.5 and frame.loc[0, "started"] == pd.Timestamp(100.0, unit="s", tz="UTC")
    assert frame.loc[2, "info_ablated"] == "noise" and frame.loc[0, "agent"] == "a1"
    assert list(frame[frame.state == "finished"].sort_values("metric").index) == [2, 0]


def test_checkpoint_dir_is_the_folder_a_trial_saved_into(tmp_path):
    from kernel.journal import checkpoint_dir

    saved, empty = Trial(0, {}, state="finished", metric=1.0), Trial(1, {}, state="finished", metric=0.5)
    os.makedirs(checkpoint_dir(tmp_path, 0))
    (Path(checkpoint_dir(tmp_path, 0)) / "state.msgpack").write_bytes(b"x")
    os.makedirs(checkpoint_dir(tmp_path, 1))  # made by reporter.checkpoint_dir, nothing saved
    r = Result("exp", path=tmp_path, context="hpo", metric="acc", direction="max", trials=[saved, empty], duration=1.0)
    assert r.best.checkpoint_dir == checkpoint_dir(tmp_path, 0)
    assert r.trials[1].checkpoint_dir is None and Trial(5, {}).checkpoint_dir is None


def test_a_single_run_says_what_it_returned_not_a_metric_it_never_had(runs):
    from contexts import Single
    from kernel import lagom

    def train(hparams, reporter):
        reporter.broadcast(metric=0.5, step=0)
        return {"acc": 0.5, "loss": 1.25}

    text = str(lagom(train, Single(), path=runs, verbose=0))
    assert "returned: {'acc': 0.5, 'loss': 1.25}" in text and "None" not in text


def test_the_compile_summary_says_why_compiling_was_most_of_the_time():
    """Three cases a user meets: a first run on a host (programs new to its cache: paid once),
    hyperparameters baked into the step (trials of a seen shape compile again), a warm run."""
    def trials(width_of, compiled, cached, compile_s=0.9):
        return [Trial(id=i, params={"width": width_of(i), "lr": 0.1 * i}, started=float(i), ended=i + 1.0,
                      compile_s=compile_s, programs_compiled=compiled, programs_cached=cached, traced=["lr"])
                for i in range(6)]

    first_run = compile_lines(trials(lambda i: 8 * i, compiled=3, cached=0))  # every width new
    assert first_run[0].startswith("  XLA compilation: 90% of trial time") and "18 programs compiled" in first_run[0]
    assert len(first_run) == 2 and "new to this host's compilation cache" in first_run[1]
    baked = compile_lines(trials(lambda i: 8 * (i % 2), compiled=3, cached=0))  # seen widths compile again
    assert len(baked) == 2 and "baked into it as constants" in baked[1]
    warm = compile_lines(trials(lambda i: 8 * i, compiled=0, cached=3))
    assert len(warm) == 1 and "0 programs compiled, 18 loaded" in warm[0]
    assert compile_lines(trials(lambda i: 8 * i, compiled=3, cached=0, compile_s=0.2))[1:] == []  # not most of it
