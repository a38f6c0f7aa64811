"""What an agent process was doing when it died: the trial it ran, in a file its launcher reads.

An agent handed trials ahead runs them back to back and reports them in batches, so when its
process dies the kernel cannot tell from messages alone which trial killed it: the last finals
may have died with it. So the agent writes the id of each trial it starts into a small file
mapped into its memory (a store, no system call per trial), and clears it when the trial ends;
the memory is the file's page cache, so the last store outlives a segfault or a SIGKILL. The
launcher that started the agent on this host reads it once the process has ended (``Exit.trial``)
and the kernel blames that trial alone.
"""
from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path

ENV = "LAGOM_BLACKBOX"  # where a launcher wants an agent's box
_SLOT = struct.Struct("<q")  # the running trial's id; -1 between trials
_IDLE = -1


class Blackbox:
    def __init__(self, path: str | os.PathLike):
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.ftruncate(fd, _SLOT.size)
            self._map = mmap.mmap(fd, _SLOT.size)
        finally:
            os.close(fd)
        self.idle()

    @classmethod
    def from_env(cls) -> "Blackbox | None":
        path = os.environ.get(ENV)
        return cls(path) if path else None

    def running(self, trial_id: int) -> None:
        _SLOT.pack_into(self._map, 0, trial_id)

    def idle(self) -> None:
        _SLOT.pack_into(self._map, 0, _IDLE)


def last_trial(path: str | os.PathLike) -> int | None:
    """The trial the agent ran when it ended (None: between trials, or no box); the box is
    removed, having been read."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError:
        return None
    path.unlink(missing_ok=True)
    if len(data) < _SLOT.size:
        return None
    trial = _SLOT.unpack_from(data)[0]
    return None if trial == _IDLE else trial
