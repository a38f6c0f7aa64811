"""lagom-kernel's top-level packages have plain names (kernel, transports, plugins, contexts):
a user's own package of the same name next to their script would be imported instead of ours,
and fail far from the cause ("No module named 'plugins.ablators'"). Say so at import, in one line."""
from __future__ import annotations

import importlib.util
from pathlib import Path

OURS = ("transports", "plugins", "contexts")


def check_not_shadowed() -> None:
    root = Path(__file__).resolve().parent.parent  # where this installation keeps its packages
    for name in OURS:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is None or spec.origin is None:
            continue  # not found (a broken install fails on its own), or a namespace folder, which never wins
        found = Path(spec.origin).resolve()
        found = found.parent if found.name == "__init__.py" else found
        if found.parent != root:
            raise ImportError(f"lagom-kernel's package {name!r} is shadowed by {found}: "
                              f"a package of that name comes first on sys.path (next to your script, or the "
                              f"current folder); rename yours, or run from another folder")
