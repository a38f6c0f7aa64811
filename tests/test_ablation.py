"""Ablation: which trials a study makes, what the generators build, and a real run on agents."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from contexts import Ablation, AblationStudy, ConfigError, HyperparameterSearch, Searchspace, Single
from kernel import lagom
from plugins.ablators import LOCO, Ablator, Component

ROOT = Path(__file__).resolve().parent.parent
LAYERS = [("input", 8), ("hidden_1", 8), ("hidden_2", 8), ("block_a", 4), ("output", 3)]


def table(n=30):
    rng = np.random.default_rng(0)
    return {"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.normal(size=n),
            "target": rng.integers(0, 3, size=n)}


def study(**kw):
    s = AblationStudy(dataset=table(), label="target")
    s.model.set_base_model_generator(LAYERS)
    return s


def components(s):
    ablator = LOCO()
    ablator.setup(s)
    return ablator.components()


def test_loco_makes_one_trial_per_component_after_the_baseline():
    s = study()
    s.features.include("a", "c")
    s.model.layers.include("hidden_2")
    s.model.layers.include_groups(["hidden_1", "block_a"], prefix="hidden")
    s.model.add_custom_model_generator(lambda rngs: None, "tiny")
    s.validate()
    got = components(s)
    assert got[0] == Component("baseline", "baseline")
    assert [(c.kind, c.name, c.features, c.layers, c.model) for c in got[1:]] == [
        ("feature", "a", ("a",), (), None), ("feature", "c", ("c",), (), None),
        ("layer", "hidden_2", (), ("hidden_2",), None),
        ("group", "hidden_1+block_a", (), ("hidden_1", "block_a"), None),
        ("group", "hidden*", (), ("hidden_1", "hidden_2"), None),
        ("model", "tiny", (), (), "tiny"),
    ]
    assert len(got) == 7


def test_features_include_all_and_exclude():
    s = study()
    s.features.include_all().exclude("b")
    s.validate()
    assert [c.name for c in components(s)] == ["baseline", "a", "c"]


@pytest.mark.parametrize("setup, fragment", [
    (lambda s: s.model.layers.include("input"), "first layer 'input' cannot be left out"),
    (lambda s: s.model.layers.include("output"), "last layer 'output' cannot be left out"),
    (lambda s: s.model.layers.include_groups(["hidden_1", "output"]), "last layer 'output'"),
    (lambda s: s.model.layers.include_groups(prefix="dense"),
     "no layer name starts with 'dense'; the base model's layers: input, hidden_1, hidden_2, block_a, output"),
    (lambda s: s.model.layers.include("hidden_9"), "'hidden_9' is not in the base model; its layers: input"),
    (lambda s: s.model.layers.include_groups(["hidden_1", "nope"]), "'nope' of group"),
    (lambda s: s.features.include("z"), r"features \['z'\] are not in the data set; its features: a, b, c"),
])
def test_bad_studies_say_what_exists(setup, fragment):
    s = study()
    setup(s)
    with pytest.raises(ConfigError, match=fragment):
        Ablation(s, metric="loss")


def test_other_study_mistakes():
    with pytest.raises(ConfigError, match="label='y' is not a column; columns: a, b, c, target"):
        AblationStudy(dataset=table(), label="y")
    s = AblationStudy(dataset=table(), label="target")
    s.model.layers.include("hidden_1")
    with pytest.raises(ConfigError, match="no base model"):
        s.validate()
    s = AblationStudy(dataset=table(), label="target")
    with pytest.raises(ConfigError, match="leaves nothing out"):
        Ablation(s)
    s = AblationStudy(dataset=table(), label="target")
    s.model.set_base_model_generator(lambda dropped, rngs: None)
    s.model.layers.include_groups(prefix="h")
    with pytest.raises(ConfigError, match="needs the layer names"):
        s.validate()
    with pytest.raises(ConfigError, match="layer names repeat"):
        AblationStudy().model.set_base_model_generator([("a", 2), ("a", 3)])


def test_the_generators_leave_the_component_out_and_infer_shapes():
    jnp = pytest.importorskip("jax.numpy")
    from flax import nnx

    s = study()
    inj = s.injector()
    full = inj.provide(None)
    x, y = full["dataset"]()
    assert x.shape == (30, 3) and x.dtype == np.float32 and full["dataset"].features == ["a", "b", "c"]
    got = inj.provide({"features": ["b"], "layers": ["hidden_1", "hidden_2"]})
    assert got["dataset"].features == ["a", "c"] and got["dataset"]().__getitem__(0).shape == (30, 2)
    net = got["model"](nnx.Rngs(0))  # the input width comes from the data set without 'b'
    assert net.layer_names == ("input", "block_a", "output")
    assert net(jnp.ones((5, 2))).shape == (5, 3)  # block_a's input inferred from 'input' (8)
    custom = s.injector()
    custom.custom["tiny"] = lambda rngs: "tiny model"
    assert custom.provide({"model": "tiny"})["model"](None) == "tiny model"


def test_a_function_as_the_data_set_source_gets_the_features_to_keep():
    seen = []

    def load(features):
        seen.append(features)
        return np.zeros((4, len(features))), np.zeros(4)

    s = AblationStudy(dataset=load, features=["a", "b"])
    x, _ = s.injector().provide({"features": ["a"]})["dataset"]()
    assert seen == [["b"]] and x.shape == (4, 1)


def test_a_dataframe_works_like_a_dict():
    pd = pytest.importorskip("pandas")
    s = AblationStudy(dataset=pd.DataFrame(table()), label="target")
    assert s.feature_names == ["a", "b", "c"]


def test_a_custom_ablator_instance():
    class OnlyFeatures(Ablator):
        def components(self):
            return [Component("baseline", "baseline")] + [
                Component("feature", f, features=(f,)) for f in self.study.feature_names]

    s = study()
    ctx = Ablation(s, ablator=OnlyFeatures(), metric="loss")
    assert ctx.controller().total == 4


def wine_subset_study():
    sys.path.insert(0, str(ROOT / "examples"))
    import ablation_wine

    t = ablation_wine.wine_table()
    keep = ["alcohol", "flavanoids", "color_intensity", "proline", "noise", "target"]
    s = AblationStudy(dataset={k: t[k] for k in keep}, label="target")
    s.features.include_all()
    s.model.set_base_model_generator([("input", 16), ("hidden_1", 16), ("hidden_2", 8), ("output", 3)])
    s.model.layers.include("hidden_1")
    s.model.layers.include_groups(prefix="hidden")
    return ablation_wine, s


@pytest.mark.slow
def test_an_ablation_on_real_agents_ranks_the_noise_feature_last(runs):
    ablation_wine, s = wine_subset_study()
    result = lagom(ablation_wine.train, Ablation(s, direction="min", metric="loss", workers=2,
                                                 hparams={"lr": 3e-3, "steps": 150}),
                   path=runs, verbose=0)
    assert result.trials[0].info["kind"] == "baseline"
    assert len(result.trials) == 1 + 5 + 1 + 1 and result.count("finished") == 8  # hidden layers out: still trains
    features = [r["component"] for r in result.ranking if r["kind"] == "feature"]
    assert features[-1] == "feature noise"  # pure noise matters least
    assert all(r["effect"] == pytest.approx(r["metric"] - result.baseline) for r in result.ranking)
    saved = json.loads((result.path / "result.json").read_text())
    assert [r["component"] for r in saved["ranking"]] == [r["component"] for r in result.ranking]
    png = result.path / "ablation.png"
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from kernel.outputs.report import write_report

    status = subprocess.run([sys.executable, "-m", "kernel", "status", str(result.path)], capture_output=True,
                            text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert "left out: feature noise" in status.stdout  # the tables say which component each trial left out
    assert "<td>feature noise</td>" in write_report(result.path).read_text()


@pytest.mark.slow
def test_the_ablation_function_runs_unchanged_in_single_and_search(runs):
    ablation_wine, s = wine_subset_study()
    one = lagom(ablation_wine.train, Single(hparams={"steps": 30}, study=s), path=runs, verbose=0)
    assert one.trials[0].result["loss"] > 0
    space = Searchspace(lr=("DOUBLE", [1e-3, 1e-2], "log"))
    res = lagom(ablation_wine.train, HyperparameterSearch(space, num_trials=2, metric="loss", direction="min",
                                                          workers=1, study=s), path=runs, verbose=0)
    assert res.count("finished") == 2


# -- layers of any flax.nnx model --------------------------------------------------------------
def cnn_study():
    sys.path.insert(0, str(ROOT / "examples"))
    import ablation_cnn_digits

    return ablation_cnn_digits, ablation_cnn_digits.make_study()


def test_a_model_of_named_layers_is_rebuilt_for_the_shapes_left():
    import jax.numpy as jnp
    from flax import nnx

    _, s = cnn_study()
    Ablation(s, metric="accuracy")  # every variant checked when the study is built
    inject = s.injector()
    for dropped, names in [((), ("conv1", "block", "pool", "flatten", "dense1", "dense2", "out")),
                           (("pool",), ("conv1", "block", "flatten", "dense1", "dense2", "out")),
                           (("dense1", "dense2"), ("conv1", "block", "pool", "flatten", "out"))]:
        net = inject.provide({"layers": list(dropped)})["model"](nnx.Rngs(0))
        assert net.layer_names == names and net(jnp.zeros((2, 8, 8, 1))).shape == (2, 10)
    full = inject.provide({})["model"](nnx.Rngs(0))
    no_pool = inject.provide({"layers": ["pool"]})["model"](nnx.Rngs(0))
    assert full.layers[4].layers[0].in_features == 4 * 4 * 16 and no_pool.layers[3].layers[0].in_features == 8 * 8 * 16


@pytest.mark.parametrize("leave_out, fragment", [
    (["flatten"], r"leaving out layer 'flatten' changes the model's output shape from \(10,\) to \(4, 4, 10\)"),
    (["conv1"], r"leaving out layer 'conv1' breaks the model: layer 'block' cannot take inputs of shape "
                r"\(8, 8, 1\).*must keep its input's shape"),
])
def test_leaving_out_a_layer_the_shapes_cannot_follow_fails_when_the_study_is_built(leave_out, fragment):
    _, s = cnn_study()
    s.model.layers.include(*leave_out)
    with pytest.raises(ConfigError, match=fragment):
        Ablation(s, metric="accuracy")


def test_a_model_of_named_layers_needs_its_input_shape_and_takes_the_users_own_layers():
    from contexts.ablation.layers import Dense

    s = AblationStudy()
    s.model.set_base_model_generator([("a", Dense(4)), ("b", lambda shape, rngs: (lambda x: x * 2)), ("out", Dense(2))])
    s.model.layers.include("b")
    with pytest.raises(ConfigError, match="input_shape"):
        Ablation(s)
    s.model.set_base_model_generator([("a", Dense(4)), ("b", lambda shape, rngs: (lambda x: x * 2)), ("out", Dense(2))],
                                     input_shape=(3,))
    assert Ablation(s).controller().total == 2


# -- features that are several columns ---------------------------------------------------------
def test_a_feature_group_is_left_out_whole():
    t = dict(table(), color_red=np.zeros(30), color_blue=np.ones(30))
    s = AblationStudy(dataset=t, label="target")
    s.features.include("a")
    s.features.include_groups(prefix="color_", name="color")
    s.features.include_groups(["b", "c"])
    labels = [(c.label, c.features) for c in components(s)]
    assert labels == [("baseline", ()), ("feature a", ("a",)), ("features color", ("color_red", "color_blue")),
                      ("features b+c", ("b", "c"))]
    gen = s.injector().provide({"features": ["color_red", "color_blue"]})["dataset"]
    assert gen.features == ["a", "b", "c"] and gen()[0].shape == (30, 3)
    with pytest.raises(ConfigError, match="no feature name starts with 'size_'"):
        s.features.include_groups(prefix="size_")
        Ablation(s)


def test_a_dataframe_with_a_one_hot_group():
    pd = pytest.importorskip("pandas")
    frame = pd.get_dummies(pd.DataFrame({"a": np.arange(6.0), "kind": list("xyzxyz"), "target": [0, 1] * 3}),
                           columns=["kind"], dtype=float)
    s = AblationStudy(dataset=frame, label="target")
    s.features.include_groups(prefix="kind_", name="kind")
    (_, group) = components(s)
    assert group.features == ("kind_x", "kind_y", "kind_z")
    assert s.injector().provide({"features": list(group.features)})["dataset"]()[0].shape == (6, 1)


# -- repeats and intervals ---------------------------------------------------------------------
def test_effects_are_paired_by_seed_with_a_t_interval():
    from contexts.ablation.ranking import interval, rank
    from kernel.direction import Direction
    from kernel.trials import Trial

    def t(i, label, seed, metric, state="finished"):
        kind = "baseline" if label == "baseline" else "feature"
        return Trial(i, {}, state=state, metric=metric, info={"ablated": label, "kind": kind, "seed": seed})

    base = [0.90, 0.80, 0.85]  # seeds differ a lot; the pairing cancels it
    trials = [t(s, "baseline", s, m) for s, m in enumerate(base)]
    trials += [t(3 + s, "feature big", s, m - 0.10) for s, m in enumerate(base)]
    trials += [t(6 + s, "feature none", s, m + d) for s, (m, d) in enumerate(zip(base, [0.01, -0.01, 0.0]))]
    trials += [t(9, "feature broken", 0, None, "failed")]
    baseline, rows = rank(trials, Direction.MAX)
    assert baseline == {0: 0.90, 1: 0.80, 2: 0.85}
    big, none, broken = rows
    assert big["component"] == "feature big" and big["effect"] == pytest.approx(-0.10)
    assert big["ci"] == pytest.approx([-0.10, -0.10]) and big["significant"] is True
    assert none["significant"] is False and none["ci"][0] < 0 < none["ci"][1] and none["repeats"] == 3
    assert broken["effect"] is None and broken["ci"] is None
    lo, hi = interval([1.0, 2.0, 3.0, 4.0, 5.0])  # mean 3, sd 1.58, t(4) = 2.776
    assert (lo, hi) == pytest.approx((3 - 2.776 * 1.5811 / 5 ** 0.5, 3 + 2.776 * 1.5811 / 5 ** 0.5), rel=1e-4)


def test_repeats_run_every_component_with_every_seed():
    s = study()
    s.features.include("a")
    controller = Ablation(s, metric="loss", repeats=3, hparams={"lr": 0.1, "seed": 10}).controller()
    from kernel.controller import DONE

    specs = list(iter(lambda: controller.next_trial(0), DONE))
    assert controller.total == 6 and len(specs) == 6
    assert [(sp.info["ablated"], sp.params["seed"]) for sp in specs] == [
        ("baseline", 10), ("feature a", 10), ("baseline", 11), ("feature a", 11), ("baseline", 12), ("feature a", 12)]
    assert all(sp.params["lr"] == 0.1 and sp.info["seed"] == sp.params["seed"] for sp in specs)
    with pytest.raises(ConfigError, match="repeats"):
        Ablation(s, metric="loss", repeats=0)


def signal_table(seed=0, n=400):
    rng = np.random.default_rng(seed)
    t = {k: rng.normal(size=n) for k in ("strong", "weak", "noise_a", "noise_b")}
    t["y"] = 3 * t["strong"] + 0.7 * t["weak"] + rng.normal(size=n)
    return t


def fit_linear(dataset, hparams, reporter):
    """Least squares by gradient descent (JAX) on a seed's split; the validation MSE."""
    import jax
    import jax.numpy as jnp

    x, y = dataset()
    idx = np.random.default_rng(hparams["seed"]).permutation(len(y))
    tr, va = idx[:300], idx[300:]
    xt, yt = jnp.asarray(x[tr]), jnp.asarray(y[tr], jnp.float32)

    def loss(p, x, y):
        return jnp.mean((x @ p["w"] + p["b"] - y) ** 2)

    @jax.jit
    def fit(p):
        def step(p, _):
            g = jax.grad(loss)(p, xt, yt)
            return jax.tree_util.tree_map(lambda a, b: a - 0.1 * b, p, g), None
        return jax.lax.scan(step, p, None, length=300)[0]

    p = fit({"w": jnp.zeros(x.shape[1]), "b": jnp.zeros(())})
    mse = float(loss(p, jnp.asarray(x[va]), jnp.asarray(y[va], jnp.float32)))
    reporter.broadcast(metric=mse, step=0)
    return {"mse": mse}


@pytest.mark.slow
def test_repeats_tell_a_strong_and_a_weak_feature_from_noise_on_real_agents(runs):
    s = AblationStudy(dataset=signal_table(), label="y")
    s.features.include_all()
    result = lagom(fit_linear, Ablation(s, direction="min", metric="mse", workers=2, repeats=5), path=runs, verbose=0)
    assert len(result.trials) == 25 and result.count("finished") == 25
    by = {r["component"]: r for r in result.ranking}
    assert result.ranking[0]["component"] == "feature strong" and result.ranking[1]["component"] == "feature weak"
    assert by["feature strong"]["significant"] and by["feature weak"]["significant"]
    assert by["feature noise_a"]["significant"] is False and by["feature noise_b"]["significant"] is False
    assert all(r["repeats"] == 5 and r["ci"][0] <= r["effect"] <= r["ci"][1] for r in result.ranking)
    saved = json.loads((result.path / "result.json").read_text())
    assert saved["ranking"][0]["ci"] == pytest.approx(by["feature strong"]["ci"]) and saved["repeats"] == 5
    assert "indistinguishable from zero" in str(result)
    assert (result.path / "ablation.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_a_cnn_ablation_runs_end_to_end_on_real_agents(runs):
    example, s = cnn_study()
    result = lagom(example.train, Ablation(s, direction="max", metric="accuracy", workers=2, hparams={"epochs": 3}),
                   path=runs, verbose=0)
    assert result.count("finished") == 5 and result.baseline > 0.8
    assert {r["component"] for r in result.ranking} == {"layer block", "layer pool", "layer dense1", "group dense layers"}
    assert all(r["metric"] > 0.3 for r in result.ranking)  # every variant trains


def fit_linear_ignoring_the_seed(dataset, hparams, reporter):
    return fit_linear(dataset, {**hparams, "seed": 0}, reporter)


@pytest.mark.slow
def test_repeats_of_a_function_that_ignores_the_seed_claim_nothing(runs):
    """Identical repeats make every interval zero-wide: a 1e-7 difference would be 'significant'."""
    s = AblationStudy(dataset=signal_table(), label="y")
    s.features.include("strong", "noise_a")
    result = lagom(fit_linear_ignoring_the_seed, Ablation(s, direction="min", metric="mse", workers=2, repeats=3),
                   path=runs, verbose=0)
    assert len(set(result.baseline_by_seed.values())) == 1
    assert all(r["significant"] is None for r in result.ranking)
    summary = str(result)
    assert "ignores hparams['seed']" in summary and "indistinguishable" not in summary
    strong = next(r for r in result.ranking if r["component"] == "feature strong")
    assert f"{strong['effect']:+.3g}" in summary  # significant digits, not four decimals


def test_a_function_asking_for_a_model_the_study_cannot_build_fails_before_anything_runs(runs):
    def train(dataset, model, hparams, reporter):
        return {"metric": 1.0}

    s = AblationStudy(dataset=table(), label="target")  # features alone: no base model
    s.features.include("a")
    with pytest.raises(TypeError, match=r"no base model to build it from: call study.model.set_base_model_generator"):
        lagom(train, Ablation(s, workers=1), path=runs, verbose=0)
    assert not runs.exists()  # refused before any folder or agent


def test_a_component_whose_removal_helps_beyond_noise_is_harmful_not_important():
    from contexts.ablation.context import _grouped
    from contexts.ablation.ranking import rank
    from kernel.direction import Direction
    from kernel.trials import Trial

    def t(i, label, seed, metric):
        kind = "baseline" if label == "baseline" else "feature"
        return Trial(i, {}, state="finished", metric=metric, info={"ablated": label, "kind": kind, "seed": seed})

    base = [0.90, 0.80, 0.85]
    trials = [t(s, "baseline", s, m) for s, m in enumerate(base)]
    trials += [t(3 + s, "feature signal", s, m - 0.10) for s, m in enumerate(base)]
    trials += [t(6 + s, "feature noise", s, m + 0.02 + 0.001 * s) for s, m in enumerate(base)]  # helps every seed
    trials += [t(9 + s, "feature idle", s, m + d) for s, (m, d) in enumerate(zip(base, [0.01, -0.01, 0.0]))]
    for direction, flip in ((Direction.MAX, 1), (Direction.MIN, -1)):  # the same story told of a loss
        flipped = [Trial(x.id, {}, state="finished", metric=flip * x.metric, info=x.info) for x in trials]
        _, rows = rank(flipped, direction)
        by = {r["component"]: r["verdict"] for r in rows}
        assert by == {"feature signal": "important", "feature noise": "harmful", "feature idle": "indistinguishable"}
        text = "\n".join(_grouped(rows))
        assert text.index("important (leaving it out hurts)") < text.index("feature signal") \
            < text.index("harmful (leaving it out helps)") < text.index("feature noise") \
            < text.index("indistinguishable from zero") < text.index("feature idle")
    _, one_run = rank([x for x in trials if x.info["seed"] == 0], Direction.MAX)
    assert {r["component"]: r["verdict"] for r in one_run} == {
        "feature signal": "hurts", "feature noise": "helps", "feature idle": "helps"}  # one run: nothing judged
