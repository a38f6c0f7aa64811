"""Agents as threads of this process: single runs on a laptop, and fast tests.

The agent code is the same as in a process (same socket, codec and trial loop, over
``inproc://`` or any other URL); only the isolation differs, so the training function shares
this interpreter, its imports and its debugger.
"""
from __future__ import annotations

import threading
import uuid
from pathlib import Path

from .base import Launcher, OnExit


class ThreadLauncher(Launcher):
    def __init__(self, echo: bool = True):
        self.echo = echo
        self.errors: dict[int, BaseException] = {}  # the caller's own process: exceptions handed back
        self._threads: dict[str, threading.Thread] = {}
        self._stopping = threading.Event()

    def start(self, *, url: str, token: str, count: int, log_dir: Path, on_exit: OnExit,
              insecure: bool = False) -> list[str]:
        from kernel.agent import Agent  # the agent is the kernel's; launchers only start it

        ids = []
        for i in range(count):
            agent_id = f"thread-{i}-{uuid.uuid4().hex[:6]}"
            agent = Agent(url, token, agent_id=agent_id, wait=30.0, echo=self.echo, insecure=insecure,
                          keep_errors=self.errors)

            def run(agent=agent, agent_id=agent_id) -> None:
                try:
                    code = agent.run()
                    detail = f"exit code {code}"
                except BaseException as exc:  # a thread must not die silently
                    detail = f"{type(exc).__name__}: {exc}"
                if not self._stopping.is_set():
                    on_exit(agent_id, detail)

            t = threading.Thread(target=run, name=f"lagom-agent-{agent_id}", daemon=True)
            t.start()
            self._threads[agent_id] = t
            ids.append(agent_id)
        return ids

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        for t in self._threads.values():
            t.join(timeout)
