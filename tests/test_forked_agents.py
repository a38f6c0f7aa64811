"""Local agents forked from the driver's process (plugins/launchers/forking.py): they start with
its modules, hold none of its files, draw their own random numbers, survive their zygote's
kill, and where a fork is not safe they come from the clean zygote instead. Each case runs in a
script of its own (tests/forked_driver.py), as users run lagom."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def _script(scenario: str, runs: Path) -> dict:
    out = subprocess.run([sys.executable, str(HERE / "forked_driver.py"), scenario, str(runs)], capture_output=True,
                         text=True, timeout=150, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


def test_agents_are_forked_from_the_driver_with_its_modules_and_draw_their_own_numbers(runs):
    seen = _script("forked", runs)
    assert seen["why_not"] is None
    assert len({agent["zygote"] for agent in seen["seen"]}) == 1  # both from one zygote
    assert all(agent["its_parent"] == seen["driver"] for agent in seen["seen"])  # forked from the driver
    assert all(agent["cmdline"] == seen["driver_cmdline"] for agent in seen["seen"])  # not a fresh interpreter
    assert all(r["driver_module"] == 1.0 for r in seen["results"])
    draws = {r["draw"] for r in seen["results"]}
    assert len(draws) == 2 and seen["driver_draw"] not in draws  # each agent reseeded numpy's generator


def test_forked_agents_count_compiles_into_the_named_cache_and_none_for_a_function_without_jax(runs):
    """The script imported JAX before lagom(): JAX read its settings then, so the agents set the
    compilation cache through its config; JAX loaded is not JAX used."""
    seen = _script("jax_loaded", runs)
    assert seen["why_not"] == [None, None]
    assert seen["plain"] == [None, None]
    assert all(s is not None and s > 0 for s in seen["jitted"][:1]) and seen["cached_files"] > 0


def test_a_pipe_the_driver_closes_mid_search_is_closed(runs):
    """The zygote and its agents hold none of the driver's files: a reader of a pipe whose
    writer the driver closes mid-search hears the end at once, not when the agents leave."""
    assert _script("pipe", runs) == {"why_not": None, "eof": True}


def test_where_a_fork_is_not_safe_agents_come_from_the_clean_zygote(runs):
    """lagom() in a thread of its own (as in a notebook), or an environment of the agents' own
    (a library would have read it at its import): fresh agents, which see that environment."""
    seen = _script("fallback", runs)
    assert "thread" in seen["thread"] and not any(r["driver_module"] for r in seen["thread_results"])
    assert "SOME_SETTING" in seen["env"] and [r["marker"] for r in seen["env_results"]] == ["m", "m"]


def test_a_fork_of_the_driver_that_hangs_is_given_up_and_the_search_runs(runs):
    seen = _script("hung", runs)
    assert seen["why_not"] == "the agents' zygote did not start in 1 s"
    assert seen["states"] == ["finished", "finished"] and seen["seconds"] < 30


def test_a_zygote_forked_from_the_driver_killed_mid_search_loses_no_trial(runs):
    """kill -9 of the fork ends its agents; fresh ones come from the clean zygote and no trial
    is lost."""
    seen = _script("kill", runs)
    assert seen["why_not"] is None and seen["parents"] == [seen["zygote"]]
    assert [state for state, _, _ in seen["trials"]] == ["finished"] * 8
    assert any(attempts == 2 for _, attempts, _ in seen["trials"])  # the trials cut by the kill ran again
    assert seen["clean_zygote"] != seen["zygote"]
    assert len({pid for _, _, pid in seen["trials"]}) >= 3  # replacements did the rest


@pytest.mark.slow
def test_a_driver_whose_jax_has_started_is_not_forked(tmp_path):
    """JAX's backend runs threads of its own: a fork of it would hang on its first program."""
    script = tmp_path / "started.py"
    script.write_text("\n".join([
        "import jax.numpy as jnp",
        "from contexts import HyperparameterSearch, Searchspace",
        "from kernel import lagom",
        "from plugins.launchers.local import LocalLauncher",
        "def train(hparams, reporter):",
        "    import jax.numpy as jnp",
        "    return {'score': float(jnp.sum(jnp.arange(hparams['n'])))}",
        "if __name__ == '__main__':",
        "    print(float(jnp.ones(2).sum()))",
        "    launcher = LocalLauncher()",
        "    result = lagom(train, HyperparameterSearch(Searchspace(n=('DISCRETE', [3, 4])), 'gridsearch',",
        f"                   metric='score', workers=2), launcher=launcher, path={str(tmp_path / 'runs')!r},",
        "                   verbose=0, report=False)",
        "    print(launcher.not_from_driver, sorted(t.metric for t in result.trials))",
    ]) + "\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "JAX's backend has started in this process [3.0, 6.0]"


@pytest.mark.slow
def test_a_distributed_run_from_a_script_without_a_main_guard_runs_the_script_once(tmp_path):
    """A distributed run happens in a child its agent spawns (multiprocessing imports
    ``__main__`` again there): an agent forked from the script must not hand it the script."""
    script = tmp_path / "search.py"
    script.write_text("\n".join([
        "from contexts import Distributed",
        "from kernel import lagom",
        "print('script ran', flush=True)",
        "def train(hparams, reporter, strategy):",
        "    import jax",
        "    return {'devices': float(jax.device_count())}",
        "r = lagom(train, Distributed('pmap', cpu_devices=2), verbose=0, report=False)",
        "print('finished', r.count('finished'), r.trials[0].result['devices'])",
    ]) + "\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.count("script ran") == 1 and "finished 1 2.0" in out.stdout
    logs = list((tmp_path / "lagom-runs").glob("*/agents/*.log"))
    assert logs and not any("script ran" in p.read_text() for p in logs)
