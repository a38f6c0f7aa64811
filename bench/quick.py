"""A quick experiment is quick: the whole of a small search, from ``lagom()`` to its return.

    python bench/quick.py            # 40 trivial trials on 2 local agent processes, 5 runs

Figures (last line, JSON): the wall time of each run (start-up, the trials, the shutdown of
the agents and the writing of the folder included), their median, and the time from the last
trial's end to ``lagom()`` returning; with ``--report``, also the time from ``lagom()`` to
report.html being there (drawn by a process of its own after ``lagom()`` returns).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _common import emit  # noqa: E402

from contexts import HyperparameterSearch, Searchspace  # noqa: E402
from kernel import lagom  # noqa: E402


def trivial(hparams, reporter):
    reporter.broadcast(metric=hparams["x"], step=0)
    return {"value": hparams["x"]}


class _LateLauncher:
    """The local launcher, plus one agent that never reaches the kernel (it waits elsewhere)."""

    def __new__(cls):
        from plugins.launchers.local import LocalLauncher

        class Late(LocalLauncher):
            def start(self, *, url, count, **kw):
                ids = super().start(url=url, count=count, **kw)
                self._command[self._command.index("--connect") + 1] = "tcp://127.0.0.1:9"
                self._spawn("never-joins", "never-joins", self.max_restarts)
                return ids

        return Late()


def _drawing(folder) -> bool:
    """Whether a process still draws ``folder``'s report (found by its command line)."""
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if str(folder).encode() in f.read() and pid.isdigit():
                    return True
        except OSError:
            continue
    return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--report", action="store_true", help="also write report.html (matplotlib) at the end")
    ap.add_argument("--late-agent", action="store_true",
                    help="one more agent that never joins (it connects elsewhere): stop must not wait for it")
    args = ap.parse_args()
    space = Searchspace(x=("DOUBLE", [0.0, 1.0]))
    walls, tails, ready = [], [], []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as root:
            t0 = time.time()
            launcher = _LateLauncher() if args.late_agent else None
            result = lagom(trivial, HyperparameterSearch(space, num_trials=args.trials, metric="value",
                                                         workers=args.workers, seed=run),
                           path=root, verbose=0, report=args.report, launcher=launcher)
            walls.append(time.time() - t0)
            tails.append(time.time() - max(t.ended for t in result.trials))
            assert result.count("finished") == args.trials
            while args.report and not (result.path / "report.html").exists():  # drawn by a process of its own
                if time.time() - t0 > 60:
                    raise SystemExit("report.html did not appear within 60 s")
                time.sleep(0.01)
            ready.append(time.time() - t0)
            while args.report and _drawing(result.path):  # its last moments would slow the next run
                time.sleep(0.01)
    emit({"bench": "quick", "trials": args.trials, "workers": args.workers, "report": args.report,
          "late_agent": args.late_agent,
          "wall_s": [round(w, 3) for w in walls], "median_wall_s": round(statistics.median(walls), 3),
          "median_last_end_to_return_s": round(statistics.median(tails), 3),
          **({"median_report_ready_s": round(statistics.median(ready), 3)} if args.report else {})})


if __name__ == "__main__":
    main()
