"""The experiment bench/chaos.py kills and resumes: 200 short trials on 2 agents."""
import sys
import time


def trivial(hparams, reporter):
    time.sleep(0.01)
    reporter.broadcast(metric=hparams["x"], step=0)
    return {"value": hparams["x"]}


def context():
    from contexts import HyperparameterSearch, Searchspace

    return HyperparameterSearch(Searchspace(x=("DOUBLE", [0.0, 1.0])), num_trials=200, metric="value",
                                workers=2, seed=3, name="chaos")


if __name__ == "__main__":
    from kernel import lagom

    lagom(trivial, context(), path=sys.argv[1], verbose=0)
