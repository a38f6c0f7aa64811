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
    from kernel.report import write_report

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
