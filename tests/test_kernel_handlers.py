"""The kernel's handlers one message at a time: scripted frames in, captured frames out.

A fake listener stands where the transport would (the real codec signs and checks every frame),
so each test drives the kernel exactly as agents would and reads back what it sent.
"""
import asyncio
import gc
import hmac
import time

import msgpack
import pytest

from contexts import HyperparameterSearch, Searchspace
from kernel.controller import DONE, Controller, ExperimentError, TrialSpec
from kernel.deadlines import Deadlines
from kernel.driver import Kernel
from kernel.memory import YOUNG_GC
from kernel.journal import ExperimentFolder, read_journal
from kernel.ahead import LEASE_WINDOW
from plugins.optimizers import RandomSearch
from transports import parse
from transports.codec import PROTOCOL, agent_codec, final_fields, kernel_codec, token_key

KEY = token_key("handler-tests-token-0123456789")
TO_KERNEL = agent_codec(KEY)   # what fake agents encode with (the kernel decodes it)
FROM_KERNEL = agent_codec(KEY)  # decodes what the kernel sent


class FakeListener:
    """A Listener whose peers are the test: frames are pushed in, sends are captured."""

    address = parse("inproc://fake-listener")
    url = address.url
    refused = 0

    def __init__(self):
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.sent: list[tuple[bytes, dict]] = []
        self.unreachable: set[bytes] = set()
        self.batches: list[tuple[bytes, list[str]]] = []
        self._changed = asyncio.Event()
        self._handing = 0  # messages of the batch the kernel is handling

    async def recv_batch(self, limit=1024):
        for _ in range(self._handing):  # the kernel is back for more: the last batch is handled
            self.inbox.task_done()
        batch = [await self.inbox.get()]
        while not self.inbox.empty() and len(batch) < limit:
            batch.append(self.inbox.get_nowait())
        self._handing = len(batch)
        return batch

    async def settled(self, timeout=5.0):
        """Every message pushed so far has been handled."""
        await asyncio.wait_for(self.inbox.join(), timeout)

    def send(self, peer, frames):
        if peer in self.unreachable:
            return False
        msg = FROM_KERNEL.decode(frames)
        if msg["type"] == "batch":  # kept whole, and each message in it as if sent alone
            self.batches.append((peer, [m["type"] for m in msg["items"]]))
            self.sent.extend((peer, dict(m, v=PROTOCOL)) for m in msg["items"])
        else:
            self.sent.append((peer, msg))
        self._changed.set()
        return True

    def close(self):
        pass

    async def next(self, peer, kind, timeout=5.0):
        """The first message of ``kind`` sent to ``peer`` that the test has not taken yet."""
        async def find():
            while True:
                for i, (p, msg) in enumerate(self.sent):
                    if p == peer and msg["type"] == kind:
                        del self.sent[i]
                        return msg
                self._changed.clear()
                await self._changed.wait()
        return await asyncio.wait_for(find(), timeout)

    def kinds(self, peer):
        return [m["type"] for p, m in self.sent if p == peer]


class FakeAgent:
    def __init__(self, listener, name, port=1234):
        self.listener, self.peer, self.name, self.port = listener, name.encode(), name, port

    def push(self, kind, **fields):
        self.listener.inbox.put_nowait((self.peer, TO_KERNEL.encode(kind, **fields)))

    def hello(self):
        self.push("hello", agent=self.name, host="test-host", pid=1, devices=["cpu:1"], protocol=2,
                  address="10.0.0.7", port=self.port)

    async def join(self):
        self.hello()
        await self.listener.next(self.peer, "welcome")
        self.push("ready", ok=True, error=None)

    def final(self, trial, outcome="ok", result=None, rank=0, error=None, value=None, duration=1.0):
        self.push("final", **self.final_of(trial, outcome, result, rank, error, value, duration))

    @staticmethod
    def final_of(trial, outcome="ok", result=None, rank=0, error=None, value=None, duration=1.0):
        return final_fields(trial, rank=rank, outcome=outcome, result=result, error=error,
                            started=100.0, duration=duration, value=value)

    def batch(self, *finals):
        """Several finals in one message, as an agent that ran trials back to back sends them."""
        self.push("batch", items=[["final", f] for f in finals])


class Scripted(Controller):
    """Runs the given specs in order; stops a trial whose broadcast reaches ``stop_at``."""

    def __init__(self, specs, stop_at=None, judges=False):
        self.specs, self.stop_at, self.judges_metrics = list(specs), stop_at, judges
        self.metric, self.ended = "score", []

    def next_trial(self, trial_id):
        return self.specs.pop(0) if self.specs else DONE

    def on_metric(self, trial, step, value):
        return self.stop_at is not None and value >= self.stop_at

    def score(self, result):
        if "score" not in result:
            raise ExperimentError("no score")
        return float(result["score"])

    def on_end(self, trial):
        self.ended.append((trial.id, trial.state))


@pytest.fixture
def make(tmp_path):
    made = []

    def build(controller, **kw):
        listener = FakeListener()
        kernel = Kernel(experiment="handlers", context_name="Test", function=b"fn", controller=controller,
                        listener=listener, codec=kernel_codec(KEY), folder=ExperimentFolder(tmp_path / "exp"),
                        heartbeat=30.0, agent_timeout=None, **kw)
        task = asyncio.ensure_future(kernel.run())
        made.append(task)
        return kernel, listener, task

    yield build
    for task in made:
        task.cancel()


def events(kernel):
    kernel.folder._journal.flush()
    return [e["event"] for e in read_journal(kernel.folder.path)[0]]


async def test_hello_gets_the_welcome_and_ready_gets_a_trial(make):
    kernel, listener, _ = make(Scripted([TrialSpec({"x": 1})]))
    a = FakeAgent(listener, "a")
    a.hello()
    welcome = await listener.next(a.peer, "welcome")
    assert welcome["function"] == b"fn" and welcome["heartbeat"] == 30.0
    a.push("ready", ok=True, error=None)
    trial = await listener.next(a.peer, "trial")
    assert trial["trial"] == 0 and trial["params"] == {"x": 1} and trial["verdicts"] is False
    assert kernel.trials[0].state == "running" and kernel.book.counts["running"] == 1
    assert events(kernel)[-2:] == ["agent", "start"]


async def test_a_final_ends_the_trial_scores_it_and_the_experiment_ends_when_done(make):
    controller = Scripted([TrialSpec({"x": 1}), TrialSpec({"x": 2})])
    kernel, listener, task = make(controller)
    a = FakeAgent(listener, "a")
    await a.join()
    await listener.next(a.peer, "trial")
    a.final(0, result={"score": 0.5})
    second = await listener.next(a.peer, "trial")  # pushed at once, on the same agent
    assert second["trial"] == 1 and kernel.trials[0].state == "finished" and kernel.trials[0].metric == 0.5
    a.final(1, result={"score": 0.9})
    result = await asyncio.wait_for(task, 5)
    assert [t.state for t in result.trials] == ["finished", "finished"] and result.best.id == 1
    assert controller.ended == [(0, "finished"), (1, "finished")] and kernel.book.counts["running"] == 0


async def test_metrics_append_history_and_a_rule_pushes_a_stop(make):
    kernel, listener, task = make(Scripted([TrialSpec({"x": 1})], stop_at=2.0))
    a = FakeAgent(listener, "a")
    await a.join()
    await listener.next(a.peer, "trial")
    a.push("metric", trial=0, points=[[0, 1.0], [1, 2.5]])
    stop = await listener.next(a.peer, "stop")
    assert stop["trial"] == 0 and kernel.trials[0].history == [(0, 1.0), (1, 2.5)]
    assert kernel.trials[0].stop_requested is not None
    a.final(0, outcome="stopped", value=2.5)
    result = await asyncio.wait_for(task, 5)
    assert result.trials[0].state == "stopped" and result.trials[0].metric == 2.5


async def test_a_judged_trial_gets_a_verdict_for_every_broadcast(make):
    kernel, listener, task = make(Scripted([TrialSpec({"x": 1})], stop_at=3.0, judges=True))
    a = FakeAgent(listener, "a")
    await a.join()
    assert (await listener.next(a.peer, "trial"))["verdicts"] is True
    a.push("metric", trial=0, points=[[0, 1.0]])
    assert (await listener.next(a.peer, "verdict")) == {"v": PROTOCOL, "type": "verdict", "trial": 0, "stop": False}
    a.push("metric", trial=0, points=[[1, 3.0]])
    assert (await listener.next(a.peer, "verdict"))["stop"] is True
    assert "stop" not in listener.kinds(a.peer)  # the verdict said it; no second message
    a.final(0, outcome="stopped", value=3.0)
    assert (await asyncio.wait_for(task, 5)).trials[0].state == "stopped"


class Listening(RandomSearch):
    """Random search that keeps every intermediate result it is told of."""

    def __init__(self):
        super().__init__()
        self.reports = []

    def report(self, trial_id, step, value):
        self.reports.append((trial_id, step, value))


@pytest.mark.parametrize("listens", [True, False])
async def test_broadcasts_reach_an_optimizer_that_listens_and_are_kept_when_none_does(make, listens):
    """Without a rule the kernel asks the controller about each broadcast only when the optimizer
    hears intermediate results; either way every broadcast is in the trial's history."""
    optimizer = Listening() if listens else RandomSearch()
    controller = HyperparameterSearch(Searchspace(x=("DOUBLE", [0.0, 1.0])), optimizer, num_trials=1,
                                      metric="score").controller()
    assert controller.hears_metrics is listens and not controller.judges_metrics
    kernel, listener, task = make(controller)
    a = FakeAgent(listener, "a")
    await a.join()
    await listener.next(a.peer, "trial")
    a.push("metric", trial=0, points=[[0, 1.0], [1, 2.5], [2, None, {"acc": 0.5}]])
    a.push("final", **dict(a.final_of(0, result={"score": 2.5}), points=[[3, 4.0]]))  # its last, in the final
    result = await asyncio.wait_for(task, 5)
    assert result.trials[0].history == [(0, 1.0), (1, 2.5), (3, 4.0)] and result.trials[0].series == {"acc": [(2, 0.5)]}
    assert (optimizer.reports == [(0, 0, 1.0), (0, 1, 2.5), (0, 3, 4.0)]) if listens else not hasattr(optimizer, "reports")


async def test_the_young_generation_is_collected_less_often_while_serving_and_restored_after(make):
    before = gc.get_threshold()
    kernel, listener, task = make(Scripted([TrialSpec({"x": 1})]))
    a = FakeAgent(listener, "a")
    await a.join()
    await listener.next(a.peer, "trial")
    assert gc.get_threshold()[0] == max(YOUNG_GC, before[0])
    a.final(0, result={"score": 1.0})
    await asyncio.wait_for(task, 5)
    assert gc.get_threshold() == before


async def test_an_agent_of_another_version_is_told_why_once(make):
    """Signed with the experiment's token but of another protocol (another lagom-kernel on that
    host): counted, and told once, in a shutdown that names both versions and the fix."""
    kernel, listener, task = make(Scripted([TrialSpec({"x": 1})]))
    old = FakeAgent(listener, "old")
    payload = msgpack.packb({"v": PROTOCOL - 1, "type": "hello", "agent": "old", "host": "h", "pid": 1,
                             "devices": [], "protocol": PROTOCOL - 1, "address": "10.0.0.8", "port": 1})
    for _ in range(2):
        listener.inbox.put_nowait((old.peer, [hmac.digest(KEY, payload, "sha256"), payload]))
    told = await listener.next(old.peer, "shutdown")
    assert f"version {PROTOCOL - 1}" in told["reason"] and f"protocol {PROTOCOL}" in told["reason"]
    assert "same lagom-kernel version" in told["reason"]
    a = FakeAgent(listener, "a")
    await a.join()  # an agent of this version is served as ever
    await listener.next(a.peer, "trial")
    a.final(0, result={"score": 1.0})
    result = await asyncio.wait_for(task, 5)
    assert result.rejected["protocol"] == 2 and listener.kinds(old.peer) == []  # told once, never welcomed


async def test_stale_and_unknown_messages_are_counted_and_change_nothing(make):
    kernel, listener, task = make(Scripted([TrialSpec({"x": 1})]))
    a, b, stranger = FakeAgent(listener, "a"), FakeAgent(listener, "b"), FakeAgent(listener, "stranger")
    await a.join()
    await b.join()
    await listener.next(a.peer, "trial")
    b.final(0, result={"score": 1.0})  # b never ran trial 0
    b.push("metric", trial=0, points=[[0, 9.0]])
    a.final(7, result={"score": 1.0})  # a runs trial 0, not 7
    stranger.push("heartbeat")  # no hello first
    assert (await listener.next(b.peer, "verdict"))["stop"] is True  # a stale trial is told to stop
    a.final(0, result={"score": 0.25})
    result = await asyncio.wait_for(task, 5)
    assert result.rejected == {"stale": 3, "unknown-peer": 1}
    assert result.trials[0].history == [] and result.trials[0].metric == 0.25


async def test_an_interrupted_trial_runs_again_elsewhere_then_is_lost(make):
    kernel, listener, task = make(Scripted([TrialSpec({"x": 1})]))
    a, b = FakeAgent(listener, "a"), FakeAgent(listener, "b")
    await a.join()
    await listener.next(a.peer, "trial")
    await b.join()
    a.hello()  # a restarted mid-trial: the trial runs again, on the agent that is free
    again = await listener.next(b.peer, "trial")
    assert again["trial"] == 0 and kernel.trials[0].attempts == 2
    b.push("bye", reason="host going down")  # the second attempt is cut short too: lost
    result = await asyncio.wait_for(task, 5)
    assert result.trials[0].state == "lost" and "host going down" in result.trials[0].error
    assert events(kernel).count("requeue") == 1


async def test_an_unreachable_agent_is_gone_and_its_trial_is_requeued(make):
    kernel, listener, task = make(Scripted([TrialSpec({"x": 1})]))
    a, b = FakeAgent(listener, "a"), FakeAgent(listener, "b")
    await b.join()
    await listener.next(b.peer, "trial")  # b takes trial 0 ...
    b.push("bye", reason="leaving")  # ... and leaves; nobody is free, so it waits in the retry queue
    listener.unreachable.add(b.peer)
    await a.join()
    assert (await listener.next(a.peer, "trial"))["trial"] == 0
    a.final(0, result={"score": 1.0})
    result = await asyncio.wait_for(task, 5)
    assert result.trials[0].state == "finished" and result.trials[0].attempts == 2


async def test_optimizer_info_never_steers_the_kernel(make):
    """trial.info belongs to the optimizer: a key named like kernel state changes nothing."""
    spec = TrialSpec({"x": 1}, info={"stop_sent": 123.0, "ranks": ["x"], "aborting": 1})
    kernel, listener, task = make(Scripted([spec]))
    a = FakeAgent(listener, "a")
    await a.join()
    await listener.next(a.peer, "trial")
    a.final(0, result={"score": 1.0})
    result = await asyncio.wait_for(task, 5)
    assert result.trials[0].state == "finished" and result.trials[0].info == spec.info


async def test_a_distributed_trial_gathers_ranks_and_one_failure_aborts_the_rest(make):
    kernel, listener, task = make(Scripted([TrialSpec({}, gang=2, run={"strategy": "multihost"})]))
    a, b = FakeAgent(listener, "a", port=4000), FakeAgent(listener, "b", port=5000)
    await a.join()
    await asyncio.sleep(0)
    assert "trial" not in listener.kinds(a.peer) and kernel.agents.get(a.peer).state == "reserved"
    await b.join()
    ta, tb = await listener.next(a.peer, "trial"), await listener.next(b.peer, "trial")
    assert (ta["run"]["process_id"], tb["run"]["process_id"]) == (0, 1)
    assert ta["run"]["coordinator"] == tb["run"]["coordinator"] == "10.0.0.7:4000"  # rank 0 hosts it
    b.final(0, outcome="error", rank=1, error="RuntimeError: boom")
    abort = await listener.next(a.peer, "abort")
    assert "rank 1 failed" in abort["reason"]
    a.final(0, outcome="error", rank=0, error="aborted")
    result = await asyncio.wait_for(task, 5)
    assert result.trials[0].state == "failed" and result.trials[0].error == "rank 1: RuntimeError: boom"
    assert result.trials[0].ranks == ["a", "b"]


async def test_a_distributed_result_that_cannot_be_scored_ends_the_experiment(make):
    kernel, listener, task = make(Scripted([TrialSpec({}, gang=2, run={"strategy": "multihost"})]))
    a, b = FakeAgent(listener, "a"), FakeAgent(listener, "b")
    await a.join()
    await b.join()
    await listener.next(a.peer, "trial")
    a.final(0, result={"loss": 1.0}, rank=0)
    b.final(0, result={"loss": 1.0}, rank=1)
    with pytest.raises(ExperimentError, match="no score"):
        await asyncio.wait_for(task, 5)
    assert kernel.trials[0].state == "failed"


async def test_time_up_stops_what_runs_and_starts_nothing_more(make):
    kernel, listener, task = make(Scripted([TrialSpec({"x": 1}), TrialSpec({"x": 2})]),
                                  deadlines=Deadlines(max_time=0.01, stop_grace=None))
    a = FakeAgent(listener, "a")
    await a.join()
    await listener.next(a.peer, "trial")
    await listener.next(a.peer, "stop")  # the budget's timer fired
    a.final(0, outcome="stopped", value=1.0)
    result = await asyncio.wait_for(task, 5)
    assert len(result.trials) == 1 and result.trials[0].state == "stopped"
    assert "time-up" in events(kernel)


async def test_a_stop_the_function_never_saw_leaves_a_finished_trial(make):
    """The stop came after its last broadcast: it did all its work, so it is not 'stopped'."""
    kernel, listener, task = make(Scripted([TrialSpec({"x": 1})]),
                                  deadlines=Deadlines(max_time=0.01, stop_grace=None))
    a = FakeAgent(listener, "a")
    await a.join()
    await listener.next(a.peer, "trial")
    await listener.next(a.peer, "stop")
    a.final(0, result={"score": 1.0})  # returned without looking
    (trial,) = (await asyncio.wait_for(task, 5)).trials
    assert trial.state == "finished" and trial.metric == 1.0 and trial.stop_requested is not None


async def test_a_trial_that_ignores_its_stop_is_killed_through_the_beat_socket(make):
    kernel, listener, task = make(Scripted([TrialSpec({"x": 1})], stop_at=0.0),
                                  deadlines=Deadlines(stop_grace=0.01))
    a = FakeAgent(listener, "a")
    await a.join()
    await listener.next(a.peer, "trial")
    a.push("metric", trial=0, points=[[0, 1.0]])
    kill = await listener.next(a.peer + b"#beat", "kill")
    assert kill["trial"] == 0
    await FakeAgent(listener, "a~1").join()  # the agent process restarted in place, as a new agent
    result = await asyncio.wait_for(task, 5)
    assert result.trials[0].state == "stopped" and "ignored its stop" in result.trials[0].error
    assert kernel.agents.get(a.peer).state == "gone"


# -- trials handed out ahead (leases) ----------------------------------------------------------
class Leasing(Scripted):
    lease = True  # proposals that ignore results, as random search's

    def __init__(self, specs, **kw):
        super().__init__(specs, **kw)
        self.total = len(self.specs)

    def describe(self):
        return {"total_trials": self.total}


def specs(n):
    return [TrialSpec({"x": i}) for i in range(n)]


async def test_an_agent_with_short_trials_is_handed_more_ahead_and_each_starts_as_the_last_ends(make):
    kernel, listener, task = make(Leasing(specs(10)))
    a = FakeAgent(listener, "a")
    await a.join()
    assert (await listener.next(a.peer, "trial"))["trial"] == 0
    assert kernel.trials.keys() == {0}  # pace unknown: it counts as slow, nothing ahead
    a.final(0, result={"score": 0.0}, duration=0.001)  # 1 ms trials: 5 ms of them go ahead
    assert [(await listener.next(a.peer, "trial"))["trial"] for _ in range(6)] == [1, 2, 3, 4, 5, 6]
    assert listener.batches == [(a.peer, ["trial"] * 5)]  # the five ahead in one message
    assert kernel.trials[1].state == "running" and {kernel.trials[i].state for i in range(2, 7)} == {"pending"}
    a.batch(*(FakeAgent.final_of(i, result={"score": i}, duration=0.001) for i in (1, 2, 3)))
    assert [(await listener.next(a.peer, "trial"))["trial"] for _ in range(3)] == [7, 8, 9]  # refilled once
    assert listener.batches[-1] == (a.peer, ["trial"] * 3)
    assert kernel.trials[4].state == "running" and kernel.book.counts["running"] == 1
    a.batch(*(FakeAgent.final_of(i, result={"score": i}, duration=0.001) for i in range(4, 10)))
    result = await asyncio.wait_for(task, 5)
    assert [t.state for t in result.trials] == ["finished"] * 10 and {t.attempts for t in result.trials} == {1}
    journal = read_journal(kernel.folder.path)[0]
    assert [e["trial"] for e in journal if e["event"] == "lease"] == list(range(2, 10))
    assert [e["trial"] for e in journal if e["event"] == "start"] == list(range(10))  # each when it started


async def test_agents_whose_trials_are_slow_or_not_yet_timed_hold_nothing_ahead(make):
    """Four agents, four trials: each agent gets one, none waits queued behind another's."""
    kernel, listener, task = make(Leasing(specs(6)))
    agents = [FakeAgent(listener, name) for name in "abcd"]
    for agent in agents:
        await agent.join()
    assert [(await listener.next(agent.peer, "trial"))["trial"] for agent in agents] == [0, 1, 2, 3]
    agents[0].final(0, result={"score": 0.0}, duration=3.0)  # trials of seconds: still one at a time
    assert (await listener.next(agents[0].peer, "trial"))["trial"] == 4
    assert not kernel.agents.get(agents[0].peer).queued
    agents[1].final(1, result={"score": 1.0}, duration=3.0)
    assert (await listener.next(agents[1].peer, "trial"))["trial"] == 5
    for agent, trial in zip(agents, (4, 5, 2, 3)):
        agent.final(trial, result={"score": 1.0}, duration=3.0)
    result = await asyncio.wait_for(task, 5)
    assert result.count("finished") == 6
    # none handed to an agent ahead (a proposal looked past for one of an agent's shape waits for none)
    assert not [e for e in read_journal(kernel.folder.path)[0] if e["event"] == "lease" and e["agent"] is not None]


async def test_every_trial_is_in_the_journal_on_disk_before_it_leaves(make):
    """Write-ahead: at the moment a trial (started, or handed out ahead) is sent, the journal's
    file already names it, so a kernel killed right after the send leaves its record."""
    kernel, listener, task = make(Leasing(specs(12)))
    on_disk = []
    send = listener.send

    def send_and_look(peer, frames):
        msg = FROM_KERNEL.decode(frames)
        items = msg["items"] if msg["type"] == "batch" else [msg]
        journal = (kernel.folder.path / "journal.jsonl").read_text()
        for m in items:
            if m["type"] == "trial":
                on_disk.append(f'"trial":{m["trial"]},' in journal)
        return send(peer, frames)

    listener.send = send_and_look
    a = FakeAgent(listener, "a")
    await a.join()
    assert (await listener.next(a.peer, "trial"))["trial"] == 0
    a.final(0, result={"score": 0.0}, duration=0.001)  # short: the rest go ahead, in batches
    for tid in range(1, 12):
        assert (await listener.next(a.peer, "trial"))["trial"] == tid
        a.final(tid, result={"score": 1.0}, duration=0.001)
    await asyncio.wait_for(task, 5)
    assert len(on_disk) == 12 and all(on_disk)


async def test_a_free_agent_takes_a_trial_of_a_shape_it_compiled_and_the_first_shapes_differ(make):
    """Random search over a width (static: a shape) and a rate (traced): each agent's first
    trial is of a shape no other agent took, and it takes its own shape among the next
    proposals after that; every trial still runs once, and the journal resumes in order."""
    widths = [32, 32, 64, 32, 64, 32, 64, 64]
    kernel, listener, task = make(Leasing([TrialSpec({"w": w, "lr": 0.01 * (i + 1)}) for i, w in enumerate(widths)]))
    agents = [FakeAgent(listener, name) for name in "ab"]
    queues = {agent.peer: [] for agent in agents}
    ran = {agent.name: [] for agent in agents}
    for agent in agents:
        await agent.join()
    while sum(len(r) for r in ran.values()) < len(widths):
        await listener.settled()
        for peer, msg in [sent for sent in listener.sent if sent[1]["type"] == "trial"]:
            queues[peer].append(msg["trial"])
        listener.sent = [sent for sent in listener.sent if sent[1]["type"] != "trial"]
        turn = sum(len(r) for r in ran.values())  # the agents take turns to end a trial
        agent = next(a for a in agents[turn % 2:] + agents[:turn % 2] if queues[a.peer])
        trial = queues[agent.peer].pop(0)
        ran[agent.name].append(trial)
        agent.final(trial, result={"score": 1.0}, duration=3.0)
    result = await asyncio.wait_for(task, 5)
    assert [t.state for t in result.trials] == ["finished"] * 8 and {t.attempts for t in result.trials} == {1}
    assert ran == {"a": [0, 1, 3, 5], "b": [2, 4, 6, 7]}  # a: width 32 alone, b: width 64 alone
    journal = read_journal(kernel.folder.path)[0]
    assert sorted(e["trial"] for e in journal if e["event"] == "start") == list(range(8))


async def test_a_lost_agent_hands_its_queue_back_and_none_of_it_counts_as_an_attempt(make):
    kernel, listener, task = make(Leasing(specs(8)))
    a, b = FakeAgent(listener, "a"), FakeAgent(listener, "b")
    await a.join()
    await listener.next(a.peer, "trial")
    a.final(0, result={"score": 0.0}, duration=0.001)
    ahead = [(await listener.next(a.peer, "trial"))["trial"] for _ in range(6)]
    assert ahead == [1, 2, 3, 4, 5, 6]
    await b.join()
    assert (await listener.next(b.peer, "trial"))["trial"] == 7
    a.push("bye", reason="leaving")  # running 1, holding 2-6
    b.final(7, result={"score": 7}, duration=0.001)
    again = []
    for _ in range(6):  # one at a time: had a died, any of them might have been the death of it
        again.append((await listener.next(b.peer, "trial"))["trial"])
        assert not kernel.agents.get(b.peer).queued
        b.final(again[-1], result={"score": again[-1]}, duration=0.001)
    assert sorted(again) == [1, 2, 3, 4, 5, 6]
    result = await asyncio.wait_for(task, 5)
    assert result.count("finished") == 8 and all(t.agent == "b" for t in result.trials[1:])
    assert result.trials[1].attempts == 2 and result.trials[1].interruptions  # it had started on a
    assert all(t.attempts == 1 and not t.interruptions for t in result.trials[2:])  # these had not


async def test_when_the_time_is_up_trials_held_ahead_are_taken_back_and_left_out_of_the_result(make):
    kernel, listener, task = make(Leasing(specs(10)))
    a = FakeAgent(listener, "a")
    await a.join()
    await listener.next(a.peer, "trial")
    a.final(0, result={"score": 0.0}, duration=0.001)
    assert [(await listener.next(a.peer, "trial"))["trial"] for _ in range(6)] == [1, 2, 3, 4, 5, 6]
    kernel.handlers.time_up()
    assert (await listener.next(a.peer, "stop"))["trial"] == 1
    assert [(await listener.next(a.peer, "skip"))["trial"] for _ in range(5)] == [2, 3, 4, 5, 6]
    # Trial 2 had started before the skip arrived (it is stopped once the kernel learns of it);
    # the agent dropped 3-6 unstarted.
    a.batch(FakeAgent.final_of(1, outcome="stopped", value=0.5, duration=0.001),
            *(FakeAgent.final_of(i, outcome="skipped") for i in (3, 4, 5, 6)))
    assert (await listener.next(a.peer, "stop"))["trial"] == 2
    a.final(2, result={"score": 2.0}, duration=0.001)
    result = await asyncio.wait_for(task, 5)
    assert [(t.id, t.state) for t in result.trials] == [(0, "finished"), (1, "stopped"), (2, "finished")]
    journal = read_journal(kernel.folder.path)[0]
    assert [e["trial"] for e in journal if e["event"] == "withdrawn"] == [3, 4, 5, 6]
    assert kernel.book.counts["running"] == 0 and not kernel.scheduler.retry


async def test_an_agent_with_long_trials_holds_one_ahead_while_more_remain_than_agents(make):
    kernel, listener, task = make(Leasing(specs(7)))
    a, b = FakeAgent(listener, "a"), FakeAgent(listener, "b")
    await a.join()
    await b.join()
    assert (await listener.next(a.peer, "trial"))["trial"] == 0 and (await listener.next(b.peer, "trial"))["trial"] == 1
    a.final(0, result={"score": 0.0}, duration=2.0)  # 5 remain for 2 agents: one goes ahead
    assert [(await listener.next(a.peer, "trial"))["trial"] for _ in range(2)] == [2, 3]
    assert [at.trial.id for at in kernel.agents.get(a.peer).queued] == [3]
    a.final(2, result={"score": 2.0}, duration=2.0)  # 3 starts; 3 remain for 2 agents: one more
    assert (await listener.next(a.peer, "trial"))["trial"] == 4
    b.final(1, result={"score": 1.0}, duration=2.0)  # 2 remain, 2 agents: none ahead from now on
    assert (await listener.next(b.peer, "trial"))["trial"] == 5
    await listener.settled()
    assert not kernel.agents.get(b.peer).queued
    a.final(3, result={"score": 3.0}, duration=2.0)
    a.final(4, result={"score": 4.0}, duration=2.0)
    assert (await listener.next(a.peer, "trial"))["trial"] == 6
    b.final(5, result={"score": 5.0}, duration=2.0)
    a.final(6, result={"score": 6.0}, duration=2.0)
    result = await asyncio.wait_for(task, 5)
    assert result.count("finished") == 7 and {t.attempts for t in result.trials} == {1}


async def test_an_agent_left_idle_takes_back_a_trial_waiting_behind_one_that_runs_long(make):
    kernel, listener, task = make(Leasing(specs(8)))
    a, b = FakeAgent(listener, "a"), FakeAgent(listener, "b")
    await a.join()
    await listener.next(a.peer, "trial")
    a.final(0, result={"score": 0.0}, duration=0.001)  # short trials: 1 runs, 2-6 wait behind it
    assert [(await listener.next(a.peer, "trial"))["trial"] for _ in range(6)] == [1, 2, 3, 4, 5, 6]
    await b.join()
    assert (await listener.next(b.peer, "trial"))["trial"] == 7
    b.final(7, result={"score": 7.0}, duration=0.001)  # b is idle; trial 1 runs, as the kernel learnt at 0
    assert (await listener.next(a.peer, "skip"))["trial"] == 6  # once it ran as long as a queue lasts
    assert time.monotonic() - kernel.agents.get(a.peer).attempt.since >= LEASE_WINDOW
    a.push("final", **FakeAgent.final_of(6, outcome="skipped"))
    assert (await listener.next(b.peer, "trial"))["trial"] == 6
    b.final(6, result={"score": 6.0}, duration=0.001)  # and so on, one at a time, while 1 runs on
    assert (await listener.next(a.peer, "skip"))["trial"] == 5
    a.push("final", **FakeAgent.final_of(5, outcome="skipped"))
    assert (await listener.next(b.peer, "trial"))["trial"] == 5
    b.final(5, result={"score": 5.0}, duration=0.001)
    a.batch(*(FakeAgent.final_of(i, result={"score": i}, duration=0.001) for i in (1, 2, 3, 4)))
    result = await asyncio.wait_for(task, 5)
    assert [(t.agent, t.attempts) for t in result.trials] == [("a", 1)] * 5 + [("b", 1)] * 3
