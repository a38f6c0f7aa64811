import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from contexts import Searchspace
from plugins.optimizers import FINISHED, TPE, Observation, RandomSearch

SPACE = Searchspace(lr=("DOUBLE", [1e-5, 1.0], "log"), width=("INTEGER", [1, 512], "log"),
                    depth=("INTEGER", [1, 4]), drop=("DOUBLE", [0.0, 0.5]),
                    bs=("DISCRETE", [16, 32, 64]), act=("CATEGORICAL", ["relu", "tanh", "gelu"]))


def objective(p):
    """Best near lr=1e-2, width=64, depth=2, drop=0.1, bs=32, act=gelu."""
    return -(math.log10(p["lr"]) + 2) ** 2 - (math.log2(p["width"]) - 6) ** 2 / 4 \
        - (p["depth"] - 2) ** 2 - 10 * (p["drop"] - 0.1) ** 2 \
        - (p["bs"] != 32) * 0.5 - (p["act"] != "gelu") * 0.5


def run(opt, n, seed, direction="max", parallel=1):
    opt.setup(SPACE, num_trials=n, direction=direction, seed=seed)
    sign = 1 if direction == "max" else -1
    values, running, tid = [], [], 0
    rng = random.Random(seed)
    while True:
        while len(running) < parallel:
            s = opt.suggest(tid)
            if s is FINISHED:
                break
            assert SPACE.contains(s.params), s.params
            running.append((tid, s.params))
            tid += 1
        if not running:
            return values
        t, p = running.pop(rng.randrange(len(running)))
        v = sign * objective(p)
        values.append(sign * v)
        opt.observe(Observation(t, p, None, "finished", v))


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**31), st.sampled_from(["max", "min"]), st.integers(1, 4))
def test_never_outside_the_space(seed, direction, parallel):
    run(TPE(n_startup=3), 25, seed, direction, parallel)


def test_beats_random_search_on_a_smooth_objective():
    """Median over seeds of the best found in 60 trials, 2 running at a time."""
    tpe_best, rs_best = [], []
    for seed in range(5):
        tpe_best.append(max(run(TPE(), 60, seed, parallel=2)))
        rs_best.append(max(run(RandomSearch(), 60, seed, parallel=2)))
    assert sorted(tpe_best)[2] > sorted(rs_best)[2]


def test_running_trials_push_suggestions_apart():
    """With a constant liar, simultaneous suggestions are not all the same point."""
    opt = TPE(n_startup=5)
    opt.setup(Searchspace(c=("CATEGORICAL", list("abcdefgh"))), num_trials=30, direction="max", seed=1)
    for t in range(5):
        s = opt.suggest(t)
        opt.observe(Observation(t, s.params, None, "finished", 1.0 if s.params["c"] == "a" else 0.0))
    picks = {opt.suggest(t).params["c"] for t in range(5, 13)}
    assert len(picks) > 1


RIDGE = Searchspace(x=("DOUBLE", [0.0, 1.0]), y=("DOUBLE", [0.0, 1.0]), z=("DOUBLE", [0.0, 1.0]))


def ridge(p):
    """A narrow ridge along x = y (a strong interaction), best at x = y = 0.8, z = 0.3."""
    return -50 * (p["x"] - p["y"]) ** 2 - (p["x"] - 0.8) ** 2 - (p["z"] - 0.3) ** 2


def best_on_ridge(opt, n, seed):
    opt.setup(RIDGE, num_trials=n, direction="max", seed=seed)
    best = float("-inf")
    for t in range(n):
        s = opt.suggest(t)
        assert RIDGE.contains(s.params)
        best = max(best, ridge(s.params))
        opt.observe(Observation(t, s.params, None, "finished", ridge(s.params)))
    return best


def test_multivariate_beats_univariate_on_an_interaction():
    seeds = range(16)
    uni = sorted(best_on_ridge(TPE(), 100, s) for s in seeds)
    multi = sorted(best_on_ridge(TPE(multivariate=True), 100, s) for s in seeds)
    assert multi[8] > uni[8] and sum(multi) > sum(uni)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**31), st.sampled_from(["max", "min"]), st.integers(1, 3))
def test_multivariate_stays_inside_a_mixed_and_conditional_space(seed, direction, parallel):
    space = Searchspace(lr=("DOUBLE", [1e-5, 1.0], "log"), width=("INTEGER", [1, 512], "log"),
                        bs=("DISCRETE", [16, 32, 64]), opt=("CATEGORICAL", ["sgd", "adam"]))
    space.add("momentum", ("DOUBLE", [0.0, 0.99]), when={"opt": "sgd"})
    tpe = TPE(n_startup=3, multivariate=True)
    tpe.setup(space, num_trials=20, direction=direction, seed=seed)
    rng, running = random.Random(seed), []
    for t in range(20):
        s = tpe.suggest(t)
        assert space.contains(s.params) and ("momentum" in s.params) == (s.params["opt"] == "sgd")
        running.append((t, s.params))
        if len(running) >= parallel:
            tid, p = running.pop(rng.randrange(len(running)))
            tpe.observe(Observation(tid, p, None, "finished", math.log(p["lr"]) + p["bs"] / 64))


def test_propose_models_the_results_it_is_handed():
    tpe = TPE(n_startup=5)
    tpe.setup(RIDGE, num_trials=None, direction="max", seed=0)
    assert tpe.propose([({"x": 0.5, "y": 0.5, "z": 0.5}, 1.0)], []) is None  # too few to model
    rng = random.Random(0)
    observed = [(p, ridge(p)) for p in (RIDGE.sample(rng) for _ in range(40))]
    proposed = [tpe.propose(observed, []) for _ in range(30)]
    assert sum(map(ridge, proposed)) / 30 > sum(v for _, v in observed) / 40


def _run_tpe(priors, n=80, seed=0):
    import math

    from contexts import Searchspace
    from plugins.optimizers import TPE
    from plugins.optimizers.base import Observation

    sp = Searchspace(lr=("DOUBLE", [1e-5, 1e-1], "log"), priors=priors)
    tpe = TPE(n_startup=5)
    tpe.setup(sp, num_trials=n, direction="max", seed=seed)
    distances = []
    for i in range(n):
        params = tpe.suggest(i).params
        distance = abs(math.log10(params["lr"]) + 3)  # the optimum: lr = 1e-3
        distances.append(distance)
        tpe.observe(Observation(i, params, None, "finished", -distance))
    return distances


def test_tpe_starts_from_the_priors_and_evidence_outvotes_a_misleading_one():
    import statistics

    none, good, bad = (_run_tpe(p) for p in (None, {"lr": (1e-3, "high")}, {"lr": (1e-1, "high")}))
    assert good[0] == 0 and bad[0] == 2  # the priors' own configuration first
    early = [statistics.mean(d[:20]) for d in (none, good, bad)]
    assert early[1] < early[0] < early[2]  # a good prior helps early, a misleading one hurts
    late = [statistics.median(d[60:]) for d in (none, good, bad)]
    assert late[2] < 0.25 and late[2] < 2 * late[0] + 0.05  # ...until the results outvote it



def _run_joint_tpe(priors, n=80, seed=0, beta=10.0):
    """Multivariate TPE on a diagonal optimum (the best lr grows with the batch), priors on both;
    ``beta=0``: the priors draw the startup but do not weigh the joint model's proposals."""
    import math

    from contexts import Searchspace
    from plugins.optimizers import TPE
    from plugins.optimizers.base import Observation

    sp = Searchspace(lr=("DOUBLE", [1e-5, 1e-1], "log"), bs=("DISCRETE", [16, 32, 64, 128, 256]), priors=priors)
    tpe = TPE(n_startup=5, multivariate=True, prior_beta=beta)
    tpe.setup(sp, num_trials=n, direction="max", seed=seed)
    distances = []
    for i in range(n):
        params = tpe.suggest(i).params
        best_lr = -4 + math.log2(params["bs"] / 16) / 2  # bs 16: 1e-4 ... bs 256: 1e-2
        distance = abs(math.log10(params["lr"]) - best_lr) + (params["bs"] != 64)
        distances.append(distance)
        tpe.observe(Observation(i, params, None, "finished", -distance))
    return distances


def test_multivariate_tpe_weighs_its_joint_proposals_by_the_priors():
    import statistics

    good, bad = {"lr": (10 ** -3, "high"), "bs": (64, "high")}, {"lr": (1e-5, "high"), "bs": (256, "high")}
    runs = {(name, beta): [_run_joint_tpe(p, seed=s, beta=beta) for s in range(3)]
            for name, p in (("none", None), ("good", good), ("bad", bad)) for beta in (10.0, 0.0)}

    def median(key, a, b):
        return statistics.mean(statistics.median(d[a:b]) for d in runs[key])

    early = {key: median(key, 5, 25) for key in runs}  # the joint model's own proposals, after the startup
    assert early["good", 10.0] < early["none", 10.0] < early["bad", 10.0]
    assert early["good", 10.0] < early["good", 0.0] / 2  # the weight, not only the startup, brings them nearer
    assert median(("bad", 10.0), 60, 80) < median(("bad", 0.0), 60, 80) + 0.3  # by 60 results it has faded
