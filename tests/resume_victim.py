"""An experiment to kill: run by test_resume.py in its own process group, then SIGKILLed."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fns  # noqa: E402
from contexts import HyperparameterSearch, Searchspace  # noqa: E402
from kernel import lagom  # noqa: E402
from plugins.optimizers import ASHA  # noqa: E402


def context(kind: str):
    space = Searchspace(x=("DOUBLE", [0.0, 1.0]), sleep=("DISCRETE", [0.15]))
    optimizer = ASHA(3, 1, 9) if kind == "asha" else "randomsearch"
    return HyperparameterSearch(space, optimizer, num_trials=12, metric="score", workers=2, seed=5,
                                name=f"victim-{kind}")


if __name__ == "__main__":
    lagom(fns.quadratic, context(sys.argv[1]), path=sys.argv[2], verbose=0)
