"""Agents as Spark tasks (pyspark in local mode, barrier stage), as on a Spark cluster."""
import pytest

import fns
from contexts import HyperparameterSearch, Searchspace
from kernel import lagom

pytest.importorskip("pyspark")


@pytest.mark.slow
def test_a_search_whose_agents_are_spark_tasks(runs):
    from plugins.launchers.spark import SparkLauncher

    space = Searchspace(x=("DOUBLE", [0.0, 1.0]), sleep=("DISCRETE", [0.05]))
    result = lagom(fns.quadratic, HyperparameterSearch(space, num_trials=8, metric="score", workers=2, seed=4,
                                                       launcher=SparkLauncher(master="local[2]")),
                   listen="tcp://127.0.0.1:0", path=runs, verbose=0)
    assert result.count("finished") == 8
    agents = {t.agent for t in result.trials}
    assert agents and all(a.startswith("spark-") for a in agents)
