"""What the kernel and the agents need from a transport: the two ends of a connection.

A transport moves lists of frames, nothing more (the wire format is transports/codec.py's). The
kernel is typed against :class:`Listener` and the agents against :class:`Connection`, so a new
backend implements these two protocols and registers its schemes in ``transports/__init__.py``.
"""
from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

from .address import Address


@runtime_checkable
class Listener(Protocol):
    """The kernel's end: one bound socket that every agent talks to, peers told apart by id."""

    address: Address

    @property
    def url(self) -> str: ...

    @property
    def refused(self) -> int:
        """Peers refused before any message existed (CurveZMQ handshakes with a wrong key)."""
        ...

    async def recv_batch(self, limit: int = 1024) -> list[tuple[bytes, list[bytes]]]:
        """Wait for at least one message, then return up to ``limit`` ``(peer, frames)``."""
        ...

    def send(self, peer: bytes, frames: list[bytes]) -> bool:
        """Queue ``frames`` for ``peer`` without blocking; False when it cannot be reached."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class Connection(Protocol):
    """An agent's end: a blocking connection to the kernel, used from one thread."""

    def send(self, frames: list[bytes]) -> None: ...

    def recv(self, timeout: float | None) -> list[bytes] | None:
        """The next message, or None after ``timeout`` seconds (None waits forever)."""
        ...

    def recv_nowait(self) -> list[bytes] | None: ...

    def link_changes(self) -> list[str]:
        """What happened to the connection since last asked, oldest first: "down" (the kernel's
        end closed: its process died, or it dropped this peer) and "up" (connected again and
        the handshake done). Empty unless connected with ``watch``; ``recv`` returns early, with
        None, when one happens."""
        ...

    def wait(self, timeout: float | None, fds: Sequence[int] = ()) -> tuple[bool, list[int]]:
        """Wait for a message or for one of ``fds`` to be readable: (message ready, ready fds)."""
        ...

    def close(self) -> None: ...
