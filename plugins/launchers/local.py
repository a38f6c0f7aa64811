"""Agents as subprocesses of this machine: the default, so ``lagom()`` needs no setup.

Each agent is ``python -m kernel.agent`` with the token in its environment (never on a command
line that ``ps`` shows) and this interpreter's ``sys.path``, so a training function defined in
any module the driver can import unpickles in the agent too. Its output goes to
``agents/<id>.log`` in the experiment folder.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

from .base import Launcher, OnExit


class LocalLauncher(Launcher):
    def __init__(self, python: str | None = None, env: dict[str, str] | None = None):
        self.python = python or sys.executable
        self.env = dict(env or {})
        self._procs: dict[str, subprocess.Popen] = {}
        self._stopping = threading.Event()

    def start(self, *, url: str, token: str, count: int, log_dir: Path, on_exit: OnExit,
              insecure: bool = False) -> list[str]:
        env = dict(os.environ)
        env.update(self.env)
        env["LAGOM_TOKEN"] = token
        paths = [p for p in sys.path if p] + [os.getcwd()]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths + env.get("PYTHONPATH", "").split(os.pathsep)))
        env.setdefault("PYTHONUNBUFFERED", "1")
        ids = []
        for i in range(count):
            agent_id = f"local-{i}-{uuid.uuid4().hex[:6]}"
            log = open(Path(log_dir) / f"{agent_id}.log", "ab")
            proc = subprocess.Popen(
                [self.python, "-m", "kernel.agent", "--connect", url, "--id", agent_id,
                 *(["--insecure"] if insecure else [])],
                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=os.getcwd(),
            )
            log.close()
            self._procs[agent_id] = proc
            threading.Thread(target=self._watch, args=(agent_id, proc, on_exit),
                             name=f"lagom-watch-{agent_id}", daemon=True).start()
            ids.append(agent_id)
        return ids

    def _watch(self, agent_id: str, proc: subprocess.Popen, on_exit: OnExit) -> None:
        code = proc.wait()
        if not self._stopping.is_set():
            on_exit(agent_id, f"exit code {code}")

    def pids(self) -> dict[str, int]:
        return {k: p.pid for k, p in self._procs.items()}

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        for proc in self._procs.values():
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.terminate()
        for proc in self._procs.values():
            try:
                proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
