"""A running experiment's folder shows its learning curves and its agents before anything ends."""
import json

import fns
from contexts import HyperparameterSearch, Searchspace


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_curves_and_agents_appear_in_the_folder_while_the_trial_runs(runs):
    marker = runs.parent / "go-live"
    space = Searchspace(marker=("CATEGORICAL", [str(marker)]))
    ctx = HyperparameterSearch(space, num_trials=1, metric="score", workers=1)
    run = fns.Background(fns.broadcasts_then_waits, ctx, path=runs, verbose=0)
    try:
        folder = run.folder(runs)
        grown = fns.wait_for(lambda: [c for c in _lines(folder / "curves.jsonl")
                                      if c["trial"] == 0 and c["from"] + len(c["points"]) == 2], "two points")
        agents = fns.wait_for(lambda: (folder / "agents.json").exists() and json.loads(
            (folder / "agents.json").read_text())["agents"], "agents.json")
    finally:
        marker.touch()
        run.join(60)
    points = [p for c in _lines(folder / "curves.jsonl") if c["trial"] == 0 for p in c["points"]]
    assert points[:2] == [[0, 0.1], [1, 0.2]] and grown[0]["attempt"] == 1
    loss = [p for c in _lines(folder / "curves.jsonl") for p in c.get("series", {}).get("loss", {}).get("points", [])]
    assert loss[:2] == [[0, 1.0], [1, 0.0]]
    (agent,) = agents
    assert agent["state"] == "busy" and agent["trial"] == 0 and agent["silent_s"] < 5
    assert run.result.trials[0].history == [(0, 0.1), (1, 0.2), (2, 0.3)]
    final = json.loads((folder / "agents.json").read_text())["agents"]
    assert final[0]["trial"] is None  # rewritten at the end
