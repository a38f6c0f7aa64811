"""How fast failures are noticed and recovered from, with real processes.

    python bench/detection.py

- ``kill9_detect_ms``: an agent is SIGKILLed mid-trial; time until the kernel has declared it
  gone and re-queued its trial (journal timestamps), p50 over ``--kills`` experiments.
- ``frozen_detect_s``: an agent is SIGSTOPped (its socket stays open, it stops beating); time
  until it is declared lost, with ``agent_timeout`` of ``--timeout`` seconds.
- ``resume_s``: a kernel is SIGKILLed after half of 200 short trials; time from
  ``lagom(..., resume=True)`` to the first re-run trial starting, and the journal replay alone.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(ROOT / "tests")]

from _common import emit  # noqa: E402


def detection(sig: int, timeout: float, root: str) -> float:
    import fns
    from contexts import HyperparameterSearch, Searchspace
    from kernel import lagom
    from kernel import Observer
    from plugins.launchers.local import LocalLauncher

    launcher = LocalLauncher()
    hit = {}

    class Strike(Observer):
        def trial_started(self, view, trial):
            if trial.id == 2 and not hit:
                hit["pid"], hit["at"] = launcher.pids()[trial.agent], time.time()
                os.kill(hit["pid"], sig)

        def trial_ended(self, view, trial):
            if trial.id == 2 and sig == signal.SIGSTOP:
                os.kill(hit["pid"], signal.SIGCONT)

    space = Searchspace(n=("DISCRETE", list(range(4))), sleep=("DISCRETE", [0.5]))
    result = lagom(fns.pid_and_sleep, HyperparameterSearch(space, "gridsearch", metric="score", workers=2),
                   launcher=launcher, path=root, verbose=0, observers=[Strike()], agent_timeout=timeout)
    journal = [json.loads(line) for line in open(result.path / "journal.jsonl")]
    gone = next(e for e in journal if e["event"] == "agent-gone")
    return gone["time"] - hit["at"]


def resume(root: str) -> dict:
    from kernel import lagom
    from kernel.journal import read_journal

    script = ROOT / "bench" / "_resume_victim.py"
    proc = subprocess.Popen([sys.executable, str(script), root], start_new_session=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    deadline = time.time() + 120
    while time.time() < deadline:
        found = list(Path(root).glob("chaos-*/journal.jsonl"))
        if found and sum(1 for line in open(found[0]) if '"event": "end"' in line) >= 100:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    folder = found[0].parent
    t0 = time.perf_counter()
    events, _ = read_journal(folder)
    read_s = time.perf_counter() - t0
    import _resume_victim

    t0 = time.time()
    result = lagom(_resume_victim.trivial, _resume_victim.context(), path=root, resume=folder, verbose=0)
    first = min(t.started for t in result.trials if t.started and t.started >= t0)
    return {"resume_s": round(first - t0, 3), "journal_read_s": round(read_s, 4),
            "journal_events": len(events), "trials": len(result.trials), "finished": result.count("finished")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--freezes", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=2.0, help="agent_timeout for the frozen agents")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as root:
        kills = [detection(signal.SIGKILL, 5.0, root) for _ in range(args.kills)]
        freezes = [detection(signal.SIGSTOP, args.timeout, root) for _ in range(args.freezes)]
        res = resume(root)
    emit({"bench": "chaos", "kill9_detect_ms": {"p50": round(statistics.median(kills) * 1000, 1),
                                                "max": round(max(kills) * 1000, 1), "n": len(kills)},
          "frozen_detect_s": {"p50": round(statistics.median(freezes), 2), "max": round(max(freezes), 2),
                              "agent_timeout": args.timeout, "n": len(freezes)},
          **res})


if __name__ == "__main__":
    main()
