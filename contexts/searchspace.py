"""The search space: named hyperparameters of four types, validated when they are declared.

``DOUBLE`` and ``INTEGER`` take ``[low, high]`` and an optional ``"log"`` scale; ``DISCRETE``
takes a list of numbers and ``CATEGORICAL`` a list of anything msgpack can carry. Sampling and
grid enumeration live here, so every optimizer draws from the same, checked, definition.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import random
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from plugins.optimizers import priors as _priors

TYPES = ("DOUBLE", "INTEGER", "DISCRETE", "CATEGORICAL")


_NO_DEFAULT = object()


class SearchspaceError(ValueError):
    """A hyperparameter declared in a way that cannot be searched."""


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    values: tuple  # (low, high) for ranges; the choices otherwise
    log: bool = False
    when: tuple = ()  # ((parent, (allowed values...)), ...): sampled only when each parent has one
    default: tuple = ()  # (value,): what trials that ran before it was added are read as (a resume)

    def active(self, params: dict[str, Any]) -> bool:
        """Whether this parameter takes part, given the parameters declared before it."""
        if not self.when:  # most parameters: always (and this runs once per parameter per draw)
            return True
        return all(parent in params and any(params[parent] == v and type(params[parent]) is type(v)
                                            for v in allowed) for parent, allowed in self.when)

    @property
    def is_range(self) -> bool:
        return self.type in ("DOUBLE", "INTEGER")

    def sample(self, rng: random.Random) -> Any:
        if not self.is_range:
            return self.values[rng.randrange(len(self.values))]
        low, high = self.values
        if self.type == "DOUBLE":
            if self.log:  # exp(log(x)) can miss the ends by an ulp: clamp into the range
                return min(high, max(low, math.exp(rng.uniform(math.log(low), math.log(high)))))
            return min(high, max(low, rng.uniform(low, high)))
        if self.log:  # log-uniform over integers: draw in [low, high + 1) on the log scale
            return min(high, int(math.exp(rng.uniform(math.log(low), math.log(high + 1)))))
        return rng.randint(low, high)

    def contains(self, value: Any) -> bool:
        if not self.is_range:
            return any(value == v and type(value) is type(v) for v in self.values)
        low, high = self.values
        if self.type == "INTEGER":
            return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
        return isinstance(value, float) and low <= value <= high

    def grid(self, resolution: int | None) -> list:
        """The values a grid search visits: all choices, or ``resolution`` points of a range."""
        if not self.is_range:
            return list(self.values)
        if resolution is None:
            raise SearchspaceError(
                f"grid search cannot enumerate the {self.type} range {self.name!r}; declare it "
                f"DISCRETE with the values to try, or give the grid a resolution "
                f"(optimizer=GridSearch(resolution=5))"
            )
        low, high = self.values
        if resolution == 1:
            points = [low]
        elif self.log:
            a, b = math.log(low), math.log(high)
            points = [math.exp(a + (b - a) * i / (resolution - 1)) for i in range(resolution)]
        else:
            points = [low + (high - low) * i / (resolution - 1) for i in range(resolution)]
        if self.type == "INTEGER":
            return sorted(set(min(high, max(low, round(p))) for p in points))
        points[0], points[-1] = float(low), float(high)  # exact ends despite exp(log(x))
        return points

    def describe(self) -> str:
        cond = "".join(f" when {parent} in {list(allowed)}" for parent, allowed in self.when)
        if self.is_range:
            return f"{self.type}[{self.values[0]}, {self.values[1]}]" + (" log" if self.log else "") + cond
        return f"{self.type}{list(self.values)}{cond}"


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


_ALIASES = {"FLOAT": "DOUBLE", "REAL": "DOUBLE", "UNIFORM": "DOUBLE", "CONTINUOUS": "DOUBLE", "INT": "INTEGER",
            "CHOICE": "CATEGORICAL", "CATEGORY": "CATEGORICAL", "ORDINAL": "DISCRETE"}


def _type_hint(name: str, kind: Any, values: Any, spec: Sequence) -> str:
    """What to write instead of an unknown type: the type meant (a log scale is not a type)."""
    types = f"the types are {', '.join(TYPES)}"
    word = kind.upper() if isinstance(kind, str) else None
    if word in ("LOG", "LOGUNIFORM", "LOG_UNIFORM", "LOGFLOAT"):
        return f"{types}, and a log scale is a third element: {name}=('DOUBLE', {list(values)!r}, 'log')"
    if word in _ALIASES:
        rest = "".join(f", {v!r}" for v in spec[2:])
        return f"{types}; for {kind!r} write {name}=({_ALIASES[word]!r}, {list(values)!r}{rest})"
    return f"{types}; to choose among these values write {name}=('CATEGORICAL', {list(spec)!r})"


def _param(name: str, spec: Any) -> Param:
    where = f"hyperparameter {name!r}"
    _check_shape(name, spec, where)
    kind, values = spec[0], spec[1]
    scale = spec[2] if len(spec) == 3 else None
    scale = scale.lower() if isinstance(scale, str) else scale  # 'LOG' means 'log'
    if not isinstance(kind, str) or kind.upper() not in TYPES:
        raise SearchspaceError(f"{where}: unknown type {kind!r}; {_type_hint(name, kind, values, spec)}")
    kind = kind.upper()
    if scale is not None and scale not in ("log", "linear"):
        raise SearchspaceError(f"{where}: unknown scale {spec[2]!r}; the third element is 'log' or 'linear', "
                               f"as in {name}=({kind!r}, {list(values)!r}, 'log')")
    if scale is not None and kind not in ("DOUBLE", "INTEGER"):
        raise SearchspaceError(f"{where}: {kind} takes no scale ({spec[2]!r}); only the ranges DOUBLE and INTEGER "
                               f"do: {name}=('DOUBLE', [low, high], 'log')")
    if not isinstance(values, (list, tuple)):
        raise SearchspaceError(f"{where}: values must be a list, got {type(values).__name__}")
    if kind in ("DOUBLE", "INTEGER"):
        return _range(name, kind, values, scale == "log", where)
    if len(values) == 0:
        raise SearchspaceError(f"{where}: {kind} needs at least one value")
    if kind == "DISCRETE" and not all(_is_number(v) for v in values):
        raise SearchspaceError(f"{where}: DISCRETE values must be numbers; use CATEGORICAL for {list(values)}")
    if len(set(map(repr, values))) != len(values):
        raise SearchspaceError(f"{where}: {kind} values repeat: {list(values)}")
    return Param(name, kind, tuple(values))


def _check_shape(name: Any, spec: Any, where: str) -> None:
    """A name and a (TYPE, values[, scale]) tuple, or an error that says how to write one."""
    if not isinstance(name, str) or not name.isidentifier():
        raise SearchspaceError(f"{name!r} is not a valid hyperparameter name; use a Python identifier")
    if isinstance(spec, (tuple, list)) and len(spec) == 2 and all(_is_number(v) for v in spec):
        kind = "INTEGER" if all(isinstance(v, int) for v in spec) else "DOUBLE"
        raise SearchspaceError(
            f"{where}: {tuple(spec)!r} reads like a range in Optuna's style; here the type comes first: "
            f"{name}=({kind!r}, [{spec[0]!r}, {spec[1]!r}]) (add 'log' for a log scale), or "
            f"{name}=('DISCRETE', [{spec[0]!r}, {spec[1]!r}]) for just those two values"
        )
    if isinstance(spec, (tuple, list)) and spec and not isinstance(spec[0], str):
        raise SearchspaceError(
            f"{where}: {list(spec)!r} has no type; to choose among these values write "
            f"{name}=('CATEGORICAL', {list(spec)!r}) (or 'DISCRETE' for numbers)"
        )
    if not isinstance(spec, (tuple, list)) or len(spec) not in (2, 3):
        raise SearchspaceError(
            f"{where}: expected (TYPE, values) or (TYPE, [low, high], 'log'), got {spec!r}; "
            f"for example ('DOUBLE', [1e-4, 1e-1], 'log')"
        )


def _range(name: str, kind: str, values: Any, log: bool, where: str) -> Param:
    """A DOUBLE or INTEGER range: finite bounds in order, whole for INTEGER, above 0 for log."""
    if len(values) != 2:
        raise SearchspaceError(f"{where}: a {kind} range needs exactly [low, high], got {list(values)}")
    low, high = values
    if not (_is_number(low) and _is_number(high)):
        raise SearchspaceError(f"{where}: bounds must be finite numbers, got {list(values)}")
    if kind == "INTEGER":
        if not (float(low).is_integer() and float(high).is_integer()):
            raise SearchspaceError(f"{where}: INTEGER bounds must be whole numbers, got {list(values)}")
        low, high = int(low), int(high)
    else:
        low, high = float(low), float(high)
    if low > high or (kind == "DOUBLE" and low == high):
        raise SearchspaceError(
            f"{where}: the range [{values[0]}, {values[1]}] is "
            f"{'empty' if low == high else 'reversed'}; write it as [low, high] with low < high"
        )
    if log and low <= 0:
        raise SearchspaceError(
            f"{where}: a log range must lie above 0, got [{values[0]}, {values[1]}]; "
            f"raise the lower bound (e.g. 1e-6) or drop 'log'"
        )
    return Param(name, kind, (low, high), log)


def _parse_priors(params: dict[str, Param], priors: dict[str, Any] | None) -> dict[str, _priors.Prior]:
    """``priors`` checked against the declared ``params``."""
    if priors is None:
        return {}
    if not isinstance(priors, dict):
        raise SearchspaceError("priors= takes {name: value} or {name: (value, 'low' | 'medium' | 'high')}")
    out = {}
    for name, spec in priors.items():
        if name not in params:
            raise SearchspaceError(f"priors={{{name!r}: ...}} names no hyperparameter of this space; it has "
                                   f"{', '.join(params) or 'none'}")
        sure = isinstance(spec, tuple) and len(spec) == 2 and spec[1] in _priors.SPREAD
        value, confidence = spec if sure else (spec, "medium")
        param = params[name]
        if param.type == "DOUBLE" and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not param.contains(value):
            raise SearchspaceError(f"priors={{{name!r}: {value!r}}} is not a value {name!r} can take "
                                   f"({param.describe()}); give one inside it")
        out[name] = _priors.Prior(value, confidence)
    return out


class Searchspace:
    """Named hyperparameters, in the order they were declared.

    >>> sp = Searchspace(lr=("DOUBLE", [1e-4, 1e-1], "log"), act=("CATEGORICAL", ["relu", "tanh"]))
    >>> sp.add("depth", ("DISCRETE", [1, 2, 3]))

    ``priors=``: what you believe before searching, ``{"lr": 3e-3}`` or ``{"lr": (3e-3, "high")}``
    (low, medium, high confidence): TPE, ASHA and Hyperband lean on it until results disagree
    (contexts/priors.py).

    A step compiled by ``strategy.step`` that asks for ``hparams`` gets the DOUBLEs as traced
    arguments (one compiled program for every value) and the rest as plain values, since a
    width, a depth or a choice shapes the program. ``static=`` overrides per parameter: a name
    (or ``{name: True}``) makes a DOUBLE plain, ``{name: False}`` makes a numeric one traced (an
    INTEGER that only scales something, say).
    """

    def __init__(self, static: Sequence[str] | dict[str, bool] | None = None,
                 priors: dict[str, Any] | None = None, **params: Sequence):
        self._params: dict[str, Param] = {}
        for name, spec in params.items():
            self.add(name, spec)
        self._static = self._static_choices(static)
        self._priors = _parse_priors(self._params, priors)

    def _static_choices(self, static: Any) -> dict[str, bool]:
        if static is None:
            return {}
        choices = dict(static) if isinstance(static, dict) else dict.fromkeys(
            [static] if isinstance(static, str) else static, True)
        for name, plain in choices.items():
            if name not in self._params:
                raise SearchspaceError(f"static={{{name!r}: ...}} names no hyperparameter of this space; it has "
                                       f"{', '.join(self._params) or 'none'}")
            numeric = all(_is_number(v) for v in self._params[name].values)
            if not isinstance(plain, bool) or (not plain and not numeric):
                raise SearchspaceError(f"static={{{name!r}: {plain!r}}}: True keeps it a plain value; False (traced "
                                       f"by the compiled step) is for numbers only")
        return choices

    def traced(self, params: dict[str, Any]) -> list[str]:
        """The parameters of ``params`` a compiled step takes as traced arguments (asked per
        trial: the names are worked out once, and again only after ``add``)."""
        names = self.__dict__.get("_traced_names")
        if names is None:
            static = getattr(self, "_static", {})  # a space pickled before static= existed
            names = self._traced_names = frozenset(
                name for name, p in self._params.items() if not static.get(name, p.type != "DOUBLE"))
        return [name for name in params if name in names]

    def add(self, name: str, spec: Sequence, when: dict[str, Any] | None = None,
            default: Any = _NO_DEFAULT) -> "Searchspace":
        """Add a parameter; ``when={"optimizer": "sgd"}`` (or a list of values) makes it
        conditional: sampled only when that earlier parameter has that value, absent otherwise.
        ``default``: the value trials that ran without it had, in effect; what lets a study
        resumed with this parameter new read its past trials (they keep their results, and the
        optimizer learns from them as if they had run with it)."""
        if name in self._params:
            raise SearchspaceError(f"hyperparameter {name!r} is already in the search space")
        if name == "budget":
            raise SearchspaceError("'budget' is reserved: the optimizer sets hparams['budget']")
        if name in ("static", "priors"):
            raise SearchspaceError(f"{name!r} is reserved: Searchspace(static=[...]) names the parameters a "
                                   f"compiled step takes as plain values, Searchspace(priors={{...}}) what you believe")
        param = _param(name, spec)
        self.__dict__.pop("_traced_names", None)
        if when:
            param = dataclasses.replace(param, when=self._conditions(name, when))
        if default is not _NO_DEFAULT:
            if not param.contains(default):
                raise SearchspaceError(f"hyperparameter {name!r}: default={default!r} is not in {param.describe()}")
            param = dataclasses.replace(param, default=(default,))
        self._params[name] = param
        return self

    def _conditions(self, name: str, when: Any) -> tuple:
        if not isinstance(when, dict):
            raise SearchspaceError(f"hyperparameter {name!r}: when= takes {{parent: value or [values]}}")
        out = []
        for parent, allowed in when.items():
            if parent not in self._params:
                raise SearchspaceError(f"hyperparameter {name!r}: when= names {parent!r}, which is not declared "
                                       f"before it; declared so far: {', '.join(self._params) or 'none'}")
            allowed = tuple(allowed) if isinstance(allowed, (list, tuple)) else (allowed,)
            bad = [v for v in allowed if not self._params[parent].contains(v)]
            if bad or not allowed:
                raise SearchspaceError(f"hyperparameter {name!r}: when={{{parent!r}: {bad or list(allowed)}}} is not "
                                       f"a value {parent!r} can take ({self._params[parent].describe()})")
            out.append((parent, allowed))
        return tuple(out)

    @property
    def conditional(self) -> bool:
        return any(p.when for p in self._params.values())

    @property
    def names(self) -> list[str]:
        return list(self._params)

    def __getitem__(self, name: str) -> Param:
        return self._params[name]

    def __iter__(self) -> Iterator[Param]:
        return iter(self._params.values())

    def __len__(self) -> int:
        return len(self._params)

    def __contains__(self, name: object) -> bool:
        return name in self._params

    def sample(self, rng: random.Random) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for p in self._params.values():
            if p.active(out):
                out[p.name] = p.sample(rng)
        return out

    def set_priors(self, priors: dict[str, Any] | None) -> "Searchspace":
        """Say what you believe of parameters declared with ``add`` (as ``priors=`` does)."""
        self._priors = _parse_priors(self._params, priors)
        return self

    @property
    def priors(self) -> dict[str, "_priors.Prior"]:
        return getattr(self, "_priors", {})  # a space pickled before priors= existed: none

    def sample_prior(self, rng: random.Random) -> dict[str, Any]:
        """A configuration drawn from the priors (uniformly where a parameter has none)."""
        priors, out = self.priors, {}
        for p in self._params.values():
            if p.active(out):
                prior = priors.get(p.name)
                out[p.name] = p.sample(rng) if prior is None else _priors.sample(p, prior, rng)
        return out

    def prior_config(self, rng: random.Random) -> dict[str, Any]:
        """The configuration the priors name (drawn uniformly where a parameter has none)."""
        priors, out = self.priors, {}
        for p in self._params.values():
            if p.active(out):
                out[p.name] = priors[p.name].value if p.name in priors else p.sample(rng)
        return out

    def prior_log_density(self, params: dict[str, Any]) -> float:
        """The priors' log density at ``params`` (0 without priors), up to a constant."""
        return sum(_priors.log_density(self._params[n], prior, params[n])
                   for n, prior in self.priors.items() if n in params)

    def with_defaults(self, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` of a trial that ran before parameters with a default were added (a
        resume), with those defaults where they take part."""
        if not any(p.default and p.name not in params for p in self._params.values()):
            return params
        out = dict(params)
        for p in self._params.values():  # in order: a condition may rest on an earlier default
            if p.default and p.name not in out and p.active(out):
                out[p.name] = p.default[0]
        return out

    def contains(self, params: dict[str, Any]) -> bool:
        """True when ``params`` names exactly the parameters that take part (a conditional one
        only when its condition holds), each inside its range."""
        if not set(params) <= set(self._params):
            return False
        return all((p.name in params and p.contains(params[p.name])) if p.active(params) else p.name not in params
                   for p in self._params.values())

    def grid(self, resolution: int | None = None) -> Iterator[dict[str, Any]]:
        """Every combination once, the last parameter varying fastest (a conditional parameter
        only in the combinations where its condition holds)."""
        if not self.conditional:
            axes = [p.grid(resolution) for p in self._params.values()]
            for combo in itertools.product(*axes):
                yield dict(zip(self._params, combo))
            return
        yield from self._expand(list(self._params.values()), {}, resolution)

    def _expand(self, todo: list[Param], partial: dict[str, Any], resolution: int | None) -> Iterator[dict[str, Any]]:
        if not todo:
            yield dict(partial)
            return
        first, rest = todo[0], todo[1:]
        if not first.active(partial):
            yield from self._expand(rest, partial, resolution)
            return
        for value in first.grid(resolution):
            yield from self._expand(rest, {**partial, first.name: value}, resolution)

    def grid_size(self, resolution: int | None = None) -> int:
        if self.conditional:
            return sum(1 for _ in self.grid(resolution))
        return math.prod(len(p.grid(resolution)) for p in self._params.values())

    def __repr__(self) -> str:
        inner = ", ".join(f"{p.name}={p.describe()}" for p in self)
        priors = ", ".join(f"{n}: {p.value!r} ({p.confidence})" for n, p in self.priors.items())
        return f"Searchspace({inner}" + (f", priors={{{priors}}})" if priors else ")")


def check_edits(before: "Searchspace", now: "Searchspace") -> dict[str, list[str]]:
    """What a resumed study changes of its search space, ``{name: [before, now]}``, when the
    change can be honoured: a range widened, narrowed or moved, a choice added or taken away.
    Past trials keep their results; those outside the new space stay in them, out of the
    optimizer's model (contexts/hpo.py). A change the past trials cannot be read under (a
    parameter renamed, added, retyped, put on another scale or condition; other priors or
    static parameters) raises SearchspaceError naming it and what to do."""
    fresh = "start a new study (lagom() without resume=)"
    gone = [n for n in before.names if n not in now]
    new = [n for n in now.names if n not in before]
    if gone:
        also = f" (renamed to {new[0]!r}?)" if len(gone) == 1 and len(new) == 1 else ""
        raise SearchspaceError(f"the study's search space has {gone[0]!r} and the resuming one has not{also}: its "
                               f"past trials were drawn with it. Keep {gone[0]!r} as it was, or {fresh}")
    edits = {}
    for name in new:
        if not now[name].default:
            raise SearchspaceError(f"{name!r} is new to the study's search space, and its past trials have no value "
                                   f"for it: say which they ran with (space.add({name!r}, (...), default=value)), "
                                   f"or {fresh}")
        edits[name] = [None, f"{now[name].describe()} (past trials: {now[name].default[0]!r})"]
    for name in before.names:
        was, is_ = before[name], now[name]
        if was.type != is_.type:
            raise SearchspaceError(f"{name!r} was {was.describe()} and is {is_.describe()} now: a parameter keeps "
                                   f"its type on resume; keep it as it was, or {fresh}")
        if (was.log, was.when) != (is_.log, is_.when):
            raise SearchspaceError(f"{name!r} was {was.describe()} and is {is_.describe()} now: a parameter keeps its "
                                   f"scale and its condition on resume (its range or choices may change); keep "
                                   f"them as they were, or {fresh}")
        if was.describe() != is_.describe():
            edits[name] = [was.describe(), is_.describe()]
    for what in ("_static", "_priors"):
        if sorted(map(repr, getattr(before, what, {}).items())) != sorted(map(repr, getattr(now, what, {}).items())):
            raise SearchspaceError(f"the search space's {what[1:]} changed: a resumed study keeps them (its "
                                   f"optimizer replays past proposals with them); keep them as they were, or {fresh}")
    return edits
