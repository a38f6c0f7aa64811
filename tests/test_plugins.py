from importlib.metadata import EntryPoint

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contexts import ConfigError, HyperparameterSearch, Searchspace
from plugins import registry
from plugins.earlystop import EarlyStopper, NoStopping
from plugins.optimizers import FINISHED, GridSearch, Optimizer, RandomSearch, Suggestion
from plugins.registry import PluginError

SPACE = Searchspace(lr=("DOUBLE", [1e-4, 1e-1], "log"), width=("INTEGER", [8, 64]),
                    depth=("DISCRETE", [1, 2, 3]), act=("CATEGORICAL", ["relu", "tanh"]))


def test_builtins_are_registered_as_entry_points():
    assert {"randomsearch", "gridsearch"} <= set(registry.names("lagom.optimizers"))
    assert "none" in registry.names("lagom.earlystop")
    assert {"local", "thread"} <= set(registry.names("lagom.launchers"))


def test_unknown_name_lists_the_registered_ones():
    with pytest.raises(PluginError) as info:
        registry.load("lagom.optimizers", "hyperband9000")
    assert "randomsearch" in str(info.value) and "gridsearch" in str(info.value)
    assert "lagom.optimizers" in str(info.value)


def test_an_unknown_optimizer_fails_when_the_context_is_built():
    with pytest.raises(ConfigError, match="registered optimizers: .*randomsearch"):
        HyperparameterSearch(SPACE, optimizer="nope", num_trials=3)


def test_third_party_entry_point_is_found(monkeypatch):
    fake = EntryPoint(name="mine", value="tests_plugin_mod:Mine", group="lagom.optimizers")
    real = registry._entry_points
    monkeypatch.setattr(registry, "_entry_points",
                        lambda g: real(g) + ([fake] if g == "lagom.optimizers" else []))
    import sys
    import types

    mod = types.ModuleType("tests_plugin_mod")

    class Mine(RandomSearch):
        pass

    mod.Mine = Mine
    monkeypatch.setitem(sys.modules, "tests_plugin_mod", mod)
    assert "mine" in registry.names("lagom.optimizers")
    assert isinstance(registry.resolve("lagom.optimizers", "mine", Optimizer), Mine)


def test_a_broken_plugin_names_itself(monkeypatch):
    fake = EntryPoint(name="broken", value="no_such_module_xyz:Thing", group="lagom.optimizers")
    monkeypatch.setattr(registry, "_entry_points", lambda g: [fake])
    with pytest.raises(PluginError, match="'broken' is registered .* failed to load"):
        registry.load("lagom.optimizers", "broken")


def test_instances_and_classes_are_accepted_and_checked():
    inst = RandomSearch()
    assert registry.resolve("lagom.optimizers", inst, Optimizer) is inst
    assert isinstance(registry.resolve("lagom.earlystop", NoStopping, EarlyStopper), NoStopping)
    with pytest.raises(PluginError, match="lacks: suggest"):
        registry.resolve("lagom.optimizers", object(), Optimizer)


def drain(opt, limit=10_000):
    out = []
    for i in range(limit):
        d = opt.suggest(i)
        if d is FINISHED:
            return out
        out.append(d)
    raise AssertionError("never finished")


@settings(max_examples=50)
@given(st.integers(1, 60), st.integers(0, 2**31))
def test_random_search_stays_inside_the_space_and_stops_at_num_trials(n, seed):
    opt = RandomSearch()
    opt.setup(SPACE, num_trials=n, direction="max", seed=seed)
    out = drain(opt)
    assert len(out) == n
    assert all(isinstance(s, Suggestion) and SPACE.contains(s.params) for s in out)


def test_random_search_is_reproducible_with_a_seed():
    a, b = RandomSearch(), RandomSearch()
    a.setup(SPACE, num_trials=5, direction="max", seed=7)
    b.setup(SPACE, num_trials=5, direction="max", seed=7)
    assert [s.params for s in drain(a)] == [s.params for s in drain(b)]


def test_random_search_over_a_finite_space_repeats_nothing_until_exhausted():
    sp = Searchspace(a=("DISCRETE", [1, 2, 3]), b=("CATEGORICAL", ["x", "y"]))
    opt = RandomSearch()
    opt.setup(sp, num_trials=6, direction="max", seed=1)
    assert len({tuple(s.params.values()) for s in drain(opt)}) == 6


def test_random_search_needs_num_trials():
    with pytest.raises(ConfigError, match="num_trials"):
        HyperparameterSearch(SPACE, "randomsearch")


def test_grid_search_visits_every_point_once_then_finishes():
    sp = Searchspace(a=("DISCRETE", [1, 2, 3]), b=("CATEGORICAL", ["x", "y"]))
    opt = GridSearch()
    opt.setup(sp, num_trials=None, direction="max", seed=0)
    assert [s.params for s in drain(opt)] == list(sp.grid())


def test_grid_search_over_a_range_explains_itself():
    with pytest.raises(ConfigError, match="DISCRETE .* resolution"):
        HyperparameterSearch(SPACE, "gridsearch")
    ctx = HyperparameterSearch(SPACE, GridSearch(resolution=2))
    assert ctx.controller().describe()["total_trials"] == 2 * 2 * 3 * 2


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(num_trials=0), "num_trials"), (dict(num_trials=3, workers=-1), "workers"),
    (dict(num_trials=3, direction="up"), "direction"), (dict(num_trials=3, metric=""), "metric"),
    (dict(num_trials=3, es_interval=0), "es_interval"), (dict(num_trials=3, es_policy="x"), "early stopper"),
])
def test_bad_search_options_fail_at_construction(kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment):
        HyperparameterSearch(SPACE, **kwargs)


def test_searchspace_must_be_a_searchspace():
    with pytest.raises(ConfigError, match="Searchspace"):
        HyperparameterSearch({"lr": ("DOUBLE", [0, 1])}, num_trials=2)
    with pytest.raises(ConfigError, match="empty"):
        HyperparameterSearch(Searchspace(), num_trials=2)


def test_a_source_checkout_without_install_still_finds_the_builtins(monkeypatch):
    import importlib.metadata as md

    real = md.distribution

    def not_installed(name):
        if name == "lagom-kernel":
            raise md.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(md, "distribution", not_installed)
    monkeypatch.setattr(registry, "entry_points", lambda group: [])
    assert {"randomsearch", "asha", "tpe"} <= set(registry.names("lagom.optimizers"))
    assert "multihost" in registry.names("lagom.strategies")
    assert registry.load("lagom.earlystop", "median").__name__ == "MedianStopping"


@pytest.mark.parametrize("optimizer", ["randomsearch", "tpe", "asha", GridSearch(resolution=2)], ids=str)
def test_points_to_evaluate_run_first_then_the_optimizer_goes_on(optimizer):
    known = [{"lr": 1e-3, "width": 32, "depth": 2, "act": "tanh"}, {"lr": 5e-2, "width": 64, "depth": 1, "act": "relu"}]
    ctx = HyperparameterSearch(SPACE, optimizer, num_trials=5, points_to_evaluate=known)
    controller = ctx.controller()
    specs = [controller.next_trial(i) for i in range(4)]
    assert [s.params for s in specs[:2]] == known and all(SPACE.contains(s.params) for s in specs)


def test_points_to_evaluate_must_name_every_parameter_inside_the_space():
    with pytest.raises(ConfigError, match=r"points_to_evaluate\[0\] lacks \['width', 'depth', 'act'\]"):
        HyperparameterSearch(SPACE, num_trials=3, points_to_evaluate=[{"lr": 1e-3}])
    with pytest.raises(ConfigError, match="outside the search space"):
        HyperparameterSearch(SPACE, num_trials=3, points_to_evaluate=[{"lr": 9.0, "width": 8, "depth": 1, "act": "relu"}])
