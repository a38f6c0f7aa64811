"""Contract tests for plugins: what every optimizer, early stopper, strategy and launcher promises.

A plugin package reuses them with one fixture (pytest is needed, nothing else of ours):

    from plugins.testing import OptimizerContract

    class TestMySearch(OptimizerContract):
        @pytest.fixture
        def optimizer(self):
            return MySearch(...)        # a fresh, not yet set-up instance

The built-ins pass the same suites (tests/test_contracts.py). The promises are the ones the
kernel relies on: suggestions inside the space, decisions that a replayed journal reproduces
(resume), any outcome tolerated, both directions; for strategies, the numbers one device gives;
for launchers, agents that join, work and leave.
"""
from __future__ import annotations

import copy
import math
import random
from typing import Any, Callable

import pytest

from .earlystop.base import EarlyStopper
from .launchers.base import Launcher
from .optimizers.base import FINISHED, WAIT, Observation, Optimizer, Suggestion
from .strategies.base import Strategy

STATES = ("finished", "stopped", "failed", "lost")


def default_space():
    """One parameter of each type (a DISCRETE one included, which some optimizers need)."""
    from contexts import Searchspace

    return Searchspace(lr=("DOUBLE", [1e-4, 1e-1], "log"), width=("INTEGER", [8, 64]),
                       depth=("DISCRETE", [1, 2, 3]), act=("CATEGORICAL", ["relu", "tanh"]))


def objective(params: dict[str, Any]) -> float:
    """A deterministic score for any configuration (numbers by size, labels by length)."""
    score = 0.0
    for value in params.values():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            score += math.log1p(abs(value))
        else:
            score += len(str(value)) / 10
    return score


def drive(optimizer: Optimizer, *, parallel: int = 2, limit: int = 500, seed: int = 0,
          outcome: Callable[[int], str] = lambda i: "finished",
          score: Callable[[Suggestion], float] = lambda s: objective(s.params),
          checkpointed: bool | None = None) -> list[tuple[int, Suggestion, str]]:
    """Run a set-up optimizer as the kernel would: up to ``parallel`` trials at a time, ending in
    a seeded random order with ``outcome(i)`` and ``score(suggestion)``; every trial that ended
    well saved a checkpoint unless ``checkpointed`` says otherwise. Returns (trial id,
    suggestion, state) in the order they ended."""
    rng, running, log, tid = random.Random(seed), [], [], 0
    for _ in range(limit):
        while len(running) < parallel:
            decision = optimizer.suggest(tid)
            if decision is FINISHED or decision is WAIT:
                break
            running.append((tid, decision))
            tid += 1
        if not running:
            return log
        trial, suggestion = running.pop(rng.randrange(len(running)))
        state = outcome(trial)
        value = score(suggestion) if state in ("finished", "stopped") else None
        history = ((0, value),) if value is not None else ()
        saved = value is not None if checkpointed is None else checkpointed
        optimizer.observe(Observation(trial, suggestion.params, suggestion.budget, state, value, history,
                                      dict(suggestion.info), checkpointed=saved))
        log.append((trial, suggestion, state))
    raise AssertionError(f"{type(optimizer).__name__} never finished within {limit} trials")


class OptimizerContract:
    """Subclass with an ``optimizer`` fixture returning a fresh instance (and optionally ``space``
    and ``num_trials`` fixtures)."""

    @pytest.fixture
    def space(self):
        return default_space()

    @pytest.fixture
    def num_trials(self) -> int:
        return 12

    def _setup(self, opt: Optimizer, space, num_trials: int, direction: str = "max", seed: int = 1) -> Optimizer:
        opt = copy.deepcopy(opt)
        opt.setup(space, num_trials=num_trials, direction=direction, seed=seed)
        return opt

    def test_is_an_optimizer(self, optimizer):
        assert isinstance(optimizer, Optimizer)

    @pytest.mark.parametrize("direction", ["max", "min"])
    def test_suggestions_are_inside_the_space_and_the_search_ends(self, optimizer, space, num_trials, direction):
        log = drive(self._setup(optimizer, space, num_trials, direction))
        assert log, "it suggested nothing"
        for _, suggestion, _ in log:
            assert isinstance(suggestion, Suggestion) and space.contains(suggestion.params), suggestion
            assert suggestion.budget is None or isinstance(suggestion.budget, (int, float))
            assert isinstance(suggestion.info, dict)

    def test_a_replayed_journal_gives_the_same_decisions(self, optimizer, space, num_trials):
        """Resume replays outcomes in journal order into a fresh instance with the same seed."""
        first = drive(self._setup(optimizer, space, num_trials))
        again = drive(self._setup(optimizer, space, num_trials))
        assert [(t, s.params, s.budget, s.parent) for t, s, _ in first] == \
               [(t, s.params, s.budget, s.parent) for t, s, _ in again]

    def test_failed_and_lost_trials_are_taken_in_stride(self, optimizer, space, num_trials):
        log = drive(self._setup(optimizer, space, num_trials), outcome=lambda i: STATES[i % 4])
        assert log

    def test_total_trials_is_a_count_or_unknown(self, optimizer, space, num_trials):
        total = self._setup(optimizer, space, num_trials).total_trials()
        assert total is None or (isinstance(total, int) and total >= 0)


class EarlyStopperContract:
    """Subclass with a ``stopper`` fixture returning a fresh instance."""

    def _setup(self, stopper: EarlyStopper, direction: str = "max") -> EarlyStopper:
        stopper = copy.deepcopy(stopper)
        stopper.setup(direction=direction)
        return stopper

    def _decisions(self, stopper: EarlyStopper, seed: int = 0) -> list[bool]:
        rng, out = random.Random(seed), []
        for tid in range(12):
            history = []
            for step in range(8):
                history.append((step, rng.random()))
                out.append(bool(stopper.should_stop(tid, list(history))))
            state = STATES[tid % 4]
            value = history[-1][1] if state in ("finished", "stopped") else None
            stopper.observe(Observation(tid, {}, None, state, value, tuple(history)))
        return out

    def test_is_an_early_stopper(self, stopper):
        assert isinstance(stopper, EarlyStopper)

    @pytest.mark.parametrize("direction", ["max", "min"])
    def test_answers_yes_or_no_for_every_broadcast(self, stopper, direction):
        decisions = self._decisions(self._setup(stopper, direction))
        assert all(isinstance(d, bool) for d in decisions)

    def test_a_replayed_journal_gives_the_same_decisions(self, stopper):
        assert self._decisions(self._setup(stopper)) == self._decisions(self._setup(stopper))


class StrategyContract:
    """Subclass with a ``strategy`` fixture (needs JAX). Two SGD steps of a small model under the
    strategy must give the parameters plain JAX gives on one device (SGD, so a gradient off by
    the number of devices would show)."""

    def _data(self):
        import numpy as np

        rng = np.random.default_rng(0)
        params = {"w": rng.normal(size=(5, 3)).astype(np.float32), "b": np.zeros(3, np.float32)}
        x = rng.normal(size=(16, 5)).astype(np.float32)
        y = rng.normal(size=(16, 3)).astype(np.float32)
        return params, x, y

    def _steps(self, strategy: Strategy, params, x, y):
        import jax
        import jax.numpy as jnp

        def train_step(p, batch):
            bx, by = batch
            grads = jax.grad(lambda p: jnp.mean((bx @ p["w"] + p["b"] - by) ** 2))(p)
            grads = strategy.mean(grads)
            return jax.tree_util.tree_map(lambda a, g: a - 0.1 * g, p, grads)

        step = strategy.step(train_step)
        p = strategy.replicate(params)
        for _ in range(2):
            p = step(p, strategy.shard((x, y)))
        return strategy.gather(p)

    def test_is_a_strategy_with_a_place_in_a_process_group(self, strategy):
        assert isinstance(strategy, Strategy)
        strategy.configure({})
        strategy.setup()
        assert strategy.num_devices >= 1 and 0 <= strategy.process_index < strategy.process_count
        assert strategy.is_main == (strategy.process_index == 0)
        strategy.teardown()

    def test_two_steps_give_the_numbers_of_one_device(self, strategy):
        pytest.importorskip("jax")
        import numpy as np

        from .strategies.single import SingleDevice

        params, x, y = self._data()
        strategy.configure({})
        strategy.setup()
        got = self._steps(strategy, params, x, y)
        want = self._steps(SingleDevice(), params, x, y)
        strategy.teardown()
        for key in params:
            assert np.max(np.abs(np.asarray(got[key]) - np.asarray(want[key]))) < 1e-5
            assert isinstance(got[key], np.ndarray)


def barrier(folder: str, parties: int, timeout: float = 60.0) -> None:
    """Wait until ``parties`` processes have reached this point (each leaves its pid in
    ``folder``): a test's first trials can wait for every agent to have one."""
    import os
    import time

    os.makedirs(folder, exist_ok=True)
    open(os.path.join(folder, str(os.getpid())), "w").close()
    deadline = time.monotonic() + timeout
    while len(os.listdir(folder)) < parties:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(os.listdir(folder))} of {parties} processes reached {folder}")
        time.sleep(0.005)


def _pid_of_agent(hparams, reporter):
    """Each agent's first trial waits until ``parties`` agent processes have one."""
    import os

    barrier(hparams["barrier"], hparams["parties"])
    return {"score": float(hparams["n"]), "pid": os.getpid()}


class LauncherContract:
    """Subclass with a ``launcher`` fixture returning a fresh instance that starts agents the
    kernel can reach (set ``agents_are_processes = False`` for agents in threads). A small search
    with two of its agents must finish, on both, and ``stop`` must end them."""

    agents_are_processes = True

    def test_is_a_launcher(self, launcher):
        assert isinstance(launcher, Launcher)

    def test_its_agents_join_work_and_leave(self, launcher, tmp_path):
        from contexts import HyperparameterSearch, Searchspace
        from kernel import lagom

        import os

        parties = 2 if self.agents_are_processes else 1
        space = Searchspace(n=("DISCRETE", list(range(6))), barrier=("CATEGORICAL", [str(tmp_path / "barrier")]),
                            parties=("DISCRETE", [parties]))
        result = lagom(_pid_of_agent, HyperparameterSearch(space, "gridsearch", metric="score", workers=2,
                                                           launcher=launcher),
                       path=tmp_path / "runs", verbose=0)
        assert result.count("finished") == 6 and result.agents == 2
        if self.agents_are_processes:  # two processes of their own, both of which worked
            pids = {t.result["pid"] for t in result.trials}
            assert len(pids) == 2 and os.getpid() not in pids and len({t.agent for t in result.trials}) == 2
