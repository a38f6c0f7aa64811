"""Several objectives: the front and its hypervolume, the search context, MOTPE's split, MO-ASHA's
promotions, and a real search whose result, report, status and TensorBoard show the front."""
import json
import subprocess
import sys
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

import fns
from contexts import ConfigError, HyperparameterSearch, Searchspace
from kernel import NoBestTrial, lagom
from kernel.direction import Direction
from kernel.pareto import crowding, dominates, front, hypervolume, order, ranks
from plugins.optimizers import ASHA, TPE, Observation, Suggestion

points = st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)).map(lambda p: (float(p[0]), float(p[1]))),
                  min_size=1, max_size=25)
signs = st.sampled_from([(1.0, 1.0), (-1.0, -1.0), (1.0, -1.0)])


@given(points, signs)
def test_the_front_is_what_nothing_dominates_and_it_dominates_the_rest(pts, sg):
    on = set(front(pts, sg))
    assert on and all(not dominates(pts[j], pts[i], sg) for i in on for j in range(len(pts)))
    assert all(any(dominates(pts[i], pts[j], sg) for i in on) for j in range(len(pts)) if j not in on)
    first = order(pts, sg)
    assert set(first[:len(on)]) == on and sorted(first) == list(range(len(pts)))
    r = ranks(pts, sg)
    assert all(r[a] <= r[b] for a, b in zip(first, first[1:]))  # by rank, then crowding


@given(points, signs)
def test_hypervolume_is_the_front_s_and_never_shrinks_as_points_are_added(pts, sg):
    ref = [-1.0 if s > 0 else 21.0 for s in sg]
    whole = hypervolume(pts, ref, sg)
    assert whole == pytest.approx(hypervolume([pts[i] for i in front(pts, sg)], ref, sg))
    assert hypervolume(pts[:-1], ref, sg) <= whole + 1e-9
    if len(pts) == 1:
        assert whole == pytest.approx(abs(pts[0][0] - ref[0]) * abs(pts[0][1] - ref[1]))


def test_crowding_favours_the_ends_and_the_lonely():
    pts = [(0.0, 4.0), (1.0, 3.0), (1.1, 2.9), (4.0, 0.0)]
    d = crowding(pts, [0, 1, 2, 3])
    assert d[0] == d[3] == float("inf") and d[1] > 0 and d[2] > d[1]


@pytest.mark.parametrize("metric, direction, fragment", [
    (["acc", "params"], ["max"], "has 2 objectives but direction"),
    (["acc"], "max", "two or more different names"),
    (["acc", "acc"], "max", "two or more different names"),
    ("acc", ["max", "min"], "lists directions for one metric"),
    (["acc", "params"], ["max", "down"], "use 'max' or 'min'"),
])
def test_bad_objectives_are_named(metric, direction, fragment):
    with pytest.raises(ConfigError, match=fragment):
        HyperparameterSearch(Searchspace(x=("DOUBLE", [0.0, 1.0])), metric=metric, direction=direction)


SPACE = Searchspace(x1=("DOUBLE", [0.0, 1.0]), x2=("DOUBLE", [0.0, 1.0]))
MINMIN = [Direction.MIN, Direction.MIN]


def test_mo_asha_promotes_a_configuration_on_the_rung_s_front():
    asha = ASHA(3, 1, 9)
    asha.directions = MINMIN
    asha.setup(SPACE, num_trials=9, direction="min", seed=0)
    got = [asha.suggest(i) for i in range(3)]
    values = [(0.5, 0.5), (0.2, 0.9), (0.6, 0.6)]  # trial 2 is dominated by trial 0
    for i, (s, v) in enumerate(zip(got, values)):
        asha.observe(Observation(i, s.params, s.budget, "finished", v[0], (), dict(s.info), values=v))
    promoted = asha.suggest(3)
    assert isinstance(promoted, Suggestion) and promoted.budget == 3 and promoted.parent in (0, 1)


def test_motpe_models_the_front_as_the_good_region():
    tpe = TPE(n_startup=4, gamma=0.25)
    tpe.directions = MINMIN
    tpe.setup(SPACE, num_trials=20, direction="min", seed=0)
    done = [({"x1": 0.1 * i, "x2": 0.5}, (0.1 * i, 1.0 - 0.1 * i)) for i in range(8)]  # all on one front
    done += [({"x1": 0.9, "x2": 0.9}, (2.0, 2.0)), ({"x1": 0.8, "x2": 0.95}, (3.0, 3.0))]
    good, bad = tpe._split(done, [])
    assert {"x1": 0.9, "x2": 0.9} in bad and {"x1": 0.8, "x2": 0.95} in bad
    assert all(g["x2"] == 0.5 for g in good) and {"x1": 0.0, "x2": 0.5} in good  # the front's ends first
    s = tpe.suggest(0)
    assert SPACE.contains(s.params)


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["randomsearch", "tpe", "asha"])
def test_a_search_of_two_objectives_on_real_agents_returns_its_front(runs, optimizer):
    opt = ASHA(3, 1, 9) if optimizer == "asha" else optimizer
    result = lagom(fns.two_objectives, HyperparameterSearch(SPACE, opt, num_trials=24, metric=["f1", "f2"],
                                                            direction=["min", "min"], workers=2),
                   path=runs, verbose=0, tensorboard=True)
    front_ = result.pareto
    assert front_ and all(t.values == [t.result["f1"], t.result["f2"]] for t in result.trials if t.values)
    signs_ = [-1.0, -1.0]
    top = max(t.budget or 0 for t in front_)
    for t in front_:  # nothing at the front's budget beats a front trial in both objectives
        assert not any(dominates(o.values, t.values, signs_) for o in result.trials
                       if o.values and (o.budget or 0) == top)
    with pytest.raises(NoBestTrial, match=r"result.pareto \(\d+ trials\)"):
        result.best
    saved = json.loads((result.path / "result.json").read_text())
    assert saved["pareto"] == [t.id for t in front_] and saved["best"] is None and saved["objectives"] == ["f1", "f2"]
    assert "Pareto front (min f1, min f2)" in str(result)
    from kernel.outputs.report import write_report

    assert "report_front.png" in write_report(result.path).read_text()
    status = subprocess.run([sys.executable, "-m", "kernel", "status", str(result.path)], capture_output=True,
                            text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}).stdout
    assert f"trial {front_[0].id} (" in status.splitlines()[-1] and "Pareto front" in status
    assert list((result.path / "tensorboard" / "front").glob("events.out.tfevents.*"))


def test_a_missing_objective_fails_the_search_with_the_names(runs):
    def returns_one(hparams):
        return {"f1": 0.5}

    with pytest.raises(Exception, match=r"metric=\['f1', 'f2'\]; return \['f2'\] too"):
        lagom(returns_one, HyperparameterSearch(SPACE, num_trials=3, metric=["f1", "f2"], workers=1,
                                                launcher="thread"), path=runs, verbose=0)
