"""Layers of any flax.nnx model, for leaving them out: a model is a sequence of named layers,
each built by a factory that is told its input shape.

    from contexts.ablation.layers import Conv, Pool, Flatten, Dense, Dropout
    study.model.set_base_model_generator([
        ("conv1", Conv(16)), ("conv2", Conv(32)), ("pool", Pool("max", 2)),
        ("flatten", Flatten()), ("dense", Dense(64, "relu")), ("drop", Dropout(0.2)),
        ("out", Dense(10)),
    ], input_shape=(8, 8, 1))

A factory is any callable ``factory(shape, rngs)`` returning a callable (an nnx.Module, a
function): the classes here are the common ones, and a user's own ``lambda shape, rngs:
MyBlock(shape[-1], rngs=rngs)`` is a layer too. Because each layer is built for the shape that
reaches it, leaving one out rebuilds the rest for the new shapes (``jax.eval_shape`` follows
them without computing anything); a variant whose shapes cannot flow, or whose output changes
shape, is refused when the study is built, naming the layer and the shapes.

Everything here is a plain picklable object: JAX and flax are imported when a layer is built.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, Sequence

Shape = tuple[int, ...]

_ACTIVATIONS = ("relu", "tanh", "gelu", "sigmoid", "silu", "elu", "linear")


def _activation(name: str | None) -> Callable:
    import jax

    table = {"relu": jax.nn.relu, "tanh": jax.nn.tanh, "gelu": jax.nn.gelu, "sigmoid": jax.nn.sigmoid,
             "silu": jax.nn.silu, "elu": jax.nn.elu, "linear": None, None: None}
    return table[name]


def _check_activation(name: str | None) -> None:
    if name is not None and name not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; use one of {', '.join(_ACTIVATIONS)}")


class Layer:
    """A factory of one layer; subclasses build it for the input shape they are given."""

    def build(self, shape: Shape, rngs: Any) -> Callable:
        raise NotImplementedError

    def __call__(self, shape: Shape, rngs: Any) -> Callable:
        return self.build(tuple(shape), rngs)


def _then(layer: Callable, activation: str | None) -> Callable:
    fn = _activation(activation)
    if fn is None:
        return layer
    from flax import nnx

    return nnx.Sequential(layer, fn)


@dataclass(frozen=True)
class Dense(Layer):
    """nnx.Linear over the last axis, then an optional activation."""

    features: int
    activation: str | None = None

    def __post_init__(self):
        _check_activation(self.activation)

    def build(self, shape, rngs):
        from flax import nnx

        return _then(nnx.Linear(shape[-1], self.features, rngs=rngs), self.activation)


@dataclass(frozen=True)
class Conv(Layer):
    """nnx.Conv over (height, width, channels) inputs, then an activation (relu by default)."""

    features: int
    kernel_size: tuple[int, ...] = (3, 3)
    strides: int = 1
    padding: str = "SAME"
    activation: str | None = "relu"

    def __post_init__(self):
        _check_activation(self.activation)

    def build(self, shape, rngs):
        from flax import nnx

        if len(shape) < 2:
            raise ValueError(f"a convolution needs (..., channels) inputs, got shape {shape}")
        conv = nnx.Conv(shape[-1], self.features, tuple(self.kernel_size), strides=self.strides,
                        padding=self.padding, rngs=rngs)
        return _then(conv, self.activation)


@dataclass(frozen=True)
class Pool(Layer):
    """Max or average pooling over the spatial axes."""

    kind: str = "max"
    window: int = 2
    strides: int | None = None

    def __post_init__(self):
        if self.kind not in ("max", "avg"):
            raise ValueError(f"Pool(kind={self.kind!r}): 'max' or 'avg'")

    def build(self, shape, rngs):
        from flax import nnx

        spatial = len(shape) - 1
        pool = nnx.max_pool if self.kind == "max" else nnx.avg_pool
        return functools.partial(pool, window_shape=(self.window,) * spatial,
                                 strides=(self.strides or self.window,) * spatial)


@dataclass(frozen=True)
class Flatten(Layer):
    """Everything but the batch axis into one."""

    def build(self, shape, rngs):
        return _flatten


def _flatten(x):
    return x.reshape(x.shape[0], -1)


@dataclass(frozen=True)
class Dropout(Layer):
    rate: float = 0.5

    def build(self, shape, rngs):
        from flax import nnx

        return nnx.Dropout(self.rate, rngs=rngs)


@dataclass(frozen=True)
class BatchNorm(Layer):
    def build(self, shape, rngs):
        from flax import nnx

        return nnx.BatchNorm(shape[-1], rngs=rngs)


@dataclass(frozen=True)
class LayerNorm(Layer):
    def build(self, shape, rngs):
        from flax import nnx

        return nnx.LayerNorm(shape[-1], rngs=rngs)


@dataclass(frozen=True)
class Activation(Layer):
    name: str = "relu"

    def __post_init__(self):
        _check_activation(self.name)

    def build(self, shape, rngs):
        return _activation(self.name) or _identity


def _identity(x):
    return x


class Residual(Layer):
    """``x + f(x)`` for a block ``f`` of layers (a projection is the user's to add: the block
    must keep the shape it is given)."""

    def __init__(self, *layers: Callable):
        self.layers = layers

    def build(self, shape, rngs):
        block, out = build_sequential([(f"part{i}", f) for i, f in enumerate(self.layers)], shape, rngs)
        if out != shape:
            raise ValueError(f"a residual block must keep its input's shape {shape}, but its layers give {out}")
        return _classes()["Residual"](block)


# -- building -----------------------------------------------------------------------------------
class LayerError(ValueError):
    """A layer cannot take the shape that reaches it."""

    def __init__(self, layer: str, shape: Shape, reason: str):
        super().__init__(f"layer {layer!r} cannot take inputs of shape {shape}: {reason}")
        self.layer, self.shape = layer, shape


def _out_shape(module: Callable, shape: Shape) -> Shape:
    """The per-example output shape of ``module`` on inputs of ``shape``, computed abstractly."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    x = jax.ShapeDtypeStruct((1, *shape), jnp.float32)
    if isinstance(module, nnx.Module):
        graphdef, state = nnx.split(module)
        out = jax.eval_shape(lambda s, v: nnx.merge(graphdef, s)(v), state, x)
    else:
        out = jax.eval_shape(module, x)
    return tuple(out.shape[1:])


def build_sequential(layers: Sequence[tuple[str, Callable]], input_shape: Shape, rngs: Any):
    """(an nnx.Module running ``layers`` in order, its per-example output shape); each layer is
    built for the shape its predecessor gives. Raises LayerError naming the layer that breaks."""
    from flax import nnx

    shape, built = tuple(input_shape), []
    for name, factory in layers:
        try:
            module = factory(shape, rngs)
            out = _out_shape(module, shape)
        except LayerError:
            raise
        except Exception as exc:  # flax and jax raise many kinds for a shape that cannot flow
            raise LayerError(name, shape, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
        built.append((name, module))
        shape = out
    return _classes()["Sequential"]([n for n, _ in built], [m for _, m in built]), shape


def abstract_output_shape(layers: Sequence[tuple[str, Callable]], input_shape: Shape) -> Shape:
    """The output shape of the model ``layers`` would build, without allocating its parameters."""
    from flax import nnx

    box: dict = {}

    def build():
        model, box["shape"] = build_sequential(layers, input_shape, nnx.Rngs(0))
        return model

    nnx.eval_shape(build)
    return box["shape"]


@functools.lru_cache(maxsize=None)
def _classes() -> dict[str, type]:
    """The nnx.Module classes, made once, when flax is first needed (importing this module
    must not import flax: the core install has none)."""
    from flax import nnx

    class Sequential(nnx.Module):
        """The layers kept, in order; ``layer_names`` says which they are."""

        def __init__(self, names, modules):
            self.layer_names = tuple(names)
            self.layers = nnx.List([m if isinstance(m, nnx.Module) else _Fn(m) for m in modules])

        def __call__(self, x):
            for layer in self.layers:
                x = layer(x)
            return x

    class _Fn(nnx.Module):
        """A plain function (pooling, flatten, an activation) as a layer without parameters."""

        def __init__(self, fn):
            self.fn = fn

        def __call__(self, x):
            return self.fn(x)

    class Residual(nnx.Module):
        def __init__(self, block):
            self.block = block

        def __call__(self, x):
            return x + self.block(x)

    return {"Sequential": Sequential, "Residual": Residual}
