"""Finds plugins by entry-point group and name.

A plugin is named in user code (``optimizer="randomsearch"``) or passed as an instance. Names
resolve through ``importlib.metadata`` entry points, so a third-party package adds its own by
declaring the same group. An unknown name fails with the list of known ones; a plugin whose
class does not implement the group's interface fails naming both.
"""
from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any, Callable

GROUPS = {
    "lagom.optimizers": "optimizer",
    "lagom.earlystop": "early stopper",
    "lagom.launchers": "launcher",
    "lagom.ablators": "ablator",
    "lagom.strategies": "strategy",
    "lagom.contexts": "context",
}


class PluginError(LookupError):
    """A plugin that cannot be found or loaded; the message names what exists."""


def _entry_points(group: str) -> list[EntryPoint]:
    # One seam for tests: monkeypatch this to present a fake installed package.
    found = list(entry_points(group=group))
    if not any(ep.value.startswith(_BUILTIN_PREFIXES) for ep in found):
        found += _source_tree_entry_points(group)
    return found


_BUILTIN_PREFIXES = ("plugins.", "kernel.", "contexts.")


def _source_tree_entry_points(group: str) -> list[EntryPoint]:
    """The built-ins as declared in pyproject.toml, for a source checkout that was never
    pip-installed (a GPU host with only JAX, say): same names, same groups."""
    try:
        from importlib.metadata import PackageNotFoundError, distribution

        distribution("lagom-kernel")
        return []  # installed: its own metadata is the truth
    except PackageNotFoundError:
        pass
    import tomllib
    from pathlib import Path

    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    if not pyproject.exists():
        return []
    declared = tomllib.loads(pyproject.read_text()).get("project", {}).get("entry-points", {})
    return [EntryPoint(name=n, value=v, group=group) for n, v in declared.get(group, {}).items()]


def names(group: str) -> list[str]:
    """Registered names in ``group``, sorted."""
    return sorted({ep.name for ep in _entry_points(group)})


def load(group: str, name: str) -> Callable[..., Any]:
    """The class (or factory) registered under ``name`` in ``group``."""
    kind = GROUPS.get(group, group)
    matches = [ep for ep in _entry_points(group) if ep.name == name]
    if not matches:
        known = ", ".join(names(group)) or "none"
        raise PluginError(
            f"unknown {kind} {name!r}; registered {kind}s: {known}. "
            f"A third-party {kind} registers itself in the entry-point group {group!r}."
        )
    try:
        return matches[0].load()
    except Exception as exc:
        raise PluginError(
            f"the {kind} {name!r} is registered ({matches[0].value}) but failed to load: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def resolve(group: str, spec: Any, interface: type, **kwargs: Any) -> Any:
    """Turn a name, a class or an instance into a plugin instance that implements ``interface``.

    A name is loaded and, like a class, called with ``kwargs``; an instance is used as it is.
    """
    kind = GROUPS.get(group, group)
    if isinstance(spec, str):
        spec = load(group, spec)
    obj = spec(**kwargs) if isinstance(spec, type) else spec
    required = sorted(getattr(interface, "__abstractmethods__", ()))
    missing = [m for m in required if not callable(getattr(obj, m, None))]
    if missing or obj is None:
        raise PluginError(
            f"{obj!r} is not a usable {kind}: pass a registered name, or an instance of a "
            f"{interface.__module__}.{interface.__qualname__} subclass"
            + (f" (it lacks: {', '.join(missing)})" if missing else "")
        )
    return obj
