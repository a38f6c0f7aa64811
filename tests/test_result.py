"""Which trial a result calls best, and how it says so."""
import math

import pytest

from kernel.trials import NoBestTrial, Result, Trial


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
