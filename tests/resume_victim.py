"""An experiment to kill: run by test_resume.py in its own process group, then SIGKILLed."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fns  # noqa: E402
from contexts import HyperparameterSearch, Searchspace  # noqa: E402
from kernel import lagom  # noqa: E402
from plugins.optimizers import ASHA, PBT  # noqa: E402


def context(kind: str):
    if kind == "pbt":
        space = Searchspace(lr=("DOUBLE", [0.01, 0.6], "log"), sleep=("DISCRETE", [0.1]))
        return HyperparameterSearch(space, PBT(6, 1, population=4, quantile=0.5), metric="score", workers=2,
                                    seed=5, name="victim-pbt")
    if kind == "packed":  # trials of two shapes, three to a pack
        space = Searchspace(lr=("DOUBLE", [0.01, 0.5]), width=("DISCRETE", [1, 2]), sleep=("DISCRETE", [0.1]))
        return HyperparameterSearch(space, "randomsearch", num_trials=12, metric="score", workers=2, seed=5,
                                    pack=3, name="victim-packed")
    space = Searchspace(x=("DOUBLE", [0.0, 1.0]), sleep=("DISCRETE", [0.15]))
    optimizer = ASHA(3, 1, 9) if kind == "asha" else "randomsearch"
    workers = 0 if kind == "byhand" else 2  # byhand: agents started by hand, on the kernel's address
    if kind == "signal":  # long enough to be interrupted halfway
        space = Searchspace(x=("DOUBLE", [0.0, 1.0]), sleep=("DISCRETE", [0.4]))
    return HyperparameterSearch(space, optimizer, num_trials=12, metric="score", workers=workers, seed=5,
                                name=f"victim-{kind}")


if __name__ == "__main__":
    kind, path = sys.argv[1], sys.argv[2]
    extra = dict(listen=sys.argv[3], token=sys.argv[4]) if kind == "byhand" else {}
    fn = {"pbt": fns.pbt_toy, "packed": fns.climb}.get(kind, fns.quadratic)
    lagom(fn, context(kind), path=path, verbose=0, **extra)
