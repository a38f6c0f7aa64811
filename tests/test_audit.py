"""The audit of early stopping (contexts/audit.py): stopped trials run to the full budget after
the search, through real agents, changing nothing the search decided."""
import json

import pytest

import fns
from contexts import ConfigError, HyperparameterSearch, Searchspace
from contexts.audit import wilson
from kernel import lagom
from plugins.optimizers import ASHA

SPACE = Searchspace(x=("DOUBLE", [0.0, 1.0]))


def audits(result):
    return [t for t in result.trials if "audit" in t.info]


def test_the_median_rules_stops_are_audited_at_the_end_and_decide_nothing(runs):
    context = HyperparameterSearch(SPACE, "randomsearch", num_trials=16, metric="score", workers=2, seed=3,
                                   es_policy="median", es_min=3, audit_stops=3)
    result = lagom(fns.rises_to_x, context, path=runs, verbose=0)
    by_id = {t.id: t for t in result.trials}
    audited = audits(result)
    assert len([t for t in result.trials if "audit" not in t.info]) == 16  # the search's own trials, all there
    assert len(audited) == 3 and all(t.id >= 16 for t in audited)  # after the search
    for t in audited:
        original = by_id[t.info["audit"]]
        assert original.state == "stopped" and t.params == original.params
        assert t.parent is None and not original.checkpointed  # nothing saved to continue: run afresh
        assert t.state == "finished" and len(t.history) == 3  # run to the end: never judged
    assert "audit" not in result.best.info
    report = result.extras["stop_audit"]
    peers = sorted((t.metric for t in result.trials if t.state == "finished" and "audit" not in t.info),
                   reverse=True)
    cut = peers[max(1, -(-len(peers) // 10)) - 1]
    assert report["audited"] == 3 and report["in_top"] == sum(t.metric >= cut for t in audited)
    assert any(line.strip().startswith(f"early stopping: {report['in_top']} of 3 audited stopped trials")
               for line in result.notes)
    saved = json.loads((result.path / "result.json").read_text())
    assert saved["stop_audit"]["audited"] == 3 and sum("audit" in t["info"] for t in saved["trials"]) == 3
    from kernel.outputs.dashboard import columns
    from kernel.outputs.dashboard.experiment import Experiment
    from kernel.outputs.report import write_report

    page = write_report(result.path).read_text()  # marked as audits wherever trials are shown
    assert all(f"audits trial {t.info['audit']}" in page for t in audited)
    dashboard = Experiment(result.path)
    dashboard.update()
    shown = {t["id"]: t["audit"] for t in columns.decode(dashboard.snapshot()["trials"]) if t["audit"] is not None}
    assert shown == {t.id: t.info["audit"] for t in audited}


def test_under_asha_configurations_that_never_reached_the_top_rung_run_to_it(runs):
    context = HyperparameterSearch(SPACE, ASHA(3, 1, 9), num_trials=12, metric="score", workers=2, seed=1,
                                   audit_stops=2)
    result = lagom(fns.climbs_with_checkpoints, context, path=runs, verbose=0)
    audited = audits(result)
    by_id = {t.id: t for t in result.trials}
    for t in audited:  # each continues the checkpoint of the configuration's furthest trial
        original = by_id[t.info["audit"]]
        assert t.parent == original.id and original.checkpointed and t.history[0][0] == original.budget
    top_configs = {t.params["x"] for t in result.trials if t.budget == 9 and "audit" not in t.info}
    assert len(audited) == 2
    for t in audited:
        assert t.budget == 9 and t.params["x"] not in top_configs and t.state == "finished"
    assert "audit" not in result.best.info and result.best.budget == 9
    assert result.extras["stop_audit"]["budget"] == 9


def test_an_audit_needs_something_that_stops_trials_and_one_metric():
    with pytest.raises(ConfigError, match="stops none"):
        HyperparameterSearch(SPACE, "randomsearch", num_trials=4, audit_stops=2)
    with pytest.raises(ConfigError, match="several objectives"):
        HyperparameterSearch(SPACE, "randomsearch", num_trials=4, metric=["a", "b"], es_policy="median",
                             audit_stops=2)
    with pytest.raises(ConfigError, match="audit_stops"):
        HyperparameterSearch(SPACE, ASHA(3, 1, 9), num_trials=4, audit_stops=-1)


def test_wilsons_interval_holds_the_rate_and_narrows_with_more_audits():
    lo, hi = wilson(3, 20)
    assert 0 < lo < 3 / 20 < hi < 1
    lo2, hi2 = wilson(30, 200)
    assert lo < lo2 and hi2 < hi
    assert wilson(0, 5)[0] == 0.0 and wilson(5, 5)[1] == 1.0


def test_a_search_resumed_during_its_audit_runs_the_same_audits(runs):
    """The journal as a kernel killed during the audit leaves it (cut after an audit started):
    the resumed search replays the same draws and finishes the same audits."""
    def context():
        return HyperparameterSearch(SPACE, "randomsearch", num_trials=20, metric="score", workers=2, seed=3,
                                    es_policy="median", es_min=3, audit_stops=4, name="audited")

    first = lagom(fns.rises_to_x, context(), path=runs, verbose=0)
    audited = {t.id: t.info["audit"] for t in audits(first)}
    lines = (first.path / "journal.jsonl").read_text().splitlines()
    cut = next(i for i, line in enumerate(lines) if json.loads(line)["event"] == "start"
               and json.loads(line)["trial"] == sorted(audited)[1])
    (first.path / "journal.jsonl").write_text("\n".join(lines[:cut + 1]) + "\n")
    (first.path / "result.json").unlink()
    again = lagom(fns.rises_to_x, context(), path=runs, resume=first.path, verbose=0)
    assert {t.id: t.info["audit"] for t in audits(again)} == audited
    assert all(t.state == "finished" for t in audits(again)) and again.extras["stop_audit"]["audited"] == 4
    resumed = [json.loads(line) for line in (first.path / "journal.jsonl").read_text().splitlines()
               if json.loads(line)["event"] == "resumed"]
    assert resumed[0]["replay_mismatches"] == 0
