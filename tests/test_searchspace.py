import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contexts import Searchspace, SearchspaceError

bounds = st.tuples(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6)).filter(lambda b: b[0] < b[1])
pos_bounds = st.tuples(st.floats(1e-8, 1e6), st.floats(1e-8, 1e6)).filter(lambda b: b[0] < b[1])
int_bounds = st.tuples(st.integers(-1000, 1000), st.integers(-1000, 1000)).filter(lambda b: b[0] <= b[1])


@st.composite
def spaces(draw):
    sp = Searchspace()
    for i in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["DOUBLE", "DOUBLE_LOG", "INTEGER", "INTEGER_LOG", "DISCRETE", "CATEGORICAL"]))
        name = f"p{i}"
        if kind == "DOUBLE":
            sp.add(name, ("DOUBLE", list(draw(bounds))))
        elif kind == "DOUBLE_LOG":
            sp.add(name, ("DOUBLE", list(draw(pos_bounds)), "log"))
        elif kind == "INTEGER":
            sp.add(name, ("INTEGER", list(draw(int_bounds))))
        elif kind == "INTEGER_LOG":
            lo = draw(st.integers(1, 1000))
            sp.add(name, ("INTEGER", [lo, lo + draw(st.integers(0, 5000))], "log"))
        elif kind == "DISCRETE":
            sp.add(name, ("DISCRETE", draw(st.lists(st.integers(-50, 50), min_size=1, max_size=5, unique=True))))
        else:
            sp.add(name, ("CATEGORICAL", draw(st.lists(st.text(max_size=5), min_size=1, max_size=4, unique=True))))
    return sp


@settings(max_examples=200)
@given(spaces(), st.integers(0, 2**32))
def test_samples_always_lie_inside_the_space(sp, seed):
    rng = random.Random(seed)
    for _ in range(20):
        assert sp.contains(sp.sample(rng))


@settings(max_examples=100)
@given(spaces(), st.integers(1, 4))
def test_grid_enumerates_every_combination_once(sp, resolution):
    grid = list(sp.grid(resolution))
    keys = [tuple(repr(v) for v in g.values()) for g in grid]
    assert len(keys) == len(set(keys)) == sp.grid_size(resolution)
    assert all(sp.contains(g) for g in grid)
    expected = math.prod(len(p.grid(resolution)) for p in sp)
    assert len(grid) == expected


def test_a_very_narrow_log_range_samples_inside():
    """Found by hypothesis: exp(log(x)) lands an ulp outside [1e-08, 1.0000000000000002e-08]."""
    sp = Searchspace(p=("DOUBLE", [1e-08, 1.0000000000000002e-08], "log"))
    rng = random.Random(0)
    assert all(sp.contains(sp.sample(rng)) for _ in range(1000))


def test_grid_of_choices_is_the_cartesian_product():
    sp = Searchspace(a=("DISCRETE", [1, 2, 3]), b=("CATEGORICAL", ["x", "y"]))
    assert list(sp.grid()) == [{"a": a, "b": b} for a in (1, 2, 3) for b in ("x", "y")]


def test_grid_of_a_range_needs_a_resolution():
    sp = Searchspace(lr=("DOUBLE", [0.1, 1.0]))
    with pytest.raises(SearchspaceError, match="resolution"):
        list(sp.grid())
    assert [round(v, 6) for v in list(zip(*[g.values() for g in sp.grid(3)]))[0]] == [0.1, 0.55, 1.0]


def test_log_grid_is_log_spaced():
    sp = Searchspace(lr=("DOUBLE", [1e-4, 1e-2], "log"))
    values = [g["lr"] for g in sp.grid(3)]
    assert values[0] == 1e-4 and values[-1] == 1e-2 and abs(values[1] - 1e-3) < 1e-12


@pytest.mark.parametrize("spec, fragment", [
    (("DOUBLE", [1.0, 0.1]), "reversed"),
    (("DOUBLE", [1.0, 1.0]), "empty"),
    (("INTEGER", [5, 1]), "reversed"),
    (("FLOAT", [0, 1]), r"unknown type 'FLOAT'.*write p=\('DOUBLE', \[0, 1\]\)"),
    (("LOG", [1e-4, 1e-1]), r"a log scale is a third element: p=\('DOUBLE', \[0.0001, 0.1\], 'log'\)"),
    (("DOUBLE", [1e-4, 1e-1], "logarithmic"), "unknown scale 'logarithmic'"),
    (("DOUBLE", [0.0, 1.0], "log"), "above 0"),
    (("DOUBLE", [-1.0, 1.0], "log"), "above 0"),
    (("DOUBLE", [0, 1, 2]), "exactly"),
    (("DISCRETE", []), "at least one"),
    (("DISCRETE", ["a"]), "CATEGORICAL"),
    (("CATEGORICAL", ["a", "a"]), "repeat"),
    (("CATEGORICAL", ["a"], "log"), "CATEGORICAL takes no scale"),
    (("INTEGER", [0.5, 3]), "whole"),
    (("DOUBLE", [0, float("inf")]), "finite"),
    ("DOUBLE", "expected"),
])
def test_bad_declarations_name_the_problem(spec, fragment):
    with pytest.raises(SearchspaceError, match=fragment):
        Searchspace(p=spec)


def test_a_scale_in_capitals_is_the_same_scale():
    assert Searchspace(lr=("DOUBLE", [1e-4, 1e-1], "LOG"))["lr"].log


def test_names_are_unique_and_budget_is_reserved():
    sp = Searchspace(a=("DISCRETE", [1]))
    with pytest.raises(SearchspaceError, match="already"):
        sp.add("a", ("DISCRETE", [2]))
    with pytest.raises(SearchspaceError, match="reserved"):
        sp.add("budget", ("DISCRETE", [2]))


def test_api_example_builds():
    sp = Searchspace(lr=("DOUBLE", [1e-4, 1e-1], "log"), width=("INTEGER", [32, 512]),
                     depth=("DISCRETE", [1, 2, 3]), act=("CATEGORICAL", ["relu", "tanh"]))
    sp.add("dropout", ("DOUBLE", [0.0, 0.5]))
    assert sp.names == ["lr", "width", "depth", "act", "dropout"]
    assert "lr=DOUBLE[0.0001, 0.1] log" in repr(sp)


def test_an_optuna_style_range_or_a_bare_list_says_the_right_form():
    with pytest.raises(SearchspaceError, match=r"Optuna's style.*lr=\('DOUBLE', \[0.0001, 0.1\]\)"):
        Searchspace(lr=(1e-4, 1e-1))
    with pytest.raises(SearchspaceError, match=r"depth=\('INTEGER', \[1, 4\]\)"):
        Searchspace(depth=(1, 4))
    with pytest.raises(SearchspaceError, match=r"act=\('CATEGORICAL', \['relu', 'tanh'\]\)"):
        Searchspace(act=["relu", "tanh"])
    with pytest.raises(SearchspaceError, match=r"width=\('CATEGORICAL', \[32, 64, 128\]\)"):
        Searchspace(width=[32, 64, 128])


def test_directions_as_optuna_spells_them():
    from contexts import HyperparameterSearch

    space = Searchspace(x=("DOUBLE", [0.0, 1.0]))
    assert HyperparameterSearch(space, num_trials=2, direction="maximize").direction == "max"
    assert HyperparameterSearch(space, num_trials=2, direction="minimize").direction == "min"


def test_grid_search_says_when_num_trials_cuts_the_grid_short():
    from contexts import HyperparameterSearch

    space = Searchspace(a=("DISCRETE", [1, 2, 3]), b=("CATEGORICAL", ["x", "y"]))
    with pytest.warns(UserWarning, match="runs 4 of the grid's 6 points, drawn at random"):
        HyperparameterSearch(space, "gridsearch", num_trials=4)


def conditional_space():
    sp = Searchspace(opt=("CATEGORICAL", ["sgd", "adam"]), lr=("DOUBLE", [1e-4, 1e-1], "log"))
    sp.add("momentum", ("DOUBLE", [0.0, 0.99]), when={"opt": "sgd"})
    sp.add("nesterov", ("CATEGORICAL", [True, False]), when={"opt": ["sgd"]})
    return sp


@settings(max_examples=50)
@given(st.integers(0, 2**31))
def test_a_conditional_parameter_is_there_exactly_when_its_condition_holds(seed):
    sp, rng = conditional_space(), random.Random(seed)
    for _ in range(20):
        params = sp.sample(rng)
        assert sp.contains(params)
        assert ("momentum" in params) == ("nesterov" in params) == (params["opt"] == "sgd")
    assert not sp.contains({"opt": "adam", "lr": 0.01, "momentum": 0.5})  # present though inactive
    assert not sp.contains({"opt": "sgd", "lr": 0.01})  # absent though active


def test_a_conditional_grid_visits_each_valid_combination_once():
    sp = conditional_space()
    grid = list(sp.grid(resolution=2))
    assert len(grid) == sp.grid_size(2) == 2 * 2 * 2 + 2  # sgd: lr x momentum x nesterov; adam: lr
    assert all(sp.contains(g) for g in grid) and len({repr(sorted(g.items())) for g in grid}) == len(grid)


def test_a_condition_names_an_earlier_parameter_and_one_of_its_values():
    sp = Searchspace(opt=("CATEGORICAL", ["sgd", "adam"]))
    with pytest.raises(SearchspaceError, match="'depth', which is not declared before it"):
        sp.add("momentum", ("DOUBLE", [0.0, 0.9]), when={"depth": 2})
    with pytest.raises(SearchspaceError, match="not a value 'opt' can take"):
        sp.add("momentum", ("DOUBLE", [0.0, 0.9]), when={"opt": "rmsprop"})


@pytest.mark.parametrize("name", ["randomsearch", "gridsearch", "asha", "tpe"])
def test_every_optimizer_keeps_to_a_conditional_space(name):
    from plugins.optimizers import ASHA, TPE, GridSearch, RandomSearch
    from plugins.testing import drive

    opt = {"randomsearch": RandomSearch(), "gridsearch": GridSearch(resolution=2), "asha": ASHA(3, 1, 9),
           "tpe": TPE(n_startup=3)}[name]
    sp = conditional_space()
    opt.setup(sp, num_trials=15, direction="max", seed=1)
    log = drive(opt)
    assert log and all(sp.contains(s.params) for _, s, _ in log)
    assert {s.params["opt"] for _, s, _ in log} == {"sgd", "adam"}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=4), st.integers(0, 2**31), st.data())
def test_a_cut_grid_runs_distinct_points_of_the_grid_drawn_by_its_seed(sizes, seed, data):
    import warnings

    from plugins.optimizers import GridSearch
    from plugins.optimizers.base import FINISHED

    space = Searchspace(**{f"p{i}": ("DISCRETE", list(range(n))) for i, n in enumerate(sizes)})
    full = list(space.grid())
    count = data.draw(st.integers(1, len(full)))

    def run():
        grid = GridSearch()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            grid.setup(space, num_trials=count, direction="max", seed=seed)
        points = []
        while (s := grid.suggest(len(points))) is not FINISHED:
            points.append(s.params)
        return points

    points = run()
    assert len(points) == count and all(p in full for p in points)
    assert len({tuple(sorted(p.items())) for p in points}) == count
    assert points == run()  # the seed decides (a resumed search replays the same points)
    if count == len(full):
        assert points == full  # a whole grid runs in order


def test_a_cut_grid_is_spread_over_the_space_not_one_corner():
    from plugins.optimizers import GridSearch

    space = Searchspace(a=("DISCRETE", list(range(10))), b=("DISCRETE", list(range(10))))
    grid = GridSearch()
    with pytest.warns(UserWarning):
        grid.setup(space, num_trials=10, direction="max", seed=0)
    firsts = {grid.suggest(i).params["a"] for i in range(10)}
    assert len(firsts) >= 5  # in order, all ten had a = 0


@settings(max_examples=150)
@given(spaces(), st.integers(0, 2**32), st.data())
def test_draws_from_priors_lie_inside_the_space(sp, seed, data):
    rng = random.Random(seed)
    chosen = data.draw(st.lists(st.sampled_from(sp.names), unique=True))
    confidence = data.draw(st.sampled_from(["low", "medium", "high"]))
    sp.set_priors({name: (sp[name].sample(rng), confidence) for name in chosen})
    assert sp.contains(sp.prior_config(rng))
    for name in chosen:
        assert sp.prior_config(rng)[name] == sp.priors[name].value
    for _ in range(20):
        drawn = sp.sample_prior(rng)
        assert sp.contains(drawn) and math.isfinite(sp.prior_log_density(drawn))


def test_a_prior_concentrates_draws_and_a_stronger_one_more():
    rng, spreads = random.Random(0), {}
    for confidence in ("low", "medium", "high"):
        sp = Searchspace(lr=("DOUBLE", [1e-5, 1e-1], "log"), act=("CATEGORICAL", ["relu", "tanh", "gelu"]),
                         priors={"lr": (1e-3, confidence), "act": ("gelu", confidence)})
        draws = [sp.sample_prior(rng) for _ in range(3000)]
        spreads[confidence] = sum(abs(math.log10(d["lr"]) + 3) for d in draws) / len(draws)
        share = sum(d["act"] == "gelu" for d in draws) / len(draws)
        assert share == pytest.approx({"low": 2 / 4, "medium": 4 / 6, "high": 8 / 10}[confidence], abs=0.03)
    assert spreads["high"] < spreads["medium"] < spreads["low"] < 4 / 3  # uniform over 4 decades: 1.0 from the middle


@pytest.mark.parametrize("priors, fragment", [
    ({"momentum": 0.9}, "names no hyperparameter of this space; it has lr, act"),
    ({"lr": 0.5}, "not a value 'lr' can take"),
    ({"act": "swish"}, "not a value 'act' can take"),
    ([("lr", 1e-3)], "priors= takes"),
])
def test_a_prior_that_cannot_be_honoured_names_the_problem(priors, fragment):
    with pytest.raises(SearchspaceError, match=fragment):
        Searchspace(lr=("DOUBLE", [1e-4, 1e-1], "log"), act=("CATEGORICAL", ["relu", "tanh"]), priors=priors)
