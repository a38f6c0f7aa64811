"""An agent on a host of its own network stack (bench/netlab.py: a network namespace joined to
the kernel's by a veth link) whose link is cut for real (taken down: packets go nowhere,
nothing is reset), then healed: it is declared lost, its trial runs again elsewhere or later,
and once the link is back it says hello and takes trials again; every trial ends once."""
import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest

import fns
from contexts import HyperparameterSearch, Searchspace
from kernel import lagom

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from netlab import Lab  # noqa: E402

TOKEN = "netlab-test-token-0123456789abcdef"


def events(folder):
    return [json.loads(line) for line in open(folder / "journal.jsonl")]


def wait_for(folder_of, predicate, what, timeout=60.0):
    """The first journal event that ``predicate`` accepts (the journal is read as it grows)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        folder = folder_of()
        if folder is not None and (folder / "journal.jsonl").exists():
            found = [e for e in events(folder) if predicate(e)]
            if found:
                return found[0]
        time.sleep(0.02)
    raise AssertionError(f"never saw {what}")


@pytest.mark.slow
def test_an_agent_whose_link_is_cut_is_declared_lost_and_rejoins_when_it_heals(runs, tmp_path):
    why = Lab.probe()
    if why:
        pytest.skip(f"no network namespaces here: {why}")
    lab = Lab(1, 23989, str(tmp_path))
    lab.up()
    try:
        token_file = tmp_path / "token"
        token_file.write_text(TOKEN)
        token_file.chmod(0o600)
        host = lab.hosts[0]
        agent = lab.start_agent(host, str(token_file), {"PYTHONPATH": os.pathsep.join(sys.path)})
        box: dict = {}

        def folder():
            found = list(runs.glob("*/journal.jsonl")) if runs.exists() else []
            return found[0].parent if found else None

        def cut_and_heal():
            try:
                first = wait_for(folder, lambda e: e["event"] == "start", "a first trial")
                lab.cut(host)
                box["cut_at"], box["trial"] = time.time(), first["trial"]
                wait_for(folder, lambda e: e["event"] == "agent-gone" and e["id"] == agent, "the agent declared lost")
                lab.heal(host)
                box["healed_at"] = time.time()
            except BaseException as exc:  # said by the test's own thread
                box["error"] = exc

        helper = threading.Thread(target=cut_and_heal, daemon=True)
        helper.start()
        space = Searchspace(x=("DOUBLE", [0.0, 1.0]), sleep=("DISCRETE", [0.3]))
        result = lagom(fns.quadratic, HyperparameterSearch(space, "randomsearch", num_trials=6, metric="score",
                                                           workers=0), listen=f"tcp://127.0.0.1:{lab.kernel_port}",
                       token=TOKEN, path=runs, verbose=0, agent_timeout=2.0)
        helper.join(10)
        assert "error" not in box, box.get("error")
        assert result.count("finished") == 6 and len(result.trials) == 6
        journal = events(result.path)
        assert [e["reason"] for e in journal if e["event"] == "requeue" and e["trial"] == box["trial"]]
        assert sorted(e["trial"]["id"] for e in journal if e["event"] == "end") == list(range(6))  # each once
        back = [e for e in journal if e["event"] == "start" and e["time"] > box["healed_at"]]
        assert back and {e["agent"] for e in back} == {agent}  # the same agent, over the healed link
    finally:
        lab.down()
