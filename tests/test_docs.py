"""The worked examples in docs/plugins.md run as written."""
import random
import re
from pathlib import Path

from contexts import Searchspace
from plugins.optimizers import FINISHED, WAIT, Observation

DOC = (Path(__file__).resolve().parent.parent / "docs" / "plugins.md").read_text()


def block_defining(name: str) -> dict:
    blocks = re.findall(r"```python\n(.*?)```", DOC, re.S)
    (code,) = [b for b in blocks if f"class {name}(" in b]
    namespace: dict = {}
    exec(compile(code, f"docs/plugins.md:{name}", "exec"), namespace)
    return namespace


def test_the_refine_optimizer_of_the_docs_searches_and_finishes():
    Refine = block_defining("Refine")["Refine"]
    space = Searchspace(x=("DOUBLE", [0.0, 1.0]), k=("CATEGORICAL", ["a", "b"]))
    opt = Refine(explore=4)
    opt.setup(space, num_trials=12, direction="max", seed=0)
    running, results, tid = [], [], 0
    rng = random.Random(0)
    while True:
        d = opt.suggest(tid)
        if d is FINISHED and not running:
            break
        if d is not FINISHED and d is not WAIT:
            assert space.contains(d.params)
            running.append((tid, d.params))
            tid += 1
            continue
        t, p = running.pop(rng.randrange(len(running)))
        results.append(-(p["x"] - 0.7) ** 2)
        opt.observe(Observation(t, p, None, "finished", results[-1]))
    assert tid == 12 and max(results) == opt.best[0]


def test_the_patience_stopper_of_the_docs():
    Patience = block_defining("Patience")["Patience"]
    rule = Patience(patience=2)
    rule.setup(direction="max")
    assert not rule.should_stop(0, [(0, 0.5), (1, 0.6), (2, 0.55)])
    assert rule.should_stop(0, [(0, 0.5), (1, 0.6), (2, 0.55), (3, 0.58)])
    rule.setup(direction="min")
    assert rule.should_stop(0, [(0, 0.5), (1, 0.6), (2, 0.7)])


def test_the_pair_ablator_of_the_docs():
    ns = block_defining("LeavePairOut")
    from contexts import AblationStudy

    study = AblationStudy(dataset={"a": [1.0, 2.0], "b": [1.0, 0.0], "c": [0.0, 1.0], "y": [0, 1]}, label="y")
    study.features.include_all()
    ablator = ns["LeavePairOut"]()
    ablator.setup(study)
    assert [c.name for c in ablator.components()] == ["baseline", "a+b", "a+c", "b+c"]
    assert ablator.components()[1].features == ("a", "b")


def test_the_leave_one_at_default_ablator_of_the_docs():
    from contexts import Ablation, AblationStudy
    from kernel.controller import DONE

    LeaveOneAtDefault = block_defining("LeaveOneAtDefault")["LeaveOneAtDefault"]
    study = AblationStudy(dataset={"a": [1.0, 2.0], "y": [0, 1]}, label="y")
    controller = Ablation(study, ablator=LeaveOneAtDefault({"lr": 1e-3, "width": 64}),
                          hparams={"lr": 3e-3, "width": 128, "dropout": 0.2}, metric="accuracy").controller()
    specs = list(iter(lambda: controller.next_trial(0), DONE))
    assert [(s.info["ablated"], s.params) for s in specs] == [
        ("baseline", {"lr": 3e-3, "width": 128, "dropout": 0.2}),
        ("hparam lr=0.001", {"lr": 1e-3, "width": 128, "dropout": 0.2}),
        ("hparam width=64", {"lr": 3e-3, "width": 64, "dropout": 0.2})]
