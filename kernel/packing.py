"""Which trials run together as the lanes of one program (``HyperparameterSearch(pack=K)``).

Trials pack together when their programs are the same: equal budgets (their loops run as many
epochs), all continuing a parent or none (a promotion starts where its parent stopped, so its
loop runs from there), the same arguments from the context (``extra``: a study's data set and
model), and equal static hyperparameters (those that shape the program: a width, a depth, a
choice; the traced ones, a learning rate say, differ per lane). The scheduler fills a pack from
what waits to run again, then from what the optimizer proposes: a proposal of another shape
waits for a pack of its own (journaled when proposed, so a resume asks the optimizer in the
same order). It never waits for a pack to fill: what is at hand runs now, with fewer lanes.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Hashable

from transports.codec import traced_of

if TYPE_CHECKING:
    from .trials import Trial

LOOKAHEAD = 4  # proposals drawn per lane wanted, at most, looking for trials of the pack's shape


def key(trial: "Trial") -> Hashable:
    """What must be equal for trials to share one program."""
    traced = set(traced_of(trial.traced, trial.params))
    return trial.budget, trial.parent is None, repr(trial.extra), \
        tuple(sorted((k, repr(v)) for k, v in trial.params.items() if k not in traced))


def packable(trial: "Trial") -> bool:
    """Runs in its agent's process, alone on one agent, and was not suspected of killing one."""
    return trial.gang == 1 and trial.run is None and not trial.suspect


def take_matching(pool: Any, shape: Hashable, room: int) -> list["Trial"]:
    """Up to ``room`` trials of ``shape`` taken out of ``pool`` (a deque), in its order."""
    taken = [t for t in pool if packable(t) and key(t) == shape][:room]
    for t in taken:
        pool.remove(t)
    return taken
