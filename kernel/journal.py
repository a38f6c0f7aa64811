"""The experiment folder: an append-only journal, one log per trial, result.json at the end.

The journal is JSON lines, one event each, written and flushed as it happens, so a kernel
killed at any moment leaves a readable record of everything that had ended. Each write is a
single line: the cost per trial stays flat however many trials came before.
"""
from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path
from typing import Any, IO

DEFAULT_ROOT_ENV = "LAGOM_RUNS"


def new_experiment_path(root: str | os.PathLike | None, name: str) -> Path:
    base = Path(root or os.environ.get(DEFAULT_ROOT_ENV) or "lagom-runs")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return base / f"{name}-{stamp}-{secrets.token_hex(2)}"


def read_journal(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The events of a journal, and how many lines could not be read (a kernel killed mid-write
    leaves at most a cut-off last line; it is skipped, and what it recorded happens again)."""
    events, bad = [], 0
    with open(Path(path) / "journal.jsonl", encoding="utf-8") as f:
        for line in f:
            try:
                event = json.loads(line)
            except ValueError:
                bad += 1
                continue
            if isinstance(event, dict) and "event" in event:
                events.append(event)
            else:
                bad += 1
    return events, bad


def latest_experiment(root: str | os.PathLike | None, name: str) -> Path:
    """The newest experiment folder called ``name-*`` under ``root`` (for ``resume=True``)."""
    base = Path(root or os.environ.get(DEFAULT_ROOT_ENV) or "lagom-runs")
    found = sorted((p for p in base.glob(f"{name}-*") if (p / "journal.jsonl").exists()),
                   key=lambda p: (p / "journal.jsonl").stat().st_mtime)
    if not found:
        raise FileNotFoundError(f"no experiment named {name!r} to resume under {base.absolute()}; "
                                f"pass resume=<experiment folder>")
    return found[-1]


class ExperimentFolder:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.trials_dir = self.path / "trials"
        self.agents_dir = self.path / "agents"
        for d in (self.path, self.trials_dir, self.agents_dir):
            d.mkdir(parents=True, exist_ok=True)
        journal = self.path / "journal.jsonl"
        cut_off = False
        if journal.exists() and journal.stat().st_size:
            with open(journal, "rb") as f:
                f.seek(-1, os.SEEK_END)
                cut_off = f.read(1) != b"\n"  # a kernel killed mid-write: start on a new line
        self._journal: IO[str] = open(journal, "a", encoding="utf-8")
        if cut_off:
            self._journal.write("\n")
        self._logs: dict[int, IO[str]] = {}
        self._checkpoints = str((self.path / "checkpoints").absolute())

    def record(self, event: str, **fields: Any) -> None:
        line = json.dumps({"event": event, "time": time.time(), **fields}, default=str)
        self._journal.write(line + "\n")
        self._journal.flush()

    def checkpoint_dir(self, trial_id: int) -> str:
        """Where a trial may save checkpoints (made by the agent on first use). Agents on other
        hosts need this folder on a shared file system to hand checkpoints between trials."""
        return f"{self._checkpoints}{os.sep}trial-{trial_id:05d}"

    def trial_log_path(self, trial_id: int) -> Path:
        return self.trials_dir / f"trial-{trial_id:05d}.log"

    def log_lines(self, trial_id: int, lines: list[str]) -> None:
        f = self._logs.get(trial_id)
        if f is None:
            f = self._logs[trial_id] = open(self.trial_log_path(trial_id), "a", encoding="utf-8")
        f.write("".join(line if line.endswith("\n") else line + "\n" for line in lines))

    def close_log(self, trial_id: int) -> None:
        f = self._logs.pop(trial_id, None)
        if f is not None:
            f.close()

    def close(self) -> None:
        for tid in list(self._logs):
            self.close_log(tid)
        self._journal.close()
