"""``jaxpmap``: literal ``jax.pmap`` with ``lax.pmean``, kept for comparison and for code that
wants pmap's per-device view. Slower than ``pmap`` in JAX 0.10/0.11 (see DESIGN-notes.md)."""
from __future__ import annotations

from typing import Any, Callable

from .base import Strategy


class LiteralPmap(Strategy):
    name = "jaxpmap"
    axis = "dp"

    def __init__(self, devices: int | None = None):
        self.devices = devices

    @property
    def num_devices(self) -> int:
        import jax

        n = jax.local_device_count()
        return min(n, self.devices) if self.devices else n

    def replicate(self, tree: Any) -> Any:
        import jax
        import numpy as np

        n = self.num_devices
        return jax.tree_util.tree_map(lambda x: np.broadcast_to(np.asarray(x), (n, *np.shape(x))), tree)

    def shard(self, batch: Any) -> Any:
        import jax

        n = self.num_devices

        def split(x):
            if x.shape[0] % n:
                raise ValueError(f"a batch of {x.shape[0]} does not split over {n} devices")
            return x.reshape(n, x.shape[0] // n, *x.shape[1:])

        return jax.tree_util.tree_map(split, batch)

    def step(self, fn: Callable, *, donate_argnums: tuple[int, ...] = ()) -> Callable:
        import jax

        devices = jax.local_devices()[: self.num_devices]
        return self.with_hparams(fn, lambda f: jax.pmap(f, axis_name=self.axis, donate_argnums=donate_argnums,
                                                        devices=devices), (donate_argnums, len(devices)))

    def mean(self, tree: Any) -> Any:
        import jax

        return jax.tree_util.tree_map(lambda x: jax.lax.pmean(x, self.axis), tree)

    def gather(self, tree: Any) -> Any:
        import jax

        return jax.tree_util.tree_map(lambda x: jax.device_get(x)[0], tree)
