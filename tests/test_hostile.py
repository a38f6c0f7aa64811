"""A raw ZeroMQ peer floods the kernel with malformed messages during a real experiment."""
import hmac
import os
import random
import subprocess
import sys
import threading

import msgpack
import pytest
import zmq
import zmq.utils.monitor

import fns
from contexts import HyperparameterSearch, Searchspace
from kernel import Observer, lagom
from transports.codec import PROTOCOL, agent_codec, kernel_codec, token_key


def malformed(rng: random.Random, codec, key: bytes) -> list[bytes]:
    """One bad message: wrong frame counts, noise, unsigned or mis-signed msgpack, or signed
    messages with wrong types, fields, versions or values."""
    kind = rng.randrange(8)
    if kind == 0:  # wrong number of frames
        return [os.urandom(rng.randrange(0, 64)) for _ in range(rng.choice([1, 3, 4, 5]))]
    if kind == 1:  # noise in the right shape
        return [os.urandom(32), os.urandom(rng.randrange(0, 512))]
    if kind == 2:  # valid msgpack, no signature
        return [b"\0" * 32, msgpack.packb({"v": PROTOCOL, "type": "final", "trial": 0})]
    payload = msgpack.packb(rng.choice([
        {"v": PROTOCOL, "type": "metric", "trial": "zero", "points": [[0, 1.0]]},             # wrong type
        {"v": PROTOCOL, "type": "final", "trial": 0},                                   # missing fields
        {"v": PROTOCOL + 1, "type": "heartbeat"},                                       # wrong version
        {"v": PROTOCOL, "type": "welcome", "experiment": "x", "function": b"", "heartbeat": 1,  # wrong direction
         "env": {}, "inject": None},
        {"v": PROTOCOL, "type": "metric", "trial": 0, "points": [[0, "NaN"]]},          # bad values
        [1, 2, 3], "just a string", {"v": PROTOCOL, "type": None},                             # not a message
        {"v": PROTOCOL, "type": "log", "trial": 0, "lines": [b"bytes"]},
        {"v": PROTOCOL, "type": "heartbeat"},                                           # valid, unknown peer
    ]))
    if kind == 3:  # a signature for other bytes
        return [hmac.digest(key, payload + b"x", "sha256"), payload]
    return [hmac.digest(key, payload, "sha256"), payload]


TOKEN = "flood-test-token-0123456789abcdef"


class Flood(Observer):
    def __init__(self, n, marker):
        self.n, self.sent, self.marker = n, 0, marker

    def experiment_started(self, view):
        key = token_key(TOKEN)  # the attacker knows the token: signatures alone keep nothing out
        url, codec = view.url, agent_codec(key)

        def run():
            ctx = zmq.Context.instance()
            rng = random.Random(0)
            socks = []
            for i in range(self.n):
                if i % 500 == 0:  # many peers, as an attacker would use
                    s = ctx.socket(zmq.DEALER)
                    s.setsockopt(zmq.LINGER, 1000)
                    s.setsockopt(zmq.SNDHWM, 0)
                    s.connect(url)
                    socks.append(s)
                socks[-1].send_multipart(malformed(rng, codec, key))
                self.sent += 1
            big = ctx.socket(zmq.DEALER)  # over the size limit: ZeroMQ drops the connection itself
            big.setsockopt(zmq.LINGER, 1000)
            big.connect(url)
            big.send_multipart([b"\0" * 32, b"\0" * (65 * 1024 * 1024)])
            self.done_sockets = socks + [big]
            open(self.marker, "w").close()  # the trials may end now

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()


@pytest.mark.slow
def test_ten_thousand_malformed_messages_during_an_experiment(runs):
    marker = str(runs.parent / "flood-sent")
    flood = Flood(10_000, marker)
    space = Searchspace(x=("DOUBLE", [0.0, 1.0]), sleep=("DISCRETE", [0.05]), marker=("CATEGORICAL", [marker]))
    result = lagom(fns.after_marker, HyperparameterSearch(space, num_trials=30, metric="score", workers=2, seed=1),
                   listen="tcp://127.0.0.1:0", path=runs, verbose=0, observers=[flood], token=TOKEN,
                   insecure=True)  # the raw peers speak plain ZeroMQ: this tests the codec layer
    flood.thread.join(30)
    for s in getattr(flood, "done_sockets", []):
        s.close()
    assert flood.sent == 10_000
    assert result.count("finished") == 30 and len(result.trials) == 30  # the experiment was not disturbed
    assert sum(result.rejected.values()) == 10_000  # every one counted, none reached a handler
    assert {"frame-count", "signature", "fields", "field-type", "protocol", "type", "unknown-peer",
            "not-a-map"} <= set(result.rejected)
    assert "rejected messages: 10000" in str(result)


def test_plain_zeromq_peers_get_nothing_through_curve(runs):
    """By default tcp:// is CurveZMQ: a peer without the key pair never completes a handshake, so
    not even a malformed message reaches the kernel, and it receives nothing."""
    got = {}

    class Probe(Observer):
        def experiment_started(self, view):
            ctx = zmq.Context.instance()
            s = ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            s.connect(view.url)
            for _ in range(50):
                s.send_multipart([b"\0" * 32, b"garbage"])
            got["reply"] = s.poll(1000)
            s.close()

    space = Searchspace(x=("DOUBLE", [0.0, 1.0]))
    result = lagom(fns.quadratic, HyperparameterSearch(space, num_trials=4, metric="score", workers=1),
                   listen="tcp://127.0.0.1:0", path=runs, verbose=0, observers=[Probe()])
    assert result.count("finished") == 4 and got["reply"] == 0
    assert sum(v for k, v in result.rejected.items() if k != "curve-handshake") == 0


def test_a_peer_with_the_kernels_key_but_a_wrong_client_key_is_refused_and_counted(runs):
    """The allow-list is enforced on the listening socket's own context: a peer that knows the
    kernel's public key (it is no secret) but holds a key pair not derived from the token fails
    the CurveZMQ handshake; not one frame reaches the kernel, and the refusal is counted."""
    from transports.curve import derive

    token = "curve-admission-test-token-0123456789"
    got = {}

    class Intruder(Observer):
        def experiment_started(self, view):
            server_public = derive(token)[0].public
            public, secret = zmq.curve_keypair()  # a valid key pair, just not the agents'
            monitor_events = []

            def run():
                ctx = zmq.Context.instance()
                s = ctx.socket(zmq.DEALER)
                s.setsockopt(zmq.LINGER, 0)
                s.curve_serverkey, s.curve_publickey, s.curve_secretkey = server_public, public, secret
                mon = s.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH
                                           | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL)
                s.connect(view.url)
                s.send_multipart([b"\0" * 32, b"let me in"])
                if mon.poll(10_000):
                    monitor_events.append(zmq.utils.monitor.recv_monitor_message(mon)["event"])
                got["events"], got["reply"] = monitor_events, s.poll(200)
                s.disable_monitor()
                mon.close()
                s.close()
                open(marker, "w").close()  # the trials may end now

            self.thread = threading.Thread(target=run, daemon=True)
            self.thread.start()

    intruder, marker = Intruder(), str(runs.parent / "intruder-done")
    space = Searchspace(x=("DOUBLE", [0.0, 1.0]), marker=("CATEGORICAL", [marker]))
    result = lagom(fns.after_marker, HyperparameterSearch(space, num_trials=4, metric="score", workers=1),
                   listen="tcp://127.0.0.1:0", token=token, path=runs, verbose=0, observers=[intruder])
    intruder.thread.join(20)
    assert result.count("finished") == 4
    assert got["events"] == [zmq.EVENT_HANDSHAKE_FAILED_AUTH] and got["reply"] == 0
    assert result.rejected.get("curve-handshake", 0) >= 1
    assert sum(v for k, v in result.rejected.items() if k != "curve-handshake") == 0


def test_an_agent_told_by_a_kernel_of_another_version_leaves_saying_so():
    """A real agent process and a kernel of another protocol (its messages signed with the right
    token): the agent leaves at once, naming the mismatch and the fix, instead of waiting."""
    token = "other-version-token-0123456789abcdef"
    key = token_key(token)
    ctx = zmq.Context.instance()
    kernel = ctx.socket(zmq.ROUTER)
    kernel.setsockopt(zmq.LINGER, 0)
    port = kernel.bind_to_random_port("tcp://127.0.0.1")
    env = dict(os.environ, LAGOM_TOKEN=token)
    agent = subprocess.Popen([sys.executable, "-m", "kernel.agent", "--connect", f"tcp://127.0.0.1:{port}",
                              "--insecure", "--wait", "60"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert kernel.poll(30_000), "the agent never said hello"
        peer, *frames = kernel.recv_multipart()
        assert kernel_codec(key).decode(frames)["type"] == "hello"
        payload = msgpack.packb({"v": PROTOCOL + 1, "type": "welcome", "experiment": "x"})
        kernel.send_multipart([peer, hmac.digest(key, payload, "sha256"), payload])
        _, err = agent.communicate(timeout=30)  # it leaves at once: --wait would be a minute
    finally:
        agent.kill()
        kernel.close()
    assert agent.returncode == 1
    assert "speaks another protocol" in err and f"version {PROTOCOL + 1}" in err and "same lagom-kernel version" in err
