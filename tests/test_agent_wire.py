"""The agent's two wire-side pieces: one router for every kernel->agent message, whatever the
agent is doing, and an outbox that owns the socket's lock and the coalescing rule."""
import time

from kernel.agent.outbox import COALESCE_S, Outbox
from kernel.agent.router import AGENT, ROUTES, Router
from transports.codec import KERNEL_TO_AGENT, kernel_codec, token_key


def test_every_message_a_kernel_can_send_has_a_route():
    assert set(ROUTES) == set(KERNEL_TO_AGENT) - {"batch"}


def test_agent_messages_reach_the_agent_in_every_state_and_a_run_may_take_them_first():
    seen = []
    router = Router({"trial": lambda m: seen.append(("agent", m["trial"])),
                     "shutdown": lambda m: seen.append(("agent", "shutdown"))}, log=seen.append)
    router.route({"type": "trial", "trial": 1})  # idle
    run = {"shutdown": lambda m: seen.append(("run", "shutdown")), "stop": lambda m: "stopped"}
    assert router.route({"type": "batch", "items": [{"type": "trial", "trial": 2}, {"type": "stop", "trial": 2}]},
                        run) == "stopped"  # a batch item by item, the run's answer returned
    router.route({"type": "shutdown", "reason": "over"}, run)
    assert seen == [("agent", 1), ("agent", 2), ("run", "shutdown")]
    assert all(where == AGENT for kind, where in ROUTES.items() if kind in ("trial", "skip", "rejoin", "welcome"))


def test_a_late_stop_is_dropped_quietly_and_an_unknown_type_is_counted_and_said_once():
    said = []
    router = Router({}, log=said.append)
    assert router.route({"type": "stop", "trial": 9}) is None  # the trial ended: nothing to stop
    assert not said and not router.unknown
    for _ in range(3):
        router.route({"type": "teleport", "trial": 1})
    assert router.unknown == {"teleport": 3}
    assert len(said) == 1 and "teleport" in said[0] and "same lagom-kernel version" in said[0]


class Conn:
    def __init__(self):
        self.sent = []

    def send(self, frames):
        self.sent.append(frames)


def outbox():
    box = Outbox(lambda items: [repr(items).encode()])
    box.conn = Conn()
    return box


def test_a_burst_of_broadcasts_travels_as_one_message_before_the_final():
    box = outbox()
    with box.lock:
        box.running(5)
    box.point(0, 1.0)  # the first after a quiet spell goes at once
    box.point(1, 2.0)
    box.point(2, 3.0)  # within COALESCE_S: they wait
    assert len(box.conn.sent) == 1
    with box.lock:
        box.post("log", {"trial": 5, "lines": ["x"]})
        box.flush()
    assert len(box.conn.sent) == 2
    items = eval(box.conn.sent[1][0])
    assert items == [["metric", {"trial": 5, "points": [[1, 2.0], [2, 3.0]]}], ["log", {"trial": 5, "lines": ["x"]}]]


def test_the_final_takes_unsent_points_and_a_stale_burst_is_sent_by_the_heartbeat_thread():
    box = outbox()
    with box.lock:
        box.running(1)
    box.point(0, 1.0)
    box.point(1, 2.0)
    with box.lock:
        final = {"trial": 1}
        box.final(final)
    assert final["points"] == [[1, 2.0]]  # the broadcast not sent yet travels in the final
    assert box.finals == 1 and len(box.conn.sent) == 1
    box.after_trial(queued=3)  # more trials follow at once, and the final has not waited: it waits
    assert len(box.conn.sent) == 1
    deadline = time.monotonic() + 1
    while box.unsent_since is not None and time.monotonic() < deadline:
        box.flush_stale()  # as the heartbeat thread does each tick
    assert len(box.conn.sent) == 2 and box.finals == 0
    assert time.monotonic() - box.last_sent < 1 and COALESCE_S < 1


def test_a_rejoin_during_a_childs_run_ends_that_run_and_says_hello():
    """Given up on (a partition), the agent's child run is stale: its process ends, the queue
    is dropped, the agent says hello again, and the run's relay stops (KernelAway)."""
    import subprocess
    import sys

    import pytest

    from kernel.agent import Agent
    from kernel.agent.child import ChildRun
    from kernel.reporter import KernelAway

    agent = Agent("inproc://wire-test", "wire-test-token-0123456789", agent_id="w", on_log=lambda line: None)
    agent.conn = agent.outbox.conn = Conn()
    agent.queue.append({"type": "trial", "trial": 8})
    run = ChildRun(agent, {"trial": 7, "run": {"process_id": 0}, "params": {}, "budget": None, "checkpoint": None,
                           "parent_checkpoint": None, "extra": None, "metric": "m", "traced": None})
    run.proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    agent.current = 7
    try:
        with pytest.raises(KernelAway):
            agent.router.route({"type": "rejoin"}, run._run)
        assert run.proc.wait(timeout=10) != 0  # killed, not left running for a kernel that moved on
    finally:
        run.proc.kill()
    assert not agent.queue and len(agent.conn.sent) == 1
    said = kernel_codec(token_key("wire-test-token-0123456789")).decode(agent.conn.sent[0])
    items = said["items"] if said["type"] == "batch" else [said]
    assert [m["type"] for m in items] == ["hello"] and items[0]["agent"] == "w"
