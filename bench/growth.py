"""Does a trial cost the same when it is the 100,000th as when it is the 1,000th?

Runs the trivial work of bench/dispatch.py (one float, 10 broadcasts, random search, 2 local
agents over tcp:// with CurveZMQ) at each size in ``--sizes``, each in a fresh process so that
memory figures are its own, and compares them.

    python bench/growth.py                       # 1,000, 20,000 and 100,000 trials
    python bench/growth.py --sizes 1000 20000

Figures per size (last line, JSON): trials_per_s over the whole run, us_per_trial, the rate of
the first and of the last tenth of the trials (flat cost: the two agree), kernel RSS at the end
and its growth per 1,000 trials over the smallest size, startup_s (lagom() -> the first trial)
and close_s (the last trial's end -> lagom() returning: result.json and report.html, which
grow with the trials). Summary: last_vs_first (the largest size's time per trial over the
smallest's; the goal is within 10%).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from _common import emit, rss_mb  # noqa: E402


def one(trials: int) -> dict:
    """One experiment of ``trials`` trivial trials in this process; its figures."""
    from contexts import HyperparameterSearch, Searchspace
    from dispatch import trivial
    from kernel import lagom

    space = Searchspace(x=("DOUBLE", [0.0, 1.0]))
    with tempfile.TemporaryDirectory() as root:
        t0 = time.time()
        result = lagom(trivial, HyperparameterSearch(space, "randomsearch", num_trials=trials, metric="value",
                                                     workers=2, seed=0),
                       listen="tcp://127.0.0.1:0", path=root, verbose=0)
        returned = time.time()
    ended = sorted(t.ended for t in result.trials)
    first = min(t.started for t in result.trials)
    tenth = max(1, trials // 10)
    assert len(ended) == trials and all(t.state == "finished" for t in result.trials)
    return {"trials": trials, "trials_per_s": round(trials / (ended[-1] - first), 1),
            "us_per_trial": round((ended[-1] - first) / trials * 1e6, 1),
            "first_tenth_per_s": round(tenth / (ended[tenth - 1] - first), 1),
            "last_tenth_per_s": round(tenth / (ended[-1] - ended[-tenth - 1]), 1),
            "kernel_rss_mb": round(rss_mb(), 1), "startup_s": round(first - t0, 3),
            "close_s": round(returned - ended[-1], 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 20000, 100000])
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a single size, in a child process
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one)))
        return
    runs = []
    for n in args.sizes:
        out = subprocess.run([sys.executable, __file__, "--one", str(n)], check=True, capture_output=True,
                             text=True).stdout.strip().splitlines()[-1]
        runs.append(json.loads(out))
        print(runs[-1], flush=True)
    small, large = runs[0], runs[-1]
    for r in runs[1:]:
        r["rss_mb_per_1k_trials"] = round((r["kernel_rss_mb"] - small["kernel_rss_mb"])
                                          / (r["trials"] - small["trials"]) * 1000, 2)
    emit({"bench": "growth", "runs": runs,
          "last_vs_first": round(large["us_per_trial"] / small["us_per_trial"], 3)})


if __name__ == "__main__":
    main()
