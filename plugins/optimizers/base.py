"""The optimizer interface: what a search algorithm must do to run on the kernel.

The kernel asks whenever an agent is free: ``suggest(trial_id)`` answers with a
:class:`Suggestion`, with :data:`WAIT` (nothing right now: an asynchronous algorithm waiting for
results, asked again the moment any trial ends), or with :data:`FINISHED`. Intermediate metrics
arrive through ``report`` and final outcomes through ``observe``; both are optional hooks, so a
stateless sampler implements one method.

Everything an optimizer learns arrives through these calls, in the order the kernel journals
them: replaying the journal through a fresh instance rebuilds its state.
"""
from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence, TypeVar, Union

from kernel.controller import DONE, WAIT, TrialSpec
from kernel.direction import Direction

T = TypeVar("T")

Suggestion = TrialSpec
"""One configuration to run: the kernel's own :class:`~kernel.controller.TrialSpec`, of which an
optimizer fills ``params``, ``budget`` (it reaches the function as ``hparams['budget']``),
``info`` (shown in the result, e.g. a rung) and ``parent`` (a trial this one continues: its
checkpoint is handed over); the context completes it with how it runs (sets its ``gang``,
``run`` and ``traced``: it makes no copy, as this happens per trial)."""

FINISHED = DONE  # the search is over; running trials still finish (WAIT: nothing to run now,
#                 asked again when a trial ends); both are the kernel's own signals
Decision = Union[TrialSpec, type(WAIT)]


@dataclass(frozen=True)
class Observation:
    """A trial's outcome as optimizers see it. ``value`` is None unless it finished or stopped."""

    trial_id: int
    params: dict[str, Any]
    budget: float | int | None
    state: str  # "finished", "stopped", "failed", "lost"; "excluded": outside a search space narrowed on resume
    value: float | None
    history: tuple[tuple[float, float], ...] = ()  # the (step, value) broadcasts
    info: dict[str, Any] = field(default_factory=dict)  # what the Suggestion carried
    checkpointed: bool = False  # it saved a checkpoint: a Suggestion may name it as parent
    values: tuple[float, ...] | None = None  # every objective's value (a search of several), else None


class Proposer(Protocol):
    """What a multi-fidelity scheduler needs of a model (``ASHA(sampler=...)``): a configuration
    proposed from results it is handed, instead of from its own history.

    ``observed`` are (params, value) pairs all measured at one budget; ``pending`` are
    configurations still running, to be kept apart from. Return None to leave the choice to the
    caller (too few observations). TPE implements it; a third-party model (a Gaussian process,
    a random forest) needs only this method besides the Optimizer interface.
    """

    def propose(self, observed: Sequence[tuple[dict[str, Any], float]],
                pending: Sequence[dict[str, Any]]) -> dict[str, Any] | None: ...


class Optimizer(ABC):
    """Base class for search algorithms; subclass it and register it in ``lagom.optimizers``.

    - Required: :meth:`suggest`.
    - Hooks, optional: :meth:`setup` (validate the space; call super()), :meth:`report` (an
      intermediate metric), :meth:`observe` (a trial ended), :meth:`replayed` (a resumed study
      was edited: what ran differs from what it proposes now), :meth:`summarize` (what the result
      carries), :meth:`total_trials` (for progress displays), :meth:`enqueue` (points to try
      first), and ``propose`` to serve as a model inside ASHA (:class:`Proposer`).
    - Flags: ``adaptive`` (False: proposals ignore results, so short trials may be handed out
      ahead), ``needs_num_trials`` (never ends by itself), ``editable`` (False: a study cannot be
      resumed with its space or budget changed).
    - Helpers for subclasses: :meth:`sample`, :meth:`outcome`, :meth:`best_first`,
      :meth:`better`, ``multi``, ``rng``, ``space``, ``direction``/``directions``.
    """

    space: Any = None
    num_trials: int | None = None
    needs_num_trials: bool = False  # never ends by itself: a search gives num_trials or max_time
    adaptive: bool = True  # proposals depend on results (False: short trials may be proposed ahead)
    editable: bool = True  # a study may be resumed with its space or budget changed (replayed says what ran)
    direction: Direction = Direction.MAX
    directions: list[Direction] | None = None  # set before setup when the search has several objectives
    rng: random.Random

    def setup(self, space: Any, *, num_trials: int | None, direction: Direction, seed: int | None) -> None:
        """Called once before the first suggestion. Override to validate the space; call super()."""
        self.space = space
        self.num_trials = num_trials
        self.direction = Direction.of(direction)
        self.rng = random.Random(seed)

    @abstractmethod
    def suggest(self, trial_id: int) -> Decision:
        """The next configuration for ``trial_id``, or WAIT, or FINISHED."""

    def enqueue(self, points: list[dict[str, Any]]) -> None:
        """Configurations to try first (a warm start, as Ray Tune's ``points_to_evaluate`` and
        Optuna's ``enqueue_trial``); :meth:`sample` hands them out before drawing any."""
        self._queued = [dict(p) for p in points]

    def sample(self) -> dict[str, Any]:
        """The next configuration to try fresh: an enqueued one, else a draw from the space."""
        queued = getattr(self, "_queued", None)
        return queued.pop(0) if queued else self.space.sample(self.rng)

    def sample_believed(self) -> dict[str, Any]:
        """The next configuration to try fresh where the space has priors: an enqueued one, else
        the priors' own configuration (once), else a draw from the priors; without priors, a
        draw from the space (as :meth:`sample`)."""
        if getattr(self, "_queued", None) or not getattr(self.space, "priors", None):
            return self.sample()
        if not getattr(self, "_prior_tried", False):
            self._prior_tried = True
            return self.space.prior_config(self.rng)
        return self.space.sample_prior(self.rng)

    def report(self, trial_id: int, step: int | float, value: float) -> None:
        """An intermediate metric of a running trial (optional)."""

    def observe(self, obs: Observation) -> None:
        """A trial ended (optional)."""

    def replayed(self, trial_id: int, journaled: Suggestion, proposed: Suggestion | None) -> None:
        """On resume of an edited study (its space widened, a choice added, its budget raised),
        :meth:`suggest` answered ``proposed`` for ``trial_id`` (None: WAIT or FINISHED) where the
        journal says ``journaled`` ran. Optional: an optimizer that keeps what it proposed (a
        rung, a grid position) forgets ``proposed`` and holds ``journaled``; one that learns only
        from :meth:`observe` (whose params are always what ran) needs nothing."""

    def summarize(self, trials: list[Any]) -> tuple[dict[str, Any], list[str]]:
        """What the result carries beyond its trials (``result.<key>`` and result.json), and
        lines for the printed summary; called once, when the search has ended (optional)."""
        return {}, []

    def total_trials(self) -> int | None:
        """How many trials the search will run, when known in advance (for progress displays)."""
        return self.num_trials

    @property
    def multi(self) -> bool:
        """The search has several objectives (``directions``): results are vectors."""
        return bool(self.directions) and len(self.directions) > 1

    def outcome(self, obs: Observation) -> Any:
        """What an optimizer learns from a trial that ended well: its value, or in a search of
        several objectives its vector of values; None when it has none to learn from."""
        if obs.state not in ("finished", "stopped"):
            return None
        if self.multi:
            return obs.values if obs.values and all(math.isfinite(v) for v in obs.values) else None
        return obs.value if obs.value is not None and math.isfinite(obs.value) else None

    def best_first(self, items: Sequence[T], key: Callable[[T], Any]) -> list[T]:
        """``items`` best first by ``key``: the direction for one objective; for several,
        non-dominated sorting, then crowding (the rule of NSGA-II, MOTPE and MO-ASHA)."""
        if not self.multi:
            return self.direction.ranked(items, key=key)
        from kernel.pareto import order

        points = [key(item) for item in items]
        return [items[i] for i in order(points, [d.sign for d in self.directions])]

    def better(self, a: float, b: float) -> bool:
        """True when ``a`` beats ``b`` in this search's direction."""
        return self.direction.better(a, b)
