"""An audit of early stopping: some stopped trials run to the full budget after all, and the
search says how often stopping threw away a trial that would have ranked among the best.

``HyperparameterSearch(..., audit_stops=N)``: once the search is over (its optimizer is done and
its trials have ended), N of the trials it stopped, drawn at random, run again to the largest
budget the search trained, continuing their checkpoints where they saved one (as a promotion
does). Stopped means: ended "stopped" by the early-stopping rule, or, under ASHA or Hyperband,
a configuration that never reached the largest budget (one trial per configuration: its
furthest). Audited trials run after the search, so they delay none of its decisions, and are
marked (``trial.info["audit"]`` names the trial audited): the optimizer and the rule never
hear of them, no rule judges them, they are never the best; result.json keeps them. The
summary says how many would have ranked in the top 10% of the search's trials at that budget,
with a 95% interval (Wilson's), since 20 audits tell a rate only roughly.
"""
from __future__ import annotations

import math
import random
from typing import Any

from kernel.controller import DONE, WAIT, TrialSpec
from kernel.direction import Direction

TOP = 0.10  # "ranked among the best": the top tenth of the trials that ran the full budget


class StopAudit:
    def __init__(self, count: int, seed: int, direction: Direction):
        self.count, self.direction = count, direction
        self.rng = random.Random(seed + 7919)  # its own draws: the optimizer's stay as they were
        self.open: set[int] = set()  # the search's trials proposed and not ended
        self.ended: dict[int, tuple[dict, Any, str, bool]] = {}  # trial -> (params, budget, state, checkpointed)
        self.queue: list[int] | None = None  # trials left to audit, drawn when the search is over
        self.of: dict[int, int] = {}  # audit trial -> the trial it audits
        self.full: Any = None  # the budget audits run to

    def proposed(self, trial_id: int) -> None:
        self.open.add(trial_id)

    def audits(self, trial_id: int) -> bool:
        return trial_id in self.of

    def search_ended(self, trial: Any) -> None:
        self.open.discard(trial.id)
        self.ended[trial.id] = (dict(trial.params), trial.budget, str(trial.state), bool(trial.checkpointed))

    def next_trial(self, trial_id: int, gang: int, run: Any, traced: Any) -> Any:
        """The optimizer is done: WAIT for the search's last trials, then the audits, then DONE."""
        if self.open:
            return WAIT
        if self.queue is None:
            self.queue = self._draw()
        if not self.queue:
            return DONE
        audited = self.queue.pop(0)
        self.of[trial_id] = audited
        params, _, _, saved = self.ended[audited]
        parent = audited if saved else None  # continues its checkpoint, or starts afresh without one
        return TrialSpec(params, self.full, {"audit": audited}, parent, gang=gang, run=run, traced=traced(params))

    def _draw(self) -> list[int]:
        budgets = [b for _, b, state, _ in self.ended.values() if state == "finished" and _number(b)]
        self.full = max(budgets) if budgets else None
        furthest: dict[str, tuple[Any, int]] = {}  # configuration -> (its largest budget, that trial)
        for tid, (params, budget, state, _) in sorted(self.ended.items()):
            if state in ("finished", "stopped"):
                key, b = repr(sorted(params.items())), budget if _number(budget) else 0
                if key not in furthest or b >= furthest[key][0]:
                    furthest[key] = (b, tid)
        stopped = sorted(tid for b, tid in furthest.values() if self.ended[tid][2] == "stopped"
                         or (self.full is not None and b < self.full))
        return sorted(self.rng.sample(stopped, min(self.count, len(stopped))))

    def summarize(self, trials: list[Any]) -> tuple[dict[str, Any], list[str]]:
        """How the audited trials would have ranked among the search's trials of their budget."""
        peers = [t.metric for t in trials if t.state == "finished" and t.budget == self.full
                 and (t.info or {}).get("audit") is None and _finite(t.metric)]
        if not self.of or not peers:
            return {}, []
        ranked = self.direction.ranked(peers, key=lambda v: v)
        cut = ranked[max(1, math.ceil(TOP * len(peers))) - 1]  # the worst value still in the top tenth
        rows, top = [], 0
        for t in trials:
            if t.id in self.of and t.state == "finished" and _finite(t.metric):
                rank = 1 + sum(self.direction.better(v, t.metric) for v in peers)
                best = not self.direction.better(cut, t.metric)
                top += best
                rows.append({"trial": t.id, "audits": self.of[t.id], "metric": t.metric, "rank": rank,
                             "of": len(peers), "top": best})
        if not rows:
            return {}, []
        lo, hi = wilson(top, len(rows))
        audit = {"audited": len(rows), "in_top": top, "rate": top / len(rows), "interval": [lo, hi],
                 "budget": self.full, "top_share": TOP, "trials": rows}
        line = (f"  early stopping: {top} of {len(rows)} audited stopped trials would have ranked in the top "
                f"{TOP:.0%} ({top / len(rows):.0%}, 95% interval {lo:.0%}-{hi:.0%})")
        return {"stop_audit": audit}, [line]


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson's score interval for k successes in n: sound at the small counts an audit has."""
    p = k / n
    centre, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - half) / (1 + z * z / n)), min(1.0, (centre + half) / (1 + z * z / n))


def _number(b: Any) -> bool:
    return isinstance(b, (int, float)) and not isinstance(b, bool)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)
