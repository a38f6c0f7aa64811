"""The clean zygote loads the libraries a training function imports before it forks agents
(kernel/shipping.py's ``libraries``, plugins/launchers/local.py): once per process and
environment, not once per agent and experiment. Each case runs in a script of its own
(tests/preload_driver.py), since it changes ``sys.path`` and the environment."""
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def _script(scenario: str, runs: Path) -> dict:
    runs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "LAGOM_FORK_DRIVER": "0"}
    env.pop("PROBE_SETTING", None)
    out = subprocess.run([sys.executable, str(HERE / "preload_driver.py"), scenario, str(runs)], capture_output=True,
                         text=True, timeout=150, env=env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


def test_agents_find_the_functions_libraries_imported_in_the_environment_they_run_in(runs):
    seen = _script("environments", runs)
    # not the user's module that holds the function, nor os; the submodule it takes a function from
    assert seen["libraries"] == ["envprobe", "envprobe.deep"]
    for trials, setting in ((seen["first"], "1"), (seen["second"], "2")):
        assert [t["state"] for t in trials] == ["finished", "finished"]
        assert all(t["imported_by"] == t["deep_imported_by"] == t["zygote"] != t["agent"] for t in trials)
        assert {t["setting"] for t in trials} == {setting}  # read in the agents' environment, not the first one's
    assert {t["zygote"] for t in seen["first"]}.isdisjoint(t["zygote"] for t in seen["second"])


def test_a_library_that_starts_a_runtime_or_a_thread_as_it_is_imported_is_left_to_the_agents(runs):
    """JAX's backend, or a thread, started in the zygote: a fork of it would miss their threads."""
    seen = _script("runtime", runs)
    assert seen["libraries"] == ["envprobe", "startsruntime"]
    for trials in (seen["trials"], seen["thread_trials"]):
        assert [t["state"] for t in trials] == ["finished", "finished"]
        assert all(t["imported_by"] == t["agent"] for t in trials)  # each agent imported it itself
    assert seen["never"] == ["startsruntime", "startsthread"]  # the culprits alone
    # the zygote the agents came from loaded the rest
    assert all(t["safe_imported_by"] == t["zygote"] != t["agent"] for t in seen["trials"])


def test_the_libraries_named_are_those_a_function_sent_by_value_imports_even_inside_itself():
    from kernel import shipping

    namespace = {"__name__": "a_notebook_cell"}  # not importable: the function travels by value
    exec("import json\ndef train(hparams):\n    import msgpack\n    return json.dumps(msgpack.packb(1).hex())",
         namespace)
    names = shipping.libraries(shipping.pack(namespace["train"]))
    assert "msgpack" in names and "json" not in names  # installed, and imported in the function; not stdlib
    assert not any(n.split(".")[0] in ("a_notebook_cell", "__main__", "kernel") for n in names)
    assert shipping.libraries(b"not a pickle") == []


def test_a_zygote_whose_import_does_not_end_is_killed_and_agents_come_from_another(runs):
    seen = _script("hang", runs)
    assert "did not end in 2 s" in seen["why"]
    assert seen["retired"] and seen["gone"] and seen["dead"] and seen["new_zygote"]
    assert [t["state"] for t in seen["trials"]] == ["finished", "finished"]


def test_a_library_that_sets_signal_handlers_as_it_is_imported_leaves_the_zygotes_alone(runs):
    """The zygote hears of its agents' exits through SIGCHLD: a library's SIG_IGN there would
    have it miss a dead agent, whose trial would wait on the kernel's silence timeout instead."""
    seen = _script("signals", runs)
    states = sorted((t["state"], t["error"]) for t in seen["trials"])
    assert states[0][0] == "failed" and "exit code 3" in states[0][1], states
    assert states[1][0] == "finished"
