"""The agent: say hello, take the function from the welcome, then serve trials until shutdown.

The serve loop waits on the socket with the heartbeat interval as timeout and routes each
message through a handler table; it gives up when the kernel has been silent for ``patience``
seconds. A trial runs on the agent's own thread, so the training function and the reporter
share the socket (inprocess.py) with nothing in between; a distributed run
goes to a fresh child process (child.py). Heartbeats come from a thread of their own (beat.py).

Short trials are handed out ahead: the kernel may send trials while one runs (they wait in
``queue`` and start the moment it ends), and what the agent sends waits in its outbox for a
moment (outbox.py) so that a run of short trials costs a few batches, not three messages
each. A "skip" drops a queued trial, answered by a "skipped" final. Every message the kernel
sends is routed by one table (router.py), whatever the agent is doing.
"""
from __future__ import annotations

import collections
import os
import socket
import sys
import time
import uuid
from typing import Any, Callable

from transports import connect
from transports.codec import PROTOCOL, CodecError, agent_codec, final_fields, token_key
from transports.curve import derive

from ..reporter import KernelAway, KernelGone, Shutdown
from . import child, compiles, welcome
from .beat import Heartbeat
from .cli import RESTARTS_ENV, TOKEN_ENV
from .host import address_towards, devices, free_port
from .inprocess import LOOK_S, in_process_strategy, run_here
from .outbox import Outbox
from .pack import run_pack, take_pack
from .router import Router


class Agent:
    """A worker: connects to the kernel at ``url`` and runs what it is sent.

    ``wait``: seconds to wait for the kernel's welcome; ``patience``: seconds of silence after
    which it leaves; ``echo``: also print a trial's output here (besides its log). The process
    it runs in: ``own_process`` (it owns it, from ``python -m kernel.agent`` with ``argv``: it
    may restart it in place, and sets up JAX's compilation cache), ``box`` (a Blackbox, where a
    local launcher reads which trial ran should it die), ``keep_errors`` (the caller's own
    process: the trials' exceptions are kept there by trial id, so a single run raises the
    original).
    ``run()`` returns 0 when told to shut down, 1 when no kernel answered, 2 when it went silent.
    """

    def __init__(self, url: str, token: str, *, agent_id: str | None = None, wait: float = 60.0,
                 patience: float = 30.0, echo: bool = True, insecure: bool = False,
                 on_log: Callable[[str], None] | None = None, own_process: bool = False,
                 argv: list[str] | None = None, box: Any = None,
                 keep_errors: dict[int, BaseException] | None = None):
        if not token:
            raise ValueError(f"no token: set {TOKEN_ENV} or pass --token-file")
        self.url = url
        self.id = agent_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.key = token_key(token)
        # tcp:// is CurveZMQ unless the kernel was started insecure: the handshake proves the
        # kernel holds the key derived from this token before a byte of code is accepted.
        self.curve = None if insecure else derive(token)[1]
        self.codec = agent_codec(self.key)
        self.wait, self.patience, self.echo = wait, patience, echo
        self.heartbeat = 1.0
        self.rejected = 0
        self.current: int | None = None  # the trial running now
        self.queue: collections.deque[dict] = collections.deque()  # trials handed out ahead, in order
        # Messages the heartbeat thread took off the socket while a trial ran, for the main thread.
        self.read_ahead: collections.deque[list[bytes]] = collections.deque()
        self.outbox = Outbox(self.codec.encode_all)  # what waits to be sent; its lock guards the socket
        # In a process of its own (main), not the caller's: it may restart it, and sets up JAX's cache.
        self.own_process, self.argv, self.box, self.keep_errors = own_process, list(argv or []), box, keep_errors
        self.log = on_log or (lambda line: print(f"[agent {self.id}] {line}", file=sys.__stderr__, flush=True))
        self.fn: Callable | None = None
        self.data: dict[str, Any] = {}  # objects handed to every trial by name (kernel.with_data)
        self.injector = None
        self.function_bytes: bytes | None = None
        self.inject_bytes: bytes | None = None
        self.names: list[str] = []
        self._last_heard = self._last_hello = time.monotonic()
        self._link_down: float | None = None  # when the kernel's end of the connection closed
        self._looked = 0.0  # when the socket was last looked at between queued trials
        self.other_version: str | None = None  # the kernel speaks another protocol: why this agent leaves
        self.router = Router({"trial": self.queue.append, "welcome": self._on_welcome, "shutdown": self._on_shutdown,
                              "skip": self._on_skip, "rejoin": self.rejoin}, self.log)
        self.single = in_process_strategy()  # imports no JAX until used
        self.packed: Any = None  # the packed strategy, made on the first pack (pack.py)

    # -- wire -------------------------------------------------------------------------------
    def send(self, msg_type: str, **fields: Any) -> None:
        """Send now (after whatever waits in the outbox, so the kernel hears things in order)."""
        self.outbox.send(msg_type, fields)

    def decode(self, frames: list[bytes]) -> dict | None:
        """The message in ``frames``, or None (dropped and counted) if it is not the kernel's."""
        try:
            msg = self.codec.decode(frames)
        except CodecError as exc:
            self.rejected += 1
            if exc.reason == "protocol":  # signed with this experiment's token: the kernel, of another version
                self.other_version = (f"the kernel at {self.url} speaks another protocol ({exc}): install the "
                                      f"same lagom-kernel version on this host as on the kernel's")
            elif self.rejected <= 3:
                self.log(f"dropped a message that is not from this experiment's kernel ({exc.reason})")
            return None
        self._last_heard = time.monotonic()
        return msg

    def next_message(self) -> dict | None:
        """The next message from the kernel, or None after one heartbeat interval of silence;
        raises KernelGone once it has been silent for ``patience`` seconds."""
        with self.outbox.lock:
            frames = self.recv(timeout=self.heartbeat)
            changes = self.conn.link_changes()
        if changes:
            self._link(changes)
        if frames is not None:
            return self.decode(frames)
        if time.monotonic() - self._last_heard > self.patience:
            raise KernelGone(f"the kernel at {self.url} has been silent for {self.patience:.0f}s; leaving")
        return None

    def recv(self, timeout: float | None = None) -> list[bytes] | None:
        """The kernel's next message (the caller holds the wire): what the heartbeat thread
        read ahead first, then the socket's; ``timeout`` None: without waiting."""
        if self.read_ahead:
            return self.read_ahead.popleft()
        return self.conn.recv_nowait() if timeout is None else self.conn.recv(timeout=timeout)

    @property
    def quiet(self) -> bool:
        """The kernel beats every heartbeat: three missed mean it died, or cannot hear us; its
        end of the connection closing means so at once."""
        return self._link_down is not None or time.monotonic() - self._last_heard > 3 * self.heartbeat

    def _link(self, changes: list[str]) -> None:
        """The socket monitor's word: the kernel's end closed (its process died, or a cut outlived
        ZeroMQ's own heartbeat), so what this agent holds runs elsewhere; back again (a resumed
        kernel, or the link healed), so say hello now rather than at the next quiet beat."""
        for change in changes:
            if change == "down" and self._link_down is None:
                self._link_down = time.monotonic()
                self.log("the kernel's end of the connection closed; saying hello when it is back")
                self._drop_queue_if_quiet()
            elif change == "up" and self._link_down is not None:
                self.log(f"the kernel's end is back after {time.monotonic() - self._link_down:.1f}s; saying hello again")
                self._link_down = None
                self._hello()

    def _hello(self) -> None:
        self._last_hello = time.monotonic()
        self.queue.clear()  # a kernel that hears hello again runs this agent's old trials elsewhere
        self.send("hello", agent=self.id, host=socket.gethostname(), pid=os.getpid(), devices=devices(),
                  protocol=PROTOCOL, address=address_towards(self.url), port=free_port())

    def _rejoin_if_quiet(self) -> None:
        """Say hello again while the kernel is quiet: a resumed kernel at the same address, or
        this one once a partition heals, welcomes this agent back (until ``patience`` runs out)."""
        if self.quiet and time.monotonic() - self._last_hello > 3 * self.heartbeat:
            self.log(f"no word from the kernel for {time.monotonic() - self._last_heard:.0f}s; saying hello again")
            self._hello()

    # -- lifecycle --------------------------------------------------------------------------
    def run(self) -> int:
        """Serve the kernel until it says shutdown (0) or is gone (1: never answered, 2: went silent)."""
        self.conn = self.outbox.conn = connect(self.url, identity=self.id.encode(), curve=self.curve, watch=True)
        compiles.watch()  # each trial's compile time, once a function imports JAX
        beat = Heartbeat(self)
        try:
            self._hello()
            if not self._await_welcome():
                return 1
            self.conn.link_changes()  # attempts before the kernel answered say nothing of it now
            beat.start()
            while True:
                if self.queue and time.monotonic() - self._looked >= LOOK_S:
                    self._take_waiting()  # skips for queued trials, more trials, a shutdown, beats
                    self._drop_queue_if_quiet()
                if self.queue:
                    self._run(self.queue.popleft())
                    continue
                with self.outbox.lock:
                    self.outbox.flush()  # nothing left to run: the kernel hears everything now
                msg = self.next_message()
                if self.other_version is not None:  # a kernel of another version took over (a resume)
                    raise KernelGone(self.other_version)
                if msg is None:
                    self._rejoin_if_quiet()
                    continue
                self.handle(msg)
        except KernelGone as exc:
            self.log(str(exc))
            return 2
        except Shutdown:
            return 0
        finally:
            beat.stop()
            self.conn.close()

    def _await_welcome(self) -> bool:
        deadline = time.monotonic() + self.wait
        while time.monotonic() < deadline:
            frames = self.conn.recv(timeout=min(1.0, max(0.01, deadline - time.monotonic())))
            msg = self.decode(frames) if frames is not None else None
            if self.other_version is not None:
                self.log(self.other_version)
                return False
            if msg is not None and msg["type"] == "welcome":
                self._on_welcome(msg)
                return True
            if msg is not None and msg["type"] == "shutdown":
                return False
        self.log(f"no answer from a kernel at {self.url} within {self.wait:.0f}s: check the URL, "
                  f"that the token is the one the kernel printed, and --insecure if the kernel has it")
        return False

    def restart(self, trial_id: int) -> None:
        """The kernel ended a trial that would not stop: start this process afresh (same pid,
        same command line, a new agent id), which is the only way to end a running function."""
        if not self.own_process:
            self.log(f"trial {trial_id} would not stop; an agent in a thread cannot end it")
            return
        self.log(f"trial {trial_id} would not stop: restarting this agent")
        os.environ[RESTARTS_ENV] = str(int(os.environ.get(RESTARTS_ENV, "0")) + 1)
        for stream in (sys.__stdout__, sys.__stderr__):
            stream.flush()
        os.execv(sys.executable, [sys.executable, "-m", "kernel.agent", *self.argv])

    def _drop_queue_if_quiet(self) -> None:
        """Silence (a partition, a dead kernel) means this agent has been given up on and what
        it holds runs elsewhere: drop it, and go back to saying hello."""
        if self.queue and self.quiet:
            self.log(f"no word from the kernel for {time.monotonic() - self._last_heard:.0f}s; dropped the "
                      f"{len(self.queue)} trials it had handed out ahead (they run elsewhere)")
            self.queue.clear()

    def _take_waiting(self) -> None:
        """Handle what has arrived, without waiting. Between queued trials this looks at most
        once every LOOK_S (looking costs ZeroMQ a round of its mailbox: a tenth of a trivial
        trial's time here); a skip that comes later than that finds its trial run, as any other."""
        self._looked = time.monotonic()
        while True:
            with self.outbox.lock:
                frames = self.recv()
            if frames is None:
                return
            msg = self.decode(frames)
            if msg is not None:
                self.handle(msg)

    # -- handlers ---------------------------------------------------------------------------
    def handle(self, msg: dict) -> None:
        """A message read between trials (a trial's own stop or verdict, read then, is late)."""
        self.router.route(msg)

    def rejoin(self, msg: dict) -> None:
        """The kernel gave this agent up (a partition): everything it holds runs elsewhere, and
        so does a trial it runs now (stale: its final would not count)."""
        self.log(f"the kernel had given this agent up; dropped {len(self.queue)} trials handed out ahead, "
                  f"saying hello again")
        self._hello()
        if self.current is not None:
            raise KernelAway(f"trial {self.current} runs elsewhere")

    def _on_skip(self, msg: dict) -> None:
        self.skip(msg["trial"])

    def skip(self, trial_id: int, codec: Any = None) -> None:
        """Drop a queued trial the kernel took back (its time is up, or another agent is free):
        the "skipped" final says it never started. Nothing if it is not queued (it started).

        The kernel asks on both sockets: the main thread hears it between trials, the heartbeat
        thread (with its ``codec``) while a long or hung trial runs, which is when an idle agent
        elsewhere wants what waits behind it; trials handed out since that trial began are
        still unread on the socket then, so that thread reads them into the queue first."""
        if not self.outbox.lock.acquire(timeout=-1 if codec is None else 0.05):
            return  # the main thread holds the wire: it is between trials, and hears this itself
        try:
            if codec is not None:
                self._read_trials_ahead(codec)
            for queued in list(self.queue):  # a copy: the other thread may take from the queue
                if queued["trial"] == trial_id:
                    try:
                        self.queue.remove(queued)
                    except ValueError:  # the main thread started it just now
                        return
                    self.outbox.post("final", final_fields(trial_id, outcome="skipped", started=time.time()))
                    if codec is not None:
                        self.outbox.flush()
                    return
        finally:
            self.outbox.lock.release()

    def _read_trials_ahead(self, codec: Any) -> None:
        """From the heartbeat thread, holding the wire: take what waits on the socket; trials
        handed out ahead go to the queue, anything else (and all after it, in order) waits in
        ``read_ahead`` for the main thread."""
        while (frames := self.conn.recv_nowait()) is not None:
            if not self.read_ahead:
                try:
                    msg = codec.decode(frames)
                except CodecError:
                    msg = None
                items = msg["items"] if msg is not None and msg["type"] == "batch" else [msg]
                if all(item is not None and item["type"] == "trial" for item in items):
                    self._last_heard = time.monotonic()
                    self.queue.extend(items)
                    continue
            self.read_ahead.append(frames)

    def _on_shutdown(self, msg: dict) -> None:
        raise Shutdown(msg["reason"])

    def _on_welcome(self, msg: dict) -> None:
        welcome.take(self, msg)

    def _run(self, msg: dict) -> None:
        """Run one trial message to its final (sent, or left in the outbox)."""
        box = self.box
        if box is None:
            self._run_one(msg)
            return
        box.running(msg["trial"])
        try:
            self._run_one(msg)
        finally:
            box.idle()

    def _run_one(self, msg: dict) -> None:
        if self.fn is None:
            self.send("final", **final_fields(msg["trial"], outcome="error", started=time.time(),
                                              error="this agent could not load the training function"))
        elif msg["run"] is not None:
            self.current = msg["trial"]
            try:
                child.ChildRun(self, msg).run()
            except KernelAway:  # given up on: the kernel runs it elsewhere
                self.log(f"the kernel had given this agent up during trial {msg['trial']}; left it")
            finally:
                self.current = None
        elif msg.get("pack"):
            run_pack(self, take_pack(msg, self.queue))
        else:
            run_here(self, msg)
            self.outbox.after_trial(len(self.queue))
