"""Agents as one SLURM job array (``launcher="slurm"``): task ``k`` runs ``python -m
kernel.agent`` as agent ``<prefix>-k``; the array is cancelled when the experiment ends.

The token goes in a file only its owner can read (in the experiment folder, which agents on
other nodes need on a shared file system anyway, as they do for checkpoints), passed with
``--token-file``: never on a command line. ``sbatch`` refusing the job (a partition or gres
that does not exist, a time limit beyond the partition's) fails ``lagom()`` at once with its
words. A task that ends (``scancel``, a node failure, its time limit) is told to the kernel
within about a second: the launcher asks ``scontrol`` for the array's tasks every second (SLURM
has no way to push it), and the kernel's own heartbeats stand behind that.

On a cluster the kernel must be reachable from the nodes: ``lagom(..., listen="tcp://0.0.0.0:7777")``.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from .base import Exit, Launcher, LauncherError, OnExit

ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY",
         "BOOT_FAIL", "DEADLINE"}
LOOK_EVERY = 1.0  # seconds between looks at the array's tasks


def parse_tasks(text: str) -> dict[int, tuple[str, str]]:
    """``scontrol show job -o`` of an array: task index -> (JobState, ExitCode)."""
    out = {}
    for line in text.splitlines():
        fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
        if fields.get("ArrayTaskId", "").isdigit():
            out[int(fields["ArrayTaskId"])] = (fields.get("JobState", "?"), fields.get("ExitCode", "?"))
    return out


class SlurmLauncher(Launcher):
    """``partition``, ``gres`` (``"gpu:1"``), ``time`` (``"01:00:00"``), ``cpus_per_agent``,
    ``mem`` (``"8G"``), ``account``, ``extra`` (more ``sbatch`` options, as a list)."""

    def __init__(self, partition: str | None = None, gres: str | None = None, time: str | None = None,
                 cpus_per_agent: int | None = None, mem: str | None = None, account: str | None = None,
                 extra: list[str] | None = None, python: str | None = None):
        self.options = {"partition": partition, "gres": gres, "time": time, "cpus-per-task": cpus_per_agent,
                        "mem": mem, "account": account}
        self.extra, self.python = list(extra or []), python or sys.executable
        self.job: str | None = None
        self.ids: dict[int, str] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._token_file: Path | None = None

    def start(self, *, url: str, token: str, count: int, log_dir: Path, on_exit: OnExit,
              insecure: bool = False) -> list[str]:
        if shutil.which("sbatch") is None:
            raise LauncherError('launcher="slurm" needs SLURM\'s sbatch on PATH (run lagom() on a login node '
                                'or inside an allocation)')
        log_dir = Path(log_dir).absolute()
        log_dir.mkdir(parents=True, exist_ok=True)
        prefix = f"slurm-{uuid.uuid4().hex[:6]}"
        self._token_file = log_dir / f".{prefix}.token"
        fd = os.open(self._token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token)
        script = log_dir / f"{prefix}.sbatch"
        script.write_text(self._script(url, prefix, count, log_dir, insecure))
        self.job = self._submit(script)
        self.ids = {k: f"{prefix}-{k}" for k in range(count)}
        self._thread = threading.Thread(target=self._watch, args=(on_exit,), name="lagom-slurm", daemon=True)
        self._thread.start()
        return list(self.ids.values())

    def _script(self, url: str, prefix: str, count: int, log_dir: Path, insecure: bool) -> str:
        lines = ["#!/bin/bash", f"#SBATCH --job-name=lagom-{prefix}", f"#SBATCH --array=0-{count - 1}",
                 f"#SBATCH --output={log_dir}/{prefix}-%a.log", f"#SBATCH --chdir={os.getcwd()}"]
        lines += [f"#SBATCH --{k}={v}" for k, v in self.options.items() if v is not None]
        lines += [f"#SBATCH {opt}" for opt in self.extra]
        path = os.pathsep.join(p for p in sys.path if p)
        agent = [self.python, "-m", "kernel.agent", "--connect", url, "--token-file", str(self._token_file),
                 "--wait", "600", "--quiet"] + (["--insecure"] if insecure else [])  # output kept once: trial logs
        lines += [f"export PYTHONPATH={shlex.quote(path)}",
                  " ".join(shlex.quote(a) for a in agent) + f" --id {prefix}-$SLURM_ARRAY_TASK_ID"]
        return "\n".join(lines) + "\n"

    def _submit(self, script: Path) -> str:
        try:
            out = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise LauncherError(f"sbatch did not answer: {exc}") from None
        if out.returncode != 0:
            said = (out.stderr or out.stdout).strip().splitlines()
            raise LauncherError(f"SLURM refused the agents' job: {said[-1] if said else f'sbatch exited {out.returncode}'}"
                                f" (options {({k: v for k, v in self.options.items() if v is not None})})")
        return out.stdout.strip().split(";")[0]

    def _watch(self, on_exit: OnExit) -> None:
        told: set[int] = set()
        while not self._stopping.wait(LOOK_EVERY) and len(told) < len(self.ids):
            for k, (state, code) in self._tasks().items():
                if k in told or k not in self.ids or state.split()[0] not in ENDED:
                    continue
                told.add(k)
                exit_code = code.split(":")[0]
                detail: Exit | str = Exit(0) if state == "COMPLETED" and exit_code == "0" else \
                    f"its SLURM task {self.job}_{k} ended: {state} (exit code {code})"
                if not self._stopping.is_set():
                    on_exit(self.ids[k], detail)

    def _tasks(self) -> dict[int, tuple[str, str]]:
        try:
            out = subprocess.run(["scontrol", "show", "job", "-o", str(self.job)], capture_output=True, text=True,
                                 timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return {}
        return parse_tasks(out.stdout)

    def stop(self, timeout: float = 5.0) -> None:
        """Let the running agents leave (they were told), then cancel what is left of the array
        (tasks still pending, and any agent that did not leave in ``timeout`` seconds)."""
        self._stopping.set()
        deadline = time.monotonic() + timeout
        while self.job is not None and time.monotonic() < deadline and \
                any(state == "RUNNING" for state, _ in self._tasks().values()):
            time.sleep(0.2)
        if self.job is not None:
            subprocess.run(["scancel", str(self.job)], capture_output=True, timeout=30)
        if self._token_file is not None:
            self._token_file.unlink(missing_ok=True)
        if self._thread is not None:
            self._thread.join(LOOK_EVERY * 2)
        self.job, self._thread, self._token_file = None, None, None
