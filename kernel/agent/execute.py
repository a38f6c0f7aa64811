"""Calling the training function once: arguments by name, output captured, outcome as a dict.

Shared by the agent (a trial in its own warm process) and the child process of a distributed
run, so a function fails, stops and returns the same way everywhere.
"""
from __future__ import annotations

import math
import time
import traceback
from typing import Any, Callable

from transports.codec import final_fields

from ..reporter import EarlyStop, KernelAway, Reporter, Shutdown, captured_output
from . import compiles


def hparams_of(msg: dict) -> dict[str, Any]:
    """The ``hparams`` a trial message gives the function (its params, and the budget if any)."""
    hparams = dict(msg["params"])
    if msg["budget"] is not None:
        hparams["budget"] = msg["budget"]
    return hparams


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


def user_traceback(exc: BaseException) -> str:
    """The traceback from the training function down, without this module's own frame."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def call(fn: Callable, kwargs: dict[str, Any], reporter: Reporter, echo: bool, rank: int = 0,
         keep_in: dict[int, BaseException] | None = None) -> dict[str, Any]:
    """Run ``fn(**kwargs)`` and return the fields of its ``final`` message; ``keep_in``: also
    keep the exception object there by trial id (an agent in the caller's process: a single
    run raises the original to its caller, for ``except``, pdb and %debug)."""
    started = time.time()
    t0 = time.perf_counter()
    compiled_before = compiles.reading()
    result = error = tb = None
    try:
        with captured_output(reporter.channel.send_log, echo=echo):
            returned = fn(**kwargs)
        result = normalize_result(returned)
        outcome = "stopped" if reporter.was_stopped else "ok"
    except EarlyStop:
        outcome = "stopped"
    except (Shutdown, KernelAway, KeyboardInterrupt):
        raise
    except BaseException as exc:  # SystemExit from user code is a failed trial, not our exit
        outcome = "error"
        error = f"{type(exc).__name__}: {exc}"
        tb = user_traceback(exc)
        if keep_in is not None:  # the last few: an exception holds its frames, and their arrays
            keep_in[reporter.trial_id] = exc
            while len(keep_in) > 8:
                del keep_in[next(iter(keep_in))]
    duration = time.perf_counter() - t0
    step, value = reporter.last if reporter.last else (None, None)
    if value is not None and not math.isfinite(value):
        value = None
    return final_fields(reporter.trial_id, rank=rank, outcome=outcome, result=result, error=error, traceback=tb,
                        started=started, duration=duration, step=step, value=value, saved=reporter.saved,
                        compile=compiles.since(compiled_before))
