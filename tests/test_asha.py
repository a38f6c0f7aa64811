"""ASHA's decisions on scripted result sequences."""
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contexts import Searchspace
from plugins.optimizers import ASHA, FINISHED, WAIT, Observation, Suggestion

SPACE = Searchspace(x=("DOUBLE", [0.0, 1.0]), k=("CATEGORICAL", ["a", "b"]))


def make(direction="max", num_trials=20, **kw):
    kw.setdefault("reduction_factor", 3)
    kw.setdefault("min_budget", 1)
    kw.setdefault("max_budget", 9)
    opt = ASHA(**kw)
    opt.setup(SPACE, num_trials=num_trials, direction=direction, seed=0)
    return opt


def finish(opt, tid, value, state="finished"):
    s = opt._trials[tid]
    opt.observe(Observation(tid, s[1], opt.budgets[s[0]], state, value))


def test_rung_budgets():
    assert make().budgets == [1, 3, 9]
    assert ASHA(3, 1, 10).budgets == [1, 3, 9, 10]  # the top rung is exactly max_budget
    assert ASHA(2, 0.5, 2.0).budgets == [0.5, 1.0, 2.0]
    assert ASHA(3, 5, 5).budgets == [5]


@pytest.mark.parametrize("kw, msg", [
    (dict(reduction_factor=1), "reduction_factor"), (dict(min_budget=0), "min_budget"),
    (dict(min_budget=10, max_budget=5), "min_budget"),
])
def test_bad_parameters(kw, msg):
    with pytest.raises(ValueError, match=msg):
        ASHA(**kw)


def test_needs_an_end():
    with pytest.raises(ValueError, match="num_trials"):
        ASHA().setup(SPACE, num_trials=None, direction="max", seed=0)


def test_a_rung_with_fewer_than_eta_results_promotes_nothing():
    opt = make()
    a, b = opt.suggest(0), opt.suggest(1)
    assert a.budget == b.budget == 1 and a.parent is None and a.info == {"rung": 0}
    finish(opt, 0, 0.9)
    finish(opt, 1, 0.8)
    c = opt.suggest(2)
    assert c.parent is None and c.budget == 1  # 2 results < eta: a new configuration instead


def test_the_best_of_the_top_third_is_promoted_with_its_params():
    opt = make()
    for i in range(3):
        opt.suggest(i)
    for i, v in enumerate([0.5, 0.9, 0.7]):
        finish(opt, i, v)
    d = opt.suggest(3)
    assert d.parent == 1 and d.budget == 3 and d.params == opt._trials[1][1] and d.info == {"rung": 1}
    e = opt.suggest(4)
    assert e.parent is None and e.budget == 1  # only one may go up from 3 results


def test_minimize_promotes_the_smallest():
    opt = make("min")
    for i in range(3):
        opt.suggest(i)
    for i, v in enumerate([0.5, 0.9, 0.7]):
        finish(opt, i, v)
    assert opt.suggest(3).parent == 0


def test_ties_go_to_the_earlier_trial():
    opt = make()
    for i in range(6):
        opt.suggest(i)
    for i in range(6):
        finish(opt, i, 0.5)
    assert [opt.suggest(6).parent, opt.suggest(7).parent] == [0, 1]


def test_higher_rungs_promote_first_and_the_top_rung_ends_the_search():
    opt = make(stop_at_max=True, num_trials=None)
    tid = 0
    # 9 results on rung 0 -> 3 promotions to rung 1 -> 3 results there -> 1 promotion to rung 2
    for tid in range(9):
        assert opt.suggest(tid).parent is None
    for tid in range(9):
        finish(opt, tid, tid / 10)
    tid = 9
    promos = []
    for _ in range(3):
        s = opt.suggest(tid)
        promos.append((tid, s))
        tid += 1
    assert [s.budget for _, s in promos] == [3, 3, 3] and [s.parent for _, s in promos] == [8, 7, 6]
    for t, s in promos:
        finish(opt, t, s.params["x"] + 1)
    top = opt.suggest(tid)
    assert top.budget == 9 and top.parent == promos[0][0]  # rung 1's best goes first
    assert opt.suggest(tid + 1).budget == 1  # nothing else promotable: a new configuration
    finish(opt, tid, 2.0)
    assert opt.suggest(tid + 2) is FINISHED


def test_full_top_rung_and_exhausted_configs_wait_then_finish():
    opt = make(num_trials=3)
    for i in range(3):
        opt.suggest(i)
    assert opt.suggest(3) is WAIT  # no new configs left, results pending
    for i, v in enumerate([0.1, 0.2, 0.3]):
        finish(opt, i, v)
    s = opt.suggest(3)
    assert s.parent == 2
    assert opt.suggest(4) is WAIT
    finish(opt, 3, 0.9)
    assert opt.suggest(4) is FINISHED  # rung 1 has 1 result < eta: nothing more to promote


def test_failed_trials_are_never_promoted():
    opt = make()
    for i in range(3):
        opt.suggest(i)
    finish(opt, 0, None, "failed")
    finish(opt, 1, 0.2)
    finish(opt, 2, 0.3)
    assert opt.suggest(3).parent is None


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31), st.sampled_from(["max", "min"]), st.integers(2, 4),
       st.integers(1, 3), st.integers(1, 30))
def test_never_outside_the_space_or_the_budget_range(seed, direction, eta, min_b, n):
    max_b = min_b * eta ** 2 + 1
    opt = ASHA(eta, min_b, max_b)
    opt.setup(SPACE, num_trials=n, direction=direction, seed=seed)
    rng = random.Random(seed)
    running, tid, configs = [], 0, 0
    for _ in range(500):
        d = opt.suggest(tid)
        if d is FINISHED:
            break
        if d is WAIT:
            assert running
        else:
            assert isinstance(d, Suggestion) and SPACE.contains(d.params)
            assert min_b <= d.budget <= max_b
            configs += d.parent is None
            running.append(tid)
            tid += 1
        if running and (d is WAIT or rng.random() < 0.5):
            done = running.pop(rng.randrange(len(running)))
            finish(opt, done, rng.random(), rng.choice(["finished", "finished", "failed"]))
    else:
        raise AssertionError("never finished")
    assert configs == n
