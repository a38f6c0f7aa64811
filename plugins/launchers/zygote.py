"""A warm process that forks agents: ``python -m plugins.launchers.zygote``.

Starting an agent as a fresh interpreter costs ~0.15 s of CPU (the interpreter, then zmq,
msgpack, cloudpickle and the kernel's modules); 32 of them on 2 cores take 2.5 s before the
last one asks for a trial. The zygote imports those modules once (and looks up the in-process
strategy among the installed packages' entry points), then forks one agent per request in a few
milliseconds. It starts no thread and no ZeroMQ context, so a fork is safe. Before an
experiment's agents it imports the installed libraries their function imports (JAX, optax...;
the launcher names them): an import that starts a runtime (JAX's backend) would make every
later fork unsafe, so a zygote that finds one started forks nothing more. Unlike
multiprocessing's forkserver it never runs the user's script again: a script without
``if __name__ == "__main__":`` works as it does with fresh processes. Where it is safe, an
experiment's agents come instead from a fork of the driver's own process that runs this same
loop (plugins/launchers/forking.py): they start with the driver's modules.

Protocol, JSON lines. Launcher -> zygote on stdin: ``{"argv", "env", "cwd", "path", "log"}``
(an agent's command-line arguments, environment, working directory, ``sys.path`` and log file),
or ``{"preload": [names]}``. Zygote -> launcher on stdout: ``{"pid": N}`` for each agent
requested, in order (``{"pid": null, "error": E}`` once it may fork no more), ``{"preloaded":
[names], "failed": [names], "seconds": S, "unsafe": why or null, "culprits": [names]}`` for
each preload, and ``{"exit": N, "code": C}`` when an agent ends (C as ``Popen.returncode``:
negative for a signal). The zygote leaves when its stdin closes: the launcher's process ended,
killed or not, and with it the kernel its agents served, so it ends them first (SIGTERM)
rather than leave them waiting out their ``--patience`` for a kernel that is gone (a resume
starts agents of its own).
"""
from __future__ import annotations

import importlib
import io
import json
import os
import selectors
import signal
import sys
import threading
import time

import cloudpickle  # noqa: F401  (warm: every agent unpickles the function with it)

from kernel.agent import cli, inprocess

from . import forking

_inherited: list = []
_unsafe: str | None = None  # why this zygote forks no more: a library it loaded started a runtime or a thread


def _preload(names: list[str]) -> dict:
    """Import the libraries an experiment's function imports (kernel/shipping.py's
    ``libraries``), once, so every agent forked from here has them. Their output goes nowhere
    (stdout is the launcher's reply pipe); one that fails to import is left to the agent, whose
    trial then says why. One that started a runtime (JAX's backend, CUDA) or a thread (missing
    in a child, which might wait on it forever) makes a later fork unsafe: then the imports stop
    there, this zygote forks nothing more, and the reply names the culprit, so the launcher
    starts another that loads the rest."""
    global _unsafe
    start, loaded, failed, culprit = time.perf_counter(), [], [], None
    if _unsafe:  # asked by a launcher that took this zygote before it was retired
        return {"preloaded": [], "failed": [], "seconds": 0.0, "unsafe": _unsafe, "culprits": []}
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM)}
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    try:
        for name in names:
            try:
                importlib.import_module(name)
                loaded.append(name)
            except BaseException:  # noqa: BLE001 (an import may even sys.exit: the agent's to report)
                failed.append(name)
            _unsafe = _unsafe or _unsafe_to_fork()
            if _unsafe:
                culprit = name
                break
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        for fd, old in zip((1, 2), saved):
            os.dup2(old, fd)
            os.close(old)
        os.close(null)
        for sig, handler in handlers.items():  # a library's own would be the agents' (and lose exits)
            signal.signal(sig, handler)
    if _unsafe:
        _unsafe = f"importing {culprit}: {_unsafe}"
    return {"preloaded": loaded, "failed": failed, "seconds": round(time.perf_counter() - start, 3),
            "unsafe": _unsafe, "culprits": [culprit] if culprit else []}


def _unsafe_to_fork() -> str | None:
    threads = sorted(t.name for t in threading.enumerate() if t is not threading.main_thread())
    if threads:
        return f"it started threads ({', '.join(threads)})"
    started = forking.runtime_started()
    return f"{started} started" if started else None


inprocess.single_strategy()  # warm: found once here, not by every agent (it reads every package's entry points)


def _become_agent(request: dict, keep: list[int]) -> int:
    """In the forked child: turn into what ``python -m kernel.agent ARGV`` would be, and run it."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for fd in keep:
        os.close(fd)
    os.chdir(request["cwd"])
    log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.close(null)
    _fresh_streams()
    os.environ.clear()
    os.environ.update(request["env"])
    sys.path[:] = request["path"]
    sys.argv = [sys.executable, "-m", "kernel.agent", *request["argv"]]
    forking.name("lagom-agent")
    _main_is_this_module()
    numpy = sys.modules.get("numpy")  # forked from the driver: its generator's state, in every agent
    if numpy is not None:
        numpy.random.seed()
    try:
        code = cli.main(request["argv"])
    except SystemExit as exc:  # as the interpreter would end: a message is printed, and exits 1
        code = exc.code if isinstance(exc.code, int) or exc.code is None else 1
        if not isinstance(exc.code, int) and exc.code is not None:
            print(exc.code, file=sys.stderr)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    return int(code or 0)


def _main_is_this_module() -> None:
    """``__main__`` is this module, as in the clean zygote's agents, never the user's script
    that a fork of the driver has there: multiprocessing's spawn (a distributed run's child,
    or the user's own) starts a child by importing ``__main__`` again, and a script without
    ``if __name__ == "__main__":`` would run its search once more in it."""
    if __name__ != "__main__":  # imported by a fork of the driver, not run as the clean zygote
        _inherited.append(sys.modules["__main__"])
        sys.modules["__main__"] = sys.modules[__name__]


def _fresh_streams() -> None:
    """``sys.stdin``, ``stdout`` and ``stderr`` on fds 0-2, as an interpreter started with
    PYTHONUNBUFFERED has them; the old ones (a driver's may be a test runner's or a notebook's)
    are kept, never finalized, since their files are not this process's to close."""
    _inherited.extend((sys.stdin, sys.stdout, sys.stderr))
    sys.stdin = open(0, encoding="utf-8", closefd=False)
    for name, fd, errors in (("stdout", 1, "strict"), ("stderr", 2, "backslashreplace")):
        raw = io.BufferedWriter(io.FileIO(fd, "w", closefd=False))
        setattr(sys, name, io.TextIOWrapper(raw, encoding="utf-8", errors=errors, line_buffering=True,
                                            write_through=True))


def _reply(obj: dict) -> None:
    os.write(1, json.dumps(obj).encode() + b"\n")


def _reap(children: set[int]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        children.discard(pid)
        _reply({"exit": pid, "code": os.waitstatus_to_exitcode(status)})


def main() -> None:
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so the wakeup fd hears of exits
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the driver (this runs in a session of its own)
    selector = selectors.DefaultSelector()
    selector.register(0, selectors.EVENT_READ, "requests")
    selector.register(wake_r, selectors.EVENT_READ, "exits")
    children: set[int] = set()
    pending = b""
    _reply({"ready": os.getpid()})
    while True:
        for key, _ in selector.select():
            if key.data == "exits":
                os.read(wake_r, 4096)
                _reap(children)
                continue
            data = os.read(0, 65536)
            if not data:  # the launcher's process is gone
                _end_children(children)
                return
            pending += data
            while b"\n" in pending:
                raw, pending = pending.split(b"\n", 1)
                request = json.loads(raw)
                if "preload" in request:
                    _reply(_preload(request["preload"]))
                elif _unsafe:
                    _reply({"pid": None, "error": f"this zygote may no longer fork: {_unsafe}"})
                else:
                    pid = _fork_agent(request, [wake_r, wake_w, selector.fileno()])
                    children.add(pid)
                    _reply({"pid": pid})
        _reap(children)


def _end_children(children: set[int]) -> None:
    for pid in children:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def _fork_agent(request: dict, inherited: list[int]) -> int:
    """A child that becomes the agent ``request`` describes (closing ``inherited``); its pid here."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:  # the child never returns into the zygote's loop, whatever happens
            code = _become_agent(request, inherited)
        finally:
            os._exit(code)
    return pid


if __name__ == "__main__":
    main()
