"""The launcher interface: start N agents that connect to a URL, and stop them at the end.

A launcher only starts and stops processes (or threads); the agents find the kernel by URL
and prove themselves with the token, so a launcher never touches a socket.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable

OnExit = Callable[[str, str], None]  # (agent id, what happened)


class Launcher(ABC):
    @abstractmethod
    def start(self, *, url: str, token: str, count: int, log_dir: Path, on_exit: OnExit,
              insecure: bool = False) -> list[str]:
        """Start ``count`` agents; return their ids. Call ``on_exit(id, detail)`` when one ends.
        ``insecure``: the kernel uses no CurveZMQ on tcp://, so the agents must not either."""

    @abstractmethod
    def stop(self, timeout: float = 5.0) -> None:
        """Wait up to ``timeout`` for the agents to leave (they were told to), then end them."""
