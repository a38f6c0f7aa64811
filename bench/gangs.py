"""A search whose trials are gangs of agents: how much agent time goes idle while gangs assemble.

    python bench/gangs.py                       # 4 agents, gangs of 2, 8 multihost trials on CPU
    python bench/gangs.py --agents 3            # one agent can never join a gang of 2 while two run

Each trial is a 2-process JAX run (``strategy="multihost"``, 2 CPU devices per process, rank 0
hosting the coordinator) of 3 epochs with 0.5 s of work each. From the journal: each agent's
busy time (the trials it was a rank of, start to end, JAX start-up included), the idle fraction
(1 - busy / (agents x the span from the first start to the last end)), and the gap between a
gang's end and the next gang's start on the same agents (gathering and dispatch).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from _common import emit, percentile  # noqa: E402

import fns  # noqa: E402
from contexts import HyperparameterSearch, Searchspace  # noqa: E402
from kernel import lagom  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", type=int, default=4)
    ap.add_argument("--trials", type=int, default=8)
    args = ap.parse_args()
    space = Searchspace(lr=("DOUBLE", [0.01, 0.2]), sleep=("DISCRETE", [0.5]))  # 3 epochs (no budget)
    ctx = HyperparameterSearch(space, num_trials=args.trials, metric="score", workers=args.agents,
                               strategy="multihost", agents_per_trial=2, cpu_devices=2)
    result = lagom(fns.gang_train, ctx, path=tempfile.mkdtemp(prefix="lagom-gangs-"), verbose=0, report=False)
    events = [json.loads(line) for line in open(result.path / "journal.jsonl")]
    starts = {e["trial"]: e["time"] for e in events if e["event"] == "start"}
    spans = [(starts[t.id], t.ended, t.ranks) for t in result.trials if t.ended]
    first, last = min(s for s, _, _ in spans), max(e for _, e, _ in spans)
    busy: dict[str, float] = {}
    for s, e, ranks in spans:
        for agent in ranks:
            busy[agent] = busy.get(agent, 0.0) + (e - s)
    gaps = []  # an agent's end of one gang to its start in the next
    by_agent: dict[str, list[tuple[float, float]]] = {}
    for s, e, ranks in spans:
        for agent in ranks:
            by_agent.setdefault(agent, []).append((s, e))
    for runs in by_agent.values():
        runs.sort()
        gaps += [b[0] - a[1] for a, b in zip(runs, runs[1:])]
    idle = 1 - sum(busy.values()) / (args.agents * (last - first))
    print(f"{args.agents} agents, gangs of 2: {len(spans)} trials in {last - first:.1f} s; idle {idle:.1%}; "
          f"gap between gangs p50 {1000 * (percentile(gaps, 50) or 0):.0f} ms", flush=True)
    emit({"bench": "gangs", "agents": args.agents, "trials": len(spans), "finished": result.count("finished"),
          "span_s": round(last - first, 2), "idle_fraction": round(idle, 4),
          "gap_ms": {"p50": round(1000 * (percentile(gaps, 50) or 0), 1), "max": round(1000 * max(gaps, default=0), 1)},
          "trial_s_p50": round(percentile([e - s for s, e, _ in spans], 50), 2)})


if __name__ == "__main__":
    main()
