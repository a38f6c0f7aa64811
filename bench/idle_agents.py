"""Small searches of long trials: do all agents work, and does any trial wait while one is idle?

    python bench/idle_agents.py                  # the three cases below
    python bench/idle_agents.py --long 10        # longer trials in the first two cases

1. ``--workers`` (4) trials of ``--long`` seconds (3) on as many agents: lagom() from call to
   return, against the ideal of one trial's length (agents start, all run at once).
2. ``2 x --workers`` agents, as many trials: how many agents ran one, and the largest number
   running at the same time (from the journal's start and end times).
3. 200 trivial trials on 2 agents, one of which hangs for ``--hang`` seconds (5): how long any
   trial handed out ahead waited to start (journal ``lease`` to ``start``), and lagom()'s time
   against the hang's (an agent left idle takes back what waits behind the hung trial).

Trials are random search (proposals that ignore results: what the kernel may hand out ahead).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from _common import emit  # noqa: E402

import fns  # noqa: E402
from contexts import HyperparameterSearch, Searchspace  # noqa: E402
from kernel import lagom  # noqa: E402


def journal(result) -> list[dict]:
    return [json.loads(line) for line in open(result.path / "journal.jsonl")]


def most_at_once(events: list[dict]) -> int:
    """The largest number of trials running at the same moment (starts and ends from the journal)."""
    marks = [(e["time"], 1) for e in events if e["event"] == "start"]
    marks += [(e["trial"]["ended"], -1) for e in events if e["event"] == "end"]
    running = peak = 0
    for _, change in sorted(marks, key=lambda m: (m[0], m[1])):
        running += change
        peak = max(peak, running)
    return peak


def long_trials(workers: int, trials: int, seconds: float, runs: str) -> dict:
    space = Searchspace(x=("DOUBLE", [0.0, 1.0]), sleep=("DISCRETE", [seconds]))
    began = time.perf_counter()
    result = lagom(fns.quadratic, HyperparameterSearch(space, "randomsearch", metric="score", num_trials=trials,
                                                       workers=workers, seed=0), path=runs, verbose=0, report=False)
    wall = time.perf_counter() - began
    events = journal(result)
    return {"wall_s": round(wall, 3), "ideal_s": seconds * -(-trials // workers),
            "agents_used": len({t.agent for t in result.trials}), "most_at_once": most_at_once(events),
            "finished": result.count("finished")}


def behind_a_hang(hang: float, runs: str) -> dict:
    space = Searchspace(n=("DISCRETE", list(range(200))), hang=("DISCRETE", [hang]))
    began = time.perf_counter()
    result = lagom(fns.one_hangs_a_while, HyperparameterSearch(space, "randomsearch", metric="score",
                                                               num_trials=200, workers=2, seed=1),
                   path=runs, verbose=0, report=False)
    wall = time.perf_counter() - began
    events = journal(result)
    leased = {}
    waits = []
    for e in events:
        if e["event"] == "lease":
            leased[e["trial"]] = e["time"]
        elif e["event"] == "start" and e["trial"] in leased:
            waits.append(e["time"] - leased.pop(e["trial"]))
    return {"wall_s": round(wall, 3), "hang_s": hang, "finished": result.count("finished"),
            "handed_ahead": len(waits), "max_wait_ahead_s": round(max(waits, default=0.0), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--long", type=float, default=3.0, help="seconds per trial in cases 1 and 2")
    ap.add_argument("--hang", type=float, default=5.0, help="seconds the hung trial of case 3 takes")
    args = ap.parse_args()
    runs = tempfile.mkdtemp(prefix="lagom-idle-")
    one = long_trials(args.workers, args.workers, args.long, runs)
    print(f"{args.workers} x {args.long:g} s on {args.workers} agents: {one['wall_s']:.2f} s "
          f"(ideal {one['ideal_s']:g} s), {one['agents_used']} agents used", flush=True)
    n = 2 * args.workers
    two = long_trials(n, n, args.long, runs)
    print(f"{n} x {args.long:g} s on {n} agents: {two['agents_used']} agents used, {two['most_at_once']} at once, "
          f"{two['wall_s']:.2f} s", flush=True)
    three = behind_a_hang(args.hang, runs)
    print(f"200 trivial trials on 2 agents, one hung {args.hang:g} s: {three['wall_s']:.2f} s; "
          f"{three['handed_ahead']} handed out ahead, the longest waited {three['max_wait_ahead_s']:.3f} s",
          flush=True)
    emit({"bench": "idle_agents", "long_s": args.long, "same_count": {"workers": args.workers, **one},
          "double": {"workers": n, **two}, "behind_a_hang": three})


if __name__ == "__main__":
    main()
