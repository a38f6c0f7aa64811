"""MLflowLogger: a real search on real agents, read back from a local MLflow file store."""
import pytest

import fns
from contexts import HyperparameterSearch, Searchspace
from kernel import MLflowLogger, lagom

mlflow = pytest.importorskip("mlflow")


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks for this to use a folder
    return (tmp_path / "mlruns").as_uri()


@pytest.mark.slow
def test_one_mlflow_run_per_trial_with_params_steps_and_the_final_result(runs, store):
    from mlflow.tracking import MlflowClient

    space = Searchspace(x=("DOUBLE", [0.0, 1.0]), n=("DISCRETE", [1, 3]))
    result = lagom(fns.quadratic, HyperparameterSearch(space, num_trials=4, metric="score", workers=2, name="mlf"),
                   path=runs, verbose=0, observers=[MLflowLogger(tracking_uri=store, tags={"team": "vision"})])
    client = MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("mlf")
    runs_ = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs_ if "mlflow.parentRunId" not in r.data.tags]
    assert parent.data.tags["lagom.experiment"] == result.path.name and parent.info.status == "FINISHED"
    assert parent.data.metrics["best_trial"] == result.best.id
    children = {int(r.data.tags["lagom.trial"]): r for r in runs_ if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert sorted(children) == [t.id for t in result.trials]
    for t in result.trials:
        run = children[t.id]
        assert run.info.status == "FINISHED" and run.data.tags["team"] == "vision"
        assert float(run.data.params["x"]) == pytest.approx(t.params["x"]) and run.data.params["n"] == str(t.params["n"])
        assert run.data.metrics["final_score"] == pytest.approx(t.result["score"])
        steps = [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "score")]
        assert sorted(s for s, _ in steps if s in (0, 1, 2)) == [0, 1, 2]  # the broadcasts, with their steps
        assert dict(steps)[2] == pytest.approx(t.history[-1][1])


def test_a_failed_trial_is_a_failed_run_and_a_broken_store_stops_only_the_logging(runs, store, tmp_path, capsys):
    space = Searchspace(n=("DISCRETE", [1, 2]))
    ctx = lambda: HyperparameterSearch(space, "gridsearch", metric="score", workers=1, launcher="thread", name="mlf2")
    lagom(fns.fails_on_odd, ctx(), path=runs, verbose=0, observers=[MLflowLogger(tracking_uri=store)])
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store)
    runs_ = client.search_runs([client.get_experiment_by_name("mlf2").experiment_id])
    failed = [r for r in runs_ if r.data.tags.get("lagom.state") == "failed"]
    assert len(failed) == 1 and failed[0].info.status == "FAILED" and "odd" in failed[0].data.tags["lagom.error"]

    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the store should be")
    logger = MLflowLogger(tracking_uri=blocked.as_uri())
    result = lagom(fns.fails_on_odd, ctx(), path=runs, verbose=0, observers=[logger])
    assert result.count("finished") == 1 and result.count("failed") == 1  # the search ran anyway
    assert logger.error and "MLflow logging stopped" in capsys.readouterr().err
