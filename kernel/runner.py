"""``lagom()``: run one training function in the context given, from any Python program.

The experiment runs on its own event loop (uvloop when installed). Called from code that
already runs a loop (Jupyter, an async application), it runs that loop in a helper thread and
waits, so the caller never sees "event loop is already running"; ``await lagom_async(...)`` is
the native form for async code.
"""
from __future__ import annotations

import asyncio
import os
import secrets
import sys
import threading
from pathlib import Path
from typing import Any, Callable

import cloudpickle

import zmq

import transports
from transports import curve
from transports.codec import kernel_codec, token_key

from .controller import ExperimentError
from .driver import Kernel
from .injection import requested
from .journal import ExperimentFolder, latest_experiment, new_experiment_path, read_journal
from .progress import Progress
from .trials import Result


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _default_context():
    from contexts import Single  # the kernel depends on no context but this default

    return Single()


def _agent_command(url: str, token: str) -> str:
    return f"python -m kernel.agent --connect {url} --token {token}"


async def lagom_async(train_fn: Callable, context: Any = None, *, listen: str | None = None,
                      path: str | os.PathLike | None = None, name: str | None = None,
                      verbose: int = 1, launcher: Any = None, heartbeat: float = 1.0,
                      observers: list | tuple = (), token: str | None = None,
                      resume: bool | str | os.PathLike | None = None, agent_timeout: float | None = 5.0,
                      stop_grace: float | None = 10.0, insecure: bool = False, report: bool = True,
                      tensorboard: bool = False,
                      _on_kernel: Callable[[Kernel, Any], None] | None = None) -> Result:
    """The coroutine behind :func:`lagom`; see there."""
    from plugins.launchers import Launcher
    from plugins.registry import resolve

    context = context if context is not None else _default_context()
    context_name = type(context).__name__
    requested(train_fn, context.provides, context_name)  # fail before anything starts
    try:
        function = cloudpickle.dumps(train_fn)
    except Exception as exc:
        raise TypeError(
            f"the training function cannot be sent to agents ({type(exc).__name__}: {exc}); "
            f"create unpicklable objects (open files, locks, clients) inside the function"
        ) from None
    injector = context.injector()
    inject = cloudpickle.dumps(injector) if injector is not None else None
    workers = context.workers
    if listen is None and workers < 1:
        raise ValueError(f"{context_name}(workers={workers}) with no listen address: no agent could ever "
                         f"join; set workers >= 1, or listen='tcp://0.0.0.0:PORT' for agents started by hand")
    url = listen or context.default_url()
    launch = resolve("lagom.launchers", launcher or context.launcher, Launcher) if workers else None

    experiment = name or context.name
    events = None
    if resume:
        where = latest_experiment(path, experiment) if resume is True else Path(resume)
        if not (where / "journal.jsonl").exists():
            raise FileNotFoundError(f"resume={str(resume)!r}: no journal.jsonl in {where}; pass the experiment "
                                    f"folder (printed when it started) or resume=True for the newest")
        events, unreadable = read_journal(where)
        first = next((e for e in events if e["event"] == "experiment"), None)
        if first is not None and first.get("context") != context_name:
            raise ValueError(f"{where} holds a {first.get('context')} experiment, not a {context_name}")
        seed = (first or {}).get("controller", {}).get("seed")
        if seed is not None and hasattr(context, "seed"):
            context.seed = seed  # the same seed, so the controller makes the same decisions again
    if token is not None and (not isinstance(token, str) or len(token) < 16):
        raise ValueError("token must be a string of at least 16 characters (or None: one is made)")
    controller = context.controller()
    folder = ExperimentFolder(where if events is not None else new_experiment_path(path, experiment))
    token = token or secrets.token_urlsafe(32)
    address = transports.parse(url)
    kernel_keys = agent_keys = None
    denied_before = curve.denied_count()
    if address.scheme == "tcp" and not insecure:  # CurveZMQ: encrypted, both ends authenticated
        kernel_keys, agent_keys = curve.derive(token)
        curve.admit(zmq.Context.instance(), agent_keys.public)
    elif address.scheme == "tcp" and not address.is_loopback:
        print(f"lagom: WARNING: {url} is reachable from other hosts and insecure=True: traffic is "
              f"signed but not encrypted, and anyone on the network can read it", file=sys.stderr, flush=True)
    listener = transports.listen(url, curve=kernel_keys)
    observers = ([Progress()] if verbose else []) + list(observers)
    if tensorboard:
        from .tensorboard import TensorBoard

        observers.append(TensorBoard())
    kernel = Kernel(experiment=folder.path.name, context_name=context_name, function=function,
                    controller=controller, listener=listener, codec=kernel_codec(token_key(token)),
                    folder=folder, heartbeat=heartbeat, observers=observers, inject=inject,
                    agent_timeout=agent_timeout, stop_grace=stop_grace)
    _save_for_resume(folder.path, function, context)
    if events is not None:
        restored = kernel.restore(events)
        if verbose:
            print(f"lagom: resuming {folder.path.name}: {restored['ended']} trials ended before, "
                  f"{restored['requeued']} to run again" + (f" ({unreadable} unreadable journal line)"
                                                            if unreadable else ""), flush=True)
    if listen is not None:
        remote = listener.address.for_remote_agents().url
        print(f"lagom: experiment {folder.path.name} listens on {listener.url}; start agents with\n"
              f"  {_agent_command(remote, token)}{' --insecure' if insecure else ''}", flush=True)
    if verbose:
        print(f"lagom: {context_name} → {folder.path}", flush=True)
    result: Result | None = None
    try:
        if launch is not None:
            launch.start(url=listener.address.for_local_agents().url, token=token, count=workers, insecure=insecure,
                         log_dir=folder.agents_dir, on_exit=kernel.agent_exited)
            kernel.expect_agents(None if listen is not None else workers)
        if _on_kernel is not None:
            _on_kernel(kernel, launch)
        try:
            result = await kernel.run()
        except BaseException:
            result = kernel.result()
            raise
    finally:
        if result is None:
            result = kernel.result()
        denied = curve.denied_count() - denied_before
        if denied:  # handshakes with a wrong key pair: refused before any message existed
            result.rejected["curve-handshake"] = denied
        result.save()
        for ob in observers:
            ob.experiment_ended(kernel, result)
        if launch is not None:
            await asyncio.to_thread(launch.stop)
        listener.close()
        if report and os.environ.get("LAGOM_REPORT", "1") != "0":
            _write_report(folder.path)
        if agent_keys is not None:
            curve.revoke(agent_keys.public)
        folder.record("closed", counts={k: v for k, v in kernel.counts.items() if k != "running"})
        folder.close()
    result = context.finish(result)
    if verbose:
        print(result, flush=True)
    return result


def _save_for_resume(folder: Path, function: bytes, context: Any) -> None:
    """The function and the context, so ``python -m kernel resume <folder>`` can continue."""
    try:
        (folder / "function.pkl").write_bytes(function)
        (folder / "context.pkl").write_bytes(cloudpickle.dumps(context))
    except Exception:  # a context that cannot be pickled can still be resumed from Python
        pass


def _write_report(folder: Path) -> None:
    try:
        from .report import write_report

        write_report(folder)
    except ImportError:
        pass  # no matplotlib: the report is optional (pip install "lagom-kernel[report]")


def lagom(train_fn: Callable, context: Any = None, **options: Any) -> Result:
    """Run ``train_fn`` in ``context`` (default: one run here) and return the :class:`Result`.

    ``train_fn`` asks by name for what it needs: ``hparams``, ``reporter`` (and, where the
    context provides them, ``dataset``, ``model``, ``strategy``). Options:

    - ``listen="tcp://0.0.0.0:7777"``: also accept agents started by hand on other hosts; the
      command to start them, with the token, is printed.
    - ``path``: the folder under which the experiment folder is made (default ``./lagom-runs``,
      or ``$LAGOM_RUNS``); ``name``: the experiment's name.
    - ``verbose=0`` silences the progress line and the summary.
    - ``launcher``: how local agents start (``"local"`` processes, ``"thread"``, or an instance).
    - ``insecure=True``: no CurveZMQ on tcp:// (messages stay signed, not encrypted); agents
      then need ``--insecure`` too. A warning is printed when such an address is not loopback.
    - ``tensorboard=True``: event files in ``<folder>/tensorboard`` (every broadcast, and each
      trial's parameters for the HParams plugin); needs tensorboardX (the ``report`` extra).
    - ``report=False``: no report.html at the end (``python -m kernel report`` makes one later).
    - ``agent_timeout``: seconds of silence after which an agent is declared lost and its trial
      runs again elsewhere (agents beat every ``heartbeat`` seconds, also while training).
    - ``stop_grace``: seconds a trial has to end after it was told to stop; then it is ended by
      restarting its agent process (a function that ignores stops cannot hold an agent forever).
    - ``resume``: an experiment folder (or True: the newest of this name) whose kernel died; the
      journal is replayed (trials that ended keep their results and are not run again, the
      optimizer and early stopper are brought back to their state) and the rest runs.
    - ``token``: the secret agents must present (default: a fresh random one per experiment);
      set it when agents are started ahead of the kernel, e.g. by a cluster job script.
    - ``observers``: objects with :class:`~kernel.driver.Observer` hooks, told of every trial.

    Raises :class:`~kernel.controller.ExperimentError` when the experiment cannot go on; the
    experiment folder (journal, result.json) is written first.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(lagom_async(train_fn, context, **options))
    return _run_in_thread(train_fn, context, options)


def _run_in_thread(train_fn: Callable, context: Any, options: dict) -> Result:
    """For callers inside a running loop (Jupyter): the experiment gets a loop of its own."""
    box: dict[str, Any] = {}
    kernel_box: dict[str, Kernel] = {}

    def on_kernel(kernel: Kernel, launch: Any) -> None:
        kernel_box["kernel"] = kernel

    def target() -> None:
        try:
            with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                box["result"] = runner.run(lagom_async(train_fn, context, _on_kernel=on_kernel, **options))
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="lagom-kernel", daemon=True)
    thread.start()
    try:
        thread.join()  # interruptible: Ctrl-C lands here
    except KeyboardInterrupt:
        kernel = kernel_box.get("kernel")
        if kernel is not None:
            kernel._loop.call_soon_threadsafe(kernel.abort, "interrupted by the user")
        thread.join(30)
        raise
    if "error" in box:
        raise box["error"]
    return box["result"]


__all__ = ["lagom", "lagom_async", "ExperimentError"]
