"""Module crossings in the kernel: how many calls from one kernel module into another it makes
per trial and per broadcast, counted while it runs (a profile hook on the kernel's thread).

    python bench/crossings.py

A search of trivial trials on one agent in a thread (``launcher="thread"``) runs twice, with
N and 2N trials, and once more with 2N broadcasts per trial instead of one; the differences,
divided, are the crossings one more trial and one more broadcast cost (startup and shutdown
cancel out). A crossing is a call whose caller and callee are both in ``kernel/`` (not its
agent) but in different modules; how many distinct (caller, callee) module pairs one trial
touches is given too. Lower means a trial's path is told in fewer places.
"""
from __future__ import annotations

import argparse
import collections
import os
import sys
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

from _common import emit  # noqa: E402

KERNEL = os.path.join(ROOT, "kernel") + os.sep
AGENT = os.path.join(KERNEL, "agent") + os.sep


def _module(filename: str) -> str | None:
    if not filename.startswith(KERNEL) or filename.startswith(AGENT):
        return None
    return filename[len(KERNEL):]


class Count:
    """Calls between kernel modules made on one thread (the kernel's loop)."""

    def __init__(self) -> None:
        self.pairs: collections.Counter[tuple[str, str]] = collections.Counter()
        self.thread = threading.get_ident()

    def __call__(self, frame, event, arg) -> None:
        if event != "call" or threading.get_ident() != self.thread:
            return
        callee = _module(frame.f_code.co_filename)
        caller = frame.f_back and _module(frame.f_back.f_code.co_filename)
        if callee and caller and callee != caller:
            self.pairs[(caller, callee)] += 1


def broadcasts(hparams, reporter):
    for step in range(int(hparams["n"])):
        reporter.broadcast(metric=float(step), step=step)
    return {"score": 1.0}


def counted(trials: int, per_trial: int, path: str) -> Count:
    from contexts import HyperparameterSearch, Searchspace
    from kernel import lagom

    count = Count()
    space = Searchspace(n=("DISCRETE", [per_trial]))
    sys.setprofile(count)
    try:
        lagom(broadcasts, HyperparameterSearch(space, "randomsearch", num_trials=trials, metric="score", workers=1,
                                               launcher="thread"), path=path, verbose=0, report=False)
    finally:
        sys.setprofile(None)
    return count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=100)
    args = ap.parse_args()
    import tempfile

    path = tempfile.mkdtemp(prefix="lagom-crossings-")
    n = args.trials
    few, many, chatty = counted(n, 1, path), counted(2 * n, 1, path), counted(n, 2 * n + 1, path)
    per_trial = (sum(many.pairs.values()) - sum(few.pairs.values())) / n
    per_broadcast = (sum(chatty.pairs.values()) - sum(few.pairs.values())) / (n * 2 * n)
    grew = {p for p in many.pairs if many.pairs[p] > few.pairs.get(p, 0)}
    emit({"bench": "crossings", "trials": n, "crossings_per_trial": round(per_trial, 1),
          "crossings_per_broadcast": round(per_broadcast, 2), "module_pairs_per_trial": len(grew),
          "modules_per_trial": len({m for pair in grew for m in pair})})


if __name__ == "__main__":
    main()
