"""``single``: one device, plain ``jax.jit``. Every non-distributed trial gets it."""
from __future__ import annotations

from typing import Any, Callable

from .base import Strategy


class SingleDevice(Strategy):
    name = "single"

    def replicate(self, tree: Any) -> Any:
        import jax

        return jax.device_put(tree)

    def shard(self, batch: Any) -> Any:
        import jax

        return jax.device_put(batch)

    def step(self, fn: Callable, *, donate_argnums: tuple[int, ...] = ()) -> Callable:
        import jax

        return self.with_hparams(fn, lambda f: jax.jit(f, donate_argnums=donate_argnums), donate_argnums)

    def gather(self, tree: Any) -> Any:
        import jax

        return jax.device_get(tree)
