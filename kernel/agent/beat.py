"""The agent's heartbeat: a thread with a socket of its own, beating while the function runs.

ZeroMQ sockets are not shared between threads, so the beat socket has its own routing id (the
agent's plus ``#beat``) and its own codec. A frozen or vanished process stops beating and the
kernel declares it lost. The kernel also sends ``kill`` here, the one message that must reach
an agent whose main thread is stuck in a function that ignores stops, and ``skip``, which takes
back a trial queued behind a long one. It beats once as it starts, so the kernel can reach it
from then on. Between beats it sends a running trial's coalesced broadcasts that have waited
too long (serve.SocketChannel).
"""
from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import zmq

from transports import connect
from transports.codec import CodecError, agent_codec

from ..registry import BEAT_SUFFIX
from .router import Router

if TYPE_CHECKING:
    from .serve import Agent


TICK_S = 0.05  # how often the thread looks for a trial's broadcasts left waiting (Outbox.flush_stale)


class Heartbeat(threading.Thread):
    def __init__(self, agent: "Agent"):
        super().__init__(name=f"lagom-beat-{agent.id}", daemon=True)
        self.agent = agent
        self._stop_event = threading.Event()
        self._router = Router({}, agent.log)  # the agent's own handlers belong to its main thread

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        agent = self.agent
        conn = connect(agent.url, identity=agent.id.encode() + BEAT_SUFFIX, curve=agent.curve)
        codec = agent_codec(agent.key)  # a packer of its own: msgpack packers are not thread-safe
        frames = codec.encode("heartbeat")
        next_beat = time.monotonic()  # at once: until it speaks, the kernel's ROUTER cannot reach it
        try:
            while not self._stop_event.is_set():
                got = conn.recv(timeout=max(0.0, min(TICK_S, next_beat - time.monotonic())))
                if got is not None:
                    self._heard(codec, got)
                agent.outbox.flush_stale()
                if time.monotonic() >= next_beat:
                    conn.send(frames)
                    next_beat = time.monotonic() + agent.heartbeat
        except zmq.ContextTerminated:
            pass  # an in-process agent's kernel closed the shared context: the experiment is over
        finally:
            conn.close()

    def _heard(self, codec, frames: list[bytes]) -> None:
        try:
            msg = codec.decode(frames)
        except CodecError:
            return
        self._router.route(msg, {"kill": self._on_kill, "skip": lambda m: self.agent.skip(m["trial"], codec)})

    def _on_kill(self, msg: dict) -> None:
        if msg["trial"] == self.agent.current:
            self.agent.restart(msg["trial"])
