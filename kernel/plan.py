"""What ``lagom()`` settles before anything starts, so a mistake costs no folder and no agent:
the function pickled and checked against what the context provides, the launcher, the
address, the token and where agents find it, the journal to replay on resume.
"""
from __future__ import annotations

import os
import secrets
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import cloudpickle

import transports
from transports import Listener, curve

from . import records, shipping
from .injection import requested
from .journal import latest_experiment, read_journal
from .outputs.live import LiveFiles
from .outputs.progress import Progress

TOKEN_FILE = ".agent-token"  # in the experiment folder while the kernel listens


def agent_command(url: str, token_file: Path, insecure: bool) -> str:
    """What to run on another host: this interpreter (so the same environment), and the file
    that holds the token: the token itself is never printed (it would land in CI logs and
    notebooks) nor put in argv (where every user of that host can read it)."""
    return (f"{shlex.quote(sys.executable)} -m kernel.agent --connect {url} --token-file "
            f"{shlex.quote(str(token_file))}" + (" --insecure" if insecure else ""))


def write_token(path: Path, token: str) -> Path:
    """The token in a file only this user can read (``--token-file`` refuses any other)."""
    path = path.expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a file that was there keeps its mode otherwise
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token)
    return path


@dataclass
class Plan:
    """What ``lagom`` settles before anything starts (so a mistake costs no folder, no agent)."""

    context: Any
    function: bytes
    inject: bytes | None
    url: str
    launch: Any
    experiment: str
    token: str
    events: list[dict] | None = None
    where: Path | None = None
    unreadable: int = 0
    edits: dict | None = None  # what a resume changes of the study: {setting: [before, now]}


LARGE = 16 * 1024 * 1024  # a function this large pickled is worth a word: it goes to every agent


def _warn_large(train_fn: Callable, size: int) -> None:
    big = ", ".join(f"{name} ({n / 1e6:.0f} MB)" for name, n in shipping.large_captures(train_fn)[:5])
    print(f"lagom: warning: the training function is {size / 1e6:.0f} MB pickled, sent to every agent"
          f"{'; it captures ' + big if big else ''}. Hand data to trials by name with "
          f"kernel.with_data(train, name=value), or load it inside the function", file=sys.stderr, flush=True)


def _pickled(train_fn: Callable) -> bytes:
    try:
        return shipping.pack(train_fn)
    except Exception as exc:
        raise TypeError(
            f"the training function cannot be sent to agents ({type(exc).__name__}: {exc}); "
            f"create unpicklable objects (open files, locks, clients) inside the function"
        ) from None


def make_plan(train_fn: Callable, context: Any, *, listen: str | None, launcher: Any, name: str | None,
          token: str | None, resume: Any, path: Any) -> Plan:
    from plugins.launchers import Launcher
    from plugins.registry import resolve

    _not_while_a_child_imports_the_script()

    context_name = type(context).__name__
    fn, data = shipping.split(train_fn)
    names = requested(fn, context.provides | set(data), context_name, getattr(context, "missing", None))  # before anything starts
    if hasattr(context, "check_function"):
        context.check_function(names)
    function = _pickled(train_fn)
    if len(function) > LARGE and not data:
        _warn_large(train_fn, len(function))
    injector = context.injector()
    workers = context.workers
    if listen is None and workers < 1:
        raise ValueError(f"{context_name}(workers={workers}) with no listen address: no agent could ever "
                         f"join; set workers >= 1, or listen='tcp://0.0.0.0:PORT' for agents started by hand")
    if token is not None and (not isinstance(token, str) or len(token) < 16):
        raise ValueError("token must be a string of at least 16 characters (or None: one is made)")
    plan = Plan(context, function, cloudpickle.dumps(injector) if injector is not None else None,
                 listen or context.default_url(),
                 resolve("lagom.launchers", (launcher or context.launcher) if workers else "none", Launcher),
                 name or context.name, token or secrets.token_urlsafe(32))
    if resume:
        _read_resume(plan, resume, path)
    return plan


def _not_while_a_child_imports_the_script() -> None:
    """A process started with ``spawn`` (Dask's local workers, multiprocessing) imports the main
    script again; a ``lagom()`` at its top level would start an experiment in every one of them
    (each with its folder) instead of letting the worker start."""
    process = sys.modules.get("multiprocessing.process")
    if process is not None and getattr(process.current_process(), "_inheriting", False):
        raise RuntimeError(
            "lagom() was called while a new worker process imported your script (Dask's local workers "
            "and multiprocessing start that way): put the call under  if __name__ == \"__main__\":  so it "
            "runs only when you run the script")


def _read_resume(plan: Plan, resume: Any, path: Any) -> None:
    """The journal to replay; the context takes the journaled seed, so the controller makes the
    same decisions again."""
    context_name = type(plan.context).__name__
    where = latest_experiment(path, plan.experiment) if resume is True else Path(resume)
    if not (where / records.JOURNAL).exists():
        raise FileNotFoundError(f"resume={str(resume)!r}: no journal.jsonl in {where}; pass the experiment "
                                f"folder (printed when it started) or resume=True for the newest")
    plan.events, plan.unreadable = read_journal(where)
    plan.where = where
    first = next((e for e in plan.events if e["event"] == "experiment"), None)
    if first is not None and first.get("context") != context_name:
        raise ValueError(f"{where} holds a {first.get('context')} experiment, not a {context_name}")
    seed = (first or {}).get("controller", {}).get("seed")
    if seed is not None and hasattr(plan.context, "seed"):
        plan.context.seed = seed
    plan.edits = _edits(where, plan.context, plan.events)


def _edits(where: Path, context: Any, events: list[dict]) -> dict[str, list]:
    """What the resuming context changes of the study: ``{setting: [before, now]}``. A search
    may go on for more trials or another time budget; it cannot take back proposed trials."""
    try:
        saved = cloudpickle.loads((where / "context.pkl").read_bytes())
    except Exception:  # no saved context (or one that cannot load here): compare with the journal
        first = next((e for e in events if e["event"] == "experiment"), {})
        saved = SimpleNamespace(num_trials=first.get("controller", {}).get("num_trials"))
    edits = {}
    if hasattr(context, "check_resume"):  # a change the replay could not honour fails here, before anything runs
        edits.update(context.check_resume(saved) or {})
    for name in ("num_trials", "max_time"):
        before, now = getattr(saved, name, None), getattr(context, name, None)
        if hasattr(saved, name) and before != now:
            edits[name] = [before, now]
    proposed = len({e["trial"] for e in events if e["event"] in ("lease", "start")})
    if "num_trials" in edits and edits["num_trials"][1] is not None and edits["num_trials"][1] < proposed:
        raise ValueError(f"num_trials={edits['num_trials'][1]} is fewer than the {proposed} trials this study has "
                         f"already proposed; raise it, or leave it at {edits['num_trials'][0]}")
    return edits


def listen_on(url: str, token: str, insecure: bool) -> Listener:
    """Bind the kernel's socket; tcp:// is CurveZMQ with keys derived from the token."""
    address = transports.parse(url)
    kernel_keys = None
    if address.scheme == "tcp" and not insecure:  # encrypted, both ends authenticated
        kernel_keys = curve.derive(token)[0]
    elif address.scheme == "tcp" and not address.is_loopback:
        print(f"lagom: WARNING: {url} is reachable from other hosts and insecure=True: traffic is "
              f"signed but not encrypted, and anyone on the network can read it", file=sys.stderr, flush=True)
    return transports.listen(url, curve=kernel_keys)


def observers_for(verbose: int, tensorboard: bool, extra: list | tuple) -> list:
    observers = [LiveFiles()] + ([Progress()] if verbose else []) + list(extra)
    if tensorboard:
        from .outputs.tensorboard import TensorBoard

        observers.append(TensorBoard())
    return observers


def agent_env(compile_cache: str | os.PathLike | None) -> dict[str, str]:
    """What agents set in their environment (unless theirs says otherwise) before they load the
    function: the compilation cache they share, when named."""
    if compile_cache is None:
        return {}
    from .agent.compiles import CACHE_ENV

    return {CACHE_ENV: str(Path(compile_cache).expanduser().absolute())}


def save_for_resume(folder: Path, function: bytes, context: Any) -> None:
    """The function and the context, so ``python -m kernel resume <folder>`` can continue."""
    try:
        (folder / "function.pkl").write_bytes(function)
        (folder / "context.pkl").write_bytes(cloudpickle.dumps(context))
    except Exception:  # a context that cannot be pickled can still be resumed from Python
        pass
