"""What the training function gets as ``dataset`` and ``model``: generators that build the data
and the model without the component a trial leaves out.

Both are plain, picklable objects: the study is shipped to each agent once, and a trial only
names what it leaves out. JAX and flax are imported when a model is built, on the agent.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

from kernel.injection import Injector

if TYPE_CHECKING:
    import numpy as np

ACTIVATIONS = ("relu", "tanh", "gelu", "sigmoid", "silu", "elu", "linear")


class DatasetGenerator:
    """``dataset()`` gives ``(X, y)``: the features kept, in study order, as float32 columns.

    ``dataset.features`` names them; ``dataset.n_features`` counts them. With a function as the
    source, ``dataset()`` calls it with the list of features to keep.
    """

    def __init__(self, source: "dict[str, np.ndarray] | Callable", label: str | None,
                 features: Sequence[str], dropped: Sequence[str] = ()):
        self._source = source
        self.label = label
        self.dropped = tuple(dropped)
        self.features = [f for f in features if f not in self.dropped]

    @property
    def n_features(self) -> int:
        return len(self.features)

    def __call__(self) -> tuple["np.ndarray", "np.ndarray"]:
        import numpy as np  # an ablation's need: the core install imports without numpy

        if callable(self._source):
            return self._source(list(self.features))
        x = np.stack([np.asarray(self._source[f], dtype=np.float32) for f in self.features], axis=1)
        return x, np.asarray(self._source[self.label])

    def __repr__(self) -> str:
        gone = f", without {list(self.dropped)}" if self.dropped else ""
        return f"DatasetGenerator({self.n_features} features{gone})"


@dataclass(frozen=True)
class LayerSpec:
    name: str
    units: int
    activation: str = "relu"


@dataclass(frozen=True)
class NamedLayer:
    """A layer of any flax.nnx model: ``factory(shape, rngs)`` builds it for its input shape
    (contexts/ablation/layers.py has Conv, Pool, Dense, Dropout, norms, Residual)."""

    name: str
    factory: Callable


def parse_layers(layers: Sequence[Any]) -> list[LayerSpec] | list[NamedLayer]:
    """``[("hidden_1", 64), ("out", 3, "linear")]`` or LayerSpec values (an MLP; the last layer
    is linear unless it says otherwise), or ``[("conv1", Conv(16)), ..., ("out", Dense(10))]``:
    layers built by factories, any model. In the second form a ``(name, units)`` entry is a
    Dense layer."""
    if any(isinstance(item, (tuple, list)) and len(item) == 2 and callable(item[1]) for item in layers):
        return _named_layers(layers)
    specs = []
    for i, item in enumerate(layers):
        if isinstance(item, LayerSpec):
            specs.append(item)
            continue
        if not isinstance(item, (tuple, list)) or len(item) not in (2, 3) or not isinstance(item[0], str) \
                or not isinstance(item[1], int) or item[1] < 1:
            raise ValueError(f"layer {i}: expected (name, units), (name, units, activation) or (name, "
                             f"factory) such as ('conv1', Conv(16)), got {item!r}")
        act = item[2] if len(item) == 3 else ("linear" if i == len(layers) - 1 else "relu")
        if act not in ACTIVATIONS:
            raise ValueError(f"layer {item[0]!r}: unknown activation {act!r}; use one of {', '.join(ACTIVATIONS)}")
        specs.append(LayerSpec(item[0], item[1], act))
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"layer names repeat: {names}")
    if len(specs) < 2:
        raise ValueError("a base model needs at least two layers (an input layer and an output layer)")
    return specs


def _named_layers(layers: Sequence[Any]) -> list[NamedLayer]:
    from .layers import Dense

    out = []
    for i, item in enumerate(layers):
        if isinstance(item, NamedLayer):
            out.append(item)
        elif isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str) and callable(item[1]):
            out.append(NamedLayer(item[0], item[1]))
        elif isinstance(item, (tuple, list)) and len(item) in (2, 3) and isinstance(item[0], str) \
                and isinstance(item[1], int) and item[1] >= 1:
            act = item[2] if len(item) == 3 else None
            out.append(NamedLayer(item[0], Dense(item[1], None if act == "linear" else act)))
        else:
            raise ValueError(f"layer {i}: expected (name, factory), e.g. ('conv1', Conv(16)), or (name, units), "
                             f"got {item!r}")
    names = [n.name for n in out]
    if len(set(names)) != len(names):
        raise ValueError(f"layer names repeat: {names}")
    return out


def is_named(base: Any) -> bool:
    return isinstance(base, list) and bool(base) and isinstance(base[0], NamedLayer)


def build_mlp(specs: Sequence[LayerSpec], n_in: int, rngs: Any):
    """A flax.nnx MLP of the given layers; each layer's input size is the previous kept layer's
    output (the data's width for the first), which is why a hidden layer can simply be left out."""
    import jax
    from flax import nnx

    fns = {"relu": jax.nn.relu, "tanh": jax.nn.tanh, "gelu": jax.nn.gelu, "sigmoid": jax.nn.sigmoid,
           "silu": jax.nn.silu, "elu": jax.nn.elu, "linear": lambda x: x}

    class MLP(nnx.Module):
        def __init__(self):
            sizes = [n_in] + [s.units for s in specs]
            self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes, sizes[1:])])
            self.layer_names = tuple(s.name for s in specs)
            self._acts = tuple(s.activation for s in specs)

        def __call__(self, x):
            for layer, act in zip(self.layers, self._acts):
                x = fns[act](layer(x))
            return x

    return MLP()


class ModelGenerator:
    """``model(rngs)`` builds the model without the layers a trial leaves out.

    From a list of layers it builds a flax.nnx MLP whose input width comes from the trial's data
    set (``n_in=`` overrides it). From a function, it calls ``fn(dropped, *args, **kwargs)`` with
    the set of layer names to leave out. A custom generator is called as ``fn(*args, **kwargs)``.
    """

    def __init__(self, base: Sequence[LayerSpec] | Sequence[NamedLayer] | Callable | None, dropped: Sequence[str] = (),
                 custom: Callable | None = None, custom_name: str | None = None, n_in: int | None = None,
                 input_shape: tuple[int, ...] | None = None):
        self._base = base
        self.dropped = frozenset(dropped)
        self._custom = custom
        self.custom_name = custom_name
        self._n_in = n_in
        self.input_shape = input_shape

    @property
    def layers(self) -> list[str]:
        if isinstance(self._base, list):
            return [s.name for s in self._base if s.name not in self.dropped]
        return []

    def __call__(self, *args: Any, n_in: int | None = None, **kwargs: Any):
        if self._custom is not None:
            return self._custom(*args, **kwargs)
        if self._base is None:
            raise ValueError("the study has no base model: call study.model.set_base_model_generator(...)")
        if callable(self._base):
            return self._base(self.dropped, *args, **kwargs)
        rngs = args[0] if args else kwargs.pop("rngs", None)
        if rngs is None:
            from flax import nnx

            rngs = nnx.Rngs(0)
        width = n_in or self._n_in
        if is_named(self._base):
            from .layers import build_sequential

            shape = self.input_shape or ((width,) if width is not None else None)
            if shape is None:
                raise ValueError("the model's input shape is unknown: set_base_model_generator(..., input_shape=...)")
            kept = [(s.name, s.factory) for s in self._base if s.name not in self.dropped]
            return build_sequential(kept, shape, rngs)[0]
        if width is None:
            raise ValueError("the model's input width is unknown: pass n_in=, or give the study a dataset")
        return build_mlp([s for s in self._base if s.name not in self.dropped], width, rngs)

    def __repr__(self) -> str:
        if self._custom is not None:
            return f"ModelGenerator(custom {self.custom_name!r})"
        gone = f", without {sorted(self.dropped)}" if self.dropped else ""
        return f"ModelGenerator({self.layers or 'function'}{gone})"


class StudyInjector(Injector):
    """Shipped to each agent once: builds ``dataset`` and ``model`` for a trial's component."""

    provides = frozenset({"dataset", "model"})

    def __init__(self, source, label, features, base_model, custom_generators, input_shape=None):
        self.source, self.label, self.features = source, label, list(features)
        self.base_model, self.custom = base_model, dict(custom_generators)
        self.input_shape = input_shape

    def provide(self, extra: dict[str, Any] | None) -> dict[str, Any]:
        extra = extra or {}
        dataset = None
        if self.source is not None:
            dataset = DatasetGenerator(self.source, self.label, self.features, extra.get("features", ()))
        name = extra.get("model")
        model = ModelGenerator(self.base_model, extra.get("layers", ()),
                               custom=self.custom.get(name) if name else None, custom_name=name,
                               n_in=dataset.n_features if dataset is not None else None,
                               input_shape=getattr(self, "input_shape", None))
        return {"dataset": dataset, "model": model}
