"""DEHB's ask/tell on the far side of a pipe, for bench/lcbench_peers.py.

DEHB's package (0.1.2) requires numpy < 2 and JAX 0.10 requires numpy >= 2, so DEHB runs in an
environment of its own and the benchmark talks to it through this script's standard input and
output, a JSON object per line:

    python -m venv ~/dehb-env && ~/dehb-env/bin/pip install dehb==0.1.2
    python bench/lcbench.py --methods dehb ... --dehb-python ~/dehb-env/bin/python

Requests: ``{"op": "ask"}`` answers ``{"id", "config", "fidelity"}``; ``{"op": "tell", "id",
"fitness", "cost"}`` answers ``{}``. The first argument is a JSON object: the space (name: [low,
high, log, integer]), the seed and the fidelities. Only the standard library and DEHB's own
dependencies are imported here.
"""
from __future__ import annotations

import itertools
import json
import sys
import tempfile


def _space(space: dict, seed: int):
    import ConfigSpace as CS

    cs = CS.ConfigurationSpace(seed=seed)
    for name, (low, high, log, integer) in space.items():
        kind = CS.UniformIntegerHyperparameter if integer else CS.UniformFloatHyperparameter
        cs.add(kind(name, low, high, log=log))
    return cs


def _plain(config) -> dict:
    """A ConfigSpace configuration as JSON numbers (numpy scalars do not serialise)."""
    return {k: v.item() if hasattr(v, "item") else v for k, v in dict(config).items()}


def main() -> None:
    args = json.loads(sys.argv[1])
    import logging

    from dehb import DEHB

    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        dehb = DEHB(cs=_space(args["space"], args["seed"]), min_fidelity=args["min_fidelity"],
                    max_fidelity=args["max_fidelity"], eta=args.get("eta", 3), n_workers=1, seed=args["seed"],
                    output_path=tmp, save_freq=None)
        jobs: dict[int, dict] = {}
        ids, out = itertools.count(), sys.stdout
        for line in sys.stdin:
            request = json.loads(line)
            if request["op"] == "ask":
                job, key = dehb.ask(), next(ids)
                jobs[key] = job
                reply = {"id": key, "config": _plain(job["config"]), "fidelity": float(job["fidelity"])}
            elif request["op"] == "tell":
                dehb.tell(jobs.pop(request["id"]), {"fitness": request["fitness"], "cost": request["cost"]})
                reply = {}
            else:
                reply = {"error": f"unknown op {request['op']!r}"}
            out.write(json.dumps(reply) + "\n")
            out.flush()


if __name__ == "__main__":
    main()
