"""What a trial's broadcasts become: its history and named series, what observers see, and
whether the controller (an early-stopping rule) says stop.

Called for every broadcast of every trial, so it stays flat: the observers that listen are
picked once, and the controller is not called at all when nothing judges the metric.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .views import wants_logs, wants_metrics, wants_series

if TYPE_CHECKING:
    from .controller import Controller
    from .trials import Trial
    from .views import KernelView, Observer


class Intake:
    def __init__(self, controller: "Controller", view: "KernelView", observers: list["Observer"]):
        self.controller, self.view = controller, view
        self.metric_observers = [ob for ob in observers if wants_metrics(ob)]  # the hot path
        self.log_observers = [ob for ob in observers if wants_logs(ob)]
        self.series_observers = [ob for ob in observers if wants_series(ob)]
        self.verdicts = bool(controller.judges_metrics)  # agents wait for a verdict on each broadcast
        self.hears = controller.hears_metrics or self.verdicts

    def points(self, trial: "Trial", points: list) -> bool:
        """Keep a trial's broadcasts (from a metric message, or the last ones in its final) and
        show them to whoever listens; True if the controller says stop."""
        stop = False
        history, observers, hears = trial.history, self.metric_observers, self.hears
        for point in points:
            step, value = point[0], point[1]
            if len(point) == 3:  # named values: all kept; the search's metric is ``value``
                self._named(trial, step, point[2])
                if value is None:
                    continue
            history.append((step, value))
            for ob in observers:
                ob.trial_metric(self.view, trial, step, value)
            if hears and self.controller.on_metric(trial, step, value):
                stop = True
        return stop

    def _named(self, trial: "Trial", step: float, named: dict[str, float]) -> None:
        for name, v in named.items():
            trial.series.setdefault(name, []).append((step, v))
        for ob in self.series_observers:
            ob.trial_series(self.view, trial, step, named)

    def log(self, trial: "Trial", lines: list[str]) -> None:
        for ob in self.log_observers:
            ob.trial_log(self.view, trial, lines)
