"""What the training function talks to: metrics and logs out, the kernel's stop decision in.

The reporter speaks through a :class:`TrialChannel`: the agent's socket for a trial in the
agent's own process, a pipe to the agent for a run in a fresh process. ``broadcast`` sends the
metric at once; where an early-stopping rule is at work the channel waits for the kernel's
verdict on that very broadcast, so a stop takes effect where it was decided and the function
does no more work. Otherwise the channel only looks, without blocking, for a stop the kernel
pushed (a time limit, say). Either way a stop raises :class:`EarlyStop`, which the agent turns
into a "stopped" trial. No timer and no polling thread.

``print`` inside a trial is captured too: a process-wide stdout proxy routes writes from the
thread running a trial into that trial's log, and passes everything else through.
"""
from __future__ import annotations

import io
import math
import os
import sys
import threading
import time
from typing import Any, Callable, Protocol


class EarlyStop(Exception):
    """Raised by ``reporter.broadcast`` when the kernel stopped this trial.

    Let it propagate (the agent records the trial as stopped with its last metric); catch it
    only to save a checkpoint, then re-raise or return.
    """


class Shutdown(BaseException):
    """The kernel ended the experiment while a trial ran; not for user code to catch."""


class KernelGone(Shutdown):
    """The kernel went silent for longer than the agent's patience."""


class KernelAway(BaseException):
    """The kernel went quiet while a trial waited for its verdict: the trial is abandoned (the
    kernel, or a resumed one, runs it again) and the agent goes back to saying hello."""


class TrialChannel(Protocol):
    """How one trial's reporter reaches the kernel."""

    def send_metric(self, step: float, value: float | None, named: dict[str, float] | None = None) -> None:
        """Send one broadcast: the search's metric (or None) and any named values (waiting for
        the kernel's verdict where one is due)."""

    def send_log(self, lines: list[str]) -> None:
        """Send lines for the trial's log."""

    def stop_requested(self) -> bool:
        """True once the kernel said stop (never blocks)."""


class Reporter:
    """Handed to the training function as ``reporter``.

    ``checkpoint_dir`` is this trial's own folder for checkpoints (made on first use);
    ``parent_checkpoint_dir`` is the folder of the trial this one continues (an ASHA promotion),
    or None: load from it to resume training instead of starting over.
    """

    def __init__(self, trial_id: int, channel: TrialChannel, checkpoint: str | None = None,
                 parent_checkpoint: str | None = None, metric: str | None = None):
        self.trial_id = trial_id
        self.metric = metric  # the name the search optimizes, among named broadcast values
        self.channel = channel
        self._checkpoint = checkpoint
        self.parent_checkpoint_dir = parent_checkpoint
        self._owner = threading.get_ident()
        self._step = -1
        self.last: tuple[float, float] | None = None
        self._stopped = False  # the kernel said stop and the function was told (raised or asked)
        self.saved = False  # the function asked for checkpoint_dir (so the kernel looks in it)

    @property
    def checkpoint_dir(self) -> str | None:
        if self._checkpoint is not None:
            os.makedirs(self._checkpoint, exist_ok=True)
            self.saved = True
        return self._checkpoint

    @property
    def checkpoint_dirs(self) -> list[str | None]:
        """This trial's folder, as a list: the one a packed run has per lane (``strategy.save``)."""
        return [self.checkpoint_dir]

    @property
    def parent_checkpoint_dirs(self) -> list[str | None]:
        return [self.parent_checkpoint_dir]

    def broadcast(self, metric: Any = None, step: int | float | None = None, **named: Any) -> None:
        """Send the trial's metric now (``broadcast(0.93)``), or several named values
        (``broadcast(accuracy=0.93, loss=0.21)``: the one the search optimizes is judged, all are
        kept); raises EarlyStop if the kernel said stop."""
        step, value, values = self._checked(metric, named, step)
        if value is not None:
            self.last = (step, value)
        if value is not None or values:
            self.channel.send_metric(step, value, values or None)
        if self.should_stop():
            raise EarlyStop(f"trial {self.trial_id} stopped by the kernel at step {step}")

    def _checked(self, metric: Any, named: dict[str, Any],
                 step: int | float | None) -> tuple[int | float, float | None, dict[str, float]]:
        """The broadcast, checked (from the trial's thread, with a value, a finite step): its
        step (the last one's plus one when not given), the search's metric (None: not a value,
        a NaN included: the trial's end says whether it diverged), and the named values that
        are numbers. One helper, not two: it runs at every broadcast."""
        if threading.get_ident() != self._owner:
            raise RuntimeError("reporter.broadcast must be called from the thread running the trial")
        if metric is None and not named:
            raise TypeError("reporter.broadcast needs a value: broadcast(0.93), or named ones: "
                            "broadcast(accuracy=0.93, loss=0.21)")
        if step is None:
            step = self._step + 1
        elif not isinstance(step, (int, float)) or isinstance(step, bool) or not math.isfinite(step):
            raise TypeError(f"reporter.broadcast(step=...) needs a finite number, got {step!r}")
        self._step = step
        values = {name: x for name, v in named.items() if not math.isnan(x := _number(name, v))} if named else {}
        if metric is None:
            return step, values.get(self.metric), values
        value = _number("metric", metric)
        return step, (None if math.isnan(value) else value), values

    @property
    def was_stopped(self) -> bool:
        """The function learnt of a stop (``broadcast`` raised, or ``should_stop`` said so): it
        ends "stopped" even if it then returns. A stop it never saw (it came after the last
        broadcast) leaves a trial that did all its work "finished"."""
        return self._stopped

    def should_stop(self) -> bool:
        """True once the kernel has decided to stop this trial (checkpoint, then return)."""
        if not self._stopped:
            self._stopped = self.channel.stop_requested()
        return self._stopped

    def log(self, *parts: Any) -> None:
        """A line in the trial's log (like print, without going through stdout)."""
        self.channel.send_log([" ".join(str(p) for p in parts)])


def _number(name: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"reporter.broadcast({name}=...) needs a number, got {type(value).__name__}") from None


class _Capture:
    """Line buffer for one trial's printed output; flushes in batches, not per write."""

    def __init__(self, send_log: Callable[[list[str]], None], echo: io.TextIOBase | None):
        self._send = send_log
        self._echo = echo
        self._partial = ""
        self._lines: list[str] = []
        self._last_flush = time.monotonic()

    def write(self, text: str) -> int:
        if self._echo is not None:
            self._echo.write(text)
        if "\n" in text:
            head, *middle, tail = (self._partial + text).split("\n")
            self._lines.append(head)
            self._lines.extend(middle)
            self._partial = tail
            if len(self._lines) >= 200 or time.monotonic() - self._last_flush > 0.25:
                self.flush()
        else:
            self._partial += text
        return len(text)

    def flush(self, final: bool = False) -> None:
        if final and self._partial:
            self._lines.append(self._partial)
            self._partial = ""
        if self._lines:
            lines, self._lines = self._lines, []
            self._send(lines)
        self._last_flush = time.monotonic()


class StreamRouter(io.TextIOBase):
    """Stands in for sys.stdout/sys.stderr: a thread running a trial writes to its capture."""

    def __init__(self, original):
        self.original = original
        self._captures: dict[int, _Capture] = {}

    def write(self, text: str) -> int:
        cap = self._captures.get(threading.get_ident())
        if cap is None:
            return self.original.write(text)
        return cap.write(text)

    def flush(self) -> None:
        self.original.flush()

    def isatty(self) -> bool:
        return self.original.isatty()

    @property
    def encoding(self):
        return getattr(self.original, "encoding", "utf-8")

    def fileno(self) -> int:
        return self.original.fileno()

    def start(self, capture: _Capture) -> None:
        self._captures[threading.get_ident()] = capture

    def stop(self) -> None:
        self._captures.pop(threading.get_ident(), None)


_install_lock = threading.Lock()


def install_routers() -> tuple[StreamRouter, StreamRouter]:
    """Put the stdout and stderr routers in place once per process (idempotent)."""
    with _install_lock:
        if not isinstance(sys.stdout, StreamRouter):
            sys.stdout = StreamRouter(sys.stdout)
        if not isinstance(sys.stderr, StreamRouter):
            sys.stderr = StreamRouter(sys.stderr)
        return sys.stdout, sys.stderr


class captured_output:
    """Context manager: route this thread's print output into a trial's log."""

    def __init__(self, send_log: Callable[[list[str]], None], echo: bool = True):
        self.out, self.err = install_routers()
        self.capture = _Capture(send_log, self.out.original if echo else None)

    def __enter__(self) -> _Capture:
        self.out.start(self.capture)
        self.err.start(self.capture)
        return self.capture

    def __exit__(self, *exc) -> None:
        self.out.stop()
        self.err.stop()
        self.capture.flush(final=True)
