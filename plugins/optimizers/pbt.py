"""Population-based training (Jaderberg et al., "Population Based Training of Neural Networks",
2017), asynchronous: no member waits for another.

A population of ``population`` configurations trains in segments of ``perturbation_interval``
budget units, each segment one trial that continues the member's previous one from its
checkpoint (``reporter.parent_checkpoint_dir``; ``hparams["budget"]`` is the budget to reach, as
under ASHA). When a segment ends, a member in the bottom ``quantile`` of the members that have
reached the same budget (scores are compared at equal training, as ASHA's rungs are) *exploits*
one of their top ``quantile``: its next segment continues from that member's checkpoint, with that member's hyperparameters *explored* (each resampled with
``resample_probability``, else multiplied by 0.8 or 1.2, or moved to a neighbouring value of a
DISCRETE or CATEGORICAL list). Any other member continues as it is. The member furthest
behind runs next, so the population stays level and no unit is trained twice.

The faults users of other PBT implementations met cannot happen here by construction: a member
is exploited only once a trial of it has *saved* a checkpoint (the kernel sees its files:
``Observation.checkpointed``), and the weights and the hyperparameters of an exploit travel in
one Suggestion (``parent`` and ``params`` together), never one without the other. Every decision
comes from the outcomes in journal order and a seeded generator, so a resumed search rebuilds
the same population. ``summarize`` gives each final member's lineage: whose checkpoints it
inherited, and with which hyperparameters it trained each segment (the schedule that won).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .base import FINISHED, WAIT, Decision, Observation, Optimizer, Suggestion

_GOOD = ("finished", "stopped")


@dataclass
class _Member:
    index: int
    params: dict[str, Any]
    budget: float = 0.0          # reached by its last trial that ended well
    score: float | None = None   # that trial's metric
    trial: int | None = None     # that trial (its checkpoint holds the member's weights)
    checkpoint: bool = False     # it saved one
    scores: dict | None = None   # budget -> its score there (members are compared at equal budget)
    generation: int = 0
    failures: int = 0            # in a row
    done: bool = False


class PBT(Optimizer):
    """``max_budget``: where every member ends (epochs, steps: the unit of ``budget``).
    ``population``: members (default ``num_trials``, else 8). ``quantile``: the bottom and top
    fraction (at least one member each). ``max_failures``: segments of one member that may fail
    in a row before it is dropped (a failed segment is replaced by an exploit, or a fresh start).
    ``explore``: the hyperparameters an exploit perturbs (default: every DOUBLE one); the others
    are the donor's as they are, since its weights may depend on them (a layer's width).
    """

    editable = False  # its members' lineage is what a resume replays: another space or budget breaks it

    def __init__(self, max_budget: float = 20, perturbation_interval: float = 2, *, population: int | None = None,
                 quantile: float = 0.25, resample_probability: float = 0.25,
                 factors: tuple[float, float] = (0.8, 1.2), max_failures: int = 3,
                 explore: list[str] | None = None):
        if not isinstance(max_budget, (int, float)) or max_budget <= 0:
            raise ValueError(f"PBT needs max_budget > 0 (where every member ends), got {max_budget!r}")
        if not isinstance(perturbation_interval, (int, float)) or not 0 < perturbation_interval <= max_budget:
            raise ValueError(f"perturbation_interval must lie in (0, max_budget={max_budget}], "
                             f"got {perturbation_interval!r}")
        if population is not None and (not isinstance(population, int) or population < 2):
            raise ValueError(f"population must be an integer >= 2 (a member exploits another), got {population!r}")
        if not 0 < quantile <= 0.5:
            raise ValueError(f"quantile must lie in (0, 0.5], got {quantile!r}")
        if not 0 <= resample_probability <= 1:
            raise ValueError(f"resample_probability must lie in [0, 1], got {resample_probability!r}")
        self.max_budget, self.interval = max_budget, perturbation_interval
        self.population, self.quantile = population, quantile
        self.resample_probability, self.factors, self.max_failures = resample_probability, tuple(factors), max_failures
        self.explore = None if explore is None else list(explore)
        self._members: list[_Member] = []
        self._queue: list[Suggestion] = []

    def setup(self, space: Any, *, num_trials: int | None, direction: Any, seed: int | None) -> None:
        super().setup(space, num_trials=num_trials, direction=direction, seed=seed)
        self.size = self.population or num_trials or 8
        if self.size < 2:
            raise ValueError(f"PBT needs a population of at least 2 (num_trials={num_trials}); pass population=")
        self._whole = all(float(x).is_integer() for x in (self.max_budget, self.interval))
        names = [p.name for p in space]
        unknown = [n for n in (self.explore or []) if n not in names]
        if unknown:
            raise ValueError(f"explore={self.explore}: {unknown} not in the search space ({', '.join(names)})")
        self._explored = set(self.explore if self.explore is not None else
                             [p.name for p in space if p.type == "DOUBLE"])

    def total_trials(self) -> int | None:
        return self.size * math.ceil(self.max_budget / self.interval - 1e-9)

    # -- the kernel asks -------------------------------------------------------------------
    def suggest(self, trial_id: int) -> Decision:
        if len(self._members) < self.size:  # the whole population starts before anyone goes on
            member = _Member(len(self._members), self.sample())
            self._members.append(member)
            return Suggestion(member.params, self._step(0.0), info={"member": member.index, "generation": 0})
        if self._queue:  # the member furthest behind goes next: the population stays level
            nearest = min(range(len(self._queue)), key=lambda i: (self._queue[i].budget, self._queue[i].info["member"]))
            return self._queue.pop(nearest)
        return FINISHED if all(m.done for m in self._members) else WAIT

    def observe(self, obs: Observation) -> None:
        index = obs.info.get("member")
        if not isinstance(index, int) or not 0 <= index < len(self._members):
            return
        m = self._members[index]
        if obs.state in _GOOD and obs.value is not None and not math.isnan(obs.value):
            m.params, m.budget, m.score, m.trial = dict(obs.params), obs.budget or 0.0, obs.value, obs.trial_id
            m.checkpoint, m.failures = obs.checkpointed, 0
            m.scores = {**(m.scores or {}), m.budget: obs.value}
            m.generation = obs.info.get("generation", m.generation)
            if m.budget >= self.max_budget - 1e-9:
                m.done = True
            else:
                self._queue.append(self._next(m))
            return
        m.failures += 1
        if m.failures >= self.max_failures:
            m.done = True  # a configuration that keeps failing is dropped, not retried forever
        else:
            self._queue.append(self._recover(m))

    # -- exploit and explore --------------------------------------------------------------------
    def _next(self, m: _Member) -> Suggestion:
        donor = self._donor_at(m)
        if donor is None:  # carry on as it is, from its own checkpoint (none: from the start)
            return Suggestion(m.params, self._step(m.budget), parent=m.trial if m.checkpoint else None,
                              info={"member": m.index, "generation": m.generation})
        return self._exploit(m, donor)

    def _donor_at(self, m: _Member) -> _Member | None:
        """When ``m`` ranks in the bottom quantile of the members that have reached its budget
        (compared there, not against members trained less), one of that set's top quantile."""
        level = [x for x in self._members if x.scores and m.budget in x.scores]
        level.sort(key=lambda x: (-self.direction.sign * x.scores[m.budget], x.index))
        k = max(1, int(len(level) * self.quantile))
        if len(level) <= k or m not in level[-k:]:
            return None
        able = [x for x in level[:k] if self._can_give(x)]
        return self.rng.choice(able) if able else None

    def _recover(self, m: _Member) -> Suggestion:
        """A failed segment: continue from a top member's checkpoint, else from its own with
        explored hyperparameters (the failure may be theirs: a NaN), else start over."""
        donor = self._donor(m)
        if donor is not None:
            return self._exploit(m, donor)
        if m.checkpoint and m.trial is not None:
            return self._exploit(m, m)
        m.params, m.budget, m.trial, m.checkpoint = self.sample(), 0.0, None, False
        return Suggestion(m.params, self._step(0.0), info={"member": m.index, "generation": m.generation + 1,
                                                          "restart": True})

    def _exploit(self, m: _Member, donor: _Member) -> Suggestion:
        params = self._explore(donor.params)
        return Suggestion(params, self._step(donor.budget), parent=donor.trial, info={
            "member": m.index, "generation": m.generation + 1, "exploit": donor.index,
            "from_params": dict(donor.params)})

    def _ranked(self) -> list[_Member]:
        scored = [x for x in self._members if x.score is not None]
        return sorted(scored, key=lambda x: (-self.direction.sign * x.score, x.index))

    def _donor(self, m: _Member) -> _Member | None:
        """For a failed segment: a top member by latest score that saved a checkpoint and has
        budget left."""
        ranked = self._ranked()
        top = ranked[:max(1, int(len(ranked) * self.quantile))]
        able = [x for x in top if x is not m and self._can_give(x)]
        return self.rng.choice(able) if able else None

    def _can_give(self, x: _Member) -> bool:
        """A member another may copy: a trial of it saved a checkpoint, and it has budget left."""
        return x.checkpoint and x.trial is not None and x.budget < self.max_budget - 1e-9

    def _explore(self, params: dict[str, Any]) -> dict[str, Any]:
        fresh, out = self.space.sample(self.rng), {}
        for p in self.space:
            if not p.active(out):
                continue
            value = params.get(p.name)
            if p.name not in self._explored and value is not None and p.contains(value):
                out[p.name] = value  # not explored: the donor's, as its weights need (a layer width)
            elif value is None or not p.contains(value) or self.rng.random() < self.resample_probability:
                out[p.name] = fresh[p.name] if p.name in fresh else p.sample(self.rng)
            else:
                out[p.name] = self._perturb(p, value)
        return out

    def _perturb(self, p: Any, value: Any) -> Any:
        if p.is_range:
            low, high = p.values
            moved = value * self.rng.choice(self.factors)
            if p.type == "INTEGER":
                step = round(moved)
                moved = step if step != value else value + (1 if moved > value else -1)
                return int(min(high, max(low, moved)))
            return float(min(high, max(low, moved)))
        choices = sorted(p.values) if p.type == "DISCRETE" else list(p.values)
        at = next(i for i, v in enumerate(choices) if v == value and type(v) is type(value))
        if len(choices) == 1:
            return value
        near = [i for i in (at - 1, at + 1) if 0 <= i < len(choices)]
        return choices[self.rng.choice(near)]

    def _step(self, budget: float) -> float | int:
        target = min(self.max_budget, budget + self.interval)
        return int(round(target)) if self._whole else target

    # -- what the result says ----------------------------------------------------------------------
    def summarize(self, trials: list[Any]) -> tuple[dict[str, Any], list[str]]:
        lineages = lineage(trials, self.direction)
        if not lineages:
            return {}, []
        best = lineages[0]
        steps = " -> ".join(_segment(s) for s in _changes(best["steps"]))
        return {"lineage": lineages}, [f"  PBT: the winning schedule (member {best['member']}, trial "
                                       f"{best['trial']}): {steps}"]


def lineage(trials: list[Any], direction: Any) -> list[dict[str, Any]]:
    """Each member's last good trial, traced back through the checkpoints it continued: the
    trials, budgets and hyperparameters of every segment, best member first."""
    by_id = {t.id: t for t in trials}
    last: dict[int, Any] = {}
    for t in trials:
        member = t.info.get("member")
        if member is not None and t.state in _GOOD and t.metric is not None and not math.isnan(t.metric):
            last[member] = t if member not in last or t.id > last[member].id else last[member]
    out = []
    for member, t in last.items():
        chain, at = [], t
        while at is not None:
            chain.append({"trial": at.id, "member": at.info.get("member"), "budget": at.budget, "params": at.params,
                          "metric": at.metric, "exploited": at.info.get("exploit")})
            at = by_id.get(at.parent) if at.parent is not None else None
        out.append({"member": member, "trial": t.id, "metric": t.metric, "steps": chain[::-1]})
    sign = getattr(direction, "sign", 1.0)
    return sorted(out, key=lambda x: (-sign * x["metric"], x["member"]))


def _changes(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The segments where the hyperparameters changed (and the last), merged with their runs."""
    merged: list[dict[str, Any]] = []
    for s in steps:
        if merged and merged[-1]["params"] == s["params"]:
            merged[-1] = {**merged[-1], "budget": s["budget"]}
        else:
            merged.append(dict(s))
    return merged


def _segment(s: dict[str, Any]) -> str:
    values = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in s["params"].items())
    return f"{values} to {s['budget']}"
