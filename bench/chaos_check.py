"""The soak's model (bench/chaos.py): what an experiment folder and the trials' own run log
must say after any history of faults. ``check`` returns the violations found, by rule, and the
counts it saw.

- ended once: every trial the journal names ended exactly once, and result.json holds it;
- nothing lost: every finished result the journal recorded is in result.json, unchanged;
- runs: no trial's function ran more often than the kernel handed it out (a start, or a lease
  to an agent, journaled before the trial is sent), and none began after the trial had ended;
- ASHA: each trial proposed is what asynchronous successive halving (Li et al. 2020) decides
  from the results recorded before it, replayed from the journal: the highest rung with a
  configuration in its top 1/eta not yet promoted promotes it, else a new configuration;
- the median rule: each stopped trial was stopped at a broadcast where its best value so far
  was worse than the median, over the trials of its budget that had finished before the stop
  was sent (the end records before ``stop_requested``), of their running averages over as many
  broadcasts, with at least ``es_min`` trials finished, and never at a broadcast that completes
  its budget or lies within its parent's;
- readers: the journal's fold, ``status``, the dashboard and result.json give each trial the
  same state.
"""
from __future__ import annotations

import collections
import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))


def _journal(folder: str) -> list[dict]:
    from kernel.journal import read_journal
    return read_journal(folder)[0]


def check(folder: str, runs_log: str, eta: int = 3, budgets: tuple = (1, 3, 9), direction: str = "max",
          es_min: int = 5) -> dict:
    events = _journal(folder)
    with open(os.path.join(folder, "result.json")) as f:
        result = {t["id"]: t for t in json.load(f)["trials"]}
    violations: dict[str, list] = collections.defaultdict(list)
    ends = _ended_once(events, result, violations)
    _runs(events, ends, runs_log, violations)
    promotions = _asha(events, eta, list(budgets), direction, violations)
    stops = _median_stops(events, es_min, direction, violations)
    try:
        import fns
        states = fns.readers_agree(folder)
        differ = [tid for tid, t in result.items() if states.get(tid) != t["state"]]
        if differ:
            violations["result.json and the journal's fold differ"].extend(differ)
    except AssertionError as exc:
        violations["readers"].append(str(exc)[:300])
    return {"violations": {k: v[:5] for k, v in violations.items()},
            "violation_count": sum(len(v) for v in violations.values()),
            "trials": len(result), "promotions": promotions, "stops": stops,
            "states": dict(collections.Counter(t["state"] for t in result.values()))}


def _ended_once(events: list[dict], result: dict, violations: dict) -> dict[int, tuple[int, dict]]:
    named = {e["trial"] for e in events if e["event"] in ("lease", "start")}
    ends: dict[int, tuple[int, dict]] = {}
    for i, e in enumerate(events):
        if e["event"] == "end":
            tid = e["trial"]["id"]
            if tid in ends:
                violations["ended twice"].append(tid)
            ends[tid] = (i, e)
    for tid in sorted(named - set(ends)):
        violations["never ended"].append(tid)
    for tid in sorted(named - set(result)):
        violations["missing from result.json"].append(tid)
    for tid, (_, e) in ends.items():
        t = e["trial"]
        if t["state"] == "finished":
            kept = result.get(tid)
            if kept is None or kept["state"] != "finished" or kept["metric"] != t["metric"]:
                violations["finished result lost"].append(tid)
    return ends


def _runs(events: list[dict], ends: dict, runs_log: str, violations: dict) -> None:
    """The kernel writes a trial's start (or lease) to the journal before the trial leaves, so
    even a kernel killed right after the send leaves the record: no excuse for a run without one."""
    handed = collections.Counter(e["trial"] for e in events
                                 if e["event"] == "start" or (e["event"] == "lease" and e.get("agent")))
    ran: dict[int, list[float]] = collections.defaultdict(list)
    with open(runs_log) as f:
        for line in f:
            tid, _, when = line.split()
            ran[int(tid)].append(float(when))
    for tid, starts in ran.items():
        if len(starts) > handed[tid]:
            violations["ran more often than handed out"].append((tid, len(starts), handed[tid]))
        ended = ends.get(tid)
        if ended is not None and max(starts) > ended[1]["time"]:
            violations["ran after it ended"].append(tid)


def _asha(events: list[dict], eta: int, budgets: list, direction: str, violations: dict) -> int:
    results: list[dict[int, float]] = [{} for _ in budgets]
    promoted: list[set[int]] = [set() for _ in budgets]
    rung_of: dict[int, int] = {}
    seen: set[int] = set()
    count = 0
    sign = -1.0 if direction == "max" else 1.0
    for e in events:
        if e["event"] == "end":
            t = e["trial"]
            value = t.get("metric")
            if t["state"] in ("finished", "stopped") and value is not None and math.isfinite(value) \
                    and t["id"] in rung_of:
                results[rung_of[t["id"]]][t["id"]] = value
        elif e["event"] in ("lease", "start") and e["trial"] not in seen:
            seen.add(e["trial"])
            expected = None
            for rung in range(len(budgets) - 2, -1, -1):
                top = sorted(results[rung], key=lambda tid: (sign * results[rung][tid], tid))[:len(results[rung]) // eta]
                parent = next((tid for tid in top if tid not in promoted[rung]), None)
                if parent is not None:
                    expected = (parent, budgets[rung + 1])
                    promoted[rung].add(parent)
                    break
            actual = (e["parent"], e["budget"])
            if expected is None and (e["parent"] is not None or e["budget"] != budgets[0]):
                violations["ASHA: promoted when it should not"].append((e["trial"], actual))
            elif expected is not None and actual != expected:
                violations["ASHA: another decision"].append((e["trial"], actual, expected))
            count += e["parent"] is not None
            rung_of[e["trial"]] = budgets.index(e["budget"]) if e["budget"] in budgets else 0
    return count


def _median_stops(events: list[dict], es_min: int, direction: str, violations: dict) -> int:
    """Replays the median rule's stops (plugins/earlystop/median.py, as contexts/hpo.py asks
    it); returns how many were checked."""
    from contexts.hpo import completes_budget

    budget_of = {e["trial"]: e["budget"] for e in events if e["event"] in ("lease", "start")}
    parent_of = {e["trial"]: e["parent"] for e in events if e["event"] in ("lease", "start")}
    finished = [(e["time"], e["trial"]) for e in events if e["event"] == "end" and e["trial"]["state"] == "finished"]
    better = (lambda a, b: a > b) if direction == "max" else (lambda a, b: a < b)
    checked = 0
    for e in events:
        t = e["trial"] if e["event"] == "end" else None
        if t is None or t["state"] != "stopped" or t.get("stop_requested") is None:
            continue
        done = [u for when, u in finished if when <= t["stop_requested"]]
        if len(done) < es_min:
            violations["median rule: stopped before es_min trials finished"].append(t["id"])
            continue
        same = [u["history"] for u in done if u["budget"] == t["budget"] and u["history"]]
        parent_budget = budget_of.get(parent_of.get(t["id"]))
        values = [v for _, v in t["history"]]
        justified = False
        for k, (step, _) in enumerate(t["history"]):
            if completes_budget(step, t["budget"]) or (isinstance(parent_budget, (int, float))
                                                       and step + 1 <= parent_budget):
                continue
            column = sorted(sum(v for _, v in h[:k + 1]) / (k + 1) for h in same if len(h) > k)
            if not column:
                continue
            mid = len(column) // 2
            median = column[mid] if len(column) % 2 else (column[mid - 1] + column[mid]) / 2
            best = max(values[:k + 1]) if direction == "max" else min(values[:k + 1])
            if better(median, best):
                justified = True
                break
        if not justified:
            violations["median rule: a stop it would not make"].append(t["id"])
        checked += 1
    return checked
