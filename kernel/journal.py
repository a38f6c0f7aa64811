"""The experiment folder: an append-only journal, one log per trial, result.json at the end.

The journal is JSON lines, one event each, written and flushed as it happens, so a kernel
killed at any moment leaves a readable record of everything that had ended; trial ends are
also fsynced (batched), so a machine that loses power loses no more. Each write is a single
line: the cost per trial stays flat however many trials came before.
"""
from __future__ import annotations

import fcntl
import json
import os
import secrets
import socket
import time
from pathlib import Path
from typing import IO, Any, Callable, Iterator

from . import fastjson
from . import records
from .controller import ExperimentError
from .fsync import Syncer
from .trial_logs import CappedLog

DEFAULT_ROOT_ENV = "LAGOM_RUNS"
JOURNAL_BUFFER = 1 << 20  # what one batch of messages records is written at once, not 8 KiB at a time


def new_experiment_path(root: str | os.PathLike | None, name: str) -> Path:
    base = Path(root or os.environ.get(DEFAULT_ROOT_ENV) or "lagom-runs")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return base / f"{name}-{stamp}-{secrets.token_hex(2)}"


def read_journal(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The events of a journal, and how many lines could not be read (a kernel killed mid-write
    leaves at most a cut-off last line; it is skipped, and what it recorded happens again)."""
    lines = list(_lines(path))
    events = [e for e in lines if e is not None]
    return events, len(lines) - len(events)


def iter_journal(path: Path, skip: tuple[str, ...] = ()) -> Iterator[dict[str, Any]]:
    """The readable events of a journal one at a time (a report of 100,000 trials never holds
    all 200,000 events at once); events named in ``skip`` are passed over unread (a report has
    no use for a trial's ``lease``: a third of a fast search's lines)."""
    return (e for e in _lines(path, skip) if e is not None and e["event"] not in skip)


def _lines(path: Path, skip: tuple[str, ...] = ()) -> Iterator[dict[str, Any] | None]:
    """Each line's event, or None for a line that is not one (or is one of ``skip``)."""
    prefixes = tuple(b'{"event":"' + name.encode() + b'"' for name in skip)  # as fastjson writes them
    with open(Path(path) / records.JOURNAL, "rb") as f:
        for line in f:
            if prefixes and line.startswith(prefixes):
                continue
            try:
                event = fastjson.loads(line)
            except (ValueError, UnicodeDecodeError):
                event = None
            yield event if isinstance(event, dict) and "event" in event else None


def checkpoint_dir(folder: str | os.PathLike, trial_id: int) -> str:
    """A trial's checkpoint folder (absolute, so agents elsewhere on a shared file system find it)."""
    return f"{Path(folder).absolute() / 'checkpoints'}{os.sep}trial-{trial_id:05d}"


def latest_experiment(root: str | os.PathLike | None, name: str) -> Path:
    """The newest experiment folder called ``name-*`` under ``root`` (for ``resume=True``)."""
    base = Path(root or os.environ.get(DEFAULT_ROOT_ENV) or "lagom-runs")
    found = sorted((p for p in base.glob(f"{name}-*") if (p / records.JOURNAL).exists()),
                   key=lambda p: (p / records.JOURNAL).stat().st_mtime)
    if not found:
        raise FileNotFoundError(f"no experiment named {name!r} to resume under {base.absolute()}; "
                                f"pass resume=<experiment folder>")
    return found[-1]


class FolderError(ExperimentError):
    """The experiment folder cannot be written (read-only, full, not a folder)."""


class FolderBusy(ExperimentError):
    """Another kernel, still alive, runs the experiment in this folder."""


LOCK = records.LOCK


def holder(folder: Path) -> dict[str, Any] | None:
    """Who runs the experiment in ``folder`` now: the live kernel's host and pid, or None when
    no kernel holds its lock (it ended, or died: the lock goes with the process)."""
    path = Path(folder) / LOCK
    if not path.exists():
        return None
    with open(path, "a+", encoding="utf-8") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            try:
                return json.loads(f.read() or "{}")
            except ValueError:
                return {}
        fcntl.flock(f, fcntl.LOCK_UN)
    return None


class ExperimentFolder:
    """One experiment's folder. Trial ends are made durable (fsync) at most ``sync_every``
    seconds after they happen, so a machine that loses power loses at most the trials that had
    not ended, and those of the last few milliseconds; ``schedule(delay, fn)`` (the kernel's
    loop) runs the deferred sync. A write that fails (a full disk) breaks the folder: later
    writes are skipped and ``on_error`` is told once, so the kernel can end the experiment while
    the journal stays readable and resumable."""

    def __init__(self, path: Path, sync_every: float = 0.02):
        self.path = Path(path)
        self.trials_dir = self.path / "trials"
        self.agents_dir = self.path / "agents"
        self.sync_every = sync_every
        self.schedule: Callable[[float, Callable[[], None]], Any] | None = None
        self.on_error: Callable[[OSError], None] | None = None
        self.failed: OSError | None = None
        self._synced_at, self._sync_pending, self._dirty = 0.0, False, False
        self._held = False  # records wait in the buffer until ``release`` (one batch of messages)
        self._unwritten = False  # records in the buffer, held, not yet written
        self._syncer: Syncer | None = None  # started with the first sync
        try:
            self._lock = self._take_lock()
            self._journal = self._open()
        except FolderBusy:
            raise
        except OSError as exc:
            raise FolderError(f"cannot write the experiment folder {self.path.absolute()}: {exc.strerror or exc}; "
                              f"pass path= (or set ${DEFAULT_ROOT_ENV}) to a folder you can write") from None
        self._logs: dict[int, CappedLog] = {}

    def _take_lock(self) -> IO[str]:
        """One kernel per folder: an exclusive lock held for the kernel's whole life (the OS drops
        it with the process, however it ends), with the holder's host and pid in the file."""
        self.path.mkdir(parents=True, exist_ok=True)
        f = open(self.path / LOCK, "a+", encoding="utf-8")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            who = f.read()
            f.close()
            try:
                who = json.loads(who)
                who = f"pid {who['pid']} on {who['host']}, since {time.strftime('%H:%M:%S', time.localtime(who['since']))}"
            except (ValueError, KeyError, TypeError):
                who = "another process"
            raise FolderBusy(f"{self.path} is in use: its kernel ({who}) is still running, and two kernels on "
                             f"one folder would run trials twice; wait for it to end, or stop it first") from None
        f.seek(0)
        f.truncate()
        f.write(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}))
        f.flush()
        return f

    def _open(self) -> IO[bytes]:
        for d in (self.path, self.trials_dir, self.agents_dir):
            d.mkdir(parents=True, exist_ok=True)
        journal = self.path / records.JOURNAL
        cut_off = False
        if journal.exists() and journal.stat().st_size:
            with open(journal, "rb") as f:
                f.seek(-1, os.SEEK_END)
                cut_off = f.read(1) != b"\n"  # a kernel killed mid-write: start on a new line
        handle = open(journal, "ab", buffering=JOURNAL_BUFFER)
        handle.write(b"\n" if cut_off else b"")
        handle.flush()
        return handle

    def write(self, event: str, durable: bool, fields: dict[str, Any]) -> None:
        """Append one event (records.py's functions write each); ``durable``: fsync it soon (a
        trial's end, the experiment's close)."""
        if self.failed is not None:
            return
        line = fastjson.line({"event": event, "time": time.time(), **fields})
        try:
            self._journal.write(line)
            if self._held:
                self._unwritten = True
            else:
                self._journal.flush()
        except OSError as exc:
            self._fail(exc)
            return
        if durable:
            self._dirty = True
            if not self._held:
                self._sync_soon()

    def hold(self) -> None:
        """Keep records in the buffer until ``release``: the kernel handles a batch of messages
        between the two, and a write(2) per record was a tenth of its time per short trial."""
        self._held = True

    def before_send(self) -> bool:
        """Write the batch's records before a message acting on them leaves (write-ahead: no
        trial runs that a killed kernel's journal does not know); False: it cannot be written."""
        if self._unwritten and self.failed is None:
            self._unwritten = False
            try:
                self._journal.flush()
            except OSError as exc:
                self._fail(exc)
        return self.failed is None

    def release(self) -> None:
        self._held = self._unwritten = False
        if self.failed is None:
            try:
                self._journal.flush()
            except OSError as exc:
                self._fail(exc)
                return
            if self._dirty:
                self._sync_soon()

    def _sync_soon(self) -> None:
        wait = self._synced_at + self.sync_every - time.monotonic()
        if wait <= 0 or self.schedule is None:
            self.sync()
        elif not self._sync_pending:
            self._sync_pending = True
            self.schedule(wait, self.sync)

    def sync(self) -> None:
        """Make what was written durable (batched: at most one per ``sync_every`` seconds): the
        buffer is written here, the fsync itself runs on a thread (it takes about a
        millisecond, which the kernel's loop would otherwise spend waiting every
        ``sync_every``: a twentieth of a fast search's time)."""
        self._sync_pending = False
        self._take_sync_error()
        if not self._dirty or self.failed is not None:
            return
        try:
            self._journal.flush()
        except OSError as exc:
            self._fail(exc)
            return
        if self._syncer is None:
            self._syncer = Syncer(self._journal.fileno())
        self._syncer.request()
        self._dirty, self._synced_at = False, time.monotonic()

    def _sync_now(self) -> None:
        """fsync on this thread, after the syncer's last one (closing: nothing may be left unsynced)."""
        if self._syncer is not None:
            self._syncer.stop()
            self._take_sync_error()
        if self.failed is not None:
            return
        try:
            self._journal.flush()
            os.fsync(self._journal.fileno())
        except OSError as exc:
            self._fail(exc)
            return
        self._dirty = False

    def _take_sync_error(self) -> None:
        """A failed fsync on the syncer's thread breaks the folder here, on the caller's."""
        if self._syncer is not None and self._syncer.error is not None and self.failed is None:
            self._fail(self._syncer.error)

    def _fail(self, exc: OSError) -> None:
        self.failed = exc
        if self.on_error is not None:
            self.on_error(exc)

    def describe_failure(self) -> str:
        return (f"cannot write the journal in {self.path} ({self.failed.strerror or self.failed}); the experiment "
                f"stopped there. Free some space, then continue it: python -m kernel resume {self.path}")

    def checkpoint_dir(self, trial_id: int) -> str:
        """Where a trial may save checkpoints (made by the agent on first use). Agents on other
        hosts need this folder on a shared file system to hand checkpoints between trials."""
        prefix = self.__dict__.get("_checkpoint_prefix")
        if prefix is None:  # once: resolving the absolute path costs more than the rest of a dispatch
            prefix = self._checkpoint_prefix = checkpoint_dir(self.path, 0)[:-5]
        return f"{prefix}{trial_id:05d}"

    def has_checkpoint(self, trial_id: int) -> bool:
        """Whether the trial saved anything in its checkpoint folder (as this host sees it: the
        folder agents on other hosts share)."""
        try:
            with os.scandir(self.checkpoint_dir(trial_id)) as entries:
                return any(True for _ in entries)
        except OSError:
            return False

    def trial_log_path(self, trial_id: int) -> Path:
        return self.trials_dir / f"trial-{trial_id:05d}.log"

    def log_lines(self, trial_id: int, lines: list[str]) -> None:
        if self.failed is not None:
            return
        try:
            f = self._logs.get(trial_id)
            if f is None:
                f = self._logs[trial_id] = CappedLog(self.trial_log_path(trial_id))
            f.write("".join(line if line.endswith("\n") else line + "\n" for line in lines))
        except OSError as exc:
            self._fail(exc)

    def close_log(self, trial_id: int) -> None:
        f = self._logs.pop(trial_id, None)
        if f is not None:
            try:
                f.close()
            except OSError as exc:
                self._fail(exc)

    def close(self) -> None:
        for tid in list(self._logs):
            self.close_log(tid)
        self._sync_now()
        try:
            self._journal.close()
        except OSError:
            pass
        self._lock.close()  # releases the lock

