"""The journal's fsync, on a thread of its own: the kernel's loop never waits for the disk."""
from __future__ import annotations

import os
import threading


class Syncer:
    """fsyncs one file, when asked, on a thread of its own (``os.fsync`` lets go of the GIL):
    requests made while one runs are served by the next, one at a time."""

    def __init__(self, fd: int):
        self._fd = fd
        self._wanted = threading.Event()
        self._stopping = False
        self.error: OSError | None = None
        self._thread = threading.Thread(target=self._run, name="lagom-journal-sync", daemon=True)
        self._thread.start()

    def request(self) -> None:
        self._wanted.set()

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            if self._stopping:
                return
            try:
                os.fsync(self._fd)
            except OSError as exc:
                self.error = exc
                return

    def stop(self) -> None:
        """Wait for an fsync under way; the caller syncs what is left itself."""
        self._stopping = True
        self._wanted.set()
        self._thread.join()
