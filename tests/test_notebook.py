"""lagom() in a notebook, run by a real Jupyter kernel (nbclient), and under asyncio.run.

A notebook's interrupt is SIGINT to the kernel's whole process group, as Ctrl-C in a terminal
is to the foreground one: it must end the experiment as Ctrl-C does (kept, resumable, said in
one line) and never reach the agents, whose trials would end "failed" before the kernel could
record them as interrupted.
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import fns

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

pytestmark = pytest.mark.slow

DEFINE = '''
import time
from kernel import lagom
from contexts import HyperparameterSearch, Searchspace

def train(hparams, reporter):
    for step in range(hparams["steps"]):
        time.sleep(0.1)
        reporter.broadcast(metric=hparams["x"], step=step)
    return {"score": hparams["x"]}

def search(steps):
    return HyperparameterSearch(Searchspace(x=("DOUBLE", [0.0, 1.0]), steps=("DISCRETE", [steps])),
                                num_trials=4, metric="score", workers=2)
'''


def notebook(tmp_path, run: str, interrupt_when=None):
    """Run DEFINE and then ``run`` as two cells of a fresh notebook; the second cell is
    interrupted (as the notebook's stop button does) once ``interrupt_when()`` is true."""
    from jupyter_core.utils import run_sync

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(DEFINE), nbformat.v4.new_code_cell(run)])
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=120, allow_errors=True,
                                     resources={"metadata": {"path": str(tmp_path)}})
    with client.setup_kernel(env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}):
        client.execute_cell(nb.cells[0], 0)
        if interrupt_when is not None:
            def interrupt():
                fns.wait_for(interrupt_when, "the experiment's trials", timeout=60)
                run_sync(client.km.interrupt_kernel)()

            threading.Thread(target=interrupt, daemon=True).start()
        client.execute_cell(nb.cells[1], 1)
    return nb.cells[1].outputs


def journal(runs: Path) -> list[dict]:
    path = next(runs.glob("*/journal.jsonl"))
    return [json.loads(line) for line in open(path)]


def test_an_interrupted_cell_ends_the_experiment_as_ctrl_c_does_and_spares_the_agents(tmp_path):
    runs = tmp_path / "runs"

    def both_running():
        return runs.exists() and any(p.name == "journal.jsonl" for p in runs.glob("*/*")) \
            and sum(e["event"] == "start" for e in journal(runs)) >= 2

    outputs = notebook(tmp_path, f"lagom(train, search(steps=300), path={str(runs)!r})", both_running)
    error = next(o for o in outputs if o["output_type"] == "error")
    assert error["ename"] == "Interrupted" and "python -m kernel resume" in error["evalue"]
    events = journal(runs)
    assert not [e for e in events if e["event"] == "end"]  # no trial ended "failed" by the interrupt
    cut = next(e for e in events if e["event"] == "interrupted")["trials"]
    saved = json.loads(next(runs.glob("*/result.json")).read_text())
    assert len(cut) == 2 and {t["state"] for t in saved["trials"]} == {"interrupted"}
    logs = "".join(p.read_text() for p in runs.glob("*/agents/*.log"))
    assert "KeyboardInterrupt" not in logs  # the agents never heard the interrupt


def test_without_ipywidgets_the_progress_is_one_output_updated_in_place(tmp_path):
    pytest.importorskip("rich")
    try:
        import ipywidgets  # noqa: F401
        pytest.skip("ipywidgets is installed: rich's panel shows instead")
    except ImportError:
        pass
    outputs = notebook(tmp_path, f"r = lagom(train, search(steps=2), path={str(tmp_path / 'runs')!r})")
    assert not [o for o in outputs if o["output_type"] == "stream" and 'install "ipywidgets"' in o["text"]]
    shown = [o["data"]["text/plain"] for o in outputs if o["output_type"] == "display_data"]
    assert len(shown) == 1 and "4/4 trials" in shown[0] and "best score=" in shown[0]


PRELOADED = '''
import json, os
import numpy as np

def where_numpy(hparams, reporter):  # its agent's parent: the zygote, numpy's library mapped there?
    return {"score": float(np.float64(hparams["x"])),
            "zygote_has_numpy": float("_multiarray_umath" in open(f"/proc/{os.getppid()}/maps").read())}

seen = [[t.result["zygote_has_numpy"] for t in lagom(where_numpy, search(1), path=RUNS, verbose=0).trials]
        for _ in range(2)]
print(json.dumps(seen))
'''


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_notebooks_agents_come_from_a_zygote_that_loaded_the_functions_libraries(tmp_path):
    """lagom() runs in a thread of the notebook's kernel, which is not forked: the clean zygote
    imports numpy, which the function uses, before it forks the agents of each search."""
    outputs = notebook(tmp_path, PRELOADED.replace("RUNS", repr(str(tmp_path / "runs"))))
    printed = "".join(o.get("text", "") for o in outputs if o["output_type"] == "stream")
    assert json.loads(printed.strip().splitlines()[-1]) == [[1.0] * 4, [1.0] * 4], outputs


ASYNC_MAIN = '''
import asyncio, sys, time
sys.path[:0] = {path!r}
import fns
from kernel import lagom
from contexts import HyperparameterSearch, Searchspace

async def main():
    space = Searchspace(x=("DOUBLE", [0.0, 1.0]), sleep=("DISCRETE", [60.0]))
    lagom(fns.quadratic, HyperparameterSearch(space, num_trials=2, metric="score", workers=2), path={runs!r})

asyncio.run(main())
'''


def test_ctrl_c_ends_a_search_started_inside_asyncio_run(tmp_path):
    """asyncio.run takes SIGINT to cancel its task, which cannot run while lagom() waits: the
    first Ctrl-C still ends the experiment, at once."""
    runs = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-c", ASYNC_MAIN.format(path=sys.path, runs=str(runs))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    fns.wait_for(lambda: runs.exists() and any(runs.glob("*/journal.jsonl"))
                 and sum(e["event"] == "start" for e in journal(runs)) == 2, "two running trials")
    began = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole foreground group
    out, err = proc.communicate(timeout=30)
    assert time.monotonic() - began < 15
    assert "python -m kernel resume" in err, err
    saved = json.loads(next(runs.glob("*/result.json")).read_text())
    assert {t["state"] for t in saved["trials"]} == {"interrupted"}
