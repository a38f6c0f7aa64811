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


def test_only_completed_trials_count_not_failed_lost_or_stopped_ones():
    """The published rule: the median of completed trials' curves. A stopped trial's curve is
    one judged bad; counting it would drag the median down and stop ever fewer trials."""
    r = rule()
    ended(r, 1, [0.9], state="failed")
    ended(r, 2, [0.9], state="lost")
    ended(r, 3, [0.2], state="stopped")
    assert r.median_at(0) is None and not r.should_stop(9, [(0, 0.0)])
    ended(r, 4, [0.5])
    assert r.median_at(0) == 0.5


def test_trials_are_compared_with_trials_of_their_own_budget():
    r = rule()
    r.observe(Observation(1, {}, 1, "finished", 0.3, ((0, 0.3),)))
    r.observe(Observation(2, {}, 9, "finished", 0.9, ((0, 0.9),)))
    assert r.median_at(0, 1) == 0.3 and r.median_at(0, 9) == 0.9 and r.median_at(0, 3) is None
    assert not r.judge(5, [(0, 0.5)], 1)   # better than budget 1's median
    assert r.judge(6, [(0, 0.5)], 9)       # worse than budget 9's
    assert not r.judge(7, [(0, 0.0)], 3)   # nothing completed at budget 3 yet


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


# -- how the search applies the rule -----------------------------------------------------------
from contexts.hpo import SearchController, completes_budget
from kernel.trials import Trial
from plugins.optimizers import RandomSearch


class Always(MedianStopping):
    def judge(self, trial_id, history, budget):
        return True


def controller(es_min=2):
    c = SearchController(RandomSearch(), Always(), metric="m", direction="max", es_interval=1,
                         es_min=es_min, num_trials=None)
    return c


def test_es_min_counts_completed_trials_only():
    c = controller(es_min=2)
    running = Trial(9, {}, budget=None, history=[(0, 0.1)])
    for tid, state in enumerate(["stopped", "failed", "finished"]):
        c.on_end(Trial(tid, {}, state=state, metric=0.5, history=[(0, 0.5)]))
    assert not c.on_metric(running, 0, 0.1)  # one completed trial of the two asked for
    c.on_end(Trial(3, {}, state="finished", metric=0.5, history=[(0, 0.5)]))
    assert c.on_metric(running, 0, 0.1)


def test_the_broadcast_that_completes_a_budget_is_never_judged():
    c = controller(es_min=0)
    assert c.on_metric(Trial(1, {}, budget=3, history=[(0, 0.1)]), 0, 0.1)
    assert c.on_metric(Trial(1, {}, budget=3, history=[(0, 0.1), (1, 0.1)]), 1, 0.1)
    assert not c.on_metric(Trial(1, {}, budget=3, history=[(0, 0.1)] * 3), 2, 0.1)  # its work is done
    assert not c.on_metric(Trial(2, {}, budget=1, history=[(0, 0.1)]), 0, 0.1)
    assert c.on_metric(Trial(3, {}, budget=None, history=[(5, 0.1)]), 5, 0.1)  # no budget: always judged
    assert completes_budget(3, 3) and completes_budget(2, 3) and not completes_budget(1, 3)
    assert not completes_budget(0, 0.5)  # a fraction of the data is not a number of steps


@pytest.mark.parametrize("seed", [0, 2])
def test_under_asha_a_promoted_trial_is_judged_only_past_its_parents_budget(runs, seed):
    """A promoted configuration restarts from scratch; its first epochs were judged by ASHA when
    it was promoted, so the median rule waits until it trains beyond them."""
    import fns
    from contexts import HyperparameterSearch, Searchspace
    from kernel import lagom
    from plugins.optimizers import ASHA

    result = lagom(fns.rises_to_x, HyperparameterSearch(Searchspace(x=("DOUBLE", [0.0, 1.0])), ASHA(3, 1, 9),
                                                        num_trials=30, metric="score", workers=2, seed=seed,
                                                        es_policy="median", es_min=3), path=runs, verbose=0)
    by_id = {t.id: t for t in result.trials}
    promoted = [t for t in result.trials if t.parent is not None]
    assert len(promoted) >= 10
    assert all(len(t.history) > by_id[t.parent].budget for t in promoted if t.state == "stopped")
