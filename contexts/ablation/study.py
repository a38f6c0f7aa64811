"""``AblationStudy``: what to leave out, one at a time, and how to build data and model without it.

    study = AblationStudy(dataset=table, label="target")   # dict of arrays, or a DataFrame
    study.features.include("alcohol", "noise")
    study.model.set_base_model_generator([("input", 32), ("hidden_1", 32), ("hidden_2", 16), ("out", 3)])
    study.model.layers.include("hidden_2")
    study.model.layers.include_groups(prefix="hidden")
    study.model.add_custom_model_generator(make_small_model, "small")

Names are checked when the study is complete (when a context takes it), so the order of calls
is free; every error names what exists.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence


from ..base import ConfigError
from .generators import LayerSpec, StudyInjector, is_named, parse_layers


def _table(dataset: Any, label: str | None) -> "tuple[dict[str, np.ndarray] | Callable | None, list[str]]":
    """Normalise a table to a dict of numpy columns (agents need no pandas); keep a function."""
    import numpy as np  # only a study needs it: the core install imports without numpy

    if dataset is None or callable(dataset) and not hasattr(dataset, "columns"):
        return dataset, []
    if hasattr(dataset, "columns") and hasattr(dataset, "__getitem__"):  # a DataFrame
        columns = {str(c): np.asarray(dataset[c]) for c in dataset.columns}
    elif isinstance(dataset, dict):
        columns = {str(k): np.asarray(v) for k, v in dataset.items()}
    else:
        raise ConfigError(f"AblationStudy(dataset=...): expected a dict of named arrays, a DataFrame or a "
                          f"function of the features to keep, got {type(dataset).__name__}")
    if label is None or label not in columns:
        raise ConfigError(f"AblationStudy: label={label!r} is not a column; columns: {', '.join(columns)}")
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1:
        raise ConfigError(f"AblationStudy: columns differ in length: "
                          f"{ {k: len(v) for k, v in columns.items()} }")
    return columns, [c for c in columns if c != label]


class _Selection:
    """What a study may leave out of one kind (features, layers): names one at a time, and
    groups left out whole, by list or by prefix of the names there are."""

    def __init__(self) -> None:
        self.included: list[str] = []
        self._groups: list[tuple[str, list[str] | None, str | None]] = []  # (name, members, prefix)

    def _names(self) -> list[str]:
        """The names there are (a prefix group takes those that start with its prefix)."""
        raise NotImplementedError

    def include(self, *names: str):
        for name in _flatten(names):
            if name not in self.included:
                self.included.append(name)
        return self

    def exclude(self, *names: str):
        drop = set(_flatten(names))
        self.included = [n for n in self.included if n not in drop]
        return self

    def include_groups(self, *groups: Sequence[str], prefix: str | None = None, name: str | None = None):
        """Each group (a list of names) is left out whole in one trial; ``prefix=`` makes a group
        of every name that starts with it."""
        for members in groups:
            members = list(members)
            self._groups.append((name or "+".join(members), members, None))
        if prefix is not None:
            self._groups.append((name or f"{prefix}*", None, prefix))
        return self

    def groups(self) -> dict[str, list[str]]:
        known = self._names()
        return {name: [n for n in known if n.startswith(prefix)] if prefix is not None else list(members)
                for name, members, prefix in self._groups}


class Features(_Selection):
    """Columns of the data set; a group is several columns that are one feature (a one-hot
    encoding, a sensor's three axes)."""

    def __init__(self, names: list[str]):
        super().__init__()
        self._all = names

    def _names(self) -> list[str]:
        return self._all

    def include_all(self) -> "Features":
        return self.include(*self._all)

    def validate(self, known: list[str]) -> None:
        unknown = [n for n in self.included if n not in known]
        if unknown:
            raise ConfigError(f"features {unknown} are not in the data set; its features: {', '.join(known)}")
        for gname, members, prefix in self._groups:
            if prefix is not None and not any(k.startswith(prefix) for k in known):
                raise ConfigError(f"no feature name starts with {prefix!r}; the data set's features: {', '.join(known)}")
            missing = [m for m in members or [] if m not in known]
            if missing:
                raise ConfigError(f"features {missing} of group {gname!r} are not in the data set; its features: "
                                  f"{', '.join(known)}")


class Layers(_Selection):
    """Layers of the base model (their names are known once the study is validated)."""

    def __init__(self) -> None:
        super().__init__()
        self._known: list[str] | None = None

    def _names(self) -> list[str]:
        return self._known or []

    def validate(self, known: list[str] | None, edges: bool = True) -> None:
        """``edges``: the first and last layer may not be left out (an MLP's input and output);
        a model of named layers is checked by its shapes instead."""
        self._known = known
        if known is None:  # a function builds the model: its layer names cannot be checked
            if any(p is not None for _, _, p in self._groups):
                raise ConfigError("a layer group by prefix needs the layer names: give the base model as "
                                  "a list of layers, or set_base_model_generator(fn, layers=[...names])")
            return
        listing = ", ".join(known)
        edge = {known[0]: "first", known[-1]: "last"}
        for n in self.included:
            if n not in known:
                raise ConfigError(f"layer {n!r} is not in the base model; its layers: {listing}")
        for gname, members, prefix in self._groups:
            if prefix is not None and not any(k.startswith(prefix) for k in known):
                raise ConfigError(f"no layer name starts with {prefix!r}; the base model's layers: {listing}")
            for m in members or []:
                if m not in known:
                    raise ConfigError(f"layer {m!r} of group {gname!r} is not in the base model; its layers: {listing}")
        for gname, members in [(n, [n]) for n in self.included] + list(self.groups().items()):
            for m in members:
                if edges and m in edge:
                    raise ConfigError(
                        f"the {edge[m]} layer {m!r} cannot be left out (in {gname!r}): the model "
                        f"would lose its {'input' if edge[m] == 'first' else 'output'}; leave out "
                        f"hidden layers, or add a custom model generator for this variant")


class ModelSpec:
    def __init__(self) -> None:
        self.layers = Layers()
        self.base: list[LayerSpec] | Callable | None = None
        self._function_layers: list[str] | None = None
        self.custom_generators: dict[str, Callable] = {}
        self.input_shape: tuple[int, ...] | None = None

    def set_base_model_generator(self, generator: Sequence[Any] | Callable, layers: Sequence[str] | None = None,
                                 input_shape: Sequence[int] | None = None):
        """An ordered list of named layers: ``[(name, units[, activation]), ...]`` (an MLP), or
        ``[(name, factory), ...]`` for any flax.nnx model (``("conv1", Conv(16))``, see
        contexts/ablation/layers.py) with ``input_shape`` the shape of one example; or a function
        ``fn(dropped_layer_names, *args, **kwargs)`` that builds the model (``layers=`` names them)."""
        if input_shape is not None:
            if not isinstance(input_shape, (tuple, list)) or not all(isinstance(d, int) and d > 0 for d in input_shape):
                raise ConfigError(f"set_base_model_generator(input_shape={input_shape!r}): the shape of one "
                                  f"example, e.g. (8, 8, 1)")
            self.input_shape = tuple(input_shape)
        if callable(generator):
            self.base = generator
            self._function_layers = list(layers) if layers is not None else None
        else:
            try:
                self.base = parse_layers(list(generator))
            except ValueError as exc:
                raise ConfigError(f"set_base_model_generator: {exc}") from None
        return self

    def add_custom_model_generator(self, generator: Callable, name: str):
        """One more trial, whose ``model(...)`` is ``generator(...)``."""
        if not callable(generator) or not isinstance(name, str) or not name:
            raise ConfigError("add_custom_model_generator(generator, name) needs a function and a name")
        if name in self.custom_generators:
            raise ConfigError(f"a custom model generator named {name!r} exists already")
        self.custom_generators[name] = generator
        return self

    @property
    def layer_names(self) -> list[str] | None:
        if isinstance(self.base, list):
            return [s.name for s in self.base]
        return self._function_layers

    def check_variants(self, n_features: int | None) -> None:
        """For a model of named layers: every variant the study asks for must build, with the
        baseline's output shape; else a ConfigError names the component and the shapes."""
        if not is_named(self.base):
            return
        shape = self.input_shape or ((n_features,) if n_features else None)
        if shape is None:
            raise ConfigError("set_base_model_generator([... layers ...], input_shape=...): give the shape of "
                              "one example, e.g. input_shape=(8, 8, 1)")
        from .layers import LayerError, abstract_output_shape

        def out(dropped: set[str], what: str):
            kept = [(s.name, s.factory) for s in self.base if s.name not in dropped]
            try:
                return abstract_output_shape(kept, shape)
            except LayerError as exc:
                raise ConfigError(f"{what} breaks the model: {exc}") from None

        full = out(set(), "the base model itself")
        variants = [(f"leaving out layer {n!r}", {n}) for n in self.layers.included]
        variants += [(f"leaving out group {g!r} ({', '.join(m)})", set(m)) for g, m in self.layers.groups().items()]
        for what, dropped in variants:
            got = out(dropped, what)
            if got != full:
                raise ConfigError(f"{what} changes the model's output shape from {full} to {got}: leave out "
                                  f"layers whose neighbours still fit, or group them with the ones they need")


class AblationStudy:
    """What an ablation may leave out: features of a table and layers (or groups of layers, or
    whole custom models) of a model, as Maggy's study declares them.

    The study is only a declaration: an ablator (plugins/ablators) turns it into one trial per
    component, and the study's injector, shipped once to every agent, builds each trial's
    ``dataset`` and ``model`` without that component. ``dataset`` is a dict of named arrays, a
    DataFrame, or a function (then name the ``features``); ``label`` is the target column.
    """

    def __init__(self, dataset: Any = None, label: str | None = None, features: Sequence[str] | None = None):
        self.source, found = _table(dataset, label)
        self.label = label
        self.feature_names = list(features) if features is not None else found
        if callable(self.source) and features is None:
            raise ConfigError("AblationStudy(dataset=function): name the features with features=[...]")
        self.features = Features(self.feature_names)
        self.model = ModelSpec()

    def validate(self) -> None:
        self.features.validate(self.feature_names)
        if (self.model.layers.included or self.model.layers._groups) and self.model.base is None:
            raise ConfigError("layers are included but the study has no base model: call "
                              "study.model.set_base_model_generator(...)")
        self.model.layers.validate(self.model.layer_names, edges=not is_named(self.model.base))
        if self.model.layers.included or self.model.layers._groups:
            self.model.check_variants(len(self.feature_names) or None)

    def provides(self) -> set[str]:
        """What a trial's function can be given: ``dataset`` with a table, ``model`` with a base
        model (a study of features alone has no model to build)."""
        return ({"dataset"} if self.source is not None else set()) | ({"model"} if self.model.base is not None else set())

    def missing(self, name: str) -> str | None:
        if name == "model" and self.model.base is None:
            return ("the study has no base model to build it from: call study.model.set_base_model_generator(...) "
                    "before lagom(), or drop the 'model' argument")
        if name == "dataset" and self.source is None:
            return "the study has no data: AblationStudy(dataset=..., label=...), or drop the 'dataset' argument"
        return None

    def injector(self) -> StudyInjector:
        return StudyInjector(self.source, self.label, self.feature_names, self.model.base,
                             self.model.custom_generators, self.model.input_shape)

    def __repr__(self) -> str:
        return (f"AblationStudy(features={self.features.included}, layers={self.model.layers.included}, "
                f"groups={list(self.model.layers.groups())}, custom={list(self.model.custom_generators)})")


def _flatten(names: Iterable[Any]) -> list[str]:
    out = []
    for n in names:
        out.extend(_flatten(n) if isinstance(n, (list, tuple)) else [n])
    return out
