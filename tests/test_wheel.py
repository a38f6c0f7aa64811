"""The core install, as a user gets it: a built wheel in a fresh venv, no extras (no numpy, no JAX)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SEARCH = """
from contexts import HyperparameterSearch, Searchspace
from kernel import lagom

def train(hparams, reporter):
    reporter.broadcast(metric=hparams["x"], step=0)
    return {"score": 1 - (hparams["x"] - 0.3) ** 2}

result = lagom(train, HyperparameterSearch(Searchspace(x=("DOUBLE", [0.0, 1.0])), num_trials=6, metric="score",
                                           workers=2), verbose=0)
print("finished", result.count("finished"))
"""


@pytest.mark.slow
def test_the_core_wheel_alone_imports_and_runs_a_search_and_names_a_shadowing_package(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", "lagom-runs", "__pycache__",
                                                            ".hypothesis", "*.egg-info", "build", "dist", ".tox"))
    run = lambda *cmd, **kw: subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)  # noqa: E731
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(src))
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("lagom_kernel-*.whl")
    venv = tmp_path / "venv"
    assert run(sys.executable, "-m", "venv", str(venv)).returncode == 0
    python = str(venv / "bin" / "python")
    installed = run(python, "-m", "pip", "install", "-q", str(wheel))
    assert installed.returncode == 0, installed.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    user = tmp_path / "user"
    user.mkdir()
    (user / "search.py").write_text(SEARCH)
    out = run(python, "search.py", cwd=user, env=env)
    assert out.returncode == 0 and "finished 6" in out.stdout, out.stderr[-3000:]
    assert run(python, "-c", "import numpy", env=env).returncode != 0  # it really ran without numpy
    import zipfile

    assert {"kernel/outputs/dashboard/static/dash.js", "kernel/outputs/dashboard/static/index.html"} <= set(zipfile.ZipFile(wheel).namelist())
    board = run(python, "-m", "kernel", "dashboard", "lagom-runs", cwd=user, env=env)  # an extra it lacks
    assert board.returncode != 0 and 'pip install "lagom-kernel[dashboard]"' in board.stderr, board.stderr
    (user / "plugins").mkdir()  # a project's own plugins/ next to the script
    (user / "plugins" / "__init__.py").write_text("")
    out = run(python, "search.py", cwd=user, env=env)
    assert out.returncode != 0
    assert f"package 'plugins' is shadowed by {user / 'plugins'}" in out.stderr and "rename yours" in out.stderr
