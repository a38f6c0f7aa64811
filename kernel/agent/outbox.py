"""What an agent sends, and when: the one lock on its main socket, and the coalescing rule.

ZeroMQ sockets are not thread-safe. The main socket belongs to the agent's main thread, but
while a trial runs the heartbeat thread may send broadcasts that waited too long, or read
trials handed out ahead to answer a skip: every use of the socket, sending or receiving,
holds :attr:`Outbox.lock`.

Short trials make many small messages. What the agent sends waits here as ``[type, fields]``
for at most COALESCE_S, and the running trial's broadcasts wait as points: a run of short
trials costs the kernel a few batches, not three messages each, and a trial that reports every
step of a fast loop one message per burst. The broadcasts always go before what follows them,
so the kernel hears everything in order.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable

COALESCE_S = 0.002  # messages closer together than this travel together


class Outbox:
    """The agent's sending side. ``conn`` is set once connected; ``send`` is the codec's
    ``encode_all`` for a list of items."""

    def __init__(self, encode_all: Callable[[list], list[bytes]]):
        self.lock = threading.Lock()
        self.conn: Any = None
        self._encode_all = encode_all
        self._items: list[list] = []
        self.finals = 0  # finals among the items
        self.unsent_since: float | None = None
        self.last_sent = 0.0
        self._trial: int | None = None  # the running trial whose broadcasts wait as points
        self._points: list[list] = []

    # -- the caller holds the lock ---------------------------------------------------------
    def post(self, msg_type: str, fields: dict[str, Any]) -> None:
        """Queue a message: the serve loop, the next broadcast or the heartbeat thread sends
        it within COALESCE_S."""
        self._stash()
        self._items.append([msg_type, fields])
        self.finals += msg_type == "final"
        if self.unsent_since is None:
            self.unsent_since = time.monotonic()

    def flush(self, now: float | None = None) -> None:
        """Send everything unsent as one message."""
        self._stash()
        items = self._items
        if items:
            self._items, self.finals = [], 0
            self.conn.send(self._encode_all(items))
            self.last_sent = time.monotonic() if now is None else now
        self.unsent_since = None

    def running(self, trial: int) -> None:
        """Broadcasts from now on are ``trial``'s. Points left by a trial that was abandoned
        (the kernel went quiet: it runs it again) are dropped. Called as a trial starts, when
        nothing else touches the points: no lock needed."""
        self._points, self._trial = [], trial

    def final(self, fields: dict[str, Any]) -> None:
        """The running trial's final, carrying its broadcasts not sent yet (the kernel takes
        them first); no trial runs from now on."""
        fields["points"], self._points, self._trial = self._points, [], None
        self.post("final", fields)

    def _stash(self) -> None:
        if self._points:
            points, self._points = self._points, []
            self._items.append(["metric", {"trial": self._trial, "points": points}])

    # -- these take the lock ---------------------------------------------------------------
    def send(self, msg_type: str, fields: dict[str, Any]) -> None:
        """Send now, after whatever waits."""
        with self.lock:
            self.post(msg_type, fields)
            self.flush()

    def point(self, step: float, value: float | None, named: dict[str, float] | None = None) -> None:
        """A broadcast of the running trial: the first after a quiet spell goes at once, the
        rest wait until COALESCE_S has passed since the first unsent one. (A trial's channel
        hands its broadcasts here directly: SocketChannel.send_metric is this method then.)"""
        now = time.monotonic()
        with self.lock:
            self._points.append([step, value, named] if named else [step, value])
            since = self.unsent_since
            if since is None:
                self.unsent_since = since = now
                if now - self.last_sent >= COALESCE_S:
                    self.flush(now)
                    return
            if now - since >= COALESCE_S:
                self.flush(now)

    def after_trial(self, queued: int) -> None:
        """A trial ended: send now, unless more queued trials follow at once and little waits.
        The kernel refills the queue as finals arrive, so finals go out before it runs low."""
        with self.lock:
            if self.unsent_since is not None and (
                    not queued or queued <= self.finals or time.monotonic() - self.unsent_since >= COALESCE_S):
                self.flush()

    def flush_stale(self) -> None:
        """From the heartbeat thread: send what has waited longer than COALESCE_S (a function
        went on computing after a burst of broadcasts, or a long trial followed short ones).
        Never waits for the lock: whoever holds it sends soon anyway."""
        since = self.unsent_since
        if since is None or time.monotonic() - since < COALESCE_S or not self.lock.acquire(blocking=False):
            return
        try:
            if self.unsent_since is not None and time.monotonic() - self.unsent_since >= COALESCE_S:
                self.flush()
        finally:
            self.lock.release()
