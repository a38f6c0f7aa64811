"""How long a trial waits for XLA: seconds spent tracing, lowering and compiling programs, how
many programs were compiled and how many of those came from the persistent cache instead.

JAX reports each step through ``jax.monitoring``. The listeners are registered the moment JAX
is imported in this process (by a training function: an import hook waits for it), never
before: an agent whose function never imports JAX imports none, and neither does the kernel.
An agent forked from a driver that imported JAX has it loaded from the start: a trial reports
figures once a function has run JAX in its thread, not because JAX is there.
Counts are kept per thread, since agents in threads of one process (the thread launcher, a
single run) each compile in their own.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import threading
from typing import Any

TRACE = "/jax/core/compile/jaxpr_trace_duration"
LOWER = "/jax/core/compile/jaxpr_to_mlir_module_duration"
COMPILE = "/jax/core/compile/backend_compile_duration"  # a compile, or a load from the persistent cache
CACHE_HIT = "/jax/compilation_cache/cache_hits"
_TIMED = frozenset({TRACE, LOWER, COMPILE})
CACHE_ENV = "LAGOM_COMPILE_CACHE"  # the folder lagom(compile_cache=...) names, sent in the welcome


class _Counts(threading.local):
    heard = False  # JAX reported work in this thread: a function of its ran here
    seconds = 0.0
    programs = 0  # compiled or loaded
    cached = 0  # of which loaded from the persistent cache


_counts = _Counts()
_listening = False


def _on_duration(event: str, duration: float, **_: Any) -> None:
    if event in _TIMED:
        _counts.heard = True
        _counts.seconds += duration
        if event == COMPILE:
            _counts.programs += 1


def _on_event(event: str, **_: Any) -> None:
    if event == CACHE_HIT:
        _counts.cached += 1


def _listen(monitoring: Any) -> None:
    global _listening
    if not _listening:
        _listening = True
        monitoring.register_event_duration_secs_listener(_on_duration)
        monitoring.register_event_listener(_on_event)


class _AfterJax(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``jax`` as the other finders would, and registers the listeners once it has run."""

    def find_spec(self, name, path, target=None):
        if name != "jax" or _listening:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        self._loader, spec.loader = spec.loader, self
        return spec

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        self._loader.exec_module(module)
        import jax.monitoring

        _listen(jax.monitoring)


def watch() -> None:
    """Count compiles in this process from now on: at once if JAX is loaded, else as soon as
    something imports it."""
    if _listening:
        return
    if "jax" in sys.modules:
        import jax.monitoring

        _listen(jax.monitoring)
    elif not any(isinstance(f, _AfterJax) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterJax())


def reading() -> tuple[float, int, int]:
    """This thread's totals so far: (seconds, programs compiled or loaded, loaded from the cache)."""
    return _counts.seconds, _counts.programs, _counts.cached


def since(before: tuple[float, int, int]) -> list | None:
    """What compiled since ``before``: [seconds, programs compiled, programs loaded from the
    persistent cache], or None while no function has run JAX in this thread."""
    if not _counts.heard:  # JAX loaded (a driver's modules, forked) is not JAX used
        return None
    seconds, programs, cached = reading()
    loaded = cached - before[2]
    return [round(seconds - before[0], 6), programs - before[1] - loaded, loaded]


def use_persistent_cache() -> None:
    """A persistent compilation cache for this agent process, set before its function imports
    JAX: the folder the kernel named (``lagom(compile_cache=...)``, through the welcome), else
    the one this environment names, else one per host, so a program compiled once is loaded by
    every agent and every later run. Min compile time and size 0, or JAX skips
    most small compiles."""
    named = os.environ.get(CACHE_ENV)
    if named:
        os.environ["JAX_COMPILATION_CACHE_DIR"] = named
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "lagom", "jax"))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
    jax = sys.modules.get("jax")
    if jax is not None:  # imported before (an agent forked from the driver): JAX read its variables then
        jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
        jax.config.update("jax_persistent_cache_min_compile_time_secs",
                          float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))
        jax.config.update("jax_persistent_cache_min_entry_size_bytes",
                          int(os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"]))
