"""An example plugin package: a line-search optimizer and a threshold early stopper."""
from plugins.earlystop import EarlyStopper
from plugins.optimizers import FINISHED, Optimizer, Suggestion


class Ascending(Optimizer):
    """Tries the values of the space's first DISCRETE parameter in ascending order, one trial
    each (the other parameters drawn at random), then finishes."""

    def setup(self, space, *, num_trials, direction, seed):
        super().setup(space, num_trials=num_trials, direction=direction, seed=seed)
        first = next(p for p in space if p.type == "DISCRETE")
        self.name, self.todo = first.name, sorted(first.values)

    def suggest(self, trial_id):
        if not self.todo:
            return FINISHED
        params = self.space.sample(self.rng)
        params[self.name] = self.todo.pop(0)
        return Suggestion(params)


class Threshold(EarlyStopper):
    """Stops a trial as soon as a broadcast value is worse than ``limit``."""

    def __init__(self, limit=0.0):
        self.limit = limit

    def should_stop(self, trial_id, history):
        value = history[-1][1]
        return value < self.limit if self.direction == "max" else value > self.limit
