"""Live progress: trials done, running, stopped, failed, lost, agents, the best so far, elapsed
and estimated remaining time.

On a terminal (or in Jupyter with ipywidgets) with ``rich`` installed it is a live panel; on a
terminal without it, one line redrawn in place; in Jupyter without ipywidgets (which rich's
panel needs there) the same lines, updated in place in the cell's output; elsewhere (CI, a log
file) a plain line every ``interval`` seconds while something changed, so logs stay readable.

A display must not claim what it does not know. The estimate of the time left is dropped once
it has run out with no trial ending since, and while a trial runs far longer than the others
(``overdue``: that many times their median, and ``overdue_min_s`` more), which is then said
once, naming ``trial_timeout=``: a hung trial holds a search forever without one.
"""
from __future__ import annotations

import collections
import statistics
import sys
import time
from typing import Any

from ..result import Result
from ..trials import ENDED
from ..views import KernelView, Observer


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


class Progress(Observer):
    def __init__(self, stream=None, interval: float | None = None, overdue: float = 10.0,
                 overdue_min_s: float = 60.0):
        self.stream = stream
        self.overdue, self.overdue_min_s = overdue, overdue_min_s
        self._began: dict[int, float] = {}  # running trial -> when it started (monotonic)
        self._durations: collections.deque[float] = collections.deque(maxlen=256)  # of trials that ended
        self._told: set[int] = set()  # trials said to run long
        self._last_end: float | None = None
        self._eta_then: float | None = None  # the estimate of the time left when the last trial ended
        self.tty = bool(getattr(stream or sys.stdout, "isatty", lambda: False)())
        self.interval = interval if interval is not None else (0.25 if self.tty else 10.0)
        self._last = 0.0
        self._dirty = False
        self._timer = None
        self._total: Any = ...  # trials the experiment will run (None: unknown), once asked (...: not yet)
        self._live = None
        self._cell = None  # a notebook output updated in place (Jupyter without ipywidgets)
        self._latest: dict[int, list] = {}  # running trial -> [last (step, value), last printed line]

    @property
    def _out(self):
        return self.stream or sys.stdout

    def line(self, view: KernelView) -> str:
        c = view.counts
        total = self._total_of(view)
        done = sum(c.get(s, 0) for s in ENDED)
        elapsed = view.elapsed
        eta = ""
        late = self._overdue_trial()
        if late is not None:
            eta = f" · waiting on trial {late[0]} ({late[1]:.0f}s)"
        elif total and done and done < total and not self._eta_ran_out():
            eta = f" · ~{elapsed / done * (total - done):.0f}s left"
        parts = [f"{done}{'/' + str(total) if total else ''} trials",
                 f"{c.get('running', 0)} running"]
        for state in ("stopped", "failed", "lost"):
            if c.get(state):
                parts.append(f"{c[state]} {state}")
        parts.append(f"{view.agents_alive} agents")
        best = view.best
        if best is not None:
            params = ", ".join(f"{k}={_fmt(v)}" for k, v in best.params.items())
            parts.append(f"best {view.metric or 'metric'}={_fmt(best.metric)}"
                         + (f" ({params})" if params else ""))
        return f"[{elapsed:6.1f}s] " + " · ".join(parts) + eta

    def running(self, limit: int = 3) -> list[str]:
        """A line for each of the first running trials: its last broadcast and printed line (so
        a long trial, or a distributed run, shows it is alive before it ends)."""
        out = []
        for tid, (point, said) in list(self._latest.items())[:limit]:
            step = f"step {_fmt(point[0])}: {_fmt(point[1])}" if point else "started"
            out.append(f"trial {tid} {step}" + (f" · {said[:100]}" if said else ""))
        return out

    def trial_metric(self, view, trial, step, value) -> None:
        self._latest.setdefault(trial.id, [None, None])[0] = (step, value)
        self._changed(view)

    def trial_log(self, view, trial, lines) -> None:
        said = next((line.strip() for line in reversed(lines) if line.strip()), None)
        if said is not None:
            self._latest.setdefault(trial.id, [None, None])[1] = said
            self._changed(view)

    def _emit(self, view: KernelView, final: bool = False) -> None:
        text = self.line(view)
        if self._cell is not None:
            self._cell.update(_Plain(text + "".join(f"\n    {line}" for line in ([] if final else self.running()))))
            self._last, self._dirty = time.monotonic(), False
            return
        if self._live is not None:
            self._live.update(self._panel(view, text), refresh=True)
            if final:
                self._live.stop()
                self._live = None
            self._last, self._dirty = time.monotonic(), False
            return
        if self.tty:
            width, first = 160, self.running(1)
            text += f" · {first[0]}" if first and not final else ""
            self._out.write("\r" + text[:width].ljust(min(width, len(text) + 2)) + ("\n" if final else ""))
        else:
            self._out.write(text + "".join(f"\n    {line}" for line in self.running()) + "\n")
        self._out.flush()
        self._last = time.monotonic()
        self._dirty = False

    def _tick(self, view: KernelView) -> None:
        late = self._overdue_trial()
        if late is not None:
            self._say_overdue(late)
        if self._dirty or self.tty or late is not None:
            self._emit(view)
        self._timer = view.call_later(self.interval if not self.tty else 1.0, self._tick, view)

    def _changed(self, view: KernelView) -> None:
        self._dirty = True
        if self.tty and time.monotonic() - self._last >= self.interval:
            self._emit(view)

    def _panel(self, view: KernelView, text: str):
        from rich.panel import Panel
        from rich.table import Table

        table = Table.grid(padding=(0, 2))
        c = view.counts
        table.add_row("trials", f"{sum(c.get(s, 0) for s in ENDED)} done, {c.get('running', 0)} running, "
                                f"{c.get('stopped', 0)} stopped, {c.get('failed', 0)} failed, {c.get('lost', 0)} lost")
        table.add_row("agents", str(view.agents_alive))
        for line in self.running():
            table.add_row("running", line)
        best = view.best
        if best is not None:
            params = ", ".join(f"{k}={_fmt(v)}" for k, v in best.params.items())
            table.add_row("best", f"{view.metric or 'metric'} = {_fmt(best.metric)}  (trial {best.id}: {params})")
        table.add_row("time", text.split("]")[0].strip("[ ") + (text.split("·")[-1] if "left" in text else ""))
        return Panel(table, title=f"lagom · {view.context_name} · {view.experiment}", expand=False)

    def experiment_started(self, view: KernelView) -> None:
        if self.stream is None and _in_jupyter() and not _importable("ipywidgets"):
            from IPython.display import display

            self._cell, self.tty = display(_Plain(self.line(view)), display_id=True), True
        elif self.tty or _in_jupyter():
            try:
                from rich.console import Console
                from rich.live import Live

                self._live = Live(self._panel(view, self.line(view)), console=Console(file=self._out),
                                  auto_refresh=False, transient=False)
                self._live.start()
                self.tty = True
            except ImportError:
                self._live = None
        self._timer = view.call_later(self.interval if not self.tty else 1.0, self._tick, view)

    def trial_started(self, view, trial) -> None:
        self._latest[trial.id] = [None, None]
        self._began[trial.id] = time.monotonic()
        self._changed(view)

    def trial_ended(self, view, trial) -> None:
        self._latest.pop(trial.id, None)
        began, now = self._began.pop(trial.id, None), time.monotonic()
        if began is not None:
            self._durations.append(now - began)
        self._last_end = now
        c, total = view.counts, self._total_of(view)
        done = sum(c.get(s, 0) for s in ENDED)
        self._eta_then = view.elapsed / done * (total - done) if total and done else None
        self._changed(view)

    def _total_of(self, view: KernelView) -> int | None:
        """How many trials the experiment will run, asked of the controller once (a trial's end
        must not build its description each time, when the answer is "unknown")."""
        if self._total is ...:
            self._total = view.total_trials
        return self._total

    # -- what the display must not pretend to know --------------------------------------------
    def _overdue_trial(self) -> tuple[int, float] | None:
        """The running trial that has run longest, if far longer than the trials that ended."""
        if len(self._durations) < 3 or not self._began:
            return None
        tid, began = min(self._began.items(), key=lambda kv: kv[1])
        age, typical = time.monotonic() - began, statistics.median(self._durations)
        return (tid, age) if age > max(self.overdue * typical, typical + self.overdue_min_s) else None

    def _eta_ran_out(self) -> bool:
        return self._eta_then is not None and time.monotonic() - self._last_end > max(self._eta_then, 1.0)

    def _say_overdue(self, late: tuple[int, float]) -> None:
        if late[0] in self._told:
            return
        self._told.add(late[0])
        typical = statistics.median(self._durations)
        self._say(f"lagom: trial {late[0]} has run {late[1]:.0f}s, against {typical:.3g}s for most trials; if it "
                  f"hangs, it holds its agent until it ends: trial_timeout=SECONDS in the context ends trials "
                  f"that run longer (they fail, and the search goes on)")

    def _say(self, text: str) -> None:
        """A sentence of its own, above the live display."""
        if self._cell is not None:
            print(text, file=self._out, flush=True)
            return
        if self._live is not None:
            self._live.console.print(text, highlight=False, markup=False)
            return
        self._out.write(("\n" if self.tty else "") + text + "\n")
        self._out.flush()

    def experiment_ended(self, view: KernelView, result: Result | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._emit(view, final=True)


class _Plain:
    """Text a notebook shows as it is (IPython's ``Pretty`` would quote nothing, but is its
    private idea of a repr)."""

    def __init__(self, text: str):
        self.text = text

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(self.text)


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _in_jupyter() -> bool:
    try:
        from IPython import get_ipython  # noqa: F401 (only to know where we run)

        shell = get_ipython()
        return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"
    except ImportError:
        return False


REMIND_S = 30.0  # how often to say again how to start an agent while none is connected


class AgentReminder(Observer):
    """An experiment that waits for agents started by hand says so, with the command to start
    one, every ``every`` seconds while none is connected (none joined yet, or all have left):
    a search must never wait in silence."""

    def __init__(self, command: str, every: float | None = None, stream=None):
        self.command, self.every, self.stream = command, every, stream
        self._timer = None

    def experiment_started(self, view: KernelView) -> None:
        self._timer = view.call_later(self.every or REMIND_S, self._look, view)

    def _look(self, view: KernelView) -> None:
        if view.agents_alive == 0:
            state = "every agent has left" if view.agents else "no agent has joined yet"
            print(f"lagom: {state} ({view.elapsed:.0f}s in); the experiment waits for one. Start agents with\n"
                  f"  {self.command}", file=self.stream or sys.stderr, flush=True)
        self._timer = view.call_later(self.every or REMIND_S, self._look, view)

    def experiment_ended(self, view: KernelView, result: Result | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
