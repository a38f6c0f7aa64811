"""CurveZMQ admission (ZAP) on the kernel's own loop, every waiting request answered at once.

libzmq asks the handler bound at ``inproc://zeromq.zap.01`` of a context about each CurveZMQ
handshake, and holds the handshake until it answers. pyzmq's asyncio authenticator awaits a
poll for every request, so a loop that is busy serving trials answered one handshake per turn:
1,024 agents arriving mid-run (2,048 handshakes, each agent has a heartbeat socket too) were
not all admitted in 14 s. This handler is woken by the socket's descriptor and answers all
that wait, each in a few microseconds (a key compared with the admitted ones).
"""
from __future__ import annotations

import asyncio
from typing import Callable

import zmq
from zmq.utils import z85

ENDPOINT = "inproc://zeromq.zap.01"
VERSION = b"1.0"


class ZapHandler:
    """``admit(z85_key)`` says whether a client key may connect; call :meth:`start` on the
    loop that runs the kernel (the handler is bound at once, before any handshake can start)."""

    def __init__(self, ctx: zmq.Context, admit: Callable[[bytes], bool]):
        self._admit = admit
        self._sock = ctx.socket(zmq.REP)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.bind(ENDPOINT)
        self._fd = self._sock.getsockopt(zmq.FD)
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        loop.add_reader(self._fd, self.answer_waiting)
        self.answer_waiting()  # requests that came before the loop watched

    def answer_waiting(self) -> None:
        """The descriptor is edge-triggered: read until nothing waits, or a request would sit
        unseen until the next one arrived."""
        sock = self._sock
        while sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            sock.send_multipart(self.reply(sock.recv_multipart(zmq.NOBLOCK)))

    def reply(self, frames: list[bytes]) -> list[bytes]:
        request_id = frames[1] if len(frames) > 1 else b""
        if len(frames) != 7 or frames[0] != VERSION or frames[5] != b"CURVE":
            return [VERSION, request_id, b"400", b"not a CURVE request of ZAP 1.0", b"", b""]
        key = z85.encode(frames[6])
        if self._admit(key):
            return [VERSION, request_id, b"200", b"OK", key, b""]
        return [VERSION, request_id, b"400", b"unknown key", b"", b""]

    def stop(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            try:
                self._loop.remove_reader(self._fd)
            except RuntimeError:  # another thread's loop: it stops watching when it closes
                pass
        self._sock.close(linger=0)
