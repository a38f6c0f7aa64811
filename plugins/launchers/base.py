"""The launcher interface: start N agents that connect to a URL, and stop them at the end.

A launcher only starts and stops processes (or threads); the agents find the kernel by URL
and prove themselves with the token, so a launcher never touches a socket.
"""
from __future__ import annotations

import signal
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from kernel.controller import ExperimentError

_CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGFPE, signal.SIGILL}


@dataclass(frozen=True)
class Exit:
    """How an agent process ended, as a launcher tells the kernel: its exit code (negative: the
    signal that killed it), its last lines of output, whether a replacement is starting, and
    the trial it was running, when the launcher could tell (kernel/agent/blackbox.py)."""

    code: int | None
    output: str = ""
    restarting: bool = False
    trial: int | None = None

    @property
    def crashed(self) -> bool:
        """It ended itself (a non-zero exit: ``os._exit``) or crashed (a segfault, an abort):
        the trial it ran did it. A SIGKILL or SIGTERM may come from outside (or the OOM killer)."""
        if self.code is None or self.code == 0:
            return False
        return self.code > 0 or -self.code in _CRASH_SIGNALS

    def __str__(self) -> str:
        if self.code is not None and self.code < 0:
            name = signal.Signals(-self.code).name if -self.code in signal.valid_signals() else "?"
            hint = " (the OOM killer, or another process)" if -self.code == signal.SIGKILL else ""
            return f"killed by signal {-self.code} ({name}){hint}"
        return f"exit code {self.code}"


OnExit = Callable[[str, "Exit | str"], None]  # (agent id, what happened)


class LauncherError(ExperimentError):
    """The launcher cannot start its agents (its engine is not reachable, or has not the
    resources they need): raised by ``start``, before anything waits for agents."""


class Launcher(ABC):
    errors: dict[int, BaseException] = {}  # agents in this process: their trials' exceptions, by id (read-only here)

    @abstractmethod
    def start(self, *, url: str, token: str, count: int, log_dir: Path, on_exit: OnExit,
              insecure: bool = False) -> list[str]:
        """Start ``count`` agents; return their ids. Call ``on_exit(id, detail)`` when one ends
        (``detail``: an :class:`Exit`, or a sentence).
        ``insecure``: the kernel uses no CurveZMQ on tcp://, so the agents must not either."""

    @abstractmethod
    def stop(self, timeout: float = 5.0) -> None:
        """Wait up to ``timeout`` for the agents to leave (they were told to), then end them."""
