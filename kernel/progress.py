"""Live progress: trials done, running, stopped, failed, lost, agents, the best so far, elapsed
and estimated remaining time.

On a terminal (or in Jupyter) with ``rich`` installed it is a live panel; on a terminal without
it, one line redrawn in place; elsewhere (CI, a log file) a plain line every ``interval``
seconds while something changed, so logs stay readable.
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
        self._live = None

    @property
    def _out(self):
        return self.stream or sys.stdout

    def line(self, kernel: Kernel) -> str:
        c = kernel.counts
        total = self._total if self._total is not None else kernel.controller.describe().get("total_trials")
        self._total = total
        done = sum(c[s] for s in ("finished", "stopped", "failed", "lost"))
        elapsed = time.time() - kernel.started_at
        eta = ""
        if total and done and done < total:
            eta = f" · ~{elapsed / done * (total - done):.0f}s left"
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
        return f"[{elapsed:6.1f}s] " + " · ".join(parts) + eta

    def _emit(self, kernel: Kernel, final: bool = False) -> None:
        text = self.line(kernel)
        if self._live is not None:
            self._live.update(self._panel(kernel, text), refresh=True)
            if final:
                self._live.stop()
                self._live = None
            self._last, self._dirty = time.monotonic(), False
            return
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

    def _panel(self, kernel: Kernel, text: str):
        from rich.panel import Panel
        from rich.table import Table

        table = Table.grid(padding=(0, 2))
        c = kernel.counts
        table.add_row("trials", f"{sum(c[s] for s in ('finished', 'stopped', 'failed', 'lost'))} done, "
                                f"{c['running']} running, {c['stopped']} stopped, {c['failed']} failed, {c['lost']} lost")
        table.add_row("agents", str(len(kernel.agents.alive())))
        best = kernel.best
        if best is not None:
            params = ", ".join(f"{k}={_fmt(v)}" for k, v in best.params.items())
            table.add_row("best", f"{kernel.controller.metric or 'metric'} = {_fmt(best.metric)}  (trial {best.id}: {params})")
        table.add_row("time", text.split("]")[0].strip("[ ") + (text.split("·")[-1] if "left" in text else ""))
        return Panel(table, title=f"lagom · {kernel.context_name} · {kernel.experiment}", expand=False)

    def experiment_started(self, kernel: Kernel) -> None:
        if self.tty or _in_jupyter():
            try:
                from rich.console import Console
                from rich.live import Live

                self._live = Live(self._panel(kernel, self.line(kernel)), console=Console(file=self._out),
                                  auto_refresh=False, transient=False)
                self._live.start()
                self.tty = True
            except ImportError:
                self._live = None
        self._timer = kernel._loop.call_later(self.interval if not self.tty else 1.0, self._tick, kernel)

    def trial_started(self, kernel, trial) -> None:
        self._changed(kernel)

    def trial_ended(self, kernel, trial) -> None:
        self._changed(kernel)

    def experiment_ended(self, kernel: Kernel, result: Result | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._emit(kernel, final=True)


def _in_jupyter() -> bool:
    try:
        from IPython import get_ipython  # noqa: F401 (only to know where we run)

        shell = get_ipython()
        return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"
    except ImportError:
        return False
