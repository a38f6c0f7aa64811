"""Population-based training: exploit only members with checkpoints, weights and hyperparameters
together, a lineage in the result, and real agents that load exactly the checkpoint claimed."""
import math

import pytest

import fns
from contexts import HyperparameterSearch, Searchspace
from kernel import lagom
from plugins.optimizers import PBT
from plugins.testing import drive

SPACE = Searchspace(lr=("DOUBLE", [1e-3, 1.0], "log"), width=("DISCRETE", [16, 32, 64]),
                    act=("CATEGORICAL", ["relu", "tanh", "gelu"]))


def run(pbt, score, checkpointed=True, seed=0):
    """Drive ``pbt`` as the kernel would; ``score(params, budget)`` is each trial's metric."""
    pbt.setup(SPACE, num_trials=None, direction="max", seed=seed)
    log = drive(pbt, seed=seed, score=lambda s: score(s.params, s.budget), checkpointed=checkpointed)
    return [(t, s) for t, s, _ in log]


def lr_score(params, budget):
    return -abs(math.log10(params["lr"]) + 1)  # best at lr = 0.1


def test_every_member_trains_to_max_budget_in_segments():
    log = run(PBT(8, 2, population=4), lr_score)
    by_id = dict(log)
    assert sorted(s.info["member"] for _, s in log if s.budget == 8) == [0, 1, 2, 3]  # each ends once, at 8
    for _, s in log:  # a segment is 2 more than the checkpoint it continues (from scratch: 2)
        assert s.budget == (2 if s.parent is None else by_id[s.parent].budget + 2)


def test_a_bottom_member_continues_from_a_top_member_s_checkpoint_with_its_explored_hyperparameters():
    log = run(PBT(12, 2, population=6, quantile=0.5), lr_score, seed=3)
    by_id = dict(log)
    exploits = [(t, s) for t, s in log if "exploit" in s.info]
    assert exploits
    for t, s in exploits:
        parent = by_id[s.parent]
        assert parent.info["member"] == s.info["exploit"] != s.info["member"]  # another member's weights...
        assert s.info["from_params"] == parent.params  # ...and the hyperparameters that trained them
        assert s.budget == min(12, parent.budget + 2)
        for name, value in s.params.items():
            old = parent.params[name]
            if SPACE[name].type == "DOUBLE" and not math.isclose(value, old):
                assert any(math.isclose(value, min(1.0, max(1e-3, old * f))) for f in (0.8, 1.2)) \
                    or SPACE[name].contains(value)  # perturbed, or resampled
            assert SPACE[name].contains(value)
    plain = [s for _, s in log if "exploit" not in s.info and s.parent is not None]
    assert all(by_id[s.parent].info["member"] == s.info["member"] and by_id[s.parent].params == s.params
               for s in plain)  # the others carry on unchanged from their own checkpoint


def test_no_member_is_exploited_before_it_has_saved_a_checkpoint():
    log = run(PBT(8, 2, population=4, quantile=0.5), lr_score, checkpointed=False)
    assert log and not any("exploit" in s.info for _, s in log)
    assert all(s.parent is None for _, s in log)  # nothing to continue from: each segment starts over


def test_only_the_explored_hyperparameters_change_the_others_are_the_donor_s():
    pbt = PBT(4, 1, population=2)  # default: the DOUBLE ones (lr); width and act shape the weights
    pbt.setup(SPACE, num_trials=None, direction="max", seed=1)
    for _ in range(50):
        moved = pbt._explore({"lr": 0.1, "width": 32, "act": "tanh"})
        assert moved["width"] == 32 and moved["act"] == "tanh"
    with pytest.raises(ValueError, match="not in the search space"):
        PBT(4, 1, explore=["momentum"]).setup(SPACE, num_trials=None, direction="max", seed=0)


def test_explore_moves_categories_and_discrete_values_to_a_neighbour():
    pbt = PBT(4, 1, population=2, resample_probability=0.0, explore=["lr", "width", "act"])
    pbt.setup(SPACE, num_trials=None, direction="max", seed=1)
    for _ in range(50):
        moved = pbt._explore({"lr": 0.1, "width": 32, "act": "tanh"})
        assert moved["width"] in (16, 64) and moved["act"] in ("relu", "gelu")
        assert any(math.isclose(moved["lr"], 0.1 * f) for f in (0.8, 1.2))


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="perturbation_interval"):
        PBT(4, 8)
    with pytest.raises(ValueError, match="population"):
        PBT(4, 1, population=1)


@pytest.mark.slow
def test_on_real_agents_every_exploit_loads_the_checkpoint_it_claims(runs):
    space = Searchspace(lr=("DOUBLE", [0.01, 0.6], "log"))
    pbt = PBT(6, 1, population=4, quantile=0.5)
    result = lagom(fns.pbt_toy, HyperparameterSearch(space, pbt, metric="score", workers=2, seed=2),
                   path=runs, verbose=0)
    trials = {t.id: t for t in result.trials}
    assert result.count("finished") == len(result.trials)  # an exploit may send a member back or ahead
    assert sorted(t.info["member"] for t in result.trials if t.budget == 6) == [0, 1, 2, 3]
    exploits = [t for t in result.trials if "exploit" in t.info]
    assert exploits, "no member exploited another"
    for t in result.trials:
        if t.parent is None:
            assert t.result["loaded"] == ""
            continue
        parent = trials[t.parent]
        assert parent.checkpointed  # never a member without a checkpoint
        assert t.result["loaded"] == parent.result["saved"]  # the very weights the parent saved
        if "exploit" in t.info:
            assert parent.info["member"] == t.info["exploit"] and t.info["from_params"] == parent.params
    assert len(result.lineage) == 4 and result.lineage[0]["metric"] == max(l["metric"] for l in result.lineage)
    best = result.lineage[0]
    assert best["steps"][-1]["trial"] == best["trial"] and [s["budget"] for s in best["steps"]] == [1, 2, 3, 4, 5, 6]
    assert any("PBT: the winning schedule" in line for line in result.notes)
    import json

    assert json.loads((result.path / "result.json").read_text())["lineage"][0]["trial"] == best["trial"]
    from kernel.outputs.report import write_report

    assert "report_lineage.png" in write_report(result.path).read_text()  # the schedules, drawn
    assert (result.path / "report_lineage.png").read_bytes()[:4] == b"\x89PNG"
