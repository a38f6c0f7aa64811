"""Arguments by name: the training function asks for what it needs, and gets only that.

Checked in the driver before any agent starts, so a typo fails in a second, not after the
first trial was scheduled, and the message lists the names that may be asked for.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Iterable

KNOWN = {
    "hparams": "the trial's hyperparameters (a dict)",
    "reporter": "broadcasts metrics and logs to the kernel",
    "dataset": "the dataset generator (ablation leaves out the ablated feature)",
    "model": "the model generator (ablation leaves out the ablated layers)",
    "strategy": "the distribution strategy (a no-op on one device)",
}


class InjectionError(TypeError):
    """A training function that asks for an argument no context can give it."""


def requested(fn: Callable, provided: Iterable[str], context: str = "this context",
              missing: Callable[[str], str | None] | None = None) -> list[str]:
    """The argument names ``fn`` asks for; raises for any name that cannot be given
    (``missing(name)``: the context's word on how to give it, added to the error)."""
    if not callable(fn):
        raise InjectionError(f"the training function must be callable, got {type(fn).__name__}")
    provided = set(provided)
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise InjectionError(f"cannot read the signature of {fn!r}: {exc}") from None
    fname = getattr(fn, "__name__", "the training function")
    names = []
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.kind is p.POSITIONAL_ONLY:
            raise InjectionError(f"{fname}() takes {p.name!r} positional-only; arguments are passed by name")
        if p.name in provided:
            names.append(p.name)
            continue
        if p.default is not p.empty:
            continue
        allowed = ", ".join(n for n in KNOWN if n in provided)
        if p.name in KNOWN:
            how = missing(p.name) if missing is not None else None
            raise InjectionError(
                f"{fname}() asks for {p.name!r} ({KNOWN[p.name]}), which {context} does not provide"
                + (f": {how}" if how else f"; here it may ask for: {allowed} (or give {p.name!r} a default)")
            )
        raise InjectionError(
            f"{fname}() asks for {p.name!r}, which lagom cannot give; a training function asks by "
            f"name for any of: {', '.join(KNOWN)} (here: {allowed})"
        )
    return names


class Injector:
    """Gives a trial the arguments a context adds (``dataset``, ``model``...).

    A context ships one to every agent (pickled, once); for each trial the agent calls
    ``provide`` with the trial's ``extra`` (what the controller put there, e.g. the component to
    leave out) and passes what it returns to the function by name.
    """

    provides: frozenset[str] = frozenset()

    def provide(self, extra: dict[str, Any] | None) -> dict[str, Any]:
        return {}
