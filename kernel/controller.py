"""What the kernel needs from an experiment's policy, and nothing more.

A context (``contexts/``) turns its configuration into a :class:`Controller` built from plugins;
the kernel only asks it what to run next, passes it metrics and outcomes, and asks it to score
a returned result. This is the whole surface between the kernel and every search, ablation or
distribution policy, which is why the kernel knows no optimizer.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Union

from .direction import Direction


@dataclass(slots=True)
class TrialSpec:
    """A trial to run, as the controller decides it (an optimizer's Suggestion too). Slotted,
    not frozen: one is made per trial, a frozen dataclass took 0.9 us to make against 0.25 us,
    and a search's controller completes the optimizer's (how it runs) rather than copying it.
    The trial book copies what it keeps."""

    params: dict[str, Any]
    budget: float | int | None = None
    info: dict[str, Any] = field(default_factory=dict)
    parent: int | None = None  # the trial this one continues from (its checkpoint)
    gang: int = 1  # agents that run this trial together (a distributed run)
    run: dict[str, Any] | None = None  # how agents run it (strategy, environment); None: in-process
    extra: dict[str, Any] | None = None  # for the context's injector (e.g. which component to ablate)
    traced: list[str] | None = None  # params a compiled step takes as arguments (None: the float ones)


class _Signal:
    def __init__(self, name: str):
        self._name = name

    def __repr__(self) -> str:
        return self._name


WAIT = _Signal("WAIT")  # nothing to run now; the kernel asks again when any trial ends
DONE = _Signal("DONE")  # no more trials; the experiment ends when the running ones do


class ExperimentError(RuntimeError):
    """The experiment cannot go on (a configuration mistake seen at run time, no agents left).

    Raised from :func:`kernel.lagom` after the experiment folder has been written, so nothing
    already done is lost; ``path`` names that folder.
    """

    path: Any = None


class Interrupted(KeyboardInterrupt):
    """The experiment was interrupted (Ctrl-C, SIGTERM): what had ended is in the folder, and
    ``python -m kernel resume <folder>`` continues it. ``path`` names the folder."""

    path: Any = None


class Controller(ABC):
    """An experiment's policy as the kernel sees it: what to run next, and what results mean.

    ``judges_metrics`` says whether ``on_metric`` may ever answer True (an early stopper is at
    work): only then does an agent wait for the kernel's verdict on each broadcast, so a stop
    takes effect at the broadcast it was decided on, and searches without a rule pay nothing.
    ``lease`` says whether ``next_trial`` may be asked before earlier trials end without
    changing what it proposes: then an agent with short trials is handed some ahead.
    """

    metric: str | None = None
    direction: Direction = Direction.MAX
    objectives: list[str] | None = None  # several objectives: their names (``metric`` is the first)
    directions: list[Direction] | None = None
    judges_metrics: bool = False
    lease: bool = False  # proposals do not depend on results: short trials may be handed out ahead
    pack: int = 1  # trials of one shape an agent may run together, as lanes of one program (packing.py)

    @abstractmethod
    def next_trial(self, trial_id: int) -> Union[TrialSpec, _Signal]:
        """The trial to run as ``trial_id``, or WAIT, or DONE."""

    def on_metric(self, trial: Any, step: float, value: float) -> bool:
        """An intermediate metric of a running trial (already appended to ``trial.history``);
        return True to stop that trial now."""
        return False

    @property
    def hears_metrics(self) -> bool:
        """Whether ``on_metric`` wants to hear each broadcast. When nothing would listen (no rule
        judges, the optimizer ignores intermediate results) the kernel keeps broadcasts without
        a call per point: ten broadcasts per trivial trial cost more than the rest of its end."""
        return type(self).on_metric is not Controller.on_metric

    def score(self, result: Any) -> float | None:
        """The number to rank a finished trial by, from what the function returned.

        Raise :class:`ExperimentError` when the result can never be scored (a wrong metric name).
        """
        return float(result) if isinstance(result, (int, float)) and not isinstance(result, bool) else None

    def values(self, result: Any) -> list[float] | None:
        """Every objective's value from what the function returned, for a search of several
        (raise :class:`ExperimentError` when one is missing); None otherwise."""
        return None

    def on_end(self, trial: Any) -> None:
        """A trial ended (finished, stopped, failed or lost)."""

    def replayed(self, trial_id: int, journaled: TrialSpec, proposed: "TrialSpec | None") -> None:
        """On resume, ``next_trial(trial_id)`` answered ``proposed`` (None: WAIT or DONE) where
        the journal says ``journaled`` ran: a study edited since (its space widened, its budget
        raised). What ran is what counts: forget ``proposed`` and hold ``journaled`` instead."""

    def describe(self) -> dict[str, Any]:
        return {}
