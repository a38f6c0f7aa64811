"""``lagom()``: run one training function in the context given, from any Python program.

The experiment runs on its own event loop (uvloop when installed). Called from code that
already runs a loop (Jupyter, an async application), it runs that loop in a helper thread and
waits, so the caller never sees "event loop is already running"; ``await lagom_async(...)`` is
the native form for async code.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from pathlib import Path
from typing import Any, Callable

from transports import Listener
from transports.codec import kernel_codec, token_key

from . import records, replay
from .controller import ExperimentError, Interrupted
from .deadlines import Deadlines
from .driver import Kernel
from .agent.cli import TOKEN_ENV
from .journal import ExperimentFolder, new_experiment_path
from .plan import (TOKEN_FILE, Plan, agent_command, agent_env, listen_on, make_plan, observers_for,
                   save_for_resume, write_token)
from .outputs import start_dashboard, start_report
from .outputs.progress import AgentReminder
from .result import Result
from .views import KernelView


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _default_context():
    """The context a call without one runs in (one run, here), as the contexts package
    registers it: the kernel imports no context."""
    from plugins.registry import load

    return load("lagom.contexts", "default")()


async def lagom_async(train_fn: Callable, context: Any = None, *, listen: str | None = None,
                      path: str | os.PathLike | None = None, name: str | None = None,
                      verbose: int = 1, launcher: Any = None, heartbeat: float = 1.0,
                      observers: list | tuple = (), token: str | None = None,
                      resume: bool | str | os.PathLike | None = None, agent_timeout: float | None = 5.0,
                      stop_grace: float | None = 10.0, insecure: bool = False, report: bool = True,
                      tensorboard: bool = False, fail_fast: int | None = 3, dashboard: bool | int = False,
                      token_file: str | os.PathLike | None = None, compile_cache: str | os.PathLike | None = None,
                      _on_view: Callable[[KernelView], None] | None = None) -> Result:
    """The coroutine behind :func:`lagom`; see there."""
    context = context if context is not None else _default_context()
    plan = make_plan(train_fn, context, listen=listen, launcher=launcher, name=name, token=token,
                 resume=resume, path=path)
    controller = context.controller()
    folder = ExperimentFolder(plan.where or new_experiment_path(path, plan.experiment))
    listener = listen_on(plan.url, plan.token, insecure)
    watchers = observers_for(verbose, tensorboard, observers)
    token_path = None
    if listen is not None:
        token_path, command = _announce(listener, folder.path, plan.token, insecure, token_file)
        watchers.append(AgentReminder(command))
    deadlines = Deadlines(max_time=context.max_time, trial_timeout=context.trial_timeout, stop_grace=stop_grace)
    kernel = Kernel(experiment=folder.path.name, context_name=type(context).__name__, function=plan.function,
                    controller=controller, listener=listener, codec=kernel_codec(token_key(plan.token)),
                    folder=folder, heartbeat=heartbeat, observers=watchers, inject=plan.inject,
                    agent_timeout=agent_timeout, deadlines=deadlines, fail_fast=fail_fast,
                    agent_env=agent_env(compile_cache))
    save_for_resume(folder.path, plan.function, context)
    if plan.events is not None:
        _resume(kernel, plan, folder.path.name, verbose)
    if verbose:
        print(f"lagom: {type(context).__name__} → {folder.path}", flush=True)
    board = asyncio.create_task(start_dashboard(folder.path, dashboard)) if dashboard is not False else None
    try:
        result = await _serve(kernel, plan, listen=listen, insecure=insecure, on_view=_on_view)
        result = context.finish(result)
    finally:
        if token_path is not None:
            token_path.unlink(missing_ok=True)
        if board is not None:
            await board  # it stays, serving the ended experiment too
        if report and os.environ.get("LAGOM_REPORT", "1") != "0" and folder.path.exists():
            start_report(folder.path)
    if verbose:
        print(result, flush=True)
    return result


def _resume(kernel: Kernel, plan: Plan, name: str, verbose: int) -> None:
    """Replay the journal into ``kernel``, with what the resuming context changed of the study."""
    restored = kernel.resumed = {**replay.restore(kernel, plan.events), "edits": plan.edits or {}}
    if verbose:
        edits = "".join(f"; {k} {a} -> {b}" for k, (a, b) in restored["edits"].items())
        print(f"lagom: resuming {name}: {restored['ended']} trials ended before, {restored['requeued']} to run "
              f"again{edits}" + (f" ({plan.unreadable} unreadable journal line)" if plan.unreadable else ""),
              flush=True)


def _announce(listener: Listener, folder: Path, token: str, insecure: bool,
              token_file: str | os.PathLike | None) -> tuple[Path, str]:
    """Say how to start agents on other hosts; returns the token's file (removed at the end)
    and the command."""
    where = write_token(Path(token_file) if token_file is not None else folder / TOKEN_FILE, token)
    command = agent_command(listener.address.for_remote_agents().url, where, insecure)
    print(f"lagom: experiment {folder.name} listens on {listener.url}; start agents with\n  {command}\n"
          f"  (the token is in {where}, readable by you alone: copy it to the agents' hosts with mode "
          f"600, or set {TOKEN_ENV} there from it; it is removed when the experiment ends)", flush=True)
    return where, command


async def _serve(kernel: Kernel, plan: Plan, *, listen: str | None, insecure: bool,
                 on_view: Callable[[KernelView], None] | None) -> Result:
    """Start the agents, run the kernel, and whatever happens leave the folder complete; when
    the agents cannot even start (Ray not installed, no Dask scheduler), leave no folder."""
    try:
        preload = getattr(plan.launch, "preload", None)  # the local launcher's: see shipping.libraries
        if callable(preload):
            preload(plan.function)
        plan.launch.start(url=kernel.listener.address.for_local_agents().url, token=plan.token,
                          count=plan.context.workers, insecure=insecure, log_dir=kernel.folder.agents_dir,
                          on_exit=kernel.agent_exited)
    except BaseException:
        _discard(kernel, plan)
        raise
    result: Result | None = None
    try:
        kernel.expect_agents(None if listen is not None else plan.context.workers)
        if on_view is not None:
            on_view(kernel.view)
        try:
            with _signals_end(kernel):
                result = await kernel.run()
        except BaseException:
            result = kernel.result()
            raise
    finally:
        unsaved = await _close(kernel, plan, result if result is not None else kernel.result())
    if unsaved is not None:  # it ended well, but result.json is not there: say so, not success
        err = ExperimentError(f"cannot write result.json in {kernel.folder.path} ({unsaved.strerror or unsaved}); "
                              f"every trial is in its journal (python -m kernel status reads it). Free some "
                              f"space, then python -m kernel report {kernel.folder.path} writes it")
        err.path = kernel.folder.path
        raise err
    return result


@contextlib.contextmanager
def _signals_end(kernel: Kernel):
    """While the experiment runs (in the main thread), Ctrl-C and SIGTERM (how clusters preempt
    jobs) end it cleanly: result.json written, agents gone, resumable; a second Ctrl-C is a
    plain KeyboardInterrupt."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loop, installed = kernel.loop, []

    def on_signal(why: str) -> None:
        for sig in installed:
            loop.remove_signal_handler(sig)
        installed.clear()
        kernel.interrupt(why)

    for sig, why in ((signal.SIGINT, "interrupted"), (signal.SIGTERM, "terminated (SIGTERM)")):
        try:
            loop.add_signal_handler(sig, on_signal, why)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def _discard(kernel: Kernel, plan: Plan) -> None:
    """Nothing ran: close the socket and the folder, and remove a new folder (a resumed one
    keeps its journal)."""
    import shutil

    with contextlib.suppress(Exception):
        plan.launch.stop()
    kernel.listener.close()
    kernel.folder.close()
    if plan.events is None:
        shutil.rmtree(kernel.folder.path, ignore_errors=True)


async def _close(kernel: Kernel, plan: Plan, result: Result) -> OSError | None:
    """Leave the folder complete; returns why result.json could not be written (a full disk),
    where the journal could (when it could not either, the journal's own error says so)."""
    if kernel.listener.refused:  # handshakes with a wrong key pair: refused before any message existed
        result.rejected["curve-handshake"] = kernel.listener.refused
    unsaved = None
    try:
        result.save()
    except OSError as exc:  # a full disk: the journal (resumable) is what counts
        unsaved = exc
    for ob in kernel.observers:
        ob.experiment_ended(kernel.view, result)
    await asyncio.to_thread(plan.launch.stop)
    result.errors.update(plan.launch.errors)
    kernel.listener.close()
    records.closed(kernel.journal, {k: v for k, v in kernel.book.counts.items() if k != "running"})
    kernel.folder.close()
    return unsaved if kernel.folder.failed is None else None


def lagom(train_fn: Callable, context: Any = None, **options: Any) -> Result:
    """Run ``train_fn`` in ``context`` (default: one run here) and return the :class:`Result`.

    ``train_fn`` asks by name for what it needs: ``hparams``, ``reporter`` (and, where the
    context provides them, ``dataset``, ``model``, ``strategy``). Options:

    - ``listen="tcp://0.0.0.0:7777"``: also accept agents started by hand on other hosts; the
      command to start them is printed, naming a file that holds the token (readable by you
      alone, in the experiment folder or at ``token_file=``, removed at the end); the token
      itself is never printed.
    - ``path``: the folder under which the experiment folder is made (default ``./lagom-runs``,
      or ``$LAGOM_RUNS``); ``name``: the experiment's name.
    - ``verbose=0`` silences the progress line and the summary.
    - ``launcher``: how local agents start (``"local"`` processes, ``"thread"``, or an instance).
    - ``insecure=True``: no CurveZMQ on tcp:// (messages stay signed, not encrypted); agents
      then need ``--insecure`` too. A warning is printed when such an address is not loopback.
    - ``tensorboard=True``: event files in ``<folder>/tensorboard`` (every broadcast, and each
      trial's parameters for the HParams plugin); needs tensorboardX (the ``report`` extra).
    - ``report=False``: no report.html (``python -m kernel report`` makes one later); else a process
      draws it aside within a second or two of ``lagom()`` returning and moves it in (or not) at the end.
    - ``agent_timeout``: seconds of silence after which an agent is declared lost and its trial
      runs again elsewhere (agents beat every ``heartbeat`` seconds, also while training).
    - ``stop_grace``: seconds a trial has to end after it was told to stop; then it is ended by
      restarting its agent process (a function that ignores stops cannot hold an agent forever).
    - ``fail_fast``: stop when the first this many trials all failed with the same error and
      none finished (a bug, not a bad configuration; default 3); None runs every trial anyway.
    - ``resume``: an experiment folder (or True: the newest of this name) whose kernel died; the
      journal is replayed (trials that ended keep their results and are not run again, the
      optimizer and early stopper are brought back to their state) and the rest runs.
    - ``token``: the secret agents must present (default: a fresh random one per experiment);
      set it when agents are started ahead of the kernel, e.g. by a cluster job script.
    - ``dashboard=True`` (or a port): a live web dashboard on loopback, at this experiment (its
      URL is printed) and those beside it, until this program ends (one per program). Needs the
      ``dashboard`` extra; ``python -m kernel dashboard`` serves any folder at any time.
    - ``compile_cache``: JAX's persistent compilation cache for every agent, on every host that
      mounts it (default: ``~/.cache/lagom/jax`` per host); see docs/compile.md.
    - ``observers``: :class:`~kernel.Observer` objects, told of every trial (with a read-only
      :class:`~kernel.views.KernelView`).

    Raises :class:`~kernel.controller.ExperimentError` when the experiment cannot go on, and
    :class:`~kernel.controller.Interrupted` (a KeyboardInterrupt) on Ctrl-C or SIGTERM; either
    way the experiment folder (journal, result.json) is written first, and it can be resumed.
    """
    if _loop_running():
        return _run_in_thread(train_fn, context, options)
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(lagom_async(train_fn, context, **options))
    except Interrupted as exc:  # one line that says what to do, not the event loop's frames
        raise exc.with_traceback(None) from None


def _loop_running() -> bool:
    """Whether this thread runs an event loop (asked outside any ``except``, so that an error of
    the experiment is not shown "during handling of" the loop's absence)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _run_in_thread(train_fn: Callable, context: Any, options: dict) -> Result:
    """For callers inside a running loop (Jupyter, ``asyncio.run(main())``): the experiment gets
    a loop of its own on a helper thread while this one waits, and Ctrl-C (a notebook's
    interrupt) ends the experiment as it does anywhere: kept, resumable, said in one line.

    The wait is on an event, not ``Thread.join``: on Python 3.11 a join cut by Ctrl-C can mark
    the thread stopped while it still runs. While it waits, Ctrl-C raises here even where the
    caller's loop took SIGINT for itself (``asyncio.run`` only cancels its task, which cannot
    run while this waits)."""
    box: dict[str, Any] = {}
    views: list[KernelView] = []
    done, cut = threading.Event(), threading.Event()

    def seen(view: KernelView) -> None:
        views.append(view)
        if cut.is_set():  # interrupted before the kernel existed
            view.interrupt("interrupted")

    def target() -> None:
        try:
            with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                box["result"] = runner.run(lagom_async(train_fn, context, _on_view=seen, **options))
        except BaseException as exc:
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=target, name="lagom-kernel", daemon=True).start()
    with _ctrl_c_raises():
        try:
            while not done.wait(0.25):
                pass
        except KeyboardInterrupt:
            cut.set()
            for view in views:
                view.interrupt("interrupted")
            if not done.wait(30):
                raise KeyboardInterrupt("the experiment did not end within 30 s of the interrupt") from None
    if "error" in box:
        raise box["error"].with_traceback(None) if isinstance(box["error"], Interrupted) else box["error"]
    return box["result"]


@contextlib.contextmanager
def _ctrl_c_raises():
    """SIGINT raises KeyboardInterrupt in this (main) thread for the duration."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    try:
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    except ValueError:  # not allowed here (an embedded interpreter)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


__all__ = ["lagom", "lagom_async", "ExperimentError", "Interrupted"]
