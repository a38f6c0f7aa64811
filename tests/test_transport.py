"""One suite, every scheme: the in-process transport moves the same frames as tcp and ipc."""
import asyncio
import os

import pytest

import transports
from transports import AddressError, parse
from transports.codec import agent_codec, kernel_codec, token_key

SCHEMES = ["tcp://127.0.0.1:0", "ipc", "inproc://transport-test"]


@pytest.fixture(params=SCHEMES, ids=["tcp", "ipc", "inproc"])
def listener(request):
    url = transports.private_ipc_url() if request.param == "ipc" else request.param
    lst = transports.listen(url)
    yield lst
    lst.close()


async def recv_one(lst, timeout=5.0):
    return (await asyncio.wait_for(lst.recv_batch(), timeout))[0]


async def test_frames_round_trip_between_two_peers(listener):
    a = transports.connect(listener.url, identity=b"agent-a")
    b = transports.connect(listener.url, identity=b"agent-b")
    try:
        a.send([b"sig", b"from a"])
        b.send([b"sig", b"from b"])
        got = {}
        while len(got) < 2:
            for peer, frames in await asyncio.wait_for(listener.recv_batch(), 5):
                got[peer] = frames
        assert got == {b"agent-a": [b"sig", b"from a"], b"agent-b": [b"sig", b"from b"]}
        assert listener.send(b"agent-b", [b"x", b"to b"])
        assert await asyncio.to_thread(b.recv, 5) == [b"x", b"to b"]
        assert a.recv_nowait() is None
    finally:
        a.close()
        b.close()


async def test_send_to_an_unknown_peer_reports_failure(listener):
    assert listener.send(b"nobody", [b"a", b"b"]) is False


async def test_a_burst_arrives_in_batches_in_order(listener):
    a = transports.connect(listener.url, identity=b"burst")
    try:
        for i in range(2000):
            a.send([b"s", str(i).encode()])
        seen = []
        while len(seen) < 2000:
            batch = await asyncio.wait_for(listener.recv_batch(limit=256), 5)
            assert 1 <= len(batch) <= 256
            seen += [int(frames[1]) for _, frames in batch]
        assert seen == list(range(2000))
    finally:
        a.close()


async def test_codec_over_the_transport(listener):
    key = token_key("transport-suite-token")
    a = transports.connect(listener.url, identity=b"codec")
    try:
        a.send(agent_codec(key).encode("log", trial=3, lines=["hi"]))
        peer, frames = await recv_one(listener)
        assert kernel_codec(key).decode(frames)["lines"] == ["hi"]
    finally:
        a.close()


async def test_tcp_port_zero_picks_a_free_port():
    lst = transports.listen("tcp://127.0.0.1:0")
    try:
        assert lst.address.port > 0 and lst.url.startswith("tcp://127.0.0.1:")
    finally:
        lst.close()


async def test_ipc_lives_in_a_private_folder_and_is_removed():
    url = transports.private_ipc_url()
    folder = os.path.dirname(parse(url).path)
    assert os.stat(folder).st_mode & 0o777 == 0o700
    lst = transports.listen(url)
    assert os.path.exists(parse(url).path)
    lst.close()
    assert not os.path.exists(parse(url).path)


def test_inproc_needs_a_listener_in_this_process():
    with pytest.raises(ConnectionError, match="no kernel listens"):
        transports.connect("inproc://nothing-here", identity=b"x")


@pytest.mark.parametrize("url, fragment", [
    ("localhost:7777", "not a transport URL"), ("udp://x:1", "unknown transport scheme"),
    ("tcp://host", "no port"), ("tcp://host:99999", "port"), ("ipc://", "names no path"),
])
def test_bad_urls_say_what_a_good_one_looks_like(url, fragment):
    with pytest.raises(AddressError, match=fragment):
        parse(url)


def test_wildcard_binds_become_reachable_addresses():
    a = parse("tcp://0.0.0.0:7777")
    assert a.for_local_agents().url == "tcp://127.0.0.1:7777"
    assert a.for_remote_agents().host not in ("0.0.0.0", "")
    assert not a.is_loopback and parse("tcp://127.0.0.1:1").is_loopback


async def test_a_send_never_leaves_the_receiver_asleep_on_waiting_input(listener):
    """ZeroMQ's descriptor is edge-triggered: processing the socket's commands outside the
    event loop (as a send does) uses up the edge that announced waiting input. The receiver
    must still wake; this hung the kernel with finals unread."""
    import threading

    import zmq

    a = transports.connect(listener.url, identity=b"edge")
    try:
        a.send([b"s", b"hello"])
        await recv_one(listener)  # the peer is known; the queue is empty again
        task = asyncio.ensure_future(listener.recv_batch())
        for _ in range(5):
            await asyncio.sleep(0)  # the receiver is now waiting
        sender = threading.Thread(target=a.send, args=([b"s", b"late"],))
        sender.start()
        sender.join()
        poller = zmq.Poller()  # take in the message's announcement outside the loop (zmq_poll
        poller.register(listener._sock, zmq.POLLIN)  # processes the socket's commands)...
        assert poller.poll(5000)
        assert listener.send(b"edge", [b"x", b"y"])  # ...then send, as the heartbeat timer does
        batch = await asyncio.wait_for(task, 5)
        assert batch[0][1] == [b"s", b"late"]
    finally:
        a.close()


def test_the_zap_handler_admits_the_agents_key_and_answers_anything_else_with_a_refusal():
    import zmq
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from zmq.utils import z85

    from transports.curve import Admission, derive
    from transports.zap import VERSION, ZapHandler

    kernel, agent = derive("zap-test-token-0123456789abcdef")
    admission = Admission(kernel.clients)
    ctx = zmq.Context()
    try:
        zap = ZapHandler(ctx, lambda key: admission.callback("*", key))
        good = [VERSION, b"7", b"", b"127.0.0.1", b"", b"CURVE", z85.decode(agent.public)]
        assert zap.reply(good) == [VERSION, b"7", b"200", b"OK", agent.public, b""]
        assert zap.reply(good[:6] + [b"\0" * 32])[2] == b"400" and admission.denied == 1

        @settings(max_examples=300)
        @given(st.lists(st.binary(max_size=40), max_size=9))
        def anything(frames):
            answer = zap.reply(frames)
            assert len(answer) == 6 and answer[0] == VERSION and (answer[2] == b"200") == (frames == good)

        anything()
        zap.stop()
    finally:
        ctx.term()


async def test_a_thousand_curve_handshakes_at_once_are_all_admitted():
    """A thousand clients connecting together, each admitted by the ZAP handler on the loop."""
    import time

    import zmq

    from transports.curve import derive

    kernel, agent = derive("zap-burst-token-0123456789abcdef")
    listener = transports.listen("tcp://127.0.0.1:0", curve=kernel)
    ctx = zmq.Context()
    socks = []
    try:
        for i in range(1000):
            s = ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.IDENTITY, b"c%d" % i)
            s.curve_serverkey, s.curve_publickey, s.curve_secretkey = agent.server_public, agent.public, agent.secret
            s.connect(listener.url)
            s.send(b"hi")
            socks.append(s)
        seen, deadline = set(), time.monotonic() + 20
        while len(seen) < 1000 and time.monotonic() < deadline:
            batch = await asyncio.wait_for(listener.recv_batch(), 20)
            seen.update(peer for peer, _ in batch)
        assert len(seen) == 1000 and listener.refused == 0
        assert listener._sock.getsockopt(zmq.BACKLOG) == 4096  # not ZeroMQ's 100: a crowd arriving is not refused
    finally:
        for s in socks:
            s.close()
        ctx.term()
        listener.close()
