"""Which trial a free agent takes when several could go: one of a shape it has compiled.

An agent keeps what it compiled: the function is unpickled once, so a trial of a shape the
agent ran before finds its jitted programs in memory and trains at once. A shape another
agent of the host ran costs a trace and lowering of each program (about 0.1 s for a small
model) before the host's cache can serve it; a shape no agent ran costs a compile (seconds on a
CPU, and twice that when two agents of a small host compile at once: both would otherwise take
the search's first shape at the same moment). So when the controller's proposals do not
depend on results (``controller.lease``: random and grid search), a free agent looks at up to
LOOKAHEAD of them for one of a shape it met; failing that it takes a shape no agent met (it
must be compiled once somewhere, and now it is, beside the others' work), and last a shape
another agent met. Proposals it passes over wait in the scheduler's ``spare`` (journaled as
proposed, so a resume asks the optimizer in the same order), for the agent they suit.

A shape is what packing.py compares, less the budget and the parent (a promotion, or a longer
run of the same configuration, runs the same programs more often): the context's arguments
and the static hyperparameters (a width, a depth, a choice; the traced ones, a learning rate
say, are arguments of one program). Trials shorter than ahead.LEASE_WINDOW compile nothing
worth steering for, and are handed out in proposal order.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Hashable, Iterable

from transports.codec import traced_of

from .ahead import LEASE_WINDOW

if TYPE_CHECKING:
    from .controller import Controller
    from .registry import AgentInfo
    from .trials import Trial

LOOKAHEAD = 4  # proposals a free agent looks at, at most, for one of a shape it met
NO_SHAPE = (repr(None), ())  # no context arguments, no static hyperparameter


def shape(trial: "Trial") -> Hashable:
    """What must be equal for two trials to run the same compiled programs."""
    traced = set(traced_of(trial.traced, trial.params))
    return repr(trial.extra), tuple(sorted((k, repr(v)) for k, v in trial.params.items() if k not in traced))


def applies(controller: "Controller", agent: "AgentInfo") -> bool:
    """Steer by shape: proposals do not depend on results, trials run one per agent (a pack
    keeps its own rule) and are not known to be too short to compile anything."""
    return controller.lease and controller.pack <= 1 and (agent.pace is None or agent.pace >= LEASE_WINDOW)


def met(agent: "AgentInfo", trial: "Trial") -> None:
    """``agent`` runs ``trial``: its shape's programs will be in the agent's memory."""
    agent.shapes.add(shape(trial))


def suits(trial: "Trial", agent: "AgentInfo", agents: Iterable["AgentInfo"]) -> bool:
    """``agent`` should take ``trial`` at once: it met its shape, or it met none yet and no
    agent met this one, or the trial has no static hyperparameter (a search of floats alone,
    one shape: nothing to look ahead for)."""
    own = shape(trial)
    if own in agent.shapes or own == NO_SHAPE:
        return True
    return not agent.shapes and own not in _known(agents)


def take_own(pool: list["Trial"] | Iterable["Trial"], mine: set) -> "Trial | None":
    """The first trial of ``pool`` (a deque) of a shape in ``mine``, taken out of it."""
    for trial in pool:
        if shape(trial) in mine:
            pool.remove(trial)  # type: ignore[attr-defined]
            return trial
    return None


def take_best(pool, agents: Iterable["AgentInfo"]) -> "Trial":
    """From a non-empty ``pool`` with no trial of the taker's shapes: the first of a shape no
    agent met, else the first."""
    known = _known(agents)
    chosen = next((t for t in pool if shape(t) not in known), pool[0])
    pool.remove(chosen)
    return chosen


def _known(agents: Iterable["AgentInfo"]) -> set:
    return set().union(*(a.shapes for a in agents))
