"""Runs a search whose files may not grow past a few kilobytes (RLIMIT_FSIZE): the journal's
writes fail mid-run as on a full disk. Prints one JSON line: the error and the folder."""
import json
import os
import resource
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import fns  # noqa: E402
from contexts import HyperparameterSearch, Searchspace  # noqa: E402
from kernel import ExperimentError, lagom  # noqa: E402


def context():
    space = Searchspace(x=("DOUBLE", [0.0, 1.0]))
    return HyperparameterSearch(space, num_trials=120, metric="score", workers=2, launcher="thread", seed=4,
                                name="fulldisk")


if __name__ == "__main__":
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (24_000, 24_000))
    try:
        lagom(fns.quadratic, context(), path=sys.argv[1], verbose=0)
        print(json.dumps({"error": None}))
    except ExperimentError as exc:
        print(json.dumps({"error": str(exc), "path": str(exc.path)}))
