"""Packed search: trials of one shape as the lanes of one program (plugins/strategies/packed.py,
kernel/agent/pack.py, kernel/packing.py), with real agents and real JAX."""
from __future__ import annotations

import collections
import json
import os
import signal

import numpy as np
import pytest

import fns
from contexts import ConfigError, HyperparameterSearch, Searchspace, Single
from kernel import Observer, lagom
from kernel.agent.pack import lane_value, take_pack
from plugins.launchers.local import LocalLauncher
from plugins.strategies import Packed, SingleDevice
from transports.codec import KERNEL_TO_AGENT, Codec, CodecError, agent_codec, token_key


def sgd_step(state, batch, hparams):
    import jax
    import optax

    p, s = state
    x, y = batch
    loss, g = jax.value_and_grad(lambda p: ((x @ p - y) ** 2).mean())(p)
    u, s = optax.adam(hparams["lr"]).update(g, s, p)
    return (optax.apply_updates(p, u), s), loss


def losses(strategy, steps=4):
    import jax.numpy as jnp
    import optax

    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 3)).astype(np.float32)
    y = x @ np.arange(3.0, dtype=np.float32)
    state = strategy.init(lambda h: (jnp.zeros(3), optax.adam(0.0).init(jnp.zeros(3))))
    step, out = strategy.step(sgd_step), []
    for i in range(steps):
        if i == 2 and isinstance(strategy, Packed):
            strategy.stop_lane(1)
        state, loss = step(state, strategy.shard((x, y)))
        out.append(strategy.gather(loss))
    return np.array(out), strategy.gather(state[0])


def test_lanes_train_as_their_trials_alone_and_a_stopped_lane_stops_updating():
    lrs = [1e-3, 3e-2, 1e-1]
    packed = Packed()
    packed.bind_lanes([{"lr": lr} for lr in lrs])
    assert packed.lanes == 4 and list(packed.active) == [True, True, True, False]  # padded: one program for 3 or 4
    lane_losses, lane_params = losses(packed)
    for lane, lr in enumerate(lrs):
        alone = SingleDevice()
        alone.bind({"lr": lr})
        expect, params = losses(alone, steps=2 if lane == 1 else 4)
        np.testing.assert_allclose(lane_losses[:len(expect), lane], expect, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(lane_params[lane], params, rtol=1e-5, atol=1e-6)  # lane 1: frozen at 2 steps


def test_a_pack_hands_each_lane_its_value_and_says_what_shape_it_wanted():
    assert lane_value(np.array([1.0, 2.0, 3.0, 4.0]), 2, 4, "metric") == 3.0
    assert lane_value(0.5, 2, 4, "metric") == 0.5  # one value for every lane
    with pytest.raises(TypeError, match=r"shape \(2, 4\).*one value per trial"):
        lane_value(np.zeros((2, 4)), 0, 4, "metric")
    queue = collections.deque([{"trial": 5, "pack": [4, 5]}, {"trial": 9, "pack": None}])
    assert [m["trial"] for m in take_pack({"trial": 4, "pack": [4, 5]}, queue)] == [4, 5]
    assert [m["trial"] for m in queue] == [9]


def test_a_pack_that_does_not_name_its_own_trial_is_rejected():
    key = token_key("pack-token-0123456789")
    fields = {"trial": 3, "params": {}, "budget": None, "checkpoint": None, "parent_checkpoint": None, "run": None,
              "extra": None, "verdicts": False, "metric": None, "traced": None, "pack": [1, 2]}
    frames = Codec(key, KERNEL_TO_AGENT).encode("trial", **fields)
    with pytest.raises(CodecError, match="pack"):
        agent_codec(key).decode(frames)
    assert agent_codec(key).decode(Codec(key, KERNEL_TO_AGENT).encode("trial", **dict(fields, pack=[2, 3])))["pack"] == [2, 3]


def test_packing_needs_a_function_written_against_strategy(runs):
    space = Searchspace(lr=("DOUBLE", [0.01, 0.5]))
    with pytest.raises(ConfigError, match="pack"):
        HyperparameterSearch(space, pack=0)
    with pytest.raises(ConfigError, match="leave strategy out"):
        HyperparameterSearch(space, pack=4, strategy="pmap")
    with pytest.raises(ConfigError, match="does not ask for strategy"):
        lagom(fns.quadratic, HyperparameterSearch(space, num_trials=2, pack=4, metric="score"), path=runs, verbose=0)


def search(runs, pack, **kw):
    space = Searchspace(lr=("DOUBLE", [0.01, 0.5]), width=("DISCRETE", [1, 2]))
    options = dict(num_trials=8, metric="score", workers=2, seed=3, pack=pack)
    return lagom(fns.climb, HyperparameterSearch(space, "randomsearch", **{**options, **kw}), path=runs,
                 verbose=0, report=False, **kw.pop("lagom", {}))


def test_a_packed_search_runs_every_trial_as_it_would_run_unpacked(runs):
    alone, packed = search(runs, 1), search(runs, 4)
    assert packed.count("finished") == alone.count("finished") == 8
    journal = [json.loads(line) for line in open(packed.path / "journal.jsonl")]
    packs = [e["pack"] for e in journal if e["event"] == "start"]
    assert all(packs) and max(map(len, packs)) > 1  # trials ran together
    for a, p in zip(alone.trials, packed.trials):
        assert (a.id, a.params) == (p.id, p.params)
        np.testing.assert_allclose([v for _, v in p.history], [v for _, v in a.history], rtol=1e-6)
        assert p.result["updates"] == a.result["updates"] == 12
    assert packed.best.params == alone.best.params
    fns.readers_agree(packed.path)


def test_a_lane_stopped_by_the_median_rule_stops_updating_and_ends_stopped(runs):
    space = Searchspace(lr=("DOUBLE", [0.01, 0.5]))
    result = lagom(fns.climb, HyperparameterSearch(space, "randomsearch", num_trials=12, metric="score", workers=1,
                                                   seed=1, pack=4, es_policy="median", es_min=4),
                   path=runs, verbose=0, report=False)
    stopped = [t for t in result.trials if t.state == "stopped"]
    assert stopped and result.count("finished") + len(stopped) == 12
    for t in stopped:  # no update after the broadcast that stopped it: 3 per broadcast it made
        assert len(t.history) < 4 and t.result["updates"] == 3 * len(t.history)


def test_a_killed_packed_agent_runs_its_lanes_again(runs):
    launcher, killed = LocalLauncher(), {}

    class KillOnce(Observer):
        def trial_started(self, view, trial):
            if trial.id == 0 and not killed:
                killed["agent"] = trial.agent
                os.kill(launcher.pids()[trial.agent], signal.SIGKILL)

    space = Searchspace(lr=("DOUBLE", [0.01, 0.5]), sleep=("DISCRETE", [0.2]))
    result = lagom(fns.climb, HyperparameterSearch(space, "randomsearch", num_trials=6, metric="score", workers=2,
                                                   seed=0, pack=3), launcher=launcher, path=runs, verbose=0,
                   report=False, observers=[KillOnce()])
    assert result.count("finished") == 6
    journal = [json.loads(line) for line in open(result.path / "journal.jsonl")]
    lanes = set(next(e for e in journal if e["event"] == "start" and e["trial"] == 0)["pack"])
    assert len(lanes) > 1
    requeued = {e["trial"] for e in journal if e["event"] == "requeue"}
    assert lanes <= requeued
    assert all(result.trials[t].attempts == 2 and result.trials[t].agent != killed["agent"] for t in lanes)
    fns.readers_agree(result.path)


def test_asha_packs_each_rung_and_a_promoted_lane_continues_its_own_parent(runs):
    from plugins.optimizers import ASHA

    space = Searchspace(lr=("DOUBLE", [0.01, 0.5]))

    def asha(pack):
        return lagom(fns.climb, HyperparameterSearch(space, ASHA(3, 1, 9), num_trials=9, metric="score", workers=1,
                                                     seed=2, pack=pack), path=runs, verbose=0, report=False)

    packed, alone = asha(9), asha(1)
    trials = {t.id: t for t in packed.trials}
    promoted = [t for t in packed.trials if t.parent is not None]
    assert {t.budget for t in promoted} == {3, 9}
    journal = [json.loads(line) for line in open(packed.path / "journal.jsonl")]
    packs = [e["pack"] for e in journal if e["event"] == "start"]
    assert max(map(len, (p for p in packs if p))) == 9  # every configuration of the first rung in one program
    for t in promoted:  # it trained on from its parent's state: 3 updates per epoch of its whole budget
        parent = trials[t.parent]
        assert t.params == parent.params and t.result["updates"] == 3 * t.budget
        assert [s for s, _ in t.history] == list(range(int(parent.budget), int(t.budget)))
    top = sorted((t for t in packed.trials if t.budget == 1), key=lambda t: -t.metric)[:3]
    assert {t.id for t in top} == {t.parent for t in promoted if t.budget == 3}  # the rung's top third went on
    assert packed.best.params == alone.best.params and packed.best.budget == 9
    # A packed rung is judged whole; unpacked, ASHA promotes the top third of what it has seen so far,
    # which holds the whole rung's top third once the rung is complete (and, with other draws, more).
    for budget in (3, 9):
        configs = [{t.params["lr"] for t in run.trials if t.budget == budget} for run in (packed, alone)]
        assert configs[0] == configs[1]  # with these draws, the same configurations


def test_a_lane_that_diverges_fails_alone(runs):
    space = Searchspace(lr=("DOUBLE", [0.01, 0.8]))
    result = lagom(fns.climb_or_diverge, HyperparameterSearch(space, "randomsearch", num_trials=8, metric="score",
                                                              workers=1, seed=4, pack=8),
                   path=runs, verbose=0, report=False, fail_fast=None)
    diverged = {t.id for t in result.trials if t.params["lr"] > 0.4}
    assert diverged and len(diverged) < 8
    assert {t.id for t in result.trials if t.state == "failed"} == diverged
    assert all("NaN" in t.error for t in result.trials if t.id in diverged)
    assert result.count("finished") == 8 - len(diverged)


def test_an_ablation_packs_the_seeds_of_each_component_and_ranks_as_unpacked(runs):
    from contexts import Ablation
    from test_ablation import wine_subset_study

    _, study = wine_subset_study()
    with pytest.raises(ConfigError, match="repeats"):
        Ablation(study, pack=3)

    def ablation(pack):
        return lagom(fns.wine_lanes, Ablation(study, direction="min", metric="loss", workers=2, repeats=3, pack=pack,
                                              hparams={"lr": 1e-2}), path=runs, verbose=0, report=False)

    packed, alone = ablation(3), ablation(1)
    journal = [json.loads(line) for line in open(packed.path / "journal.jsonl")]
    packs = [e["pack"] for e in journal if e["event"] == "start"]
    assert all(p and len(p) == 3 for p in packs)  # every component's three seeds as one program
    by_run = {(t.info["ablated"], t.info["seed"]): t.metric for t in alone.trials}
    assert len(by_run) == len(packed.trials) == 3 * 8
    for t in packed.trials:  # each lane trained as its trial alone, from its own seed (float32: a vmapped
        # matmul sums in another order, and 60 Adam steps on a loss near 0.04 carry that to ~1e-3)
        assert t.metric == pytest.approx(by_run[(t.info["ablated"], t.info["seed"])], rel=1e-2)
    assert [r["component"] for r in packed.ranking] == [r["component"] for r in alone.ranking]


def test_each_lane_saves_to_its_own_folder_and_a_promotion_restores_from_its_parent(tmp_path):
    import jax
    import jax.numpy as jnp

    class Folders:
        def __init__(self, mine, parents):
            self.checkpoint_dirs, self.parent_checkpoint_dirs = mine, parents

    packed = Packed()
    packed.bind_lanes([{"seed": s} for s in (1, 2, 3)], traced=["seed"])
    state = packed.init(lambda h: (jnp.full(2, float(h["seed"])), jax.random.key(h["seed"])))
    folders = [str(tmp_path / f"t{i}") for i in range(3)]
    for folder in folders:
        os.makedirs(folder)
    packed.save(state, Folders(folders + [None], [None] * 4), epochs=3)  # the padding lane: no folder
    promoted = Packed()
    promoted.bind_lanes([{"seed": 7}, {"seed": 8}], traced=["seed"])
    fresh = promoted.init(lambda h: (jnp.zeros(2), jax.random.key(h["seed"])))
    (values, keys), extras = promoted.restore(fresh, Folders([None, None], [folders[2], None]))
    assert extras == {"epochs": 3}
    assert values.tolist() == [[3.0, 3.0], [0.0, 0.0]]  # lane 0 from trial 2's folder, lane 1 as it was
    assert (jax.random.key_data(keys[0]) == jax.random.key_data(jax.random.key(3))).all()  # a key comes back a key
    alone = SingleDevice()
    alone.bind({})
    restored, extras = alone.restore((jnp.zeros(2), jax.random.key(0)), Folders([None], [folders[0]]))
    assert restored[0].tolist() == [1.0, 1.0] and extras == {"epochs": 3}


def test_a_pack_past_its_time_limit_is_ended_and_its_lanes_fail_by_the_rules(runs):
    space = Searchspace(lr=("DOUBLE", [0.01, 0.5]), hang=("DISCRETE", [0, 1]))
    result = lagom(fns.climb_or_hang, HyperparameterSearch(space, "randomsearch", num_trials=6, metric="score",
                                                           workers=1, seed=1, pack=4, trial_timeout=1.5),
                   path=runs, verbose=0, report=False, stop_grace=0.5, fail_fast=None)
    states = {t.id: (t.params["hang"], t.state) for t in result.trials}
    assert {s for h, s in states.values() if h == 0} == {"finished"}
    assert {s for h, s in states.values() if h == 1} == {"failed"}  # every lane past its limit, at the one restart
    journal = [json.loads(line) for line in open(result.path / "journal.jsonl")]
    assert sum(e["event"] == "killed" for e in journal) == 1 and not any(e["event"] == "requeue" for e in journal)
    fns.readers_agree(result.path)


def test_a_packed_search_out_of_time_stops_its_lanes_and_withdraws_what_waited(runs):
    space = Searchspace(lr=("DOUBLE", [0.01, 0.5]), width=("DISCRETE", [1, 2]), sleep=("DISCRETE", [0.3]))
    result = lagom(fns.climb, HyperparameterSearch(space, "randomsearch", max_time=1.5, metric="score", workers=1,
                                                   seed=0, pack=4), path=runs, verbose=0, report=False)
    assert result.count("stopped") >= 1 and not result.count("failed")
    journal = [json.loads(line) for line in open(result.path / "journal.jsonl")]
    proposed = {e["trial"] for e in journal if e["event"] == "lease" and e["agent"] is None}
    started = {e["trial"] for e in journal if e["event"] == "start"}
    withdrawn = {e["trial"] for e in journal if e["event"] == "withdrawn"}
    assert proposed - started and proposed - started <= withdrawn  # waited for a pack: not of this run
    assert {t.id for t in result.trials} == started
    fns.readers_agree(result.path)


def test_a_pack_s_broadcast_is_checked_as_a_lone_trial_s():
    from kernel.agent.pack import LaneReporter

    class Channel:
        def send_lanes(self, points):
            self.points = points
            return []

        def stops_seen(self):
            return []

    packed, channel = Packed(), Channel()
    packed.bind_lanes([{"lr": 0.1}, {"lr": 0.2}])
    reporter = LaneReporter([7, 8], channel, packed, [None, None], [None, None])
    reporter.broadcast(metric=np.array([0.5, float("nan")]), loss=np.array([1.0, 2.0]))
    assert channel.points == [(7, [0, 0.5, {"loss": 1.0}]), (8, [0, None, {"loss": 2.0}])]  # NaN: not a value
    with pytest.raises(TypeError, match="needs a finite number"):
        reporter.broadcast(metric=np.array([0.5, 0.6]), step=float("inf"))
    with pytest.raises(TypeError, match=r"broadcast\(metric=...\) needs a number"):
        reporter.broadcast(metric=np.array(["a", "b"]))
