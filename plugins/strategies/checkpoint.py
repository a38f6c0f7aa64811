"""A trial's state on disk, for the trial that continues it (an ASHA promotion, a PBT exploit).

``strategy.save`` / ``strategy.restore`` write and read it, each lane of a pack in its own
trial's folder. The leaves of the state's pytree go to one ``.npz`` in order, with a few numbers
beside them (the epoch reached); the tree's structure comes back from the state the function
builds anyway, so nothing executable is ever read from disk (no pickle).
"""
from __future__ import annotations

import json
import os
from typing import Any

FILE = "lagom-state.npz"


def write(folder: str, tree: Any, extras: dict[str, Any]) -> None:
    import jax
    import numpy as np

    leaves = {f"leaf{i}": np.asarray(jax.random.key_data(x) if _is_key(x) else x)
              for i, x in enumerate(jax.tree_util.tree_leaves(tree))}
    path = os.path.join(folder, FILE)
    with open(path + ".tmp", "wb") as f:  # a whole file or none: a crash mid-write leaves the last one
        np.savez(f, __extras__=np.asarray(json.dumps(extras)), **leaves)
    os.replace(path + ".tmp", path)


def read(folder: str, like: Any) -> tuple[Any, dict[str, Any]] | None:
    """The tree saved in ``folder``, shaped as ``like``, and its extras; None if none was saved."""
    import jax
    import numpy as np

    path = os.path.join(folder, FILE)
    if not os.path.exists(path):
        return None
    with np.load(path) as saved:
        treedef = jax.tree_util.tree_structure(like)
        if treedef.num_leaves != len(saved.files) - 1:
            raise ValueError(f"the checkpoint in {folder} holds {len(saved.files) - 1} arrays, the state "
                             f"{treedef.num_leaves}: it was saved by a model of another shape")
        leaves = [jax.random.wrap_key_data(saved[f"leaf{i}"], impl=jax.random.key_impl(old)) if _is_key(old)
                  else saved[f"leaf{i}"] for i, old in enumerate(jax.tree_util.tree_leaves(like))]
        extras = json.loads(str(saved["__extras__"]))
    return jax.tree_util.tree_unflatten(treedef, leaves), extras


def _is_key(x: Any) -> bool:
    """A typed PRNG key (``jax.random.key``): saved as its raw data, made a key again on reading."""
    import jax

    return jax.dtypes.issubdtype(getattr(x, "dtype", None), jax.dtypes.prng_key)
