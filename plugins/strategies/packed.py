"""``packed``: several trials of one shape in one XLA program, one lane each (``jax.vmap``).

A small model leaves a device idle: a step of the README's MLP is almost all dispatch. Trials
whose static hyperparameters are equal (their shapes) compile to the same program, so the
kernel hands them to one agent together and this strategy runs them as the lanes of one step:

- the state (the step's first argument) has one lane per trial along a new leading axis, from
  ``replicate`` (the same start for every lane) or ``init(make)`` (each lane built from its
  own trial's hyperparameters, as it would start alone);
- every other argument (the batch) is shared: data are loaded and moved once;
- a step that asks for ``hparams`` gets each lane's own traced values;
- a lane whose trial was stopped is masked: the step leaves its state as it was, so it does
  no more updates, and its results are no longer reported.

Everything the function reads back (``gather``, an ``evaluate``d metric) has one value per
lane; ``reporter.broadcast`` and the returned dict take those arrays and report each lane to its
own trial. A function written against ``strategy`` runs unchanged as a lone trial.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

from transports.codec import traced_of

from . import checkpoint
from .base import Strategy, asks_hparams


class Packed(Strategy):
    name = "packed"

    def __init__(self) -> None:
        self.lanes = self.trials = 1  # lanes: padded to a power of two; trials: the lanes that are trials
        self.lane_hparams: list[dict[str, Any]] = [{}]
        self._active: Any = None  # numpy bools, one per lane: False once its trial is stopped
        self._active_device: Any = None

    def bind_lanes(self, lanes: Sequence[dict[str, Any]], traced: list[str] | None = None) -> None:
        """The trials about to run as lanes. ``hparams`` as the function sees it outside the
        step: the shared values as they are, each traced one as an array with a value per lane.

        The lanes are padded to a power of two (masked from the start): the number of lanes is
        a shape, so packs of 3, 5 and 7 would each compile anew; padded, they share the program
        of 4 or 8 lanes, and the padding costs little where dispatch, not arithmetic, dominates."""
        import numpy as np

        self.trials = len(lanes)
        self.lanes = 1 << (self.trials - 1).bit_length()
        self.lane_hparams = [dict(h) for h in lanes] + [dict(lanes[-1])] * (self.lanes - self.trials)
        self.traced = frozenset(traced_of(traced, self.lane_hparams[0]))
        first = self.lane_hparams[0]
        self.hparams = {k: (np.asarray([h[k] for h in self.lane_hparams]) if k in self.traced else v)
                        for k, v in first.items()}
        self._active = np.arange(self.lanes) < self.trials
        self._active_device = None

    def bind(self, hparams: dict[str, Any], traced: list[str] | None = None) -> None:
        self.bind_lanes([hparams], traced)

    def stop_lane(self, lane: int) -> None:
        """The lane's trial was stopped: from the next step on its state stays as it is."""
        self._active[lane] = False
        self._active_device = None

    @property
    def active(self) -> Any:
        return self._active

    def replicate(self, tree: Any) -> Any:
        import jax
        import jax.numpy as jnp

        k = self.lanes
        return jax.tree_util.tree_map(lambda x: jnp.broadcast_to(jnp.asarray(x), (k,) + jnp.shape(x)), tree)

    def init(self, make: Callable[[dict[str, Any]], Any]) -> Any:
        import jax
        import jax.numpy as jnp

        states = [make(h) for h in self.lane_hparams]
        return jax.tree_util.tree_map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *states)

    def shard(self, batch: Any) -> Any:
        import jax

        return jax.device_put(batch)

    def step(self, fn: Callable, *, donate_argnums: tuple[int, ...] = ()) -> Callable:
        import jax
        import jax.numpy as jnp

        asks = asks_hparams(fn)
        fixed = {k: v for k, v in self.hparams.items() if k not in self.traced}
        shared = "<locals>" not in getattr(fn, "__qualname__", "<locals>")
        memo = ("packed", fn, repr(sorted(fixed.items())), self.lanes, asks)
        compiled = self._compiled.get(memo) if shared else None
        if compiled is None:
            def packed(state: Any, active: Any, traced: dict, *args: Any, **kwargs: Any) -> Any:
                def lane(s: Any, t: dict) -> Any:
                    extra = {"hparams": {**fixed, **t}} if asks else {}
                    return fn(s, *args, **extra, **kwargs)

                return _masked(jax.vmap(lane)(state, traced), state, active)

            compiled = jax.jit(packed, donate_argnums=(0,) if 0 in donate_argnums else ())
            if shared:
                self._compiled[memo] = compiled
        traced = {k: jnp.asarray(self.hparams[k]) for k in self.traced} if asks else {}

        def step(state: Any, *args: Any, **kwargs: Any) -> Any:
            if self._active_device is None:
                self._active_device = jnp.asarray(self._active)
            return compiled(state, self._active_device, traced, *args, **kwargs)

        return step

    def evaluate(self, fn: Callable) -> Callable:
        import jax

        return jax.jit(lambda state, *args, **kwargs: jax.vmap(lambda s: fn(s, *args, **kwargs))(state))

    def lane_of(self, tree: Any, lane: int) -> Any:
        import jax

        return jax.tree_util.tree_map(lambda x: x[lane], tree)

    def restore(self, state: Any, reporter: Any) -> tuple[Any, dict[str, Any]]:
        """Each lane from its own trial's parent, if it has one (the others as they are)."""
        import jax
        import jax.numpy as jnp

        host, extras, loaded = self.gather(state), {}, False
        lanes = [self.lane_of(host, lane) for lane in range(self.lanes)]
        for lane, folder in enumerate(reporter.parent_checkpoint_dirs):
            saved = checkpoint.read(folder, lanes[lane]) if folder else None
            if saved is not None:
                (lanes[lane], extras), loaded = saved, True
        if not loaded:
            return state, {}
        return jax.tree_util.tree_map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *lanes), extras

    def gather(self, tree: Any) -> Any:
        import jax

        return jax.device_get(tree)


def _masked(out: Any, state: Any, active: Any) -> Any:
    """The step's output with the state of stopped lanes left as it was: the whole output when
    it is the state, or its first element when it returns ``(state, metrics...)``."""
    import jax
    import jax.numpy as jnp

    def keep(new: Any, old: Any) -> Any:
        mask = active.reshape(active.shape + (1,) * (jnp.ndim(new) - 1))
        return jnp.where(mask, new, old)

    structure = jax.tree_util.tree_structure(state)
    if jax.tree_util.tree_structure(out) == structure:
        return jax.tree_util.tree_map(keep, out, state)
    if isinstance(out, tuple) and out and jax.tree_util.tree_structure(out[0]) == structure:
        return (jax.tree_util.tree_map(keep, out[0], state),) + out[1:]
    return out
