"""What the kernel's policies decide, for the driver to carry out.

The scheduler, the gang rules and the deadlines hold state and decide; only the driver sends
messages, journals and arms timers. A policy returns these values instead of reaching into the
kernel, so what it decides can be read (and tested) without a socket or a loop.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .trials import TrialState

if TYPE_CHECKING:
    from .lifecycle import Attempt


@dataclass(frozen=True)
class Arm:
    """Arm a timer: after ``delay`` seconds, ask the policy what ``due`` means then."""

    delay: float
    due: str  # "time-up", "overtime", "stop-grace"
    attempt: "Attempt | None" = None


@dataclass(frozen=True)
class TimeUp:
    """The time budget is spent: start nothing more, stop what runs, take back what waits."""

    max_time: float


@dataclass(frozen=True)
class Stop:
    """Ask an attempt to stop; ``overtime``: because it ran past this time limit."""

    attempt: "Attempt"
    overtime: float | None = None


@dataclass(frozen=True)
class EndAs:
    """End an attempt that will not end itself, as ``state``, restarting its agent."""

    attempt: "Attempt"
    state: TrialState
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AbortRanks:
    """Tell the ranks of a gang that have not answered that another rank failed."""

    attempt: "Attempt"
    ranks: tuple[int, ...]
    reason: str
