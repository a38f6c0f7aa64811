"""The null launcher: starts no agent. The agents are started by hand (``python -m
kernel.agent`` on other hosts, a SLURM job script) and connect to the kernel's ``listen`` address;
``workers=0`` uses it."""
from __future__ import annotations

from pathlib import Path

from .base import Launcher, OnExit


class NullLauncher(Launcher):
    def start(self, *, url: str, token: str, count: int, log_dir: Path, on_exit: OnExit,
              insecure: bool = False) -> list[str]:
        return []

    def stop(self, timeout: float = 5.0) -> None:
        pass
