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


def test_a_search_needs_an_end_unless_it_has_a_time_budget():
    from contexts import HyperparameterSearch
    from contexts.base import ConfigError

    with pytest.raises(ConfigError, match="num_trials=.*max_time="):
        HyperparameterSearch(SPACE, optimizer="asha")
    assert HyperparameterSearch(SPACE, optimizer="asha", max_time=5).num_trials is None
    assert HyperparameterSearch(SPACE, optimizer=ASHA(stop_at_max=True)).num_trials is None
    endless = make(num_trials=None)
    assert all(endless.suggest(t).parent is None for t in range(50))  # new configurations without end


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


# -- model-based proposals and brackets ------------------------------------------------------
import math as _math

MF_SPACE = Searchspace(lr=("DOUBLE", [1e-4, 1.0], "log"), width=("INTEGER", [8, 512], "log"),
                       drop=("DOUBLE", [0.0, 0.9]), act=("CATEGORICAL", ["relu", "tanh", "gelu"]))


def quality(p):
    """Smooth, best at lr=1e-2, width=128, drop=0.2, act=gelu."""
    return 1 - 0.1 * (_math.log10(p["lr"]) + 2) ** 2 - 0.05 * (_math.log2(p["width"]) - 7) ** 2 \
        - 0.5 * (p["drop"] - 0.2) ** 2 - 0.1 * (p["act"] != "gelu")


def learning_curve(p, budget):
    return quality(p) * (1 - _math.exp(-budget / 4))


def best_at_top(opt, seed, total_budget=500, parallel=2):
    """Drive a search until it has spent ``total_budget``; the best result at max_budget."""
    opt.setup(MF_SPACE, num_trials=None, direction="max", seed=seed)
    rng, running, tid, spent, best = random.Random(seed), [], 0, 0.0, float("-inf")
    while spent < total_budget:
        while len(running) < parallel:
            s = opt.suggest(tid)
            running.append((tid, s))
            tid += 1
        t, s = running.pop(rng.randrange(len(running)))
        value = learning_curve(s.params, s.budget)
        spent += s.budget
        if s.budget == opt.max_budget:
            best = max(best, value)
        opt.observe(Observation(t, s.params, s.budget, "finished", value, ((0, value),), dict(s.info)))
    return best


def test_model_based_asha_beats_random_asha_at_equal_budget():
    seeds = range(12)
    random_asha = sorted(best_at_top(ASHA(3, 1, 27), s) for s in seeds)
    tpe_asha = sorted(best_at_top(ASHA(3, 1, 27, sampler="tpe"), s) for s in seeds)
    assert tpe_asha[6] > random_asha[6]
    assert sum(tpe_asha) > sum(random_asha)


def test_the_model_proposes_from_the_highest_rung_with_enough_results():
    from plugins.optimizers import Optimizer

    class Recorder(Optimizer):
        """A proposer that records what it is handed."""
        n_startup = 2
        calls: list = []

        def suggest(self, trial_id):
            return FINISHED

        def propose(self, observed, pending):
            Recorder.calls.append((len(observed), len(pending)))
            return {"x": 0.5, "k": "a"}

    opt = ASHA(3, 1, 9, sampler=Recorder(), random_fraction=0.0)
    opt.setup(SPACE, num_trials=None, direction="max", seed=0)
    for t in range(3):  # three random configurations at the bottom rung
        assert opt.suggest(t).parent is None
    assert Recorder.calls == []  # too few results for a model
    for t in range(3):
        finish(opt, t, t / 10)
    promoted = opt.suggest(3)
    assert promoted.parent == 2
    new = opt.suggest(4)
    assert new.params == {"x": 0.5, "k": "a"} and new.parent is None
    assert Recorder.calls == [(3, 1)]  # rung 0's three results; the running promotion counts as worse
    finish(opt, 3, 0.9)
    for t in (4, 5):
        opt.suggest(t)
    finish(opt, 4, 0.1), finish(opt, 5, 0.2)
    opt.suggest(6)  # rung 0 has 5 results, rung 1 one: still rung 0's model
    assert Recorder.calls[-1][0] == 5


def test_a_sampler_that_cannot_propose_is_refused_by_name():
    with pytest.raises(ValueError, match="cannot propose.*sampler='tpe'"):
        ASHA(sampler="randomsearch").setup(SPACE, num_trials=5, direction="max", seed=0)
    with pytest.raises(ValueError, match="sampler"):
        ASHA(sampler="no-such-optimizer").setup(SPACE, num_trials=5, direction="max", seed=0)


def test_hyperband_spreads_new_configurations_over_brackets():
    from plugins.optimizers import Hyperband

    hb = Hyperband(3, 1, 27, mode="conservative")
    assert hb.brackets == 4 and Hyperband(3, 1, 27).brackets == 2 and Hyperband(3, 1, 27, mode="aggressive").brackets == 1
    hb.setup(SPACE, num_trials=400, direction="max", seed=0)
    firsts = [hb.suggest(t) for t in range(400)]  # nothing ends: every suggestion is a new configuration
    by_bracket = {b: [s for s in firsts if s.info["bracket"] == b] for b in range(4)}
    assert all(s.budget == hb.budgets[b] and s.info["rung"] == b for b, ss in by_bracket.items() for s in ss)
    counts = [len(by_bracket[b]) for b in range(4)]
    assert counts[0] > counts[1] > counts[2] > counts[3] > 0  # Hyperband's proportions, 27/4 : 9/3 : 3/2 : 1
    with pytest.raises(ValueError, match="mode"):
        Hyperband(mode="reckless")


def test_brackets_promote_only_within_themselves():
    from plugins.optimizers import Hyperband

    hb = Hyperband(3, 1, 9, brackets=2)
    hb.setup(SPACE, num_trials=60, direction="max", seed=3)
    log = []
    for t in range(60):
        s = hb.suggest(t)
        log.append(s)
        hb.observe(Observation(t, s.params, s.budget, "finished", random.Random(t).random(), (), dict(s.info)))
    for t, s in enumerate(log):
        if s.parent is not None:
            parent = log[s.parent]
            assert parent.info["bracket"] == s.info["bracket"] and parent.info["rung"] == s.info["rung"] - 1
    assert {s.info["bracket"] for s in log if s.parent is not None} == {0, 1}


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**31), st.sampled_from(["max", "min"]), st.integers(1, 4))
def test_model_based_brackets_stay_inside_the_space_and_the_budgets(seed, direction, brackets):
    from plugins.optimizers import Hyperband

    hb = Hyperband(3, 1, 27, brackets=brackets, sampler="tpe")
    hb.setup(MF_SPACE, num_trials=40, direction=direction, seed=seed)
    rng = random.Random(seed)
    for t in range(120):
        s = hb.suggest(t)
        if s is FINISHED:
            break
        if s is WAIT:
            continue
        assert MF_SPACE.contains(s.params) and s.budget in hb.budgets
        hb.observe(Observation(t, s.params, s.budget, rng.choice(["finished", "failed"]), rng.random(), (),
                               dict(s.info)))


@pytest.mark.parametrize("prior, share", [(1e-3, 0.5), (1e-1, 0.0)])
def test_hyperband_draws_from_priors_while_its_best_results_agree_with_them(prior, share):
    import math

    from contexts import Searchspace
    from plugins.optimizers import Hyperband
    from plugins.optimizers.base import Observation

    sp = Searchspace(lr=("DOUBLE", [1e-5, 1e-1], "log"), priors={"lr": (prior, "high")})
    hb = Hyperband(3, 1, 9, sampler="tpe")
    hb.setup(sp, num_trials=60, direction="max", seed=0)
    first = hb.suggest(0)
    assert first.params == {"lr": prior}
    hb.observe(Observation(0, first.params, first.budget, "finished", -abs(math.log10(prior) + 3)))
    for i in range(1, 200):
        d = hb.suggest(i)
        if not hasattr(d, "params"):
            break
        hb.observe(Observation(i, d.params, d.budget, "finished", -abs(math.log10(d.params["lr"]) + 3)))
    assert hb._prior_share() == share
