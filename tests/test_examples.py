"""The README's main job, run as a user runs it (small budget)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_digits_hpo_example_runs_a_real_search(tmp_path):
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "digits_hpo.py"), "--trials", "4", "--epochs", "3",
         "--path", str(tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "4 trials (4 finished)" in out.stdout
    accuracy = float(out.stdout.split("validation accuracy:")[1].split()[0])
    assert accuracy > 0.8  # a real MLP really trained on digits
    (folder,) = tmp_path.glob("digits-*")
    assert (folder / "result.json").exists() and len(list((folder / "trials").glob("*.log"))) == 4
