"""The agent: say hello, take the function from the welcome, then serve trials until shutdown.

The serve loop waits on the socket with the heartbeat interval as timeout and routes each
message through a handler table; it gives up when the kernel has been silent for ``patience``
seconds. A trial runs on the agent's own thread, so the training function and the reporter
share the socket (through :class:`SocketChannel`) with nothing in between; a distributed run
goes to a fresh child process (child.py). Heartbeats come from a thread of their own (beat.py).

Short trials are handed out ahead: the kernel may send trials while one runs (they wait in
``queue`` and start the moment it ends), and what the agent sends waits in ``outbox`` for a
moment (COALESCE_S) so that a run of short trials costs a few batches, not three messages
each. A "skip" drops a queued trial, answered by a "skipped" final.
"""
from __future__ import annotations

import collections
import os
import socket
import sys
import threading
import time
import uuid
from typing import Any, Callable

import cloudpickle

from transports import connect
from transports.codec import PROTOCOL, CodecError, agent_codec, final_fields, token_key
from transports.curve import derive

from .. import shipping
from ..injection import InjectionError, requested
from ..reporter import KernelAway, KernelGone, Reporter, Shutdown
from . import child, compiles, execute
from .beat import Heartbeat
from .cli import RESTARTS_ENV, TOKEN_ENV

PROVIDED = ("hparams", "reporter", "strategy")
COALESCE_S = 0.002  # broadcasts closer together than this travel together (unjudged trials only)
LOOK_S = 0.001  # an unjudged trial looks for a stop the kernel pushed at most this often


_single: Any = None


def single_strategy() -> Any:
    """The class of the in-process strategy ("single"), looked up once per process: the lookup
    reads every installed package's entry points (~30 ms). The zygote looks it up before it
    forks, so the agents it forks start without: 32 of them on 2 cores began their first
    trials 0.15 s apart, and that spread was the ramp-up of a search."""
    global _single
    if _single is None:
        from plugins.registry import load

        _single = load("lagom.strategies", "single")
    return _single


def _in_process_strategy() -> Any:
    """An instance of the in-process strategy, for the trials this agent runs in its process."""
    from plugins.registry import resolve
    from plugins.strategies import Strategy

    return resolve("lagom.strategies", single_strategy(), Strategy)


def _devices() -> list[str]:
    devices = [f"cpu:{os.cpu_count() or 1}"]
    gpus = os.environ.get("CUDA_VISIBLE_DEVICES")
    if gpus:
        devices += [f"gpu:{g}" for g in gpus.split(",") if g.strip()]
    return devices


def _address_towards(url: str) -> str:
    """This host's address as the kernel's network sees it (for peers of a distributed run)."""
    from transports import parse

    address = parse(url)
    if address.scheme != "tcp" or address.is_loopback:
        return "127.0.0.1"
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((address.host, address.port or 9))  # no packet is sent
            return s.getsockname()[0]
    except OSError:
        return socket.gethostname()


def _free_port() -> int:
    """A port that was free a moment ago: rank 0 of a distributed run hosts JAX's coordinator there."""
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


class Agent:
    """A worker: connects to the kernel at ``url`` and runs what it is sent.

    ``wait``: seconds to wait for the kernel's welcome; ``patience``: seconds of silence after
    which it leaves; ``echo``: also print a trial's output here (besides its log).
    ``run()`` returns 0 when told to shut down, 1 when no kernel answered, 2 when it went silent.
    """

    def __init__(self, url: str, token: str, *, agent_id: str | None = None, wait: float = 60.0,
                 patience: float = 30.0, echo: bool = True, insecure: bool = False,
                 on_log: Callable[[str], None] | None = None):
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
        # What waits to be sent, as [type, fields] (the running trial's broadcasts wait in its
        # channel): unsent since ``unsent_since``, holding ``outbox_finals`` finals.
        self.outbox: list[list] = []
        self.outbox_finals, self.unsent_since, self.last_sent = 0, None, 0.0
        # In a process of its own (main), not the caller's: it may restart it, and sets up JAX's cache.
        self.can_restart = self.own_process = False
        self.box = None  # a Blackbox: the trial it runs, for a launcher to read should it die
        self.keep_errors = False  # True in the caller's process: a single run re-raises the original
        self.argv: list[str] = []
        self._log = on_log or (lambda line: print(f"[agent {self.id}] {line}", file=sys.__stderr__, flush=True))
        self._fn: Callable | None = None
        self._data: dict[str, Any] = {}  # objects handed to every trial by name (kernel.with_data)
        self._injector = None
        self.function_bytes: bytes | None = None
        self.inject_bytes: bytes | None = None
        self.names: list[str] = []
        self._last_heard = self._last_hello = time.monotonic()
        self._looked = 0.0  # when the socket was last looked at between queued trials
        self.other_version: str | None = None  # the kernel speaks another protocol: why this agent leaves
        # The main socket is the main thread's; while a trial runs the heartbeat thread may send
        # its coalesced broadcasts, or read trials handed out ahead to answer a skip, on it, but
        # only holding this lock, which every use takes.
        self.wire = threading.Lock()
        self.channel: SocketChannel | None = None  # the running in-process trial's
        self._handlers: dict[str, Callable[[dict], None]] = {
            "trial": self.queue.append, "welcome": self._on_welcome, "shutdown": self._on_shutdown,
            "skip": self._on_skip, "batch": self._on_batch, "rejoin": self._on_rejoin,
        }  # stop, verdict, abort and heartbeat matter only while a trial runs
        self._single = _in_process_strategy()  # imports no JAX until used

    # -- wire -------------------------------------------------------------------------------
    def send(self, msg_type: str, **fields: Any) -> None:
        """Send now (after whatever waits in the outbox, so the kernel hears things in order)."""
        with self.wire:
            self.outbox.append([msg_type, fields])
            self.flush()

    def post(self, msg_type: str, fields: dict[str, Any]) -> None:
        """Queue a message in the outbox (the caller holds the wire lock); the serve loop, the
        next broadcast or the heartbeat thread sends it within COALESCE_S."""
        channel = self.channel
        if channel is not None:
            channel.stash()  # the trial's broadcasts go before what follows them
        self.outbox.append([msg_type, fields])
        self.outbox_finals += msg_type == "final"
        if self.unsent_since is None:
            self.unsent_since = time.monotonic()

    def flush(self, now: float | None = None) -> None:
        """Send everything unsent as one message (the caller holds the wire lock)."""
        channel = self.channel  # read once: the main thread may clear it meanwhile
        if channel is not None:
            channel.stash()
        items = self.outbox
        if items:
            self.outbox, self.outbox_finals = [], 0
            self.conn.send(self.codec.encode_all(items))
            self.last_sent = time.monotonic() if now is None else now
        self.unsent_since = None

    def _flush_after_trial(self) -> None:
        """A trial ended: send now unless more queued trials follow at once and little waits.
        The kernel refills the queue as finals arrive, so finals go out before it runs low."""
        with self.wire:
            if self.unsent_since is not None and (
                    not self.queue or len(self.queue) <= self.outbox_finals
                    or time.monotonic() - self.unsent_since >= COALESCE_S):
                self.flush()

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
                self._log(f"dropped a message that is not from this experiment's kernel ({exc.reason})")
            return None
        self._last_heard = time.monotonic()
        return msg

    def next_message(self) -> dict | None:
        """The next message from the kernel, or None after one heartbeat interval of silence;
        raises KernelGone once it has been silent for ``patience`` seconds."""
        with self.wire:
            frames = self.recv(timeout=self.heartbeat)
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

    def flush_stale(self) -> None:
        """From the heartbeat thread: send what has waited longer than COALESCE_S (a function
        went on computing after a burst of broadcasts, or a long trial followed short ones)."""
        since = self.unsent_since
        if since is None or time.monotonic() - since < COALESCE_S or not self.wire.acquire(blocking=False):
            return
        try:
            if self.unsent_since is not None and time.monotonic() - self.unsent_since >= COALESCE_S:
                self.flush()
        finally:
            self.wire.release()

    @property
    def quiet(self) -> bool:
        """The kernel beats every heartbeat: three missed mean it died, or cannot hear us."""
        return time.monotonic() - self._last_heard > 3 * self.heartbeat

    def _hello(self) -> None:
        self._last_hello = time.monotonic()
        self.queue.clear()  # a kernel that hears hello again runs this agent's old trials elsewhere
        self.send("hello", agent=self.id, host=socket.gethostname(), pid=os.getpid(), devices=_devices(),
                  protocol=PROTOCOL, address=_address_towards(self.url), port=_free_port())

    def _rejoin_if_quiet(self) -> None:
        """Say hello again while the kernel is quiet: a resumed kernel at the same address, or
        this one once a partition heals, welcomes this agent back (until ``patience`` runs out)."""
        if self.quiet and time.monotonic() - self._last_hello > 3 * self.heartbeat:
            self._log(f"no word from the kernel for {time.monotonic() - self._last_heard:.0f}s; saying hello again")
            self._hello()

    # -- lifecycle --------------------------------------------------------------------------
    def run(self) -> int:
        """Serve the kernel until it says shutdown (0) or is gone (1: never answered, 2: went silent)."""
        self.conn = connect(self.url, identity=self.id.encode(), curve=self.curve)
        compiles.watch()  # each trial's compile time, once a function imports JAX
        beat = Heartbeat(self)
        try:
            self._hello()
            if not self._await_welcome():
                return 1
            beat.start()
            while True:
                if self.queue and time.monotonic() - self._looked >= LOOK_S:
                    self._take_waiting()  # skips for queued trials, more trials, a shutdown, beats
                    self._drop_queue_if_quiet()
                if self.queue:
                    self._run(self.queue.popleft())
                    continue
                with self.wire:
                    self.flush()  # nothing left to run: the kernel hears everything now
                msg = self.next_message()
                if self.other_version is not None:  # a kernel of another version took over (a resume)
                    raise KernelGone(self.other_version)
                if msg is None:
                    self._rejoin_if_quiet()
                    continue
                self.handle(msg)
        except KernelGone as exc:
            self._log(str(exc))
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
                self._log(self.other_version)
                return False
            if msg is not None and msg["type"] == "welcome":
                self._on_welcome(msg)
                return True
            if msg is not None and msg["type"] == "shutdown":
                return False
        self._log(f"no answer from a kernel at {self.url} within {self.wait:.0f}s: check the URL, "
                  f"that the token is the one the kernel printed, and --insecure if the kernel has it")
        return False

    def restart(self, trial_id: int) -> None:
        """The kernel ended a trial that would not stop: start this process afresh (same pid,
        same command line, a new agent id), which is the only way to end a running function."""
        if not self.can_restart:
            self._log(f"trial {trial_id} would not stop; an agent in a thread cannot end it")
            return
        self._log(f"trial {trial_id} would not stop: restarting this agent")
        os.environ[RESTARTS_ENV] = str(int(os.environ.get(RESTARTS_ENV, "0")) + 1)
        for stream in (sys.__stdout__, sys.__stderr__):
            stream.flush()
        os.execv(sys.executable, [sys.executable, "-m", "kernel.agent", *self.argv])

    def _drop_queue_if_quiet(self) -> None:
        """Silence (a partition, a dead kernel) means this agent has been given up on and what
        it holds runs elsewhere: drop it, and go back to saying hello."""
        if self.queue and self.quiet:
            self._log(f"no word from the kernel for {time.monotonic() - self._last_heard:.0f}s; dropped the "
                      f"{len(self.queue)} trials it had handed out ahead (they run elsewhere)")
            self.queue.clear()

    def _take_waiting(self) -> None:
        """Handle what has arrived, without waiting. Between queued trials this looks at most
        once every LOOK_S (looking costs ZeroMQ a round of its mailbox: a tenth of a trivial
        trial's time here); a skip that comes later than that finds its trial run, as any other."""
        self._looked = time.monotonic()
        while True:
            with self.wire:
                frames = self.recv()
            if frames is None:
                return
            msg = self.decode(frames)
            if msg is not None:
                self.handle(msg)

    # -- handlers ---------------------------------------------------------------------------
    def handle(self, msg: dict) -> None:
        """A message that is not the running trial's own stop or verdict (the serve loop's, and
        what a trial hands on: trials handed out ahead, skips, a rejoin)."""
        handler = self._handlers.get(msg["type"])
        if handler is not None:
            handler(msg)

    def _on_batch(self, msg: dict) -> None:
        for item in msg["items"]:
            self.handle(item)

    def _on_rejoin(self, msg: dict) -> None:
        """The kernel gave this agent up (a partition): everything it holds runs elsewhere, and
        so does a trial it runs now (stale: its final would not count)."""
        self._log(f"the kernel had given this agent up; dropped {len(self.queue)} trials handed out ahead, "
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
        if not self.wire.acquire(timeout=-1 if codec is None else 0.05):
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
                    self.post("final", final_fields(trial_id, outcome="skipped", started=time.time()))
                    if codec is not None:
                        self.flush()
                    return
        finally:
            self.wire.release()

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
        """Take the function (again, if the kernel restarted) and say whether it can run here."""
        self.heartbeat = float(msg["heartbeat"])
        for key, value in msg["env"].items():
            os.environ.setdefault(str(key), str(value))
        if self.own_process:  # before the function (and JAX with it) is unpickled
            compiles.use_persistent_cache()
        try:
            self.function_bytes, self.inject_bytes = self._whole_function(msg), msg["inject"]
            self._injector = cloudpickle.loads(msg["inject"]) if msg["inject"] is not None else None
            fn, self._data = shipping.split(shipping.unpack(self.function_bytes))
            provided = PROVIDED + tuple(getattr(self._injector, "provides", ())) + tuple(self._data)
            self.names = requested(fn, provided, "this agent")
            self._fn = fn
        except InjectionError as exc:
            self.send("ready", ok=False, error=str(exc))
            return
        except Exception as exc:
            hint = (" (make that module importable on this host: install it, or run the agent "
                    "from the project's folder)") if isinstance(exc, ImportError) else ""
            self.send("ready", ok=False,
                      error=f"could not load the training function: {type(exc).__name__}: {exc}{hint}")
            return
        self.send("ready", ok=True, error=None)

    def _whole_function(self, welcome: dict) -> bytes:
        """The function's bytes: in the welcome, or fetched part by part when it is large."""
        data = bytearray(welcome["function"])
        while len(data) < welcome["size"]:
            self.send("fetch", offset=len(data))
            msg = self.next_message()
            while msg is None or msg["type"] != "part" or msg["offset"] != len(data):
                if msg is not None and msg["type"] == "shutdown":
                    raise Shutdown(msg["reason"])
                msg = self.next_message()
            data += msg["data"]
        return bytes(data)

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
        if self._fn is None:
            self.send("final", **final_fields(msg["trial"], outcome="error", started=time.time(),
                                              error="this agent could not load the training function"))
        elif msg["run"] is not None:
            self.current = msg["trial"]
            try:
                child.ChildRun(self, msg).run()
            finally:
                self.current = None
        else:
            self._run_here(msg)
            self._flush_after_trial()

    def _run_here(self, msg: dict) -> None:
        """A trial in this warm process, with the single-device strategy."""
        tid = msg["trial"]
        channel = SocketChannel(self, tid, msg["verdicts"])
        reporter = Reporter(tid, channel, msg["checkpoint"], msg["parent_checkpoint"], metric=msg["metric"])
        hparams = execute.hparams_of(msg)
        self._single.bind(hparams, msg["traced"])
        available = {"hparams": hparams, "reporter": reporter, "strategy": self._single, **self._data}
        self.current, self.channel = tid, channel
        try:
            if self._injector is not None and any(n not in available for n in self.names):
                available.update(self._injector.provide(msg["extra"]))
        except Exception as exc:  # a generator that cannot be built fails this trial, not the agent
            final = final_fields(tid, outcome="error", error=f"{type(exc).__name__}: {exc}",
                                 traceback=execute.user_traceback(exc), started=time.time())
        else:
            try:
                final = execute.call(self._fn, {n: available[n] for n in self.names}, reporter, self.echo,
                                 keep_as=msg["checkpoint"] if self.keep_errors else None)
            except KernelAway:  # nobody waits for this trial any more: the kernel runs it again
                self._log(f"the kernel went quiet during trial {tid}; left it, and will say hello again")
                return
        finally:
            self.current = self.channel = None
        with self.wire:  # the broadcasts not sent yet travel in the final (the kernel takes them first)
            final["points"], channel.pending = channel.pending, []
            self.post("final", final)


class SocketChannel:
    """A trial on the agent's own thread reaches the kernel over the agent's socket.

    With ``verdicts`` (an early-stopping rule judges this trial) each broadcast waits for the
    kernel's answer to it, about one round trip. Otherwise a broadcast costs an append, and a
    stop pushed by the kernel is picked up, without blocking, at the next broadcast; broadcasts
    that follow each other within COALESCE_S travel as one message (a trial that reports every
    step of a fast loop costs the kernel one message per burst, not one per step), sent at the
    next broadcast after that, with the final, or by the heartbeat thread within a tick.
    """

    def __init__(self, agent: Agent, trial_id: int, verdicts: bool):
        self._agent, self._trial, self._verdicts = agent, trial_id, verdicts
        self._stopped = False
        self._looked = 0.0
        self.pending: list[list] = []

    def send_metric(self, step: float, value: float | None, named: dict[str, float] | None = None) -> None:
        agent = self._agent
        point = [step, value, named] if named else [step, value]
        if self._verdicts:
            agent.send("metric", trial=self._trial, points=[point])
            while not self._take(agent.next_message()):
                if agent.quiet:  # the kernel died or cannot hear us: no verdict is coming
                    raise KernelAway(f"no verdict for trial {self._trial}")
            return
        now = time.monotonic()
        with agent.wire:
            self.pending.append(point)
            since = agent.unsent_since
            if since is None:
                agent.unsent_since = since = now
                if now - agent.last_sent >= COALESCE_S:  # the first after a quiet spell goes at once
                    agent.flush(now)
                    return
            if now - since >= COALESCE_S:
                agent.flush(now)

    def stash(self) -> None:
        """Move the broadcasts not sent yet into the agent's outbox (the caller holds the lock)."""
        if self.pending:
            points, self.pending = self.pending, []
            self._agent.outbox.append(["metric", {"trial": self._trial, "points": points}])

    def send_log(self, lines: list[str]) -> None:
        agent = self._agent
        with agent.wire:
            agent.post("log", {"trial": self._trial, "lines": lines})
            agent.flush()

    def stop_requested(self) -> bool:
        """Whether the kernel said stop. Looking costs a system call, so a trial that
        broadcasts in a tight loop looks once every LOOK_S (a stop waits at most that long)."""
        now = time.monotonic()
        if self._stopped or now - self._looked < LOOK_S:
            return self._stopped
        self._looked = now
        agent = self._agent
        while True:
            with agent.wire:
                frames = agent.recv()
            if frames is None:
                return self._stopped
            self._take(agent.decode(frames))

    def _take(self, msg: dict | None) -> bool:
        """Act on a message that arrived during the trial; True if it is this broadcast's verdict."""
        if msg is None:
            return False
        kind = msg["type"]
        if kind == "batch":
            for item in msg["items"]:
                self._take(item)
            return False
        if kind == "shutdown":
            raise Shutdown(msg["reason"])
        if kind in ("stop", "verdict") and msg["trial"] == self._trial:
            self._stopped = self._stopped or kind == "stop" or msg["stop"]
            return kind == "verdict"
        if kind in ("trial", "skip", "rejoin"):  # a trial handed out ahead, one taken back, a reset
            self._agent.handle(msg)
        return False
