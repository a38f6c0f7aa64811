"""The kernel on a real event loop, with agents in threads (same agent code, same sockets)."""
import asyncio
import json
import os
import socket
import threading
import time

import pytest
import zmq

from contexts import HyperparameterSearch, Searchspace, Single, TrialFailed
from kernel import EarlyStop, ExperimentError, lagom, lagom_async
from kernel.agent import Agent
from kernel import Observer
from plugins.earlystop import EarlyStopper
from plugins.optimizers import FINISHED, WAIT, Optimizer, Suggestion
from transports.codec import agent_codec, token_key

SPACE = Searchspace(x=("DOUBLE", [0.0, 1.0]))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def search(**kw):
    kw.setdefault("num_trials", 6)
    kw.setdefault("metric", "score")
    kw.setdefault("workers", 2)
    kw.setdefault("launcher", "thread")
    return HyperparameterSearch(kw.pop("space", SPACE), **kw)


def score_x(hparams, reporter):
    for step in range(3):
        reporter.broadcast(metric=hparams["x"] * step, step=step)
    return {"score": hparams["x"]}


class Grab(Observer):
    def __init__(self, on_start=None):
        self.view = None
        self.on_start = on_start
        self.started = []

    def experiment_started(self, view):
        self.view = view
        if self.on_start:
            self.on_start(view)

    def trial_started(self, view, trial):
        self.started.append(trial.id)


async def test_search_on_thread_agents_accounts_for_every_trial(runs):
    result = await lagom_async(score_x, search(num_trials=10, seed=3), path=runs, verbose=0)
    assert [t.state for t in result.trials] == ["finished"] * 10
    assert result.best.metric == max(t.params["x"] for t in result.trials)
    assert all(len(t.history) == 3 for t in result.trials)
    events = [json.loads(line)["event"] for line in open(result.path / "journal.jsonl")]
    assert events.count("start") == 10 and events.count("end") == 10
    saved = json.loads((result.path / "result.json").read_text())
    assert saved["best"]["trial"] == result.best.id and len(saved["trials"]) == 10


def test_single_runs_here_and_returns_the_result(runs):
    def train(hparams):
        return {"accuracy": 0.5 + hparams["lr"]}

    result = lagom(train, Single(hparams={"lr": 0.25}), path=runs, verbose=0)
    assert result.best.result == {"accuracy": 0.75}
    assert result.trials[0].state == "finished"


def test_single_with_no_context_and_no_hparams(runs, monkeypatch):
    monkeypatch.setenv("LAGOM_RUNS", str(runs))

    def train(hparams, reporter):
        reporter.broadcast(1.0)
        return len(hparams)

    result = lagom(train, verbose=0)
    assert result.trials[0].result == 0 and result.path.parent == runs


def test_single_that_raises_raises_here_with_its_traceback(runs):
    def train():
        raise KeyError("no such column")

    with pytest.raises(TrialFailed) as info:
        lagom(train, path=runs, verbose=0)
    assert "KeyError" in str(info.value) and "no such column" in str(info.value)
    assert "def train" not in str(info.value) and "in train" in str(info.value)
    assert info.value.result.trials[0].state == "failed"


async def test_lagom_works_inside_a_running_event_loop(runs):
    """As in Jupyter: a loop is already running in this thread."""
    asyncio.get_running_loop()
    result = lagom(score_x, search(num_trials=2), path=runs, verbose=0)
    assert result.count("finished") == 2


class OneAtATime(Optimizer):
    """Suggests the next trial only when the previous one has ended: agents must be parked
    with WAIT and woken, without polling, when a result arrives."""

    def __init__(self, n):
        self.n, self.issued, self.running, self.max_running = n, 0, 0, 0

    def suggest(self, trial_id):
        if self.issued >= self.n:
            return FINISHED
        if self.running:
            return WAIT
        self.issued += 1
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        return Suggestion({"x": self.issued / 10})

    def observe(self, obs):
        self.running -= 1


async def test_wait_parks_agents_until_a_result_arrives(runs):
    opt = OneAtATime(5)
    result = await asyncio.wait_for(
        lagom_async(score_x, search(optimizer=opt, num_trials=5, workers=3), path=runs, verbose=0), 30)
    assert result.count("finished") == 5 and opt.max_running == 1


class StopAfter(EarlyStopper):
    def __init__(self, steps):
        self.steps = steps

    def should_stop(self, trial_id, history):
        return history[-1][0] >= self.steps


def broadcast_forever(hparams, reporter):
    import time
    for step in range(100_000):
        time.sleep(0.001)  # a millisecond of "training" per step
        reporter.broadcast(metric=float(step), step=step)
    return {"score": -1.0}


async def test_a_stop_reaches_a_running_trial(runs):
    result = await asyncio.wait_for(lagom_async(
        broadcast_forever, search(num_trials=2, es_policy=StopAfter(5), es_min=0), path=runs, verbose=0), 30)
    for t in result.trials:
        assert t.state == "stopped"
        assert 5 <= t.history[-1][0] < 50  # ended within a bounded number of broadcasts
        assert t.metric == t.history[-1][1]


def checkpoint_then_return(hparams, reporter):
    for step in range(100_000):
        try:
            reporter.broadcast(metric=float(step), step=step)
        except EarlyStop:
            return {"score": float(step), "saved": 1}
    return {"score": -1.0}


async def test_a_function_that_catches_the_stop_is_still_stopped(runs):
    result = await asyncio.wait_for(lagom_async(
        checkpoint_then_return, search(num_trials=1, es_policy=StopAfter(3), es_min=0), path=runs, verbose=0), 30)
    (t,) = result.trials
    assert t.state == "stopped" and t.result["saved"] == 1


async def test_a_missing_metric_ends_the_experiment_with_a_clear_error(runs):
    def train(hparams):
        return {"loss": 1.0, "acc": 0.5}

    with pytest.raises(ExperimentError) as info:
        await lagom_async(train, search(metric="accuracy"), path=runs, verbose=0)
    assert "'accuracy'" in str(info.value) and "acc, loss" in str(info.value)
    saved = json.loads((info.value.path / "result.json").read_text())
    states = [t["state"] for t in saved["trials"]]
    assert "failed" in states and "running" not in states  # the other one was cut short: lost


async def test_an_unknown_argument_fails_before_anything_starts(runs):
    def train(hparams, optimizer_state):
        return 0.0

    with pytest.raises(TypeError, match="optimizer_state.*hparams, reporter"):
        await lagom_async(train, search(), path=runs, verbose=0)
    assert not runs.exists()


async def test_an_unpicklable_function_says_what_to_do(runs):
    lock = threading.Lock()

    def train(hparams):
        with lock:
            return 0.0

    with pytest.raises(TypeError, match="cannot be sent to agents"):
        await lagom_async(train, search(), path=runs, verbose=0)


async def test_returning_a_non_metric_fails_the_trial_not_the_experiment(runs):
    def train(hparams):
        if hparams["x"] < 0.5:
            return [1, 2]
        return {"score": hparams["x"]}

    result = await lagom_async(train, search(num_trials=8, seed=1), path=runs, verbose=0)
    failed = [t for t in result.trials if t.state == "failed"]
    assert failed and all("return a dict of metrics" in t.error for t in failed)
    assert result.count("finished") + len(failed) == 8


async def test_hostile_frames_are_counted_and_never_reach_a_handler(runs):
    """Raw ZeroMQ peers send garbage, and signed but invalid messages, during an experiment."""
    sent = {}

    token = "hostile-frames-test-token-0123456789"
    codec = agent_codec(token_key(token))  # an attacker who knows the token signs for real

    def attack(view):
        url = view.url
        ctx = zmq.Context.instance()
        frames = [
            [b"just one frame"], [b"a", b"b", b"c"], [b"\x00" * 32, b"not msgpack"],
            [os.urandom(32), os.urandom(100)],
            codec.encode("metric", trial=0, points=[[0, 1.0]]),  # signed, but no hello first
            codec.encode("shutdown", reason="x"),  # a kernel-bound type from an agent
        ]
        socks = []
        for i, f in enumerate(frames):
            s = ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            s.connect(url)
            s.send_multipart(f)
            socks.append(s)
        sent["n"] = len(frames)
        sent["socks"] = socks

    slow = Searchspace(x=("DOUBLE", [0.0, 1.0]))
    result = await lagom_async(score_x, search(space=slow, num_trials=20), listen="tcp://127.0.0.1:0",
                               path=runs, verbose=0, observers=[Grab(on_start=attack)], token=token,
                               insecure=True)  # raw peers speak plain ZeroMQ: this tests the codec
    for s in sent["socks"]:
        s.close()
    assert result.count("finished") == 20
    assert sum(result.rejected.values()) == sent["n"]
    assert result.rejected["signature"] == 2 and result.rejected["frame-count"] == 2
    assert result.rejected["unknown-peer"] == 1 and result.rejected["type"] == 1


def sleepy(hparams, reporter):
    import time
    for step in range(10_000):
        time.sleep(0.01)
        reporter.broadcast(metric=hparams["x"], step=step)
    return {"score": hparams["x"]}


async def test_a_time_budget_stops_running_trials_and_starts_no_more(runs):
    # Both agents are connected, their hellos queued, before the kernel (and its clock) starts:
    # each gets a trial before the budget can run out, and none gets a second.
    token, url = "time-budget-test-token-0123456789", f"tcp://127.0.0.1:{free_port()}"
    agents = [Agent(url, token, agent_id=f"early-{i}", echo=False, insecure=True) for i in range(2)]
    threads = [threading.Thread(target=a.run, daemon=True) for a in agents]
    for t in threads:
        t.start()
    t0 = asyncio.get_running_loop().time()
    result = await asyncio.wait_for(lagom_async(
        sleepy, search(num_trials=50, max_time=0.5, workers=0), listen=url, token=token, insecure=True,
        path=runs, verbose=0), 30)
    for t in threads:
        await asyncio.to_thread(t.join, 10)
    assert asyncio.get_running_loop().time() - t0 < 10
    assert len(result.trials) == 2 and result.count("stopped") == 2
    assert result.best is not None and result.best.metric == max(t.params["x"] for t in result.trials)


async def test_the_same_context_twice_is_two_whole_experiments(runs):
    """An optimizer or stopper instance learns; a second lagom() with the context must not
    start from what the first one learned."""
    from plugins.earlystop import MedianStopping
    from plugins.optimizers import RandomSearch

    ctx = search(optimizer=RandomSearch(), es_policy=MedianStopping(), es_min=100, num_trials=4, seed=5)
    first = await lagom_async(score_x, ctx, path=runs, verbose=0)
    second = await lagom_async(score_x, ctx, path=runs, verbose=0)
    assert first.count("finished") == second.count("finished") == 4
    assert [t.params for t in first.trials] == [t.params for t in second.trials]  # the same seed, afresh


CALLS = {"n": 0}


def breaks_on_the_third_call(hparams):
    CALLS["n"] += 1
    return {"wrong": 1.0} if CALLS["n"] == 3 else {"score": hparams["x"]}


async def test_resume_in_the_same_process_with_the_same_context(runs, tmp_path):
    from plugins.optimizers import RandomSearch

    CALLS["n"] = 0
    ctx = search(optimizer=RandomSearch(), num_trials=6, seed=9, workers=1)
    with pytest.raises(ExperimentError) as info:
        await lagom_async(breaks_on_the_third_call, ctx, path=runs, verbose=0)
    result = await lagom_async(breaks_on_the_third_call, ctx, path=runs, resume=info.value.path, verbose=0)
    assert result.path == info.value.path and len(result.trials) == 6
    assert result.count("finished") == 5 and result.count("failed") == 1
    resumed = [json.loads(line) for line in open(result.path / "journal.jsonl") if '"resumed"' in line]
    assert resumed[0]["replay_mismatches"] == 0
    fresh = await lagom_async(score_x, search(optimizer=RandomSearch(), num_trials=6, seed=9, workers=1),
                              path=tmp_path / "fresh", verbose=0)
    assert [t.params for t in result.trials] == [t.params for t in fresh.trials]


def needs_a_budget(hparams, reporter):
    time.sleep(0.01)  # trials of a while go one at a time: the third failure stops the rest
    for epoch in range(hparams["budget"]):  # only ASHA sets a budget
        reporter.broadcast(metric=0.5, step=epoch)
    return {"score": 0.5}


async def test_a_search_whose_trials_all_fail_alike_stops_early_and_says_why(runs):
    with pytest.raises(ExperimentError) as info:
        await lagom_async(needs_a_budget, search(num_trials=20), path=runs, verbose=0)
    message = str(info.value)
    assert "the first 3 trials all failed with KeyError: 'budget'" in message and "fail_fast=None" in message
    assert "in needs_a_budget" in message  # the first failure's traceback comes with it
    saved = json.loads((info.value.path / "result.json").read_text())
    assert 3 <= len(saved["trials"]) < 20 and "no trial finished" in saved["no_best"]


async def test_without_fail_fast_every_trial_runs_and_best_says_why_there_is_none(runs):
    from kernel import NoBestTrial

    result = await lagom_async(needs_a_budget, search(num_trials=6), path=runs, verbose=0, fail_fast=None)
    assert result.count("failed") == 6
    with pytest.raises(NoBestTrial, match="no trial finished .6 of 6 failed.; first failure: trial 0: KeyError"):
        result.best


async def test_a_nan_metric_fails_the_trial_and_never_becomes_the_best(runs):
    def train(hparams, reporter):
        reporter.broadcast(metric=float("nan"), step=0)
        return {"score": float("nan") if hparams["x"] < 0.5 else hparams["x"]}

    result = await lagom_async(train, search(num_trials=12, seed=2), path=runs, verbose=0, fail_fast=None)
    nan = [t for t in result.trials if t.params["x"] < 0.5]
    assert nan and all(t.state == "failed" and "'score' is NaN" in t.error and t.metric is None for t in nan)
    assert result.best.metric == max(t.params["x"] for t in result.trials)


async def test_a_conditional_parameter_reaches_the_function_only_when_it_applies(runs):
    space = Searchspace(opt=("CATEGORICAL", ["sgd", "adam"]))
    space.add("momentum", ("DOUBLE", [0.0, 0.99]), when={"opt": "sgd"})

    def train(hparams):
        assert ("momentum" in hparams) == (hparams["opt"] == "sgd")
        return {"score": hparams.get("momentum", 0.0)}

    result = await lagom_async(train, search(space=space, num_trials=10, seed=4), path=runs, verbose=0)
    assert result.count("finished") == 10 and {t.params["opt"] for t in result.trials} == {"sgd", "adam"}


def burst_then_wait(hparams, reporter):
    """Fifty broadcasts in a tight loop, then computing on (here: waiting until the kernel has
    every one of them, which only the heartbeat thread's flush can bring about)."""
    import os
    import time as _time

    flag = os.path.join(os.path.dirname(reporter.checkpoint_dir), "seen-all")  # makes checkpoints/
    for step in range(50):
        reporter.broadcast(metric=float(step), step=step)
    deadline = _time.monotonic() + 20
    while not os.path.exists(flag) and _time.monotonic() < deadline:
        _time.sleep(0.005)
    return {"score": float(os.path.exists(flag))}


async def test_a_burst_of_broadcasts_travels_in_few_messages_and_none_waits_for_the_final(runs):
    class SeenAll(Observer):
        def trial_metric(self, view, trial, step, value):
            if step == 49:
                (view.path / "checkpoints" / "seen-all").touch()

    messages = []

    def count_metric_messages(view):
        handle = view._kernel._handlers["metric"]

        def counted(agent, peer, msg):
            messages.append(len(msg["points"]))
            handle(agent, peer, msg)
        view._kernel._handlers["metric"] = counted

    result = await asyncio.wait_for(lagom_async(
        burst_then_wait, search(num_trials=1, workers=1), path=runs, verbose=0, observers=[SeenAll()],
        _on_view=count_metric_messages), 30)
    (t,) = result.trials
    assert t.result["score"] == 1.0  # the last points arrived while the function still ran
    assert t.history == [(s, float(s)) for s in range(50)]  # every point, in order
    assert sum(messages) == 50 and len(messages) < 10


def test_long_lived_trials_are_frozen_out_of_the_collector_while_the_experiment_runs(runs, monkeypatch):
    """Every FREEZE_EVERY trial ends the kernel freezes what exists (full collections would scan
    every trial again); at the end the collector gets it all back, and a process that froze
    objects itself is left alone."""
    import gc

    from kernel import memory

    monkeypatch.setattr(memory, "FREEZE_EVERY", 4)
    seen = []

    class Count(Observer):
        def trial_ended(self, view, trial):
            seen.append(gc.get_freeze_count())

    def quick(hparams):
        return {"score": hparams["x"]}

    assert gc.get_freeze_count() == 0
    lagom(quick, search(num_trials=10, workers=1, launcher="thread"), path=runs, verbose=0, observers=[Count()])
    assert seen[0] == 0 and seen[-1] > 0 and gc.get_freeze_count() == 0
    gc.freeze()
    try:
        before = gc.get_freeze_count()
        lagom(quick, search(num_trials=10, workers=1, launcher="thread"), path=runs, verbose=0)
        assert 0 < gc.get_freeze_count() <= before  # neither frozen further nor unfrozen (some were freed)
    finally:
        gc.unfreeze()


def diverges(hparams, reporter):
    reporter.broadcast(metric=float("nan"), step=0)
    return {"score": float("nan")}


def test_diverging_trials_never_stop_the_search_as_a_bug_would(runs):
    """fail_fast is for the same error of the code; NaN results are verdicts on configurations."""
    result = lagom(diverges, search(num_trials=6), path=runs, verbose=0)
    assert result.count("failed") == 6 and all("is NaN" in t.error for t in result.trials)



def test_a_failed_search_raises_its_own_error_without_the_event_loop_in_its_context(runs):
    import traceback

    with pytest.raises(ExperimentError) as info:
        lagom(needs_a_budget, search(num_trials=20), path=runs, verbose=0)
    assert info.value.__context__ is None
    assert "no running event loop" not in "".join(traceback.format_exception(info.value))
