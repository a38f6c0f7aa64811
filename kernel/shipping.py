"""How the training function travels to agents: cloudpickle, plus where its code came from.

cloudpickle sends a function defined in a script or a notebook by value, and names every code
object's file ``<dynamic-code>``, so a trial's traceback would point nowhere. :func:`pack`
therefore also sends, for each code object the function reaches (nested functions, helpers of
the same script), its real file name and that file's lines; :func:`unpack` puts the names back
and registers the lines with ``linecache``, so a traceback on any agent names the user's file
and shows the line, as it would on the laptop.
"""
from __future__ import annotations

import linecache
import os
import pickletools
import sys
import types
from pathlib import Path
from typing import Any, Callable, Iterator

import cloudpickle

_Key = tuple[str, int]  # (qualified name, first line): enough to find a code object again


def _codes(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _codes(const)


def _functions(fn: Callable, limit: int = 200) -> list[types.FunctionType]:
    """``fn`` and the functions of its own module it reaches through globals and closures
    (the ones that travel by value with it; a library's travel by reference)."""
    seen: dict[int, types.FunctionType] = {}
    todo, module = [fn], getattr(fn, "__module__", None)
    while todo and len(seen) < limit:
        f = todo.pop()
        f = getattr(f, "__wrapped__", f)
        if not isinstance(f, types.FunctionType) or id(f) in seen or f.__module__ != module:
            continue
        seen[id(f)] = f
        names = {n for code in _codes(f.__code__) for n in code.co_names}
        todo += [f.__globals__[n] for n in names if n in f.__globals__]
        todo += [c.cell_contents for c in (f.__closure__ or ()) if _filled(c)]
    return list(seen.values())


def _filled(cell: types.CellType) -> bool:
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True


def _key(code: types.CodeType) -> _Key:
    return (getattr(code, "co_qualname", code.co_name), code.co_firstlineno)


class WithData:
    """A training function with named objects for its arguments: see :func:`with_data`."""

    def __init__(self, fn: Callable, data: dict[str, Any]):
        self.fn, self.data = fn, data
        self.__name__ = getattr(fn, "__name__", "train")

    def __call__(self, **kwargs: Any) -> Any:
        return self.fn(**{**self.data, **kwargs})


def with_data(fn: Callable, **data: Any) -> WithData:
    """Hand large objects (arrays, data sets) to every trial, by argument name.

        lagom(with_data(train, images=x, labels=y), HyperparameterSearch(...))
        def train(hparams, reporter, images, labels): ...

    They travel once per agent, in parts, whatever their size (no message-size ceiling), and
    each trial on that agent gets the same objects: treat them as read-only."""
    if not callable(fn):
        raise TypeError(f"with_data(fn, ...) needs the training function first, got {type(fn).__name__}")
    return WithData(fn, data)


def split(fn: Callable) -> tuple[Callable, dict[str, Any]]:
    """(the function itself, the objects handed to it by name)."""
    return (fn.fn, dict(fn.data)) if isinstance(fn, WithData) else (fn, {})


def large_captures(fn: Callable, limit: int = 1 << 20) -> list[tuple[str, int]]:
    """The globals and closure variables of ``fn`` that pickle to more than ``limit`` bytes, with
    their sizes, largest first (to name them when the function is too large)."""
    fn = split(fn)[0]
    found: dict[str, Any] = {}
    for f in _functions(fn):
        names = {n for code in _codes(f.__code__) for n in code.co_names}
        found.update({n: f.__globals__[n] for n in names if n in f.__globals__})
        found.update({name: c.cell_contents for name, c in zip(f.__code__.co_freevars, f.__closure__ or ())
                      if _filled(c)})
    sizes = []
    for name, value in found.items():
        if isinstance(value, (types.ModuleType, types.FunctionType, type)):
            continue
        try:
            size = len(cloudpickle.dumps(value))
        except Exception:
            continue
        if size > limit:
            sizes.append((name, size))
    return sorted(sizes, key=lambda ns: -ns[1])


def pack(fn: Callable) -> bytes:
    """The function's pickle, with its code's file names and those files' lines."""
    where: dict[_Key, str] = {}
    for f in _functions(split(fn)[0]):
        for code in _codes(f.__code__):
            where.setdefault(_key(code), code.co_filename)
    sources = {name: lines for name in set(where.values()) if (lines := linecache.getlines(name))}
    return cloudpickle.dumps({"fn": fn, "where": where, "sources": sources})


def unpack(data: bytes) -> Callable:
    """The function from :func:`pack`'s bytes, its code named after its real files again (a plain
    cloudpickle of a function is accepted too)."""
    shipped = cloudpickle.loads(data)
    if not (isinstance(shipped, dict) and "fn" in shipped):
        return shipped
    where: dict[_Key, str] = shipped["where"]
    for name, lines in shipped["sources"].items():  # mtime None: linecache keeps, never rereads
        linecache.cache[name] = (sum(map(len, lines)), None, lines, name)
    for f in _functions(split(shipped["fn"])[0]):
        f.__code__ = _renamed(f.__code__, where)
    return shipped["fn"]


def _renamed(code: types.CodeType, where: dict[_Key, str]) -> types.CodeType:
    consts = tuple(_renamed(c, where) if isinstance(c, types.CodeType) else c for c in code.co_consts)
    return code.replace(co_filename=where.get(_key(code), code.co_filename), co_consts=consts)


def import_path() -> list[str]:
    """Where this interpreter imports from, and the working directory: what a process started
    from here (an agent, the report's) needs to import the modules the driver can."""
    return list(dict.fromkeys([p for p in sys.path if p] + [os.getcwd()]))


PRELOAD_SCAN = 2 << 20  # a function pickled larger than this is not read for the libraries it names
_NOT_PRELOADED = frozenset({"tensorflow"})  # its import starts a runtime: a process that has it is not forked


def libraries(payload: bytes) -> list[str]:
    """The modules of installed libraries (packages in a site-packages folder) that unpickling
    ``payload`` imports, and that running it will (a name its code uses, as ``import flax`` in
    the function does), as far as this process has them loaded: what an agent's first trial
    would otherwise spend its first seconds importing, so a launcher may load them into the
    process its agents are forked from (plugins/launchers/local.py). A module of the user's that
    the pickle names (a function defined in one travels by reference) counts for the libraries
    it imported; the module itself, which may change between experiments, is not among them,
    nor is the standard library."""
    if len(payload) > PRELOAD_SCAN:
        return []
    named: set[str] = set()
    try:
        for _, arg, _ in pickletools.genops(payload):  # a module's name, or a global's ("sklearn.datasets._base")
            if isinstance(arg, str) and len(arg) < 200:
                named.add(arg)
    except Exception:  # not a pickle this scan can read: nothing to preload
        return []
    found = {n for n in named if _installed(n)}
    for name in named - found:
        module = sys.modules.get(name)
        if isinstance(module, types.ModuleType) and name.split(".", 1)[0] not in sys.stdlib_module_names:
            found.update(m for value in list(vars(module).values()) if _installed(m := _module_of(value)))
    return sorted(found)


def _module_of(value: Any) -> str:
    """The module a module, function or class is, or is defined in ('' for anything else)."""
    name = value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", None)
    return name if isinstance(name, str) else ""


def _installed(name: str) -> bool:
    """``name`` is a module loaded here, of a package installed in a site-packages folder."""
    top = name.split(".", 1)[0]
    if name not in sys.modules or top in sys.stdlib_module_names or top in _NOT_PRELOADED or top == "__main__":
        return False
    package = sys.modules.get(top)
    where = getattr(package, "__file__", None) or next(iter(getattr(package, "__path__", [])), None)
    return isinstance(where, str) and bool({"site-packages", "dist-packages"} & set(Path(where).parts))
