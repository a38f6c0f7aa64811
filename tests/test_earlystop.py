"""The median rule on scripted curves, both directions."""
import pytest

from plugins.earlystop import MedianStopping
from plugins.optimizers import Observation


def ended(rule, tid, values, state="finished"):
    rule.observe(Observation(tid, {}, None, state, values[-1], tuple(enumerate(values))))


def rule(direction="max", **kw):
    r = MedianStopping(**kw)
    r.setup(direction=direction)
    return r


def test_no_history_no_decision():
    r = rule()
    assert not r.should_stop(0, [(0, 0.1)])  # nothing has ended yet


def test_stops_a_trial_whose_best_is_below_the_median_of_running_averages():
    r = rule()
    ended(r, 1, [0.5, 0.6, 0.7])   # running averages 0.5, 0.55, 0.6
    ended(r, 2, [0.3, 0.4, 0.5])   # 0.3, 0.35, 0.4
    ended(r, 3, [0.6, 0.7, 0.8])   # 0.6, 0.65, 0.7
    # medians by broadcast count: 0.5, 0.55, 0.6
    assert r.median_at(0) == 0.5 and r.median_at(1) == pytest.approx(0.55) and r.median_at(2) == pytest.approx(0.6)
    assert r.should_stop(9, [(0, 0.49)])
    assert not r.should_stop(10, [(0, 0.5)])           # equal is not strictly worse
    assert not r.should_stop(11, [(0, 0.9), (1, 0.1)])  # its best so far (0.9) counts
    assert r.should_stop(12, [(0, 0.2), (1, 0.54)])
    assert r.median_at(3) is None and not r.should_stop(13, [(i, 0.0) for i in range(4)])


def test_minimize_mirrors_maximize():
    r = rule("min")
    for tid, vals in enumerate([[1.0, 0.8], [2.0, 1.0], [3.0, 2.0]]):
        ended(r, tid, vals)
    # running averages at k=0: 1, 2, 3 -> median 2
    assert r.should_stop(9, [(0, 2.5)]) and not r.should_stop(10, [(0, 1.5)])


def test_even_count_takes_the_mean_of_the_middle_two():
    r = rule()
    for tid, v in enumerate([0.1, 0.2, 0.3, 0.4]):
        ended(r, tid, [v])
    assert r.median_at(0) == pytest.approx(0.25)


def test_failed_and_lost_trials_do_not_count_stopped_ones_do():
    r = rule()
    ended(r, 1, [0.9], state="failed")
    ended(r, 2, [0.9], state="lost")
    assert r.median_at(0) is None
    ended(r, 3, [0.2], state="stopped")
    assert r.median_at(0) == 0.2


def test_warmup_broadcasts_are_not_judged():
    r = rule(warmup=2)
    ended(r, 1, [0.9, 0.9, 0.9])
    assert not r.should_stop(5, [(0, 0.0), (1, 0.0)])
    assert r.should_stop(5, [(0, 0.0), (1, 0.0), (2, 0.0)])


def test_incremental_best_matches_a_full_scan():
    r = rule()
    ended(r, 1, [0.5] * 6)
    hist = []
    for i, v in enumerate([0.1, 0.7, 0.2, 0.3, 0.1, 0.0]):
        hist.append((i, v))
        assert r.should_stop(7, hist) == (max(x for _, x in hist) < 0.5)
