"""The README's main job, run as a user runs it (small budget)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_digits_hpo_example_runs_a_real_search(tmp_path):
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "digits_hpo.py"), "--trials", "6", "--max-epochs", "3",
         "--path", str(tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    accuracy = float(out.stdout.split("validation accuracy:")[1].split()[0])
    assert accuracy > 0.8  # a real MLP really trained on digits
    reloaded = float(out.stdout.split("(3 epochs): validation accuracy")[1].split()[0])
    assert reloaded == pytest.approx(accuracy, abs=1e-4)  # the best trial's weights, back from its checkpoint
    (folder,) = tmp_path.glob("digits-*")
    result = json.loads((folder / "result.json").read_text())
    trials = result["trials"]
    assert sum(t["parent"] is None for t in trials) == 6  # six configurations...
    promoted = [t for t in trials if t["parent"] is not None]
    assert promoted and all(t["budget"] == 3 for t in promoted)  # ...the best went up a rung
    for t in promoted:  # and continued from its parent's checkpoint instead of starting over
        log = (folder / "trials" / f"trial-{t['id']:05d}.log").read_text()
        assert "continuing from epoch 1" in log and [h[0] for h in t["history"]] == [1, 2]


@pytest.mark.slow
def test_four_contexts_run_one_function_unchanged(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "four_contexts.py"), "--path", str(tmp_path)],
                         capture_output=True, text=True, timeout=400, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "the same function: single" in out.stdout
    kinds = sorted(p.name.split("-")[0] for p in tmp_path.iterdir() if p.is_dir())
    assert kinds == ["ablation", "distributed", "hpo", "single"]
    for folder in tmp_path.iterdir():
        result = json.loads((folder / "result.json").read_text())
        assert result["counts"]["failed"] == 0 and result["counts"]["finished"] >= 1


@pytest.mark.slow
def test_the_digits_example_runs_population_based_training_unchanged(tmp_path):
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "digits_hpo.py"), "--optimizer", "pbt", "--trials", "4",
         "--max-epochs", "3", "--path", str(tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "PBT: the winning schedule" in out.stdout and "first failure" not in out.stdout
    (folder,) = tmp_path.glob("digits-*")
    trials = json.loads((folder / "result.json").read_text())["trials"]
    assert sorted(t["info"]["member"] for t in trials if t["budget"] == 3) == [0, 1, 2, 3]
    for t in trials:  # every segment after the first continued a checkpoint, its own or a donor's
        if t["budget"] > 1:
            assert t["parent"] is not None
            log = (folder / "trials" / f"trial-{t['id']:05d}.log").read_text()
            assert "(parent checkpoint)" in log


@pytest.mark.slow
def test_one_function_runs_single_unpacked_packed_asha_and_pmap(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "packed_digits.py"), "--trials", "12", "--path",
                          str(tmp_path)], capture_output=True, text=True, timeout=400, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "ASHA, pack=8" in out.stdout and "pmap over 2 devices" in out.stdout
    for folder in tmp_path.iterdir():
        result = json.loads((folder / "result.json").read_text())
        assert result["counts"]["failed"] == 0 and result["counts"]["finished"] >= 1
    starts = [json.loads(line) for f in tmp_path.iterdir() if f.name.startswith("hpo")
              for line in open(f / "journal.jsonl") if '"start"' in line]
    assert any(e["pack"] and len(e["pack"]) > 1 for e in starts)  # the packed search ran trials together
