"""What watchers of an experiment see: the :class:`Observer` hooks and a read-only
:class:`KernelView`.

Observers (the live display, TensorBoard, reports, a test's fault injector) get the view, never
the kernel: they can read counts, the best trial, the agents alive, where the experiment lives
and what it optimizes, and they can schedule a call on the kernel's loop or end the experiment,
from any thread. Nothing else of the kernel is theirs to touch, so it can change freely.
"""
from __future__ import annotations

import time
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Mapping

if TYPE_CHECKING:
    import asyncio
    from pathlib import Path

    from .driver import Kernel
    from .result import Result
    from .trials import Trial


class Observer:
    """Hooks for things that watch an experiment; all optional, all called on the kernel's loop.

    ``trial_metric`` (every broadcast of the search's metric, the hot path), ``trial_series``
    (every broadcast of named values) and ``trial_log`` (every batch of a trial's printed lines)
    are called only on observers that override them.
    """

    def experiment_started(self, view: "KernelView") -> None: ...
    def trial_started(self, view: "KernelView", trial: "Trial") -> None: ...
    def trial_metric(self, view: "KernelView", trial: "Trial", step: float, value: float) -> None: ...
    def trial_log(self, view: "KernelView", trial: "Trial", lines: list[str]) -> None: ...
    def trial_series(self, view: "KernelView", trial: "Trial", step: float, values: dict[str, float]) -> None: ...
    def trial_ended(self, view: "KernelView", trial: "Trial") -> None: ...
    def experiment_ended(self, view: "KernelView", result: "Result | None") -> None: ...


def wants_metrics(observer: Observer) -> bool:
    return type(observer).trial_metric is not Observer.trial_metric


def wants_logs(observer: Observer) -> bool:
    return type(observer).trial_log is not Observer.trial_log


def wants_series(observer: Observer) -> bool:
    return type(observer).trial_series is not Observer.trial_series


class KernelView:
    """A read-only window on a running kernel."""

    def __init__(self, kernel: "Kernel"):
        self._kernel = kernel
        self._loop: "asyncio.AbstractEventLoop" = kernel.loop
        self.counts: Mapping[str, int] = MappingProxyType(kernel.book.counts)

    @property
    def experiment(self) -> str:
        return self._kernel.experiment

    @property
    def context_name(self) -> str:
        return self._kernel.context_name

    @property
    def path(self) -> "Path":
        """The experiment folder."""
        return self._kernel.folder.path

    @property
    def url(self) -> str:
        """Where the kernel listens (for agents started by hand, or a test's raw peer)."""
        return self._kernel.listener.url

    @property
    def metric(self) -> str | None:
        return self._kernel.controller.metric

    @property
    def direction(self) -> str:
        return self._kernel.controller.direction

    @property
    def objectives(self) -> list[str] | None:
        """A search of several objectives: their names (``metric`` is the first); else None."""
        return self._kernel.controller.objectives

    @property
    def best(self) -> "Trial | None":
        return self._kernel.book.best

    @property
    def agents_alive(self) -> int:
        return len(self._kernel.agents.alive())

    @property
    def agents(self) -> list[dict[str, Any]]:
        """Every agent that joined: id, host, pid, devices, state, the trial it runs and seconds
        since the kernel last heard from it (its health, as the kernel judges it)."""
        now = time.monotonic()
        return [{"id": a.id, "host": a.host, "pid": a.pid, "devices": a.devices, "state": str(a.state),
                 "trial": a.attempt.trial.id if a.attempt is not None else None,
                 "silent_s": round(now - a.last_seen, 3), "error": a.error} for a in self._kernel.agents.all()]

    @property
    def started_at(self) -> float:
        return self._kernel.started_at

    @property
    def elapsed(self) -> float:
        return time.time() - self._kernel.started_at

    @property
    def total_trials(self) -> int | None:
        """How many trials the experiment will run, when its controller knows in advance."""
        return self._kernel.controller.describe().get("total_trials")

    @property
    def dispatch_latencies(self) -> list[float]:
        """Seconds from a result arriving to the next trial starting on that agent."""
        return list(self._kernel.dispatch_latencies)

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> "asyncio.TimerHandle":
        """Run ``fn(*args)`` on the kernel's loop after ``delay`` seconds (from the loop's thread)."""
        return self._loop.call_later(delay, fn, *args)

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the kernel's loop soon; safe from any thread, and a no-op once
        the loop has closed."""
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            pass

    def abort(self, message: str) -> None:
        """End the experiment with ``message`` as its error (from any thread)."""
        self.call_soon(self._kernel.abort, message)

    def interrupt(self, why: str) -> None:
        """End the experiment as Ctrl-C does: kept, and resumable (from any thread)."""
        self.call_soon(self._kernel.interrupt, why)
