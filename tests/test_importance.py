"""Which hyperparameters mattered (kernel/outputs/importance.py), on planted objectives and on a
real search's folder."""
from __future__ import annotations

import json
import random
import subprocess
import sys
import os

import pytest

import fns
from contexts import HyperparameterSearch, Searchspace
from kernel import lagom
from kernel.outputs.importance import importance

PLANTED = ["a", "b"]


def planted_trials(n, seed, noise=0.05):
    rng = random.Random(seed)
    params, scores = [], []
    for _ in range(n):
        p = {k: rng.random() for k in "abcde"}
        p["kind"] = rng.choice(["x", "y", "z"])
        params.append(p)
        scores.append(fns.planted(p, None)["score"] + rng.gauss(0, noise))
    return params, scores


def test_the_two_parameters_that_matter_stand_out_in_nine_of_ten_seeds():
    found = 0
    for seed in range(10):
        rows = importance(*planted_trials(300, seed), seed=seed)
        found += [r["param"] for r in rows[:2]] in (PLANTED, PLANTED[::-1]) and \
            [r["param"] for r in rows if r["stands_out"]] in (PLANTED, PLANTED[::-1])
    assert found >= 9


def test_nothing_stands_out_where_nothing_matters():
    rng = random.Random(0)
    params = [{k: rng.random() for k in "abc"} for _ in range(400)]
    rows = importance(params, [rng.random() for _ in params])
    assert not any(r["stands_out"] for r in rows)
    assert all(r["interval"][0] <= r["importance"] <= r["interval"][1] for r in rows)
    assert sum(r["importance"] for r in rows) == pytest.approx(1.0, abs=0.1)


def test_a_conditional_parameter_and_too_few_trials():
    rng = random.Random(1)
    params = [{"opt": o, **({"momentum": rng.random()} if o == "sgd" else {})}
              for o in rng.choices(["sgd", "adam"], k=200)]
    scores = [1.0 if p["opt"] == "adam" else rng.random() * 0.5 for p in params]
    rows = importance(params, scores)
    assert rows[0]["param"] == "opt" and rows[0]["stands_out"]
    with pytest.raises(ValueError, match="at least 10 trials"):
        importance(params[:5], scores[:5])


def test_a_search_s_folder_says_what_mattered(runs):
    space = Searchspace(**{k: ("DOUBLE", [0.0, 1.0]) for k in "abcde"}, kind=("CATEGORICAL", ["x", "y", "z"]))
    result = lagom(fns.planted, HyperparameterSearch(space, "randomsearch", num_trials=300, metric="score",
                                                     workers=2, seed=3), path=runs, verbose=0)
    rows = result.importance()
    assert {r["param"] for r in rows if r["stands_out"]} == set(PLANTED)
    saved = json.loads((result.path / "result.json").read_text())
    assert [r["param"] for r in saved["importance"]] == [r["param"] for r in rows]
    assert "a, b stand out" in str(result) or "b, a stand out" in str(result)
    out = subprocess.run([sys.executable, "-m", "kernel", "importance", str(result.path)], capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.returncode == 0 and "stand out" in out.stdout and "kind" in out.stdout
    from kernel.outputs.report import write_report

    assert "report_importance.png" in write_report(result.path).read_text()
    assert (result.path / "report_importance.png").read_bytes()[:4] == b"\x89PNG"


def test_several_objectives_rank_by_pareto_order():
    from kernel.outputs.importance import of_trials
    from kernel.trials import Trial

    rng = random.Random(2)
    trials = []
    for i in range(200):
        p = {"a": rng.random(), "z": rng.random()}
        values = [-(p["a"] - 0.2) ** 2, -(p["a"] - 0.4) ** 2]  # both objectives want a near 0.2-0.4
        trials.append(Trial(i, p, state="finished", metric=values[0], values=values))
    rows = of_trials(trials, ["max", "max"])
    assert rows[0]["param"] == "a" and rows[0]["stands_out"]


def test_by_default_the_largest_budget_with_enough_finished_trials():
    from kernel.outputs.importance import of_trials
    from kernel.trials import Trial

    rng = random.Random(3)
    trials = []
    for i in range(60):
        p = {"a": rng.random(), "z": rng.random()}
        trials.append(Trial(i, p, budget=1, state="finished", metric=-(p["a"] - 0.5) ** 2))
    trials += [Trial(60 + i, {"a": 0.5, "z": rng.random()}, budget=9, state="finished", metric=0.0) for i in range(3)]
    rows = of_trials(trials, ["max"])  # ASHA's top rung: 3 trials; its first: 60
    assert rows[0]["param"] == "a" and rows[0]["stands_out"]
    with pytest.raises(ValueError, match="at least 10"):
        of_trials(trials, ["max"], budget=9)


def test_functional_anova_finds_the_planted_parameters_in_nine_of_ten_seeds():
    from kernel.outputs.fanova import functional_anova

    found = 0
    for seed in range(10):
        rows = functional_anova(*planted_trials(300, seed), seed=seed)
        found += [r["param"] for r in rows if r["stands_out"]] in (PLANTED, PLANTED[::-1])
    assert found >= 9
    assert sum(r["importance"] for r in rows) <= 1.05  # shares of variance: what each explains alone


def test_a_searchs_result_gives_either_estimate(runs):
    space = Searchspace(**{k: ("DOUBLE", [0.0, 1.0]) for k in "abcde"}, kind=("CATEGORICAL", ["x", "y", "z"]))
    result = lagom(fns.planted, HyperparameterSearch(space, "randomsearch", num_trials=200, metric="score",
                                                     workers=2, seed=1), path=runs, verbose=0)
    rows = result.importance(method="fanova")
    assert {r["param"] for r in rows if r["stands_out"]} == set(PLANTED) and rows[0]["method"] == "fanova"
    with pytest.raises(ValueError, match="'ped'"):
        result.importance(method="shap")
    out = subprocess.run([sys.executable, "-m", "kernel", "importance", str(result.path), "--method", "fanova"],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.returncode == 0 and "variance each explains alone" in out.stdout and "  a " in out.stdout
