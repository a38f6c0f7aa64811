"""A live progress line: trials done, running, failed, agents, the best so far.

On a terminal the line is redrawn in place; elsewhere (CI, a log file) a plain line is printed
every ``interval`` seconds while something changed, so logs stay readable.
"""
from __future__ import annotations

import sys
import time

from .driver import Kernel, Observer
from .trials import Result


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


class Progress(Observer):
    def __init__(self, stream=None, interval: float | None = None):
        self.stream = stream
        self.tty = bool(getattr(stream or sys.stdout, "isatty", lambda: False)())
        self.interval = interval if interval is not None else (0.25 if self.tty else 10.0)
        self._last = 0.0
        self._dirty = False
        self._timer = None
        self._total = None

    @property
    def _out(self):
        return self.stream or sys.stdout

    def line(self, kernel: Kernel) -> str:
        c = kernel.counts
        total = self._total if self._total is not None else kernel.controller.describe().get("total_trials")
        self._total = total
        done = sum(c[s] for s in ("finished", "stopped", "failed", "lost"))
        parts = [f"{done}{'/' + str(total) if total else ''} trials",
                 f"{c['running']} running"]
        for state in ("stopped", "failed", "lost"):
            if c[state]:
                parts.append(f"{c[state]} {state}")
        parts.append(f"{len(kernel.agents.alive())} agents")
        best = kernel.best
        if best is not None:
            params = ", ".join(f"{k}={_fmt(v)}" for k, v in best.params.items())
            parts.append(f"best {kernel.controller.metric or 'metric'}={_fmt(best.metric)}"
                         + (f" ({params})" if params else ""))
        return f"[{time.time() - kernel.started_at:6.1f}s] " + " · ".join(parts)

    def _emit(self, kernel: Kernel, final: bool = False) -> None:
        text = self.line(kernel)
        if self.tty:
            width = 160
            self._out.write("\r" + text[:width].ljust(min(width, len(text) + 2)) + ("\n" if final else ""))
        else:
            self._out.write(text + "\n")
        self._out.flush()
        self._last = time.monotonic()
        self._dirty = False

    def _tick(self, kernel: Kernel) -> None:
        if self._dirty or self.tty:
            self._emit(kernel)
        self._timer = kernel._loop.call_later(self.interval if not self.tty else 1.0, self._tick, kernel)

    def _changed(self, kernel: Kernel) -> None:
        self._dirty = True
        if self.tty and time.monotonic() - self._last >= self.interval:
            self._emit(kernel)

    def experiment_started(self, kernel: Kernel) -> None:
        self._timer = kernel._loop.call_later(self.interval if not self.tty else 1.0, self._tick, kernel)

    def trial_started(self, kernel, trial) -> None:
        self._changed(kernel)

    def trial_ended(self, kernel, trial) -> None:
        self._changed(kernel)

    def experiment_ended(self, kernel: Kernel, result: Result | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._emit(kernel, final=True)
