"""A zygote forked from the driver's own process, so agents start with its modules imported.

A training function that uses JAX, optax and scikit-learn makes every fresh agent import them
before its first trial: ~1.9 s of CPU each, which on a 2-core laptop is most of a short
search's wall clock, while the driver imported them all already (the user's script did, before
it called ``lagom()``). Forked from the driver, the zygote has them; its agents unpickle the
function at once, against the same modules the driver pickled it from.

A fork copies a process as it is, so this is done only where it is known to be safe
(:func:`unsafe`): on Linux, from the main thread (not from a notebook, whose event loop runs
there), with no JAX backend, CUDA context or TensorFlow runtime started (their threads would be
missing in the child, their locks held forever), and with the agents' environment what the
driver's is, apart from what is read only once an agent starts (a library reads most of its
variables when it is imported, and here it was imported already). Other threads of the
driver's may run: the child's own code takes no lock of theirs (the import lock, logging's and
``random``'s are renewed at a fork), as with multiprocessing's fork, which Python used on Linux
by default until 3.14. Anywhere else agents come from the clean zygote
(plugins/launchers/zygote.py), as fresh interpreters would.

The child owns nothing of the driver's: every file descriptor it inherited is pointed at
``/dev/null`` (a socket or a pipe of the driver's must close when the driver closes it, and a
number must not be reused while some inherited object may still close it), inherited objects
are kept from the garbage collector, and it never returns into the driver's code.
"""
from __future__ import annotations

import gc
import os
import signal
import sys
import threading
import warnings

from kernel.agent.blackbox import ENV as BOX_ENV
from kernel.agent.cli import RESTARTS_ENV, TOKEN_ENV

# Read when an agent starts, not when a library is imported: they may differ from the driver's.
PER_AGENT = frozenset({TOKEN_ENV, BOX_ENV, RESTARTS_ENV})  # set for each agent alone: never a zygote's
LATE = PER_AGENT | {"PYTHONPATH", "PYTHONUNBUFFERED", "CUDA_VISIBLE_DEVICES", "XLA_PYTHON_CLIENT_PREALLOCATE"}
FRESH_GC = gc.get_threshold()  # the process's, before a kernel raises them while it serves
_pinned: list = []  # what the child must never finalize (a ZeroMQ context's destroy would hang it)


def unsafe(env: dict[str, str]) -> str | None:
    """Why this process must not be forked for agents that run with ``env``; None if it may."""
    if not sys.platform.startswith("linux") or not hasattr(os, "fork"):
        return "only on Linux"
    if threading.current_thread() is not threading.main_thread():
        return "lagom() runs in a thread of its own (a notebook's loop runs in the main one)"
    started = runtime_started()
    if started:
        return f"{started} has started in this process"
    differ = sorted({k for k, _ in early(env) ^ early(os.environ)})
    if differ:
        return f"the agents' environment differs in {', '.join(differ[:3])}"
    return None


def early(env) -> frozenset:
    """What of an environment a library may read as it is imported: all but LATE and lagom's own."""
    return frozenset((k, v) for k, v in env.items() if k not in LATE and not k.startswith("LAGOM_"))


def runtime_started() -> str | None:
    """A library whose runtime started threads of its own (never imported here to ask)."""
    bridge = sys.modules.get("jax._src.xla_bridge")
    if bridge is not None and bridge.backends_are_initialized():
        return "JAX's backend"
    torch = sys.modules.get("torch")
    if torch is not None and getattr(torch, "cuda", None) is not None and torch.cuda.is_initialized():
        return "CUDA (torch)"
    if "tensorflow" in sys.modules:
        return "TensorFlow"
    return None


def fork_zygote() -> tuple[int, int, int]:
    """Fork the zygote; returns (its pid, the fd to write requests to, the fd to read replies from)."""
    to_child, from_parent = os.pipe()[::-1]  # (write end, read end)
    from_child, to_parent = os.pipe()
    with warnings.catch_warnings():  # Python 3.12+ warns of any fork beside threads: weighed above
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        code = 1
        try:
            _become_zygote(from_parent, to_parent)
            code = 0
        finally:
            os._exit(code)
    os.close(from_parent)
    os.close(to_parent)
    return pid, to_child, from_child


def _become_zygote(requests: int, replies: int) -> None:
    gc.freeze()  # inherited objects stay as they are: none is collected (and finalized) here
    gc.enable()
    gc.set_threshold(*FRESH_GC)  # the collector as the driver's own code has it, not the kernel's
    zmq = sys.modules.get("zmq")
    if zmq is not None:  # Context.instance() makes a new one after a fork; the old must stay
        _pinned.append(getattr(zmq.Context, "_instance", None))
    name("lagom-zygote")
    os.setsid()  # as the clean zygote: a terminal's or a notebook's interrupt is for the driver
    for sig in signal.valid_signals():
        if sig not in (signal.SIGKILL, signal.SIGSTOP, signal.SIGPIPE) and callable(_handler(sig)):
            signal.signal(sig, signal.SIG_DFL)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(requests, 0)
    os.dup2(replies, 1)
    for fd in _open_fds():
        if fd > 2 and fd != null:
            os.dup2(null, fd)  # the driver's sockets, pipes and files: no longer held open here
    from plugins.launchers import zygote

    zygote.main()


def name(title: str) -> None:
    """What ``top`` and ``ps -o comm`` call this process (its command line stays the driver's:
    a fork runs no new program)."""
    try:
        with open("/proc/self/comm", "w") as f:
            f.write(title)
    except OSError:
        pass


def _handler(sig: int):
    try:
        return signal.getsignal(sig)
    except (OSError, ValueError):
        return None


def _open_fds() -> list[int]:
    return sorted(int(name) for name in os.listdir("/proc/self/fd"))
