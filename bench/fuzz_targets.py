"""What faces the network, as fuzz targets: bytes in, and nothing may escape but the errors
these parts are meant to raise.

- ``codec``: frames (signed with the right key half the time, so msgpack and the schemas are
  reached too) into both codecs: only CodecError may come out.
- ``agent``: messages that passed the codec (so from a peer that holds the token) into the
  agent's handlers and its trial channel: only Shutdown (a shutdown message) may come out.
- ``kernel``: the same for the kernel's handlers, from a few peers, in any order.

bench/fuzz.py drives them with atheris; tests/test_fuzz_targets.py runs each on random input.
"""
from __future__ import annotations

import asyncio
import hmac
import os
import sys
from typing import Any, Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import msgpack  # noqa: E402

from transports.codec import (AGENT_TO_KERNEL, KERNEL_TO_AGENT, PROTOCOL, CodecError, agent_codec,  # noqa: E402
                              kernel_codec, token_key)

KEY = token_key("fuzz-targets-token-0123456789")


class Bytes:
    """Reads fuzzer bytes as small choices, numbers and strings (an exhausted input reads zeros)."""

    def __init__(self, data: bytes):
        self.data, self.i = data, 0

    def byte(self) -> int:
        b = self.data[self.i] if self.i < len(self.data) else 0
        self.i += 1
        return b

    def take(self, n: int) -> bytes:
        out = self.data[self.i:self.i + n]
        self.i += n
        return out

    def pick(self, options: list) -> Any:
        return options[self.byte() % len(options)]

    def value(self, depth: int = 0) -> Any:
        kind = self.byte() % (9 if depth < 2 else 6)
        if kind == 0:
            return None
        if kind == 1:
            return bool(self.byte() & 1)
        if kind == 2:
            return int.from_bytes(self.take(4), "little", signed=True)
        if kind == 3:
            return self.pick([0.0, -1.5, 1e308, float("inf"), float("nan"), 3.25])
        if kind == 4:
            return self.take(self.byte() % 16).decode("utf-8", "replace")
        if kind == 5:
            return self.take(self.byte() % 16)
        if kind == 6:
            return [self.value(depth + 1) for _ in range(self.byte() % 4)]
        return {self.key(i): self.value(depth + 1) for i in range(self.byte() % 4)}

    def key(self, i: int = 0) -> Any:
        """A map key: usually a string, sometimes another scalar msgpack allows."""
        return self.pick([str(i), i, None, b"k", True, -1.5, self.take(self.byte() % 8).decode("utf-8", "replace")])

    def typed(self, name: str, kinds: tuple) -> Any:
        """A value of one of ``kinds`` (a schema's field types), so handlers are reached."""
        if name == "points":
            return [[self.pick([0, 1, 2.5, -1]), self.pick([0.1, 0.9, -3.0, 1e9])] for _ in range(self.byte() % 3)]
        kind = self.pick(list(kinds))
        if kind is bool:
            return bool(self.byte() & 1)
        if kind is int:
            return self.pick([0, 1, 2, 3, -1, 2**31, int.from_bytes(self.take(2), "little")])
        if kind is float:
            return self.pick([0.0, 0.5, 1.5, -2.0, 1e12, float("inf")])
        if kind is str:
            return self.pick(["a", "b", "", "ok", "stopped", "error", self.take(self.byte() % 12).decode("utf-8", "replace")])
        if kind is bytes:
            return self.take(self.byte() % 12)
        if kind is dict:
            return {self.pick(["x", "score", "lr", "a"]): self.value(1) for _ in range(self.byte() % 3)}
        if kind is list:
            return [self.value(1) for _ in range(self.byte() % 3)]
        if kind is type(None):
            return None
        return self.value()

    def message(self, table: dict[str, dict]) -> dict[str, Any]:
        """A message of a type in ``table``: mostly the right fields and types, sometimes not."""
        kind = self.pick(sorted(table))
        msg = {"v": PROTOCOL, "type": kind}
        for name, kinds in table[kind].items():
            roll = self.byte() % 16
            if roll:
                msg[name] = self.typed(name, kinds) if roll > 1 else self.value()
        if self.byte() % 8 == 0:
            msg[self.key()] = self.value()
        return msg


def signed(payload: bytes) -> list[bytes]:
    return [hmac.digest(KEY, payload, "sha256"), payload]


def _packed(msg: Any) -> bytes | None:
    try:
        return msgpack.packb(msg, use_bin_type=True)
    except Exception:
        return None


# -- codec -------------------------------------------------------------------------------------
_CODECS = (kernel_codec(KEY), agent_codec(KEY))


def codec_target(data: bytes) -> None:
    src = Bytes(data)
    mode = src.byte() % 3
    if mode == 0:  # raw frames
        frames = [src.take(src.byte() % 64) for _ in range(src.byte() % 4)]
    elif mode == 1:  # a signed payload of fuzzed bytes
        frames = signed(src.take(len(data)))
    else:  # a signed, well-formed msgpack message with fuzzed fields
        payload = _packed(src.message(src.pick([AGENT_TO_KERNEL, KERNEL_TO_AGENT])))
        if payload is None:
            return
        frames = signed(payload)
    for codec in _CODECS:
        try:
            codec.decode(frames)
        except CodecError:
            pass


def _decoded(src: Bytes, table: dict, codec) -> dict | None:
    payload = _packed(src.message(table))
    if payload is None:
        return None
    try:
        return codec.decode(signed(payload))
    except CodecError:
        return None


# -- the agent's handlers ----------------------------------------------------------------------
class _Conn:
    """Stands for the agent's socket: sends are dropped, nothing arrives."""

    def send(self, frames):
        pass

    def recv(self, timeout):
        return None

    def recv_nowait(self):
        return None

    def link_changes(self):
        return []

    def close(self):
        pass


def _agent():
    from kernel.agent import Agent

    agent = Agent("inproc://fuzz", "fuzz-targets-token-0123456789", agent_id="fuzz", on_log=lambda line: None)
    agent.conn = agent.outbox.conn = _Conn()
    agent.fn, agent.names, agent.echo = (lambda hparams: {"score": 1.0}), ["hparams"], False
    return agent


_AGENT: list = []


def agent_target(data: bytes) -> None:
    from kernel.agent.inprocess import SocketChannel
    from kernel.reporter import Shutdown

    if not _AGENT:
        _AGENT.append(_agent())
    agent, src = _AGENT[0], Bytes(data)
    channel = SocketChannel(agent, trial_id=1, verdicts=False)
    for _ in range(1 + src.byte() % 4):
        msg = _decoded(src, KERNEL_TO_AGENT, agent.codec)
        if msg is None or msg["type"] == "welcome":
            continue  # a welcome carries code to run: trusted by design, not fuzzed
        if msg["type"] == "trial":
            msg["run"] = None  # a fresh process per run is covered by the distributed tests
        try:
            channel._take(msg)
            agent.handle(msg)
        except Shutdown:
            pass


# -- the kernel's handlers ---------------------------------------------------------------------
class _Listener:
    from transports import parse as _parse

    address = _parse("inproc://fuzz-kernel")
    url = address.url
    refused = 0

    async def recv_batch(self, limit=1024):
        await asyncio.Event().wait()

    def send(self, peer, frames):
        return peer != b"gone"

    def close(self):
        pass


def _kernel(loop: asyncio.AbstractEventLoop):
    import tempfile

    from kernel.controller import DONE, Controller, TrialSpec
    from kernel.driver import Kernel
    from kernel.journal import ExperimentFolder

    class Endless(Controller):
        metric = "score"

        def next_trial(self, trial_id):
            return TrialSpec({"x": trial_id}, gang=2 if trial_id % 5 == 4 else 1) if trial_id < 10_000 else DONE

        def on_metric(self, trial, step, value):
            return value > 0.5

    async def make():
        kernel = Kernel(experiment="fuzz", context_name="Fuzz", function=b"fn", controller=Endless(),
                        listener=_Listener(), codec=kernel_codec(KEY),
                        folder=ExperimentFolder(tempfile.mkdtemp(prefix="lagom-fuzz-")), agent_timeout=None)
        kernel._outcome = loop.create_future()
        return kernel

    return loop.run_until_complete(make())


_KERNEL: list = []
PEERS = [b"a", b"b", b"gone"]


def kernel_target(data: bytes) -> None:
    if not _KERNEL:
        loop = asyncio.new_event_loop()
        _KERNEL.extend([loop, _kernel(loop)])
    kernel, src = _KERNEL[1], Bytes(data)
    for _ in range(1 + src.byte() % 6):
        peer = src.pick(PEERS)
        msg = _decoded(src, AGENT_TO_KERNEL, kernel.codec)
        if msg is None:
            continue
        agent = kernel.agents.get(peer)
        if agent is None and msg["type"] != "hello":
            continue  # the receive loop counts it as unknown-peer: no handler sees it
        kernel._handlers[msg["type"]](agent, peer, msg)
    if kernel.ended:  # an input that legitimately ended the experiment: start a fresh one
        _KERNEL.clear()


TARGETS: dict[str, Callable[[bytes], None]] = {"codec": codec_target, "agent": agent_target,
                                               "kernel": kernel_target}
