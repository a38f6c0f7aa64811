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
import math
import os
import socket
import sys
import time
import traceback
import uuid
from typing import Any, Callable

import cloudpickle

from transports import connect
from transports.codec import PROTOCOL, CodecError, agent_codec, token_key

from .injection import InjectionError, requested
from .reporter import EarlyStop, Reporter, Shutdown, captured_output

PROVIDED = ("hparams", "reporter")
TOKEN_ENV = "LAGOM_TOKEN"


class _KernelGone(Exception):
    pass


def _devices() -> list[str]:
    devices = [f"cpu:{os.cpu_count() or 1}"]
    gpus = os.environ.get("CUDA_VISIBLE_DEVICES")
    if gpus:
        devices += [f"gpu:{g}" for g in gpus.split(",") if g.strip()]
    return devices


def _number(value: Any) -> Any:
    """A Python number from a Python, numpy or JAX scalar; strings pass through."""
    if isinstance(value, bool):
        raise TypeError("a bool")
    if isinstance(value, (int, float, str)):
        return value
    if getattr(value, "size", 1) == 1 and hasattr(value, "__float__"):
        f = float(value)
        return int(f) if "int" in str(getattr(value, "dtype", "")) else f
    raise TypeError(type(value).__name__)


def normalize_result(value: Any) -> Any:
    """What the function returned, made safe for the wire: None, a number, or a dict of them."""
    if value is None:
        return None
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            try:
                out[str(k)] = _number(v)
            except TypeError as exc:
                raise TypeError(
                    f"the training function returned {k!r}: {exc}; every value of the returned "
                    f"dict must be a number (or a string)"
                ) from None
        return out
    try:
        n = _number(value)
    except TypeError:
        n = None
    if n is None or isinstance(n, str):
        raise TypeError(
            f"the training function returned a {type(value).__name__}; return a dict of metrics "
            f"(e.g. {{'accuracy': 0.93}}) or one number"
        )
    return n


def _user_traceback(exc: BaseException) -> str:
    """The traceback from the training function down, without the agent's own frames."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


class Agent:
    def __init__(self, url: str, token: str, *, agent_id: str | None = None, wait: float = 60.0,
                 patience: float = 30.0, echo: bool = True,
                 on_log: Callable[[str], None] | None = None):
        if not token:
            raise ValueError(f"no token: pass --token or set {TOKEN_ENV}")
        self.url = url
        self.id = agent_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.codec = agent_codec(token_key(token))
        self.wait = wait
        self.patience = patience
        self.echo = echo
        self.heartbeat = 1.0
        self.rejected = 0
        self._log = on_log or (lambda line: print(f"[agent {self.id}] {line}", file=sys.__stderr__, flush=True))
        self._fn: Callable | None = None
        self._names: list[str] = []
        self._current: int | None = None
        self._stop_current = False
        self._shutdown: str | None = None
        self._last_heard = time.monotonic()
        self.trials_run = 0

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
    def run(self) -> int:
        """Serve the kernel until it says shutdown (0) or is gone (1: never answered, 2: went silent)."""
        self._conn = connect(self.url, identity=self.id.encode())
        try:
            self._send("hello", agent=self.id, host=socket.gethostname(), pid=os.getpid(),
                       devices=_devices(), protocol=PROTOCOL)
            if not self._await_welcome():
                return 1
            return self._serve()
        except _KernelGone as exc:
            self._log(str(exc))
            return 2
        except Shutdown:
            return 0
        finally:
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
                  f"and that the token is the one the kernel printed")
        return False

    def _on_welcome(self, msg: dict) -> None:
        self.heartbeat = float(msg["heartbeat"])
        for key, value in msg["env"].items():
            os.environ.setdefault(str(key), str(value))
        try:
            fn = cloudpickle.loads(msg["function"])
            self._names = requested(fn, PROVIDED, "this agent")
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
                self._send("heartbeat")
                continue
            msg = self._decode(frames)
            if msg is None:
                continue
            kind = msg["type"]
            if kind == "trial":
                if self._fn is None:
                    self._send("final", trial=msg["trial"], outcome="error", result=None,
                               error="this agent could not load the training function", traceback=None,
                               started=time.time(), duration=0.0, step=None, value=None)
                    continue
                self._run_trial(msg)
            elif kind == "shutdown":
                return 0
            elif kind == "welcome":  # the kernel restarted or re-sent: take the new function
                self._on_welcome(msg)

    def _run_trial(self, msg: dict) -> None:
        tid = msg["trial"]
        hparams = dict(msg["params"])
        if msg["budget"] is not None:
            hparams["budget"] = msg["budget"]
        self._current, self._stop_current = tid, False
        reporter = Reporter(tid, self._send_metric, self._send_log, self._check_stop,
                            msg["checkpoint"], msg["parent_checkpoint"])
        available = {"hparams": hparams, "reporter": reporter}
        kwargs = {n: available[n] for n in self._names}
        started = time.time()
        t0 = time.perf_counter()
        result = error = tb = None
        try:
            with captured_output(tid, self._send_log, echo=self.echo):
                returned = self._fn(**kwargs)
            result = normalize_result(returned)
            outcome = "ok"
        except EarlyStop:
            outcome = "stopped"
        except (Shutdown, KeyboardInterrupt):
            raise
        except BaseException as exc:  # SystemExit from user code is a failed trial, not our exit
            outcome = "error"
            error = f"{type(exc).__name__}: {exc}"
            tb = _user_traceback(exc)
        duration = time.perf_counter() - t0
        step, value = reporter.last if reporter.last else (None, None)
        if value is not None and not math.isfinite(value):
            value = None
        self._current = None
        self.trials_run += 1
        self._send("final", trial=tid, outcome=outcome, result=result, error=error, traceback=tb,
                   started=started, duration=duration, step=step, value=value)


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
    agent = Agent(args.connect, token, agent_id=args.id, wait=args.wait, patience=args.patience)
    try:
        return agent.run()
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
