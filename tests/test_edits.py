"""A study edited on resume: a range widened or narrowed, a choice added, ASHA's top budget
raised; real agents, the journal replayed into the edited study."""
import json
import os
import re
import subprocess
import sys

import pytest

import fns
from contexts import HyperparameterSearch, Searchspace
from kernel import lagom
from kernel.journal import read_journal
from plugins.optimizers import ASHA


def _resumed(folder):
    return [e for e in read_journal(folder)[0] if e["event"] == "resumed"][-1]


def _status(folder):
    return subprocess.run([sys.executable, "-m", "kernel", "status", str(folder)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}).stdout


def _search(x, optimizer="randomsearch", n=8, **kw):
    return HyperparameterSearch(Searchspace(x=x, **kw), optimizer, num_trials=n, metric="score", workers=2, seed=3,
                                name="edited")


@pytest.mark.slow
def test_a_widened_range_keeps_every_past_trial_and_draws_from_the_new_range(runs):
    first = lagom(fns.quadratic, _search(("DOUBLE", [0.0, 0.2])), path=runs, verbose=0)
    again = lagom(fns.quadratic, _search(("DOUBLE", [0.0, 1.0]), n=30), path=runs, resume=first.path, verbose=0)
    assert [t.params for t in again.trials[:8]] == [t.params for t in first.trials]  # kept, not run again
    assert [t.metric for t in again.trials[:8]] == [t.metric for t in first.trials]
    assert len(again.trials) == 30 and again.count("finished") == 30
    assert any(t.params["x"] > 0.2 for t in again.trials[8:]) and all(0 <= t.params["x"] <= 1 for t in again.trials)
    assert _resumed(first.path)["edits"] == {"num_trials": [8, 30], "x": ["DOUBLE[0.0, 0.2]", "DOUBLE[0.0, 1.0]"]}
    assert "edited on resume: x DOUBLE[0.0, 0.2] -> DOUBLE[0.0, 1.0]" in _status(first.path)
    fns.readers_agree(first.path)
    from kernel.outputs.report import write_report

    assert "edited on resume: x DOUBLE[0.0, 0.2] -&gt; DOUBLE[0.0, 1.0]" in write_report(first.path).read_text()
    pytest.importorskip("aiohttp")
    from kernel.outputs.dashboard.experiment import Experiment

    page = Experiment(first.path)
    page.update()
    assert page.snapshot()["status"]["edits"]["x"] == ["DOUBLE[0.0, 0.2]", "DOUBLE[0.0, 1.0]"]  # the header says it


@pytest.mark.slow
def test_a_narrowed_range_keeps_past_trials_in_the_results_and_out_of_the_model(runs):
    from plugins.optimizers import TPE

    first = lagom(fns.quadratic, _search(("DOUBLE", [0.0, 1.0]), TPE(n_startup=4), n=10), path=runs, verbose=0)
    context = _search(("DOUBLE", [0.0, 0.5]), TPE(n_startup=4), n=16)
    again = lagom(fns.quadratic, context, path=runs, resume=first.path, verbose=0)
    outside = [t for t in first.trials if t.params["x"] > 0.5]
    assert outside and all(again.trials[t.id].metric == t.metric for t in outside)  # still in the results
    learned = [params for params, _ in context._last.optimizer._done]
    inside = sorted(t.params["x"] for t in again.trials if t.params["x"] <= 0.5)
    assert sorted(p["x"] for p in learned) == inside and len(inside) == 16 - len(outside)  # what ran, and not those
    assert all(t.params["x"] <= 0.5 for t in again.trials[10:]) and again.count("finished") == 16


@pytest.mark.slow
def test_a_choice_added_to_a_grid_runs_the_new_points_and_none_again(runs):
    space = dict(width=("DISCRETE", [16, 32]), act=("CATEGORICAL", ["relu", "tanh"]))
    first = lagom(fns.quadratic, HyperparameterSearch(Searchspace(x=("DISCRETE", [0.3]), **space), "gridsearch",
                                                      metric="score", workers=2, name="grid"), path=runs, verbose=0)
    space["act"] = ("CATEGORICAL", ["relu", "tanh", "gelu"])
    again = lagom(fns.quadratic, HyperparameterSearch(Searchspace(x=("DISCRETE", [0.3]), **space), "gridsearch",
                                                      metric="score", workers=2, name="grid"),
                  path=runs, resume=first.path, verbose=0)
    ran = [(t.params["width"], t.params["act"]) for t in again.trials]
    assert sorted(ran) == sorted((w, a) for w in (16, 32) for a in ("relu", "tanh", "gelu"))  # each once
    assert [t.params for t in again.trials[:4]] == [t.params for t in first.trials]


@pytest.mark.slow
def test_asha_with_a_raised_max_budget_promotes_finished_trials_into_the_new_rung(runs):
    space = ("DOUBLE", [0.0, 1.0])
    first = lagom(fns.rises_to_x, _search(space, ASHA(3, 1, 9), n=27), path=runs, verbose=0)
    assert max(t.budget for t in first.trials) == 9
    again = lagom(fns.rises_to_x, _search(space, ASHA(3, 1, 27), n=27), path=runs, resume=first.path, verbose=0)
    top = [t for t in again.trials if t.budget == 27]
    before = {t.id: t for t in first.trials}
    assert top and all(t.parent in before and before[t.parent].budget == 9 for t in top)  # promoted, not new
    assert all(t.params == before[t.parent].params for t in top)
    assert sum(t.parent is None for t in again.trials) == 27  # no configuration drawn again, none lost
    assert again.best.budget == 27 and again.count("finished") == len(again.trials)
    assert _resumed(first.path)["edits"] == {"max_budget": [9, 27]}
    saved = json.loads((first.path / "result.json").read_text())
    assert len(saved["trials"]) == len(again.trials)


@pytest.mark.slow
def test_max_budget_raised_from_the_shell_promotes_finished_trials_into_the_new_rung(runs):
    space = ("DOUBLE", [0.0, 1.0])
    first = lagom(fns.rises_to_x, _search(space, ASHA(3, 1, 9), n=27), path=runs, verbose=0)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-m", "kernel", "resume", str(first.path), "--max-budget", "27",
                          "--verbose", "0"], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert _resumed(first.path)["edits"] == {"max_budget": [9, 27]}
    trials = json.loads((first.path / "result.json").read_text())["trials"]
    before = {t.id: t for t in first.trials}
    top = [t for t in trials if t["budget"] == 27]
    assert top and all(before[t["parent"]].budget == 9 and t["params"] == before[t["parent"]].params for t in top)
    assert type(top[0]["budget"]) is int  # 27, as the function's range(budget) needs: not 27.0
    assert "edited on resume: max_budget 9 -> 27" in _status(first.path)
    plain = lagom(fns.quadratic, _search(space, n=2), path=runs, verbose=0)
    refused = subprocess.run([sys.executable, "-m", "kernel", "resume", str(plain.path), "--max-budget", "27"],
                             capture_output=True, text=True, env=env)
    assert refused.returncode != 0 and "RandomSearch has no budgets to raise" in refused.stderr


def test_a_raised_scheduler_is_built_as_the_user_built_it():
    from plugins.optimizers import Hyperband

    raised = Hyperband(3, 1, 9, mode="conservative", random_fraction=0.5).raised(81)
    assert (raised.max_budget, raised.mode, raised.random_fraction) == (81, "conservative", 0.5)
    assert raised.brackets == len(raised.budgets) == 5  # the mode's brackets for the new ladder
    assert ASHA(2, 1, 8, brackets=2).raised(32).budgets == [1, 2, 4, 8, 16, 32]
    with pytest.raises(ValueError, match="max_budget belongs to ASHA and Hyperband"):
        _search(("DOUBLE", [0.0, 1.0])).edit(max_budget=27)


@pytest.mark.parametrize("was, optimizer, said", [
    (9, ASHA(3, 1, 3), "may be raised on resume, not lowered"),
    (9, ASHA(2, 1, 9), "keeps its rungs (only max_budget may be raised)"),
    (8, ASHA(3, 1, 27), "the study's rungs [1, 3, 8] are not the first rungs of [1, 3, 9, 27]"),
], ids=["lowered", "other-rungs", "off-the-rungs"])
def test_a_budget_edit_that_would_move_past_trials_off_their_rungs_fails_before_anything_runs(runs, was, optimizer,
                                                                                             said):
    space = ("DOUBLE", [0.0, 1.0])
    first = lagom(fns.rises_to_x, _search(space, ASHA(3, 1, was), n=6), path=runs, verbose=0)
    before = (first.path / "journal.jsonl").read_bytes()
    with pytest.raises(ValueError, match=re.escape(said)):
        lagom(fns.rises_to_x, _search(space, optimizer, n=6), path=runs, resume=first.path, verbose=0)
    assert (first.path / "journal.jsonl").read_bytes() == before


@pytest.mark.slow
def test_asha_in_a_widened_space_promotes_what_ran_not_what_it_would_propose_now(runs):
    first = lagom(fns.rises_to_x, _search(("DOUBLE", [0.8, 1.0]), ASHA(3, 1, 9), n=9), path=runs, verbose=0)
    again = lagom(fns.rises_to_x, _search(("DOUBLE", [0.0, 1.0]), ASHA(3, 1, 9), n=18), path=runs,
                  resume=first.path, verbose=0)
    promoted = [t for t in again.trials[len(first.trials):] if t.parent is not None and t.parent < len(first.trials)]
    assert promoted  # trials of the first run, promoted after the resume (the new ones mostly score lower)
    assert all(t.params == again.trials[t.parent].params for t in promoted)  # the configuration that ran
    assert sum(t.parent is None for t in again.trials) == 18 and again.count("finished") == len(again.trials)


@pytest.mark.slow
def test_a_parameter_added_with_a_default_reads_past_trials_as_having_run_with_it(runs):
    first = lagom(fns.rises_to_x, _search(("DOUBLE", [0.8, 1.0]), ASHA(3, 1, 9), n=9), path=runs, verbose=0)
    context = _search(("DOUBLE", [0.0, 1.0]), ASHA(3, 1, 9), n=18)
    context.searchspace.add("wd", ("DOUBLE", [0.0, 0.1]), default=0.0)
    again = lagom(fns.rises_to_x, context, path=runs, resume=first.path, verbose=0)
    assert [t.params for t in again.trials[:len(first.trials)]] == [t.params for t in first.trials]  # as they ran
    late = [t for t in again.trials[len(first.trials):] if t.parent is not None and t.parent < len(first.trials)]
    assert late and all(t.params == {**first.trials[t.parent].params, "wd": 0.0} for t in late)  # promoted with it
    fresh = [t for t in again.trials[len(first.trials):] if t.parent is None]
    assert len(fresh) == 9 and all(0.0 <= t.params["wd"] <= 0.1 for t in fresh)
    assert _resumed(first.path)["edits"]["wd"] == [None, "DOUBLE[0.0, 0.1] (past trials: 0.0)"]
    with pytest.raises(ValueError, match=r"'lr' is new .* default=value"):
        lagom(fns.rises_to_x, _search(("DOUBLE", [0.0, 1.0]), ASHA(3, 1, 9), n=18, wd=("DOUBLE", [0.0, 0.1]),
                                      lr=("DOUBLE", [0.1, 1.0])),
              path=runs, resume=first.path, verbose=0)


def test_a_pbt_study_edited_on_resume_is_refused_before_anything_runs(runs):
    import resume_victim

    first = lagom(fns.pbt_toy, resume_victim.context("pbt"), path=runs, verbose=0)
    before = (first.path / "journal.jsonl").read_bytes()
    context = resume_victim.context("pbt")
    context.searchspace = Searchspace(lr=("DOUBLE", [0.001, 0.6], "log"), sleep=("DISCRETE", [0.1]))
    with pytest.raises(ValueError, match=r"PBT cannot resume an edited study \(lr changed\)"):
        lagom(fns.pbt_toy, context, path=runs, resume=first.path, verbose=0)
    assert (first.path / "journal.jsonl").read_bytes() == before
