"""A separate package, built and pip-installed, adds an optimizer and an early stopper that an
experiment then uses by name."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import fns
from contexts import HyperparameterSearch, Searchspace
from kernel import lagom
from plugins import registry

PKG = Path(__file__).parent / "plugin_pkg"


@pytest.fixture
def installed(tmp_path, monkeypatch):
    site, src = tmp_path / "site", tmp_path / "src"
    shutil.copytree(PKG, src)  # build a copy: the source tree stays clean
    out = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site),
                          str(src)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    monkeypatch.syspath_prepend(str(site))  # as if installed in site-packages
    return site


@pytest.mark.slow
def test_a_pip_installed_plugin_package_is_used_by_name(installed, runs):
    assert "ascending" in registry.names("lagom.optimizers")
    assert "threshold" in registry.names("lagom.earlystop")
    space = Searchspace(n=("DISCRETE", [5, 1, 3]), x=("DOUBLE", [0.0, 1.0]))
    result = lagom(fns.countdown, HyperparameterSearch(space, optimizer="ascending", es_policy="threshold",
                                                       es_min=0, metric="score", workers=1),
                   path=runs, verbose=0)
    assert [t.params["n"] for t in result.trials] == [1, 3, 5]
    # the threshold rule (value < 0) stops each countdown when it goes negative
    assert [t.state for t in result.trials] == ["stopped"] * 3
    assert all(t.history[-1][1] < 0 and len(t.history) <= t.params["n"] + 3 for t in result.trials)
