"""What a trial waits for XLA, measured on real agents with real JAX, and one compiled program
per shape when a step takes its hyperparameters as arguments."""
import json
import subprocess
import sys

import pytest

import fns
from contexts import HyperparameterSearch, Searchspace
from kernel import lagom

pytest.importorskip("jax")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A persistent compilation cache of this test's own (agents inherit the environment)."""
    folder = tmp_path / "jax-cache"
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(folder))
    return folder


def by(result, **params):
    return next(t for t in result.trials if all(t.params[k] == v for k, v in params.items()))


@pytest.mark.slow
def test_one_program_per_shape_whatever_the_learning_rate_and_the_same_losses_as_baked_code(runs, cache):
    """One agent runs every trial, in grid order. A step that closes over ``lr`` bakes it into
    its program: each learning rate compiles anew. One that asks for ``hparams`` gets ``lr``
    as an argument: defined inside the function, its program is loaded from the persistent
    cache; defined at a module's top level, it is not even traced again. A new width (a
    plain hyperparameter: it shapes the program) compiles anew. The numbers are the same."""
    space = Searchspace(width=("DISCRETE", [4, 8]), where=("CATEGORICAL", ["baked", "nested", "module"]),
                        lr=("DISCRETE", [0.05, 0.1, 0.2]), static={"lr": False})
    result = lagom(fns.fits_a_line, HyperparameterSearch(space, "gridsearch", metric="score", workers=1),
                   path=runs, verbose=0)
    assert result.count("finished") == 18
    for width in (4, 8):
        for where in ("baked", "nested", "module"):
            first, *again = [by(result, lr=lr, width=width, where=where) for lr in (0.05, 0.1, 0.2)]
            assert first.programs_compiled + first.programs_cached >= 1 and first.compile_s > 0
            if where == "baked":  # each learning rate a constant of its own program: compiled anew
                assert all(t.programs_compiled >= 1 and t.programs_cached == 0 for t in again)
            elif where == "nested":  # traced again, and the program of the first loaded from the cache
                assert all(t.programs_compiled == 0 and t.programs_cached >= 1 for t in again)
            else:  # the step compiled for the first serves the others as it is
                assert all(t.programs_compiled == t.programs_cached == 0 for t in again)
                assert all(t.compile_s < first.compile_s / 2 for t in again)
    for lr in (0.05, 0.1, 0.2):  # traced or baked, the very same numbers
        for width in (4, 8):
            runs_ = [by(result, lr=lr, width=width, where=where).result for where in ("baked", "nested", "module")]
            assert runs_[0] == runs_[1] == runs_[2]
    summary = str(result)
    assert "XLA compilation:" in summary and "programs compiled" in summary
    row = result.dataframe().loc[0]
    assert row["compile_s"] == result.trials[0].compile_s and row["programs_compiled"] >= 1
    saved = json.loads((result.path / "result.json").read_text())
    assert saved["trials"][0]["compile_s"] == result.trials[0].compile_s
    from kernel.outputs.report import write_report

    assert "<th>compile s</th>" in write_report(result.path).read_text()


@pytest.mark.slow
def test_a_trial_whose_function_never_imports_jax_reports_no_compiles_and_the_kernel_imports_none(runs):
    probe = (f"import sys; sys.path[:0] = {sys.path!r}\n"
             "import fns\n"
             "from contexts import HyperparameterSearch, Searchspace\n"
             "from kernel import lagom\n"
             f"r = lagom(fns.quadratic, HyperparameterSearch(Searchspace(x=('DOUBLE', [0.0, 1.0])), num_trials=3,"
             f" metric='score', workers=2), path={str(runs)!r}, verbose=0)\n"
             "print([t.compile_s for t in r.trials], 'jax' in sys.modules, 'XLA' in str(r))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[-2] == "[None, None, None] False False"


@pytest.mark.slow
def test_a_named_compile_cache_serves_every_agent_and_the_next_run(runs, cache, tmp_path):
    """compile_cache= is the folder every agent loads programs from and saves them to (a shared
    folder serves agents on every host that mounts it), over what the environment names."""
    shared = tmp_path / "shared-cache"
    space = Searchspace(width=("DISCRETE", [4]), where=("CATEGORICAL", ["module"]), lr=("DISCRETE", [0.1, 0.2]))
    search = HyperparameterSearch(space, "gridsearch", metric="score", workers=2)
    first = lagom(fns.fits_a_line, search, path=runs, verbose=0, compile_cache=shared)
    assert any(shared.iterdir()) and not (cache.exists() and any(cache.iterdir()))
    assert sum(t.programs_compiled for t in first.trials) >= 1
    again = lagom(fns.fits_a_line, search, path=runs, verbose=0, compile_cache=shared)  # fresh agents
    assert all(t.programs_compiled == 0 and t.programs_cached >= 1 for t in again.trials)


@pytest.mark.slow
def test_a_step_given_its_hyperparameters_trains_alike_in_one_process_and_over_two_devices(runs, cache):
    from contexts import Distributed, Single

    hparams = {"width": 4, "where": "module", "lr": 0.1}
    alone = lagom(fns.fits_a_line, Single(hparams=hparams), path=runs, verbose=0)
    spread = lagom(fns.fits_a_line, Distributed(strategy="pmap", cpu_devices=2, hparams=hparams), path=runs,
                   verbose=0)
    assert spread.trials[0].result == pytest.approx(alone.trials[0].result)
    assert spread.trials[0].compile_s > 0  # the run's process reported its compiles too
