"""The worker agent: ``python -m kernel.agent --connect URL --token TOKEN``.

An agent is a long-lived process (or, for in-process runs, a thread) that connects to the
kernel, receives the training function once, then runs trial after trial in the same warm
interpreter: JAX is imported and steps are compiled once per agent, not once per trial.

It is single-threaded on purpose. The training function runs on the agent's own thread, and the
reporter talks to the socket directly: a metric costs one send, a stop is seen at the next
broadcast, and nothing runs between broadcasts. While idle the agent waits on the socket with
the heartbeat interval as timeout, beating to the kernel and giving up when the kernel has been
silent for ``patience`` seconds.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import sys
import threading
import time
import uuid
from typing import Any, Callable

import cloudpickle

from transports import connect
from transports.codec import PROTOCOL, CodecError, agent_codec, token_key
from transports.curve import derive

from . import execute
from .injection import InjectionError, requested
from .reporter import Reporter, Shutdown

PROVIDED = ("hparams", "reporter", "strategy")
TOKEN_ENV = "LAGOM_TOKEN"
RESTARTS_ENV = "LAGOM_AGENT_RESTARTS"


class _KernelGone(Exception):
    pass


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
    def __init__(self, url: str, token: str, *, agent_id: str | None = None, wait: float = 60.0,
                 patience: float = 30.0, echo: bool = True, insecure: bool = False,
                 on_log: Callable[[str], None] | None = None):
        if not token:
            raise ValueError(f"no token: pass --token or set {TOKEN_ENV}")
        self.url = url
        self.id = agent_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._key = token_key(token)
        # tcp:// is CurveZMQ unless the kernel was started insecure: the handshake proves the
        # kernel holds the key derived from this token before a byte of code is accepted.
        self._curve = None if insecure else derive(token)[1]
        self.codec = agent_codec(self._key)
        self.wait = wait
        self.patience = patience
        self.echo = echo
        self.heartbeat = 1.0
        self.rejected = 0
        self._log = on_log or (lambda line: print(f"[agent {self.id}] {line}", file=sys.__stderr__, flush=True))
        self._fn: Callable | None = None
        self._injector = None
        self._inject_bytes: bytes | None = None
        self._names: list[str] = []
        self._current: int | None = None
        self._stop_current = False
        self._shutdown: str | None = None
        self._last_heard = time.monotonic()
        self.trials_run = 0
        self.can_restart = False  # True in a process of its own (main); never for a thread agent
        self.argv: list[str] = []
        from plugins.registry import resolve
        from plugins.strategies import Strategy

        self._single = resolve("lagom.strategies", "single", Strategy)  # imports no JAX until used

    # -- wire -------------------------------------------------------------------------------
    def _send(self, msg_type: str, **fields: Any) -> None:
        self._conn.send(self.codec.encode(msg_type, **fields))

    def _decode(self, frames: list[bytes]) -> dict | None:
        try:
            msg = self.codec.decode(frames)
        except CodecError as exc:
            self.rejected += 1
            if self.rejected <= 3:
                self._log(f"dropped a message that is not from this experiment's kernel ({exc.reason})")
            return None
        self._last_heard = time.monotonic()
        return msg

    def _check_stop(self) -> bool:
        """Drain what arrived during a trial without blocking; True if this trial must stop."""
        while True:
            frames = self._conn.recv_nowait()
            if frames is None:
                break
            msg = self._decode(frames)
            if msg is None:
                continue
            kind = msg["type"]
            if kind == "stop" and msg["trial"] == self._current:
                self._stop_current = True
            elif kind == "shutdown":
                self._shutdown = msg["reason"]
        if self._shutdown is not None:
            raise Shutdown(self._shutdown)
        return self._stop_current

    def _send_metric(self, trial_id: int, step: float, value: float) -> None:
        self._send("metric", trial=trial_id, points=[[step, value]])

    def _send_log(self, trial_id: int, lines: list[str]) -> None:
        self._send("log", trial=trial_id, lines=lines)

    # -- lifecycle --------------------------------------------------------------------------
    def _beat_forever(self, stop: threading.Event) -> None:
        """Heartbeats from a thread of their own, on a socket of their own (ZeroMQ sockets are
        not shared between threads), so the kernel hears from this agent while the training
        function runs; a frozen or vanished process stops beating, and is declared lost."""
        from kernel.registry import BEAT_SUFFIX

        conn = connect(self.url, identity=self.id.encode() + BEAT_SUFFIX, curve=self._curve)
        codec = agent_codec(self._key)  # a packer of its own: msgpack packers are not thread-safe
        frames = codec.encode("heartbeat")
        next_beat = time.monotonic() + self.heartbeat
        try:
            while not stop.is_set():
                got = conn.recv(timeout=max(0.0, next_beat - time.monotonic()))
                if got is not None:
                    try:
                        msg = codec.decode(got)
                    except CodecError:
                        msg = None
                    if msg is not None and msg["type"] == "kill" and msg["trial"] == self._current:
                        self._restart(msg["trial"])
                if time.monotonic() >= next_beat:
                    conn.send(frames)
                    next_beat = time.monotonic() + self.heartbeat
        finally:
            conn.close()

    def _restart(self, trial_id: int) -> None:
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

    def run(self) -> int:
        """Serve the kernel until it says shutdown (0) or is gone (1: never answered, 2: went silent)."""
        self._conn = connect(self.url, identity=self.id.encode(), curve=self._curve)
        stop_beating = threading.Event()
        try:
            self._send("hello", agent=self.id, host=socket.gethostname(), pid=os.getpid(),
                       devices=_devices(), protocol=PROTOCOL, address=_address_towards(self.url),
                       port=_free_port())
            if not self._await_welcome():
                return 1
            threading.Thread(target=self._beat_forever, args=(stop_beating,), daemon=True,
                             name=f"lagom-beat-{self.id}").start()
            return self._serve()
        except _KernelGone as exc:
            self._log(str(exc))
            return 2
        except Shutdown:
            return 0
        finally:
            stop_beating.set()
            self._conn.close()

    def _await_welcome(self) -> bool:
        deadline = time.monotonic() + self.wait
        while time.monotonic() < deadline:
            frames = self._conn.recv(timeout=min(1.0, max(0.01, deadline - time.monotonic())))
            if frames is None:
                continue
            msg = self._decode(frames)
            if msg is None:
                continue
            if msg["type"] == "welcome":
                self._on_welcome(msg)
                return True
            if msg["type"] == "shutdown":
                return False
        self._log(f"no answer from a kernel at {self.url} within {self.wait:.0f}s: check the URL, "
                  f"that the token is the one the kernel printed, and --insecure if the kernel has it")
        return False

    def _on_welcome(self, msg: dict) -> None:
        self.heartbeat = float(msg["heartbeat"])
        for key, value in msg["env"].items():
            os.environ.setdefault(str(key), str(value))
        try:
            self._function_bytes = msg["function"]
            self._inject_bytes = msg["inject"]
            self._injector = cloudpickle.loads(msg["inject"]) if msg["inject"] is not None else None
            provided = PROVIDED + tuple(getattr(self._injector, "provides", ()))
            fn = cloudpickle.loads(msg["function"])
            self._names = requested(fn, provided, "this agent")
            self._fn = fn
        except InjectionError as exc:
            self._send("ready", ok=False, error=str(exc))
            return
        except Exception as exc:
            hint = (" (make that module importable on this host: install it, or run the agent "
                    "from the project's folder)") if isinstance(exc, ImportError) else ""
            self._send("ready", ok=False,
                       error=f"could not load the training function: {type(exc).__name__}: {exc}{hint}")
            return
        self._send("ready", ok=True, error=None)

    def _serve(self) -> int:
        while True:
            frames = self._conn.recv(timeout=self.heartbeat)
            if frames is None:
                if time.monotonic() - self._last_heard > self.patience:
                    raise _KernelGone(f"the kernel at {self.url} has been silent for "
                                      f"{self.patience:.0f}s; leaving")
                continue  # heartbeats go from the beat thread
            msg = self._decode(frames)
            if msg is None:
                continue
            kind = msg["type"]
            if kind == "trial":
                if self._fn is None:
                    self._send("final", trial=msg["trial"], rank=0, outcome="error", result=None,
                               error="this agent could not load the training function", traceback=None,
                               started=time.time(), duration=0.0, step=None, value=None)
                    continue
                if msg["run"] is not None:
                    self._run_in_child(msg)
                else:
                    self._run_trial(msg)
            elif kind == "shutdown":
                return 0
            elif kind == "welcome":  # the kernel restarted or re-sent: take the new function
                self._on_welcome(msg)

    def _run_trial(self, msg: dict) -> None:
        """A trial in this warm process, with the single-device strategy."""
        tid = msg["trial"]
        self._current, self._stop_current = tid, False
        reporter = Reporter(tid, self._send_metric, self._send_log, self._check_stop,
                            msg["checkpoint"], msg["parent_checkpoint"])
        available = {"hparams": execute.hparams_of(msg), "reporter": reporter, "strategy": self._single}
        if self._injector is not None and any(n not in available for n in self._names):
            try:
                available.update(self._injector.provide(msg["extra"]))
            except Exception as exc:  # a generator that cannot be built fails this trial, not the agent
                self._send("final", trial=tid, rank=0, outcome="error", result=None,
                           error=f"{type(exc).__name__}: {exc}", traceback=execute.user_traceback(exc),
                           started=time.time(), duration=0.0, step=None, value=None)
                self._current = None
                return
        fields = execute.call(self._fn, {n: available[n] for n in self._names}, reporter,
                              self._send_log, self.echo)
        self._current = None
        self.trials_run += 1
        self._send("final", trial=tid, rank=0, **fields)

    def _run_in_child(self, msg: dict) -> None:
        """A distributed (or fresh-process) run: spawn its process, relay, forward stops, kill on abort."""
        tid, run = msg["trial"], msg["run"]
        rank = int(run.get("process_id", 0))
        payload = {"trial": tid, "run": run, "function": self._function_bytes, "names": self._names,
                   "hparams": execute.hparams_of(msg), "checkpoint": msg["checkpoint"],
                   "parent_checkpoint": msg["parent_checkpoint"], "echo": self.echo,
                   "inject": self._inject_bytes, "extra": msg["extra"]}
        ctx = multiprocessing.get_context("spawn")
        mine, theirs = ctx.Pipe()
        from .child import main as child_main

        proc = ctx.Process(target=child_main, args=(theirs, payload), name=f"lagom-run-{tid}", daemon=True)
        proc.start()
        theirs.close()
        self._current = tid
        final = None
        try:
            while final is None:
                sock_ready, fds = self._conn.wait(self.heartbeat, [mine.fileno()])
                if fds:
                    try:
                        while final is None and mine.poll():
                            item = mine.recv()
                            if item[0] == "metric":
                                self._send_metric(tid, item[1], item[2])
                            elif item[0] == "log":
                                self._send_log(tid, item[1])
                            elif item[0] == "final":
                                final = item[1]
                    except (EOFError, OSError):
                        proc.join(5)
                        final = _died(proc)
                if sock_ready:
                    while (frames := self._conn.recv_nowait()) is not None:
                        m = self._decode(frames)
                        if m is None:
                            continue
                        if m["type"] == "stop" and m["trial"] == tid:
                            mine.send(("stop",))
                        elif m["type"] == "abort" and m["trial"] == tid and final is None:
                            proc.kill()
                            final = _died(proc, f"aborted: {m['reason']}")
                        elif m["type"] == "shutdown":
                            proc.kill()
                            raise Shutdown(m["reason"])
            self._send("final", trial=tid, rank=rank, **final)
        finally:
            self._current = None
            mine.close()
            proc.join(30)  # a multihost child leaves its process group with its peers first
            if proc.is_alive():
                proc.kill()
                proc.join()


def _died(proc, why: str | None = None) -> dict:
    code = proc.exitcode
    error = why or f"the run's process died (exit code {code})"
    return {"outcome": "error", "result": None, "error": error, "traceback": None, "started": time.time(),
            "duration": 0.0, "step": None, "value": None}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m kernel.agent",
        description="A lagom worker agent: connects to a kernel and runs the trials it is given.",
    )
    p.add_argument("--connect", required=True, metavar="URL",
                   help="the kernel's address, e.g. tcp://driver-host:7777 (printed by the kernel)")
    p.add_argument("--token", default=None,
                   help=f"the experiment's token, printed by the kernel (or set {TOKEN_ENV})")
    p.add_argument("--id", default=None, help="this agent's name (default: host-pid-random)")
    p.add_argument("--wait", type=float, default=60.0,
                   help="seconds to wait for the kernel to answer before giving up (default 60)")
    p.add_argument("--insecure", action="store_true",
                   help="no CurveZMQ on tcp:// (only when the kernel was started with insecure=True)")
    p.add_argument("--patience", type=float, default=30.0,
                   help="seconds of silence from the kernel after which the agent leaves (default 30)")
    return p


def _enable_jax_cache() -> None:
    """One persistent compilation cache per host, so a step compiled once is reused by every
    agent and every later run; min compile time 0, or JAX skips most small compiles."""
    cache = os.path.join(os.path.expanduser("~"), ".cache", "lagom", "jax")
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", cache)
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    token = args.token or os.environ.get(TOKEN_ENV)
    if not token:
        _parser().error(f"no token: pass --token TOKEN (printed by the kernel) or set {TOKEN_ENV}")
    _enable_jax_cache()
    restarts = int(os.environ.get(RESTARTS_ENV, "0"))
    agent_id = args.id and (f"{args.id}~{restarts}" if restarts else args.id)
    agent = Agent(args.connect, token, agent_id=agent_id, wait=args.wait, patience=args.patience,
                  insecure=args.insecure)
    agent.can_restart = True
    agent.argv = list(argv if argv is not None else sys.argv[1:])
    try:
        return agent.run()
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
