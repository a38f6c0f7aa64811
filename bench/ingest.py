"""How many broadcasts a second the kernel takes in: trials that broadcast as fast as they can.

    python bench/ingest.py                       # 2 agents, 4 trials of 200,000 broadcasts each

Every broadcast reaches the kernel (the trial's ``history`` holds them all at the end: checked),
through the real path: the reporter, the agent's coalescing (broadcasts that follow each other
within a few milliseconds travel as one message), CurveZMQ over tcp:// (as bench/dispatch.py),
the kernel's handler, the controller, the journal's end record. Figures (last line, JSON): metrics ingested per second (all broadcasts over the span
from the first trial's start to the last one's end), per trial, and the kernel's peak RSS.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

from _common import emit, rss_mb  # noqa: E402

from contexts import HyperparameterSearch, Searchspace  # noqa: E402
from kernel import lagom  # noqa: E402


def firehose(hparams, reporter):
    """Broadcast ``n`` values as fast as the function can."""
    n, x = int(hparams["n"]), hparams["x"]
    for step in range(n):
        reporter.broadcast(metric=x * step, step=step)
    return {"value": x}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--broadcasts", type=int, default=200_000)
    ap.add_argument("--url", default="tcp://127.0.0.1:0", help="where the kernel listens (tcp://: CurveZMQ)")
    args = ap.parse_args()
    space = Searchspace(x=("DOUBLE", [0.0, 1.0]), n=("DISCRETE", [args.broadcasts]))
    t0 = time.perf_counter()
    result = lagom(firehose, HyperparameterSearch(space, num_trials=args.trials, metric="value", workers=2),
                   listen=args.url, path=tempfile.mkdtemp(prefix="lagom-ingest-"), verbose=0, report=False)
    wall = time.perf_counter() - t0
    assert all(len(t.history) == args.broadcasts for t in result.trials), "a broadcast went missing"
    span = max(t.ended for t in result.trials) - min(t.started for t in result.trials)
    total = args.trials * args.broadcasts
    per_trial = [args.broadcasts / t.duration for t in result.trials]
    print(f"{total:,} broadcasts in {span:.2f} s: {total / span:,.0f} metrics/s into the kernel "
          f"(per trial {min(per_trial):,.0f}-{max(per_trial):,.0f}/s)", flush=True)
    emit({"bench": "ingest", "trials": args.trials, "broadcasts_per_trial": args.broadcasts,
          "metrics_per_s": round(total / span), "per_trial_metrics_per_s": [round(p) for p in per_trial],
          "span_s": round(span, 3), "wall_s": round(wall, 2), "kernel_rss_mb": round(rss_mb(), 1)})


if __name__ == "__main__":
    main()
