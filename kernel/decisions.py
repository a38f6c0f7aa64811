"""What the kernel's policies decide, for the driver to carry out.

The scheduler, the gang rules, the deadlines and the rules for trials handed out ahead hold
state and decide; only the driver sends messages, writes the journal and arms timers (the
trial book and the handlers say what the journal records through a :class:`Journal`, which
the driver makes with the folder's writer). A policy returns these
values (the deadlines, gang.py, ahead.py, endings.py), or hands them to the one callable it
was given (the scheduler: ``act``, which the driver carries out at once, so the order of what
happens is the order of the decisions). None of them holds the kernel. (Slotted, not
frozen: a frozen dataclass costs a microsecond more to make, and some are made per trial.)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from .trials import TrialState

if TYPE_CHECKING:
    from .lifecycle import Attempt
    from .registry import AgentInfo
    from .trials import Trial


@dataclass(slots=True)
class Arm:
    """Arm a timer: after ``delay`` seconds, ask the policy what ``due`` means then."""

    delay: float
    due: str  # "time-up", "overtime", "stop-grace"
    attempt: "Attempt | None" = None


@dataclass(slots=True)
class TimeUp:
    """The time budget is spent: start nothing more, stop what runs, take back what waits."""

    max_time: float


@dataclass(slots=True)
class Stop:
    """Ask an attempt to stop; ``overtime``: because it ran past this time limit; ``notify``
    False: a verdict already told its agent."""

    attempt: "Attempt"
    overtime: float | None = None
    notify: bool = True


@dataclass(slots=True)
class Send:
    """Send a message to ``peer``; ``agent``: the agent it is, gone if it cannot be reached."""

    peer: bytes
    msg_type: str
    fields: dict[str, Any]
    agent: "AgentInfo | None" = None


@dataclass(slots=True)
class Welcome:
    """Send ``agent`` the welcome: the function, and how to run it."""

    agent: "AgentInfo"


@dataclass(slots=True)
class Abort:
    """End the experiment with this error; what was done stays in the folder."""

    message: str


@dataclass(slots=True)
class EndAs:
    """End an attempt as ``state`` with these trial fields; ``restart``: it will not end itself,
    so its agent restarts; ``log``: lines for the trial's log first (how its process died)."""

    attempt: "Attempt"
    state: TrialState
    fields: dict[str, Any] = field(default_factory=dict)
    restart: bool = False
    log: tuple[str, ...] = ()


@dataclass(slots=True)
class Start:
    """Run ``trial`` on ``agents`` (rank order): send it, journal it, arm its deadlines;
    ``pack``: the trials (``trial`` first) that run on the one agent as lanes of one program."""

    trial: "Trial"
    agents: "list[AgentInfo]"
    pack: "list[Trial] | None" = None


@dataclass(slots=True)
class Lease:
    """Hand ``trials`` to a busy ``agent`` ahead, in one message."""

    agent: "AgentInfo"
    trials: "list[Trial]"


@dataclass(slots=True)
class TakeBack:
    """Ask the agent holding this attempt ahead to drop it: it runs on an idle agent."""

    attempt: "Attempt"


@dataclass(slots=True)
class LookAgain:
    """Look for trials waiting behind a long one again after ``delay`` seconds."""

    delay: float


@dataclass(slots=True)
class RanksAnswered:
    """A rank of a gang answered or was lost: abort the others if needed, settle once all have."""

    attempt: "Attempt"
    abort: "AbortRanks | None"


@dataclass(slots=True)
class CheckDone:
    """The experiment may be over: finish if nothing runs and nothing more will start."""


@dataclass(slots=True)
class AbortRanks:
    """Tell the ranks of a gang that have not answered that another rank failed."""

    attempt: "Attempt"
    ranks: tuple[int, ...]
    reason: str


class Journal:
    """The journal as the trial book and the handlers see it (a records.Writer): each record
    they make goes at once to the writer the driver gave it (the folder's ``write``), so the
    journal's order is the order of their decisions (a trial's start before the trial is
    sent). They hold nothing else of the folder's writing. A record is not a decision object:
    three per trial, making and dispatching one was 2% of the kernel's time per trivial trial,
    and a driver method between the two was one call too many as well."""

    __slots__ = ("write",)

    def __init__(self, write: Callable[[str, bool, dict[str, Any]], None]):
        self.write = write
