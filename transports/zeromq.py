"""ZeroMQ transport for ``tcp://``, ``ipc://`` and ``inproc://``: moves lists of frames, nothing more.

The kernel side is one ROUTER (every agent, peers told apart by routing id) watched by the event
loop itself: ``loop.add_reader`` on ZeroMQ's file descriptor, a plain future to sleep on, then
non-blocking reads that drain what has arrived. No zmq.asyncio poll, no task per wakeup:
awaiting every message costs 4-5x more CPU, and a loop that never yields starves timers, so the
caller gets batches and yields between them.

The agent side is a plain blocking DEALER, used from one thread.

``inproc://`` is the in-process transport for tests and single runs: real ZeroMQ, real frames,
real codec, without a network stack. Its peers must share the listener's context, which is
kept in a small table keyed by URL.

Each listener owns its ZeroMQ context and everything bound to it: the ROUTER, and with
CurveZMQ the ZAP handler that admits agents' keys (a handler serves only its own context). On
close the context is terminated once the last socket in it has closed.
"""
from __future__ import annotations

import asyncio
import os
import tempfile
import threading
from pathlib import Path

import zmq
import zmq.auth.thread
from zmq.utils.monitor import recv_monitor_message

from .address import Address, parse
from .curve import Admission, Credentials
from .zap import ZapHandler

SCHEMES = ("tcp", "ipc", "inproc")
HWM = 100_000  # absorb bursts of metrics instead of dropping or blocking on them
_ZMTP_HEARTBEAT_MS = (1000, 3000)  # a backstop under the application heartbeats
_INPROC: dict[str, zmq.Context] = {}


BACKLOG = 4096


def _common_options(sock: zmq.Socket, max_size: int, linger_ms: int) -> None:
    sock.setsockopt(zmq.LINGER, linger_ms)  # the default (infinite) hangs close() on a dead peer
    sock.setsockopt(zmq.MAXMSGSIZE, max_size + 4096)  # a peer sending more is disconnected
    sock.setsockopt(zmq.SNDHWM, HWM)
    sock.setsockopt(zmq.RCVHWM, HWM)
    sock.setsockopt(zmq.HEARTBEAT_IVL, _ZMTP_HEARTBEAT_MS[0])
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, _ZMTP_HEARTBEAT_MS[1])


def _zap(ctx: zmq.Context, admission: Admission):
    """The ZAP handler: on the kernel's own event loop when there is one (transports/zap.py);
    a handler thread must win the GIL from a busy loop for every handshake (up to a 5 ms switch
    interval each): with 1,024 agents arriving during a run, hundreds were not admitted."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        auth = zmq.auth.thread.ThreadAuthenticator(ctx)
        auth.start()
        auth.configure_curve_callback(domain="*", credentials_provider=admission)
        return auth
    handler = ZapHandler(ctx, lambda key: admission.callback("*", key))
    handler.start(loop)
    return handler


class ZmqListener:
    """The kernel's end: bind, receive batches of ``(peer, frames)``, send to a peer."""

    def __init__(self, url: str, *, max_size: int, curve: Credentials | None = None):
        address = parse(url)
        self._owner = zmq.Context()  # this listener's own: its ZAP handler serves it alone
        self._auth: ZapHandler | zmq.auth.Authenticator | None = None
        self.admission: Admission | None = None
        self._ipc_path: Path | None = None
        self._sock = self._owner.socket(zmq.ROUTER)
        _common_options(self._sock, max_size, linger_ms=500)
        if curve is not None and address.scheme == "tcp":
            self._secure(curve)
        self._sock.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a send to a gone peer raises, not vanishes
        # Connections waiting to be accepted (ZeroMQ's default: 100). A thousand agents arriving
        # within a second (two sockets each) overflowed it while the kernel served trials: the
        # refused SYNs came back after TCP's 1, 3, 7 s backoff, and agents waited 13 s to join.
        # The OS caps it (net.core.somaxconn, 4096 here).
        self._sock.setsockopt(zmq.BACKLOG, BACKLOG)
        self.address: Address = self._bind(address)
        self._fd = self._sock.getsockopt(zmq.FD)
        self._reader: asyncio.AbstractEventLoop | None = None  # the loop watching _fd
        self._wakeup: asyncio.Future | None = None  # set while recv_batch sleeps
        self._closed = False

    def _secure(self, curve: Credentials) -> None:
        """CurveZMQ, with the agents' keys admitted by a ZAP handler on this context, started
        before the bind so that no handshake can happen without it."""
        self.admission = Admission(curve.clients)
        self._auth = _zap(self._owner, self.admission)
        self._sock.curve_server = True
        self._sock.curve_secretkey = curve.secret
        self._sock.curve_publickey = curve.public

    def _bind(self, address: Address) -> Address:
        if address.scheme == "tcp":
            host = address.host or "0.0.0.0"
            host = f"[{host}]" if ":" in host else host
            if ":" in host:
                self._sock.setsockopt(zmq.IPV6, 1)
            self._sock.bind(f"tcp://{host}:{address.port or '*'}")
        elif address.scheme == "ipc":
            path = Path(address.path)
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._sock.bind(f"ipc://{path}")
            self._ipc_path = path
        else:
            self._sock.bind(address.url)
            _INPROC[address.url] = self._owner
            return address
        return parse(self._sock.getsockopt_string(zmq.LAST_ENDPOINT))

    @property
    def url(self) -> str:
        return self.address.url

    @property
    def refused(self) -> int:
        """CurveZMQ handshakes refused: a client key pair not derived from the token."""
        return self.admission.denied if self.admission is not None else 0

    async def recv_batch(self, limit: int = 1024) -> list[tuple[bytes, list[bytes]]]:
        """Wait for at least one message, then return up to ``limit`` without waiting again."""
        while True:
            batch = self._drain(limit)
            if batch:
                return batch
            if self._sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                continue  # arrived since the drain
            loop = asyncio.get_running_loop()
            if self._reader is not loop:
                loop.add_reader(self._fd, self._readable)
                self._reader = loop
            self._wakeup = loop.create_future()
            try:
                await self._wakeup
            finally:
                self._wakeup = None

    def _readable(self) -> None:
        """ZeroMQ's descriptor signals a change of state, not a message: reading EVENTS clears
        the signal (or epoll would call again at once), and says whether input waits."""
        if self._closed:
            return
        if self._sock.getsockopt(zmq.EVENTS) & zmq.POLLIN and self._wakeup is not None \
                and not self._wakeup.done():
            self._wakeup.set_result(None)

    def _drain(self, limit: int) -> list[tuple[bytes, list[bytes]]]:
        out = []
        recv = self._sock.recv_multipart
        try:
            for _ in range(limit):
                frames = recv(zmq.NOBLOCK)
                out.append((frames[0], frames[1:]))
        except zmq.Again:
            pass
        return out

    def send(self, peer: bytes, frames: list[bytes]) -> bool:
        """Queue frames for ``peer``; False when the peer is gone or its queue is full."""
        try:
            self._sock.send_multipart([peer, *frames], zmq.NOBLOCK)
            return True
        except (zmq.Again, zmq.ZMQError):
            return False
        finally:
            # ZeroMQ's file descriptor is edge-triggered, and a send processes the socket's pending
            # commands, which can use up the edge that announced messages already waiting: the
            # receiver would then sleep on a queue that is not empty. Wake it whenever input waits.
            if self._wakeup is not None and not self._wakeup.done() \
                    and self._sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                self._wakeup.set_result(None)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._reader is not None and not self._reader.is_closed():
            try:
                self._reader.remove_reader(self._fd)
            except RuntimeError:  # another thread's loop: it stops watching when it closes
                pass
            self._reader = None
        # The shutdown just queued for every agent must get out: close() returns at once and
        # term() (on its own thread, below) waits up to the linger for the queues to drain.
        # 200 ms was too short for 1,024 CurveZMQ peers on 2 busy cores: agents missed it.
        self._sock.close(linger=2000)
        if self._auth is not None:
            self._auth.stop()
        if self.address.scheme == "inproc":
            _INPROC.pop(self.address.url, None)
        if self._ipc_path is not None:
            try:
                self._ipc_path.unlink()
            except OSError:
                pass
        # term() returns once every socket of the context has closed, an in-process agent's
        # included: wait for that on a thread of its own, never here.
        threading.Thread(target=self._owner.term, name="lagom-zmq-term", daemon=True).start()


class ZmqConnection:
    """An agent's end: a blocking DEALER with a fixed routing id."""

    def __init__(self, url: str, *, identity: bytes, max_size: int, curve=None, watch: bool = False):
        address = parse(url)
        if address.scheme == "inproc":
            shared = _INPROC.get(address.url)
            if shared is None:
                raise ConnectionError(f"no kernel listens on {address.url} in this process")
            self._ctx = zmq.Context.shadow(shared.underlying)
        else:
            self._ctx = zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.DEALER)
        _common_options(self._sock, max_size, linger_ms=1000)
        self._sock.setsockopt(zmq.IDENTITY, identity)
        if curve is not None and address.scheme == "tcp":  # the handshake fails with a wrong kernel
            self._sock.curve_serverkey = curve.server_public
            self._sock.curve_publickey = curve.public
            self._sock.curve_secretkey = curve.secret
        self._poller = zmq.Poller()
        self._poller.register(self._sock, zmq.POLLIN)
        self._changes: list[str] = []
        self._monitor = None  # a socket monitor: the kernel's end closing is known at once, not after beats
        if watch and address.scheme != "inproc":
            self._monitor = self._sock.get_monitor_socket(zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED)
            self._poller.register(self._monitor, zmq.POLLIN)
        self._sock.connect(address.url)

    def send(self, frames: list[bytes]) -> None:
        self._sock.send_multipart(frames, copy=len(frames[-1]) > 65536)

    def recv(self, timeout: float | None) -> list[bytes] | None:
        """The next message, or None after ``timeout`` seconds (None waits forever), or at once
        when the link changed (``link_changes``)."""
        ready = dict(self._poller.poll(None if timeout is None else int(timeout * 1000)))
        if self._monitor is not None and self._monitor in ready:
            self._read_link()
        if self._sock in ready:
            return self._sock.recv_multipart()
        return None

    def link_changes(self) -> list[str]:
        if self._monitor is not None:
            self._read_link()
        changes, self._changes = self._changes, []
        return changes

    def _read_link(self) -> None:
        while self._monitor.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            event = recv_monitor_message(self._monitor, zmq.NOBLOCK)["event"]
            self._changes.append("down" if event == zmq.EVENT_DISCONNECTED else "up")

    def wait(self, timeout: float | None, fds: list[int] = ()) -> tuple[bool, list[int]]:
        """Wait for a message or for one of ``fds`` to be readable: (message ready, ready fds)."""
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        for fd in fds:
            poller.register(fd, zmq.POLLIN)
        ready = dict(poller.poll(None if timeout is None else int(timeout * 1000)))
        return self._sock in ready, [fd for fd in fds if fd in ready]

    def recv_nowait(self) -> list[bytes] | None:
        if not self._sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:  # cheaper than raising Again
            return None
        try:
            return self._sock.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return None

    def close(self) -> None:
        if self._monitor is not None:
            self._sock.disable_monitor()
            self._monitor.close(linger=0)
        self._sock.close()


def private_ipc_url() -> str:
    """An ipc:// URL in a fresh 0700 folder, so only this user can connect."""
    folder = tempfile.mkdtemp(prefix="lagom-")
    os.chmod(folder, 0o700)
    return f"ipc://{folder}/kernel.sock"
