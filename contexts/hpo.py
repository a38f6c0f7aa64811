"""``HyperparameterSearch``: many trials, chosen by an optimizer, stopped early by a rule.

The context validates its options at construction, then builds a controller from two plugins:
an optimizer (``lagom.optimizers``) and an early stopper (``lagom.earlystop``), each given by
name or as an instance.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import random
from typing import Any

from kernel.controller import WAIT, Controller, ExperimentError, TrialSpec
from kernel.direction import Direction
from plugins.earlystop import EarlyStopper, NoStopping
from plugins.optimizers import FINISHED, Observation, Optimizer
from plugins.registry import PluginError, resolve

from .audit import StopAudit
from .base import ConfigError, Context, check_direction, check_int, check_pack
from .runs import check_gang, run_spec
from .searchspace import Searchspace, check_edits


class SearchController(Controller):
    """A search as the kernel sees it: the optimizer proposes, the early stopper judges.

    Every outcome reaches both plugins as an :class:`Observation`, in journal order, so a
    replayed journal rebuilds their state. The rule judges a running trial every
    ``es_interval`` broadcasts once ``es_min`` trials have completed (finished), except the
    broadcast that completes the trial's budget: by then its work is done, and stopping it
    would save nothing while calling it "stopped". A promoted trial (ASHA's next rung for a
    configuration, restarted or continued from its parent's checkpoint) is not judged until it
    passes its parent's budget: up to there the optimizer has judged it already, by promoting
    it, and a restarted one would be stopped for epochs its parent did well (measured: 5-8 of
    13-16 promoted trials were, at their first broadcast).
    """

    seed: int | None = None
    audit: StopAudit | None = None  # audit_stops: stopped trials run to the full budget at the end
    gang: int = 1  # agents per trial (a distributed trial)
    space_edited: bool = False  # resumed with another search space: trials outside it are not learned from
    run: dict[str, Any] | None = None  # how agents run each trial (a strategy); None: in the agent

    def __init__(self, optimizer: Optimizer, stopper: EarlyStopper, *, metric: str, direction: str,
                 es_interval: int, es_min: int, num_trials: int | None,
                 objectives: list[str] | None = None, directions: list[Direction] | None = None):
        self.optimizer = optimizer
        self.stopper = stopper
        self.metric = metric
        self.direction = Direction.of(direction)
        self.objectives, self.directions = objectives, directions
        self.judges_metrics = not isinstance(stopper, NoStopping)
        self.es_interval = es_interval
        self.es_min = es_min
        self.num_trials = num_trials
        self._completed = 0  # finished trials: the rule waits for es_min of them
        self._parent_budget: dict[int, Any] = {}  # promoted trial -> the budget its parent trained
        self._budgets: dict[int, Any] = {}  # trial -> its budget (a promotion names its parent)
        # Whether anyone hears how trials end (random search and no rule do not: then no
        # Observation is built per trial)
        self._observed = type(optimizer).observe is not Optimizer.observe \
            or type(stopper).observe is not EarlyStopper.observe

    @property
    def lease(self) -> bool:
        """Short trials may be handed out ahead when proposals ignore results (random, grid)
        and each trial runs in its agent's process (not a gang, not a strategy's process)."""
        return not getattr(self.optimizer, "adaptive", True) and self.gang == 1 and self.run is None \
            and self.pack == 1

    def next_trial(self, trial_id: int):
        decision = self.optimizer.suggest(trial_id)
        if decision is FINISHED and self.audit is not None:
            return self.audit.next_trial(trial_id, self.gang, self.run, self.optimizer.space.traced)
        if decision is FINISHED or decision is WAIT:  # the kernel's own signals (FINISHED is DONE)
            return decision
        if self.audit is not None:
            self.audit.proposed(trial_id)
        if self.judges_metrics and decision.budget is not None:  # what a promotion's judge needs
            self._budgets[trial_id] = decision.budget
            if decision.parent is not None:
                self._parent_budget[trial_id] = self._budgets.get(decision.parent)
        # The optimizer's own spec, completed (not a copy: this runs per trial; the book copies
        # what it keeps, and these fields are the same whenever a spec is handed back twice)
        decision.gang, decision.run, decision.traced = self.gang, self.run, self.optimizer.space.traced(decision.params)
        return decision

    def replayed(self, trial_id: int, journaled: TrialSpec, proposed: TrialSpec | None) -> None:
        """An edited study's resume: the optimizer holds what ran (Optimizer.replayed), read in
        the new space (a parameter added with a default has it)."""
        journaled = dataclasses.replace(journaled, params=self.optimizer.space.with_defaults(journaled.params))
        self.optimizer.replayed(trial_id, journaled, proposed)  # a Suggestion is a TrialSpec
        if self.judges_metrics and journaled.budget is not None:
            self._budgets[trial_id] = journaled.budget
            self._parent_budget.pop(trial_id, None)
            if journaled.parent is not None:
                self._parent_budget[trial_id] = self._budgets.get(journaled.parent)

    @property
    def hears_metrics(self) -> bool:
        return self.judges_metrics or type(self.optimizer).report is not Optimizer.report

    def on_metric(self, trial: Any, step: float, value: float) -> bool:
        if self.audit is not None and self.audit.audits(trial.id):
            return False  # an audit is never judged, and the optimizer never hears of it
        self.optimizer.report(trial.id, step, value)
        if self._completed < self.es_min or len(trial.history) % self.es_interval \
                or completes_budget(step, trial.budget) or self._within_parent(trial.id, step):
            return False
        return self.stopper.judge(trial.id, trial.history, trial.budget)

    def _within_parent(self, trial_id: int, step: float) -> bool:
        """Whether a promoted trial's broadcast is still within the budget its parent trained
        (steps in budget units, counted from 0, as ``completes_budget`` reads them)."""
        budget = self._parent_budget.get(trial_id)
        return isinstance(budget, (int, float)) and not isinstance(budget, bool) and step + 1 <= budget

    def score(self, result: Any) -> float | None:
        if self.objectives:
            return self.values(result)[0]
        if isinstance(result, dict):
            if self.metric not in result:
                returned = ", ".join(sorted(result)) or "nothing"
                raise ExperimentError(
                    f"the training function returned {{{returned}}} but the search optimizes "
                    f"metric={self.metric!r}; return {self.metric!r} in the dict, or pass "
                    f"metric= one of: {returned}"
                )
            value = result[self.metric]
        else:
            value = result
        if value is None:
            raise ExperimentError(
                f"the training function returned nothing; return a dict with {self.metric!r} "
                f"(e.g. {{{self.metric!r}: 0.93}}) or one number"
            )
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ExperimentError(f"metric {self.metric!r} is a {type(value).__name__}, not a number")
        return float(value)

    def values(self, result: Any) -> list[float] | None:
        """Every objective's value, in the order of ``metric=[...]`` (one search objective: None)."""
        if not self.objectives:
            return None
        if not isinstance(result, dict):
            raise ExperimentError(f"a search of {len(self.objectives)} objectives needs the function to return a "
                                  f"dict with each: {{{', '.join(repr(m) + ': ...' for m in self.objectives)}}}")
        missing = [m for m in self.objectives if m not in result]
        if missing:
            returned = ", ".join(sorted(result)) or "nothing"
            raise ExperimentError(f"the training function returned {{{returned}}} but the search optimizes "
                                  f"metric={self.objectives}; return {missing} too")
        bad = [m for m in self.objectives if not isinstance(result[m], (int, float)) or isinstance(result[m], bool)]
        if bad:
            raise ExperimentError(f"objective {bad[0]!r} is a {type(result[bad[0]]).__name__}, not a number")
        return [float(result[m]) for m in self.objectives]

    def on_end(self, trial: Any) -> None:
        if self.audit is not None:
            if self.audit.audits(trial.id):
                return
            self.audit.search_ended(trial)
        if trial.state == "finished":
            self._completed += 1
        if not self._observed:
            return
        value = trial.metric if trial.metric is not None and not math.isnan(trial.metric) else None
        values = tuple(trial.values) if trial.values and all(math.isfinite(v) for v in trial.values) else None
        state, params = trial.state, trial.params
        if self.space_edited:
            params = self.optimizer.space.with_defaults(params)  # a parameter added since: its default
            if not self.optimizer.space.contains(params):
                state, value, values = "excluded", None, None  # outside the narrowed space: in the results, not the model
        obs = Observation(trial.id, params, trial.budget, state, value,
                          tuple(trial.history), dict(trial.info), checkpointed=trial.checkpointed,
                          values=values if self.objectives else None)
        self.optimizer.observe(obs)
        self.stopper.observe(obs)

    def describe(self) -> dict[str, Any]:
        objectives = {"objectives": self.objectives, "directions": self.directions} if self.objectives else {}
        total = self.optimizer.total_trials()
        if total is not None and self.audit is not None:
            total += self.audit.count  # at most: fewer if fewer trials were stopped
        return {"optimizer": type(self.optimizer).__name__, "early_stop": type(self.stopper).__name__,
                "metric": self.metric, "direction": self.direction, **objectives, "num_trials": self.num_trials,
                "total_trials": total, "seed": self.seed}


def _objectives(metric: Any, direction: Any, owner: str) -> tuple[list[str] | None, list[Direction] | None]:
    """``metric=["accuracy", "params"]``, ``direction=["max", "min"]`` (or one direction for all):
    a search of several objectives, each checked; (None, None) for one."""
    if not isinstance(metric, (list, tuple)):
        if isinstance(direction, (list, tuple)):
            raise ConfigError(f"{owner}(direction={direction!r}) lists directions for one metric={metric!r}; "
                              f"give metric=[...] with as many names, or one direction")
        return None, None
    names = list(metric)
    if len(names) < 2 or not all(isinstance(m, str) and m for m in names) or len(set(names)) != len(names):
        raise ConfigError(f"{owner}(metric={metric!r}): several objectives are two or more different names, "
                          f"e.g. metric=['accuracy', 'params']")
    ways = list(direction) if isinstance(direction, (list, tuple)) else [direction] * len(names)
    if len(ways) != len(names):
        raise ConfigError(f"{owner}: metric={names} has {len(names)} objectives but direction={direction!r} has "
                          f"{len(ways)}; give one direction per objective, e.g. direction={['max'] * len(names)}")
    return names, [check_direction(d, owner) for d in ways]


def _check_audit(audit_stops: Any, objectives: list[str] | None, owner: str) -> int:
    check_int("audit_stops", audit_stops, 0, owner)
    if audit_stops and objectives:
        raise ConfigError(f"{owner}(audit_stops={audit_stops}): an audit ranks by one metric; a search of "
                          f"several objectives has none to rank by")
    return audit_stops


def trial_runs(strategy: Any, agents_per_trial: int, cpu_devices: int | None, workers: int,
               owner: str) -> tuple[int, dict[str, Any] | None]:
    """(agents per trial, how they run it) for ``strategy=`` and ``agents_per_trial=``: each trial
    a distributed run, scheduled as ``Distributed`` schedules its one (a gang of agents)."""
    check_int("cpu_devices", cpu_devices, 1, owner, allow_none=True)
    if strategy is None:
        if agents_per_trial != 1 or cpu_devices:
            raise ConfigError(f"{owner}: agents_per_trial and cpu_devices need a strategy, e.g. "
                              f"strategy='multihost', agents_per_trial={agents_per_trial}")
        return 1, None
    check_gang(strategy, agents_per_trial, owner, "agents_per_trial")
    if workers and workers < agents_per_trial:
        raise ConfigError(f"{owner}(workers={workers}, agents_per_trial={agents_per_trial}): a trial needs "
                          f"{agents_per_trial} agents at once; start at least that many workers")
    return agents_per_trial, run_spec(strategy, {}, cpu_devices, 60)


def completes_budget(step: float, budget: Any) -> bool:
    """True for the broadcast that completes a trial's budget, with steps counted from 0 in
    budget units (``step=epoch`` in ``for epoch in range(budget)``), or from 1. A budget below
    1 (a fraction of the data, say) is not counted in steps: every broadcast is judged."""
    return isinstance(budget, (int, float)) and not isinstance(budget, bool) and 1 <= budget <= step + 1


def _check_points(points: Any, space: Searchspace, owner: str) -> list[dict[str, Any]]:
    """Warm-start configurations: each names every parameter, with a value inside the space."""
    if points is None:
        return []
    if not isinstance(points, (list, tuple)) or not all(isinstance(p, dict) for p in points):
        raise ConfigError(f"{owner}(points_to_evaluate=...): a list of dicts, e.g. [{{'lr': 1e-3}}]")
    names = [p.name for p in space]
    for i, point in enumerate(points):
        missing = [p.name for p in space if p.active(point) and p.name not in point]
        extra = [k for k in point if k not in names]
        if missing or extra:
            raise ConfigError(f"{owner}: points_to_evaluate[{i}] " + (f"lacks {missing}" if missing else
                              f"names {extra}, not in the space") + f"; each point names every parameter: "
                              f"{', '.join(names)}")
        if not space.contains(point):
            raise ConfigError(f"{owner}: points_to_evaluate[{i}] = {point} lies outside the search space {space!r}")
    return [dict(p) for p in points]


def _budget_edits(was: Any, now: Any) -> dict[str, list]:
    """A multi-fidelity scheduler's budgets on resume: ``max_budget`` may be raised; the rungs
    below it (``min_budget``, ``reduction_factor``) stay, so every past trial keeps its rung."""
    for name, attr in (("min_budget", "min_budget"), ("reduction_factor", "eta")):
        before, after = getattr(was, attr, None), getattr(now, attr, None)
        if before != after:
            raise ConfigError(f"{type(now).__name__}: {name} was {before!r} and is {after!r} now; a resumed study "
                              f"keeps its rungs (only max_budget may be raised): keep {name}={before!r}, or start "
                              f"a new study (lagom() without resume=)")
    if now.max_budget < was.max_budget:
        raise ConfigError(f"{type(now).__name__}: max_budget={now.max_budget!r} is below the study's "
                          f"{was.max_budget!r}; it may be raised on resume, not lowered")
    old, new = list(getattr(was, "budgets", [])), list(getattr(now, "budgets", []))
    if new[:len(old)] != old:
        raise ConfigError(f"{type(now).__name__}: the study's rungs {old} are not the first rungs of {new}: its top "
                          f"rung's trials would have no rung to be promoted from; raise max_budget to a budget "
                          f"{old[-1]!r} * {now.eta}**k (e.g. {old[-1] * now.eta!r}), or start a new study")
    return {"max_budget": [was.max_budget, now.max_budget]} if now.max_budget != was.max_budget else {}


def _check_times(max_time: Any, trial_timeout: Any, owner: str) -> tuple[float | None, float | None]:
    if max_time is not None and (not isinstance(max_time, (int, float)) or isinstance(max_time, bool)
                                 or max_time <= 0):
        raise ConfigError(f"{owner}(max_time={max_time!r}): max_time is a number of seconds > 0")
    if trial_timeout is not None and (not isinstance(trial_timeout, (int, float)) or trial_timeout <= 0):
        raise ConfigError(f"{owner}(trial_timeout={trial_timeout!r}): a number of seconds > 0")
    return max_time, trial_timeout


class HyperparameterSearch(Context):
    """Search ``searchspace`` with ``optimizer`` over ``num_trials`` trials on ``workers`` agents.

    ``optimizer``: "randomsearch", "gridsearch", any registered name, or an Optimizer instance.
    ``es_policy``: "none" (default), "median", any registered early stopper, or an instance. The
    rule starts once ``es_min`` trials have completed (finished, not stopped), and judges a
    running trial every ``es_interval`` broadcasts (as Maggy's options, counted in broadcasts
    instead of seconds: the kernel sees every broadcast, so it needs no timer), but never the
    broadcast that completes its budget.
    ``study``: an AblationStudy whose data set and model the function gets (as ``dataset`` and
    ``model``) with nothing left out, so an ablation's function searches unchanged.
    ``max_time``: a wall-clock budget in seconds; when it is spent no trial starts, and the
    running ones are stopped (they end "stopped" at their next broadcast, with their last
    metric; one that ends without broadcasting again did all its work, and ends "finished").
    ``trial_timeout``: seconds one trial may run; then it is stopped, and one that does not stop
    within ``stop_grace`` (a lagom option) is ended by restarting its agent: it ends "failed".
    ``points_to_evaluate``: known configurations to try first (a warm start); they count among
    ``num_trials``, and the optimizer learns from them as from any other.
    ``audit_stops``: once the search is over, run this many of the trials it stopped (by the
    rule, or never promoted by ASHA or Hyperband) to the full budget, and say how many would
    have ranked in the top 10% (contexts/audit.py); they change nothing the search decided.
    ``pack``: run up to this many trials of one shape (equal budgets and static hyperparameters)
    as the lanes of one program on one agent (the ``packed`` strategy; docs/packing.md): the
    function, written against ``strategy``, runs once for them all.
    ``strategy``, ``agents_per_trial``, ``cpu_devices``: each trial a distributed run (as
    ``Distributed`` runs one), e.g. ``strategy="multihost", agents_per_trial=2``: a gang of agents
    per trial, rank 0 broadcasting, a stop reaching every rank, and a rank whose agent is lost
    taking the whole gang back to the queue.
    """

    name = "hpo"

    def __init__(self, searchspace: Searchspace, optimizer: Any = "randomsearch", *,
                 num_trials: int | None = None, direction: str = "max", metric: str = "metric",
                 workers: int = 2, es_policy: Any = "none", es_interval: int = 1, es_min: int = 5,
                 seed: int | None = None, launcher: Any = "local", name: str | None = None,
                 max_time: float | None = None, trial_timeout: float | None = None, study: Any = None,
                 points_to_evaluate: list[dict[str, Any]] | None = None, strategy: Any = None,
                 agents_per_trial: int = 1, cpu_devices: int | None = None, pack: int = 1,
                 audit_stops: int = 0):
        owner = "HyperparameterSearch"
        if not isinstance(searchspace, Searchspace):
            raise ConfigError(f"{owner}(searchspace=...) needs a contexts.Searchspace, got "
                              f"{type(searchspace).__name__}")
        if len(searchspace) == 0:
            raise ConfigError(f"{owner}: the search space is empty; add parameters with "
                              f"Searchspace(lr=('DOUBLE', [1e-4, 1e-1], 'log'))")
        check_int("num_trials", num_trials, 1, owner, allow_none=True)
        check_int("workers", workers, 0, owner)
        check_int("es_interval", es_interval, 1, owner)
        check_int("es_min", es_min, 0, owner)
        check_int("seed", seed, 0, owner, allow_none=True)
        self.max_time, self.trial_timeout = _check_times(max_time, trial_timeout, owner)
        self.objectives, self.directions = _objectives(metric, direction, owner)
        if self.objectives:
            metric, direction = self.objectives[0], self.directions[0]
        self.direction = check_direction(direction, owner)
        if not isinstance(metric, str) or not metric:
            raise ConfigError(f"{owner}(metric={metric!r}): metric is the name of a returned value, "
                              f"e.g. metric='accuracy'")
        self._use_study(study)
        self.points_to_evaluate = _check_points(points_to_evaluate, searchspace, owner)
        self.searchspace = searchspace
        self.optimizer = optimizer
        self.num_trials = num_trials
        self.metric = metric
        self.workers = workers
        self.es_policy = "none" if es_policy is None else es_policy
        self.es_interval = es_interval
        self.es_min = es_min
        self.seed = seed if seed is not None else random.randrange(2**31)  # journaled: resume replays it
        self.launcher = launcher
        if name is not None:
            self.name = name
        self.gang, self.run = trial_runs(strategy, agents_per_trial, cpu_devices, workers, owner)
        self.pack = check_pack(pack, self.run, strategy, owner)
        self.audit_stops = _check_audit(audit_stops, self.objectives, owner)
        self._pristine = {k: copy.deepcopy(v) for k, v in (("optimizer", optimizer), ("es_policy", self.es_policy))
                          if not isinstance(v, (str, type))}
        self._runs = 0
        self._build()  # a bad plugin name or space fails here, at construction (on copies)

    def _spec(self, name: str, fresh: bool) -> Any:
        """The plugin named, or the instance given: itself the first time it runs, else a copy of
        how it was when this context was built (an instance keeps what it learned, so a second
        experiment must not start from the first one's state)."""
        if fresh and name in self._pristine:
            return copy.deepcopy(self._pristine[name])
        return getattr(self, name)

    def _fresh_optimizer(self) -> Optimizer:
        """The optimizer as this context was built, unused (to compare or rebuild, not to run)."""
        try:
            return resolve("lagom.optimizers", self._spec("optimizer", True), Optimizer)
        except PluginError as exc:
            raise ConfigError(str(exc)) from None

    def _build(self, fresh: bool = True) -> SearchController:
        try:
            optimizer = resolve("lagom.optimizers", self._spec("optimizer", fresh), Optimizer)
            stopper = resolve("lagom.earlystop", self._spec("es_policy", fresh), EarlyStopper)
        except PluginError as exc:
            raise ConfigError(str(exc)) from None
        if self.num_trials is None and self.max_time is None and optimizer.needs_num_trials:
            raise ConfigError(f"HyperparameterSearch: {type(optimizer).__name__} does not end by itself; give "
                              f"num_trials=... (how many configurations to try) or max_time=... (seconds)")
        optimizer.directions = self.directions  # several objectives: the optimizers that can, use them all
        try:
            optimizer.setup(self.searchspace, num_trials=self.num_trials, direction=self.direction,
                            seed=self.seed)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{type(optimizer).__name__}: {exc}") from None
        stopper.setup(direction=self.direction)
        if self.__dict__.get("audit_stops") and isinstance(stopper, NoStopping) and not getattr(optimizer, "budgets", None):
            raise ConfigError(f"HyperparameterSearch(audit_stops={self.audit_stops}) audits trials stopped early, and "
                              f"this search stops none: add es_policy='median', or use ASHA or Hyperband")
        if self.points_to_evaluate:
            optimizer.enqueue(self.points_to_evaluate)
        controller = SearchController(optimizer, stopper, metric=self.metric, direction=self.direction,
                                      es_interval=self.es_interval, es_min=self.es_min,
                                      num_trials=self.num_trials, objectives=self.objectives,
                                      directions=self.directions)
        controller.seed = self.seed
        audit = self.__dict__.get("audit_stops", 0)
        controller.audit = StopAudit(audit, self.seed, self.direction) if audit else None
        controller.gang, controller.run = self.__dict__.get("gang", 1), self.__dict__.get("run")
        controller.pack = self.__dict__.get("pack", 1)
        controller.space_edited = self.__dict__.get("_space_edited", False)
        return controller

    def edit(self, num_trials: int | None = None, max_time: float | None = None,
             max_budget: float | None = None) -> "HyperparameterSearch":
        """Change the study before resuming it (``python -m kernel resume --num-trials``): more
        trials, another time budget for the resumed run, or ASHA's or Hyperband's ``max_budget``
        raised (the scheduler built again as it was, with that budget); checked as at
        construction, and against the study when it resumes (``check_resume``)."""
        owner = "HyperparameterSearch.edit"
        if num_trials is not None:
            check_int("num_trials", num_trials, 1, owner)
            self.num_trials = num_trials
        if max_time is not None:
            self.max_time, self.trial_timeout = _check_times(max_time, self.trial_timeout, owner)
        if max_budget is not None:
            optimizer = self._fresh_optimizer()
            if not callable(getattr(optimizer, "raised", None)):
                raise ConfigError(f"{owner}(max_budget={max_budget!r}): {type(optimizer).__name__} has no budgets to "
                                  f"raise; max_budget belongs to ASHA and Hyperband")
            try:
                self.optimizer = optimizer.raised(max_budget)
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"{owner}(max_budget={max_budget!r}): {exc}") from None
            self._pristine["optimizer"] = copy.deepcopy(self.optimizer)
        self._build()
        return self

    def check_resume(self, saved: Any) -> dict[str, list]:
        """What this context changes of the study ``saved`` began as: its search space
        (searchspace.check_edits) and the largest budget of ASHA or Hyperband (raised: new top
        rungs open, and the finished trials of the old top rung may be promoted into them).
        Raises what cannot be honoured. The search remembers whether its space changed: then a
        past trial outside the new space stays in the results, out of the optimizer's model."""
        edits: dict[str, list] = {}
        if isinstance(getattr(saved, "searchspace", None), Searchspace):
            edits.update(check_edits(saved.searchspace, self.searchspace))
        self._space_edited = bool(edits)
        was, now = getattr(saved, "optimizer", None), self._fresh_optimizer()
        if getattr(was, "max_budget", None) is not None and getattr(now, "max_budget", None) is not None:
            edits.update(_budget_edits(was, now))
        if edits and not now.editable:
            raise ConfigError(f"{type(now).__name__} cannot resume an edited study ({', '.join(edits)} changed): "
                              f"resume it as it was, or start a new study (lagom() without resume=)")
        return edits

    def controller(self) -> Controller:
        """A fresh controller: each lagom() call with this context is a new experiment."""
        self._runs += 1
        self._last = self._build(fresh=self._runs > 1)
        return self._last

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_last"}  # saved for resume: no run's state

    def finish(self, result: Any) -> Any:
        """The optimizer's own account of the search (PBT's lineages) joins the result."""
        last = self.__dict__.get("_last")
        if last is not None:
            extras, notes = last.optimizer.summarize(result.trials)
            if last.audit is not None:
                audited, lines = last.audit.summarize(result.trials)
                extras, notes = {**extras, **audited}, [*notes, *lines]
            if extras or notes:
                result.extras.update(extras)
                result.notes.extend(notes)
                result.save()
        return result

    def __repr__(self) -> str:
        opt = self.optimizer if isinstance(self.optimizer, str) else type(self.optimizer).__name__
        return (f"HyperparameterSearch({self.searchspace!r}, optimizer={opt!r}, num_trials={self.num_trials}, "
                f"direction={self.direction!r}, metric={self.metric!r}, workers={self.workers})")
