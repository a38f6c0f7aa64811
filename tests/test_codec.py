import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transports.codec import (AGENT_TO_KERNEL, BATCHED, KERNEL_TO_AGENT, PROTOCOL, CodecError, agent_codec,
                              kernel_codec, token_key)

KEY = token_key("test-token")
K = kernel_codec(KEY)   # decodes what agents send
A = agent_codec(KEY)    # decodes what the kernel sends

finite = st.floats(allow_nan=False, allow_infinity=False)
number = st.one_of(st.integers(-2**62, 2**62), finite)
scalar = st.one_of(number, st.text(max_size=20), st.booleans())
text = st.text(max_size=50)

FIELD = {
    "agent": text, "host": text, "pid": st.integers(0, 2**31), "devices": st.lists(text, max_size=4),
    "protocol": st.integers(0, 5), "ok": st.booleans(), "error": st.one_of(st.none(), text),
    "trial": st.integers(0, 2**40), "points": st.lists(st.tuples(number, number).map(list), max_size=20),
    "lines": st.lists(text, max_size=10), "outcome": st.sampled_from(["ok", "stopped", "error", "skipped"]),
    "result": st.one_of(st.none(), number, st.dictionaries(text, number, max_size=5)),
    "traceback": st.one_of(st.none(), text), "started": number, "duration": number,
    "step": st.one_of(st.none(), number), "value": st.one_of(st.none(), number),
    "reason": text, "experiment": text, "function": st.binary(max_size=200), "heartbeat": number,
    "env": st.dictionaries(text, text, max_size=3), "inject": st.one_of(st.none(), st.binary(max_size=50)),
    "extra": st.one_of(st.none(), st.dictionaries(text, scalar, max_size=3)),
    "params": st.dictionaries(text, scalar, max_size=6), "budget": st.one_of(st.none(), number),
    "checkpoint": st.one_of(st.none(), text), "parent_checkpoint": st.one_of(st.none(), text),
    "address": text, "port": st.integers(0, 65535), "rank": st.integers(0, 64),
    "run": st.one_of(st.none(), st.dictionaries(text, scalar, max_size=4)),
    "verdicts": st.booleans(), "stop": st.booleans(), "size": st.integers(0, 2**40),
    "offset": st.integers(0, 2**40), "data": st.binary(max_size=200), "metric": st.one_of(st.none(), text),
    "saved": st.booleans(),
    "compile": st.one_of(st.none(), st.tuples(st.floats(0, 1e6), st.integers(0, 2**31), st.integers(0, 2**31)).map(list)),
    "traced": st.one_of(st.none(), st.lists(text, max_size=4)),
    "pack": st.none(),  # a pack names the message's own trial: tested apart
}


def messages(table, kinds=None):
    """(type, fields) of any message in ``table`` (of ``kinds`` only, if given); a batch holds
    a list of the table's batched messages."""
    def fields(t):
        return st.fixed_dictionaries({f: (batch_items(table) if f == "items" else FIELD[f]) for f in table[t]})
    return st.sampled_from(sorted(kinds or table)).flatmap(lambda t: fields(t).map(lambda d, t=t: (t, d)))


def batch_items(table):
    return st.lists(messages(table, [t for t in table if t in BATCHED]).map(list), max_size=3)


def decoded(kind, fields):
    """What a message decodes to: a batch's items each as a message of its own type."""
    if kind == "batch":
        fields = {"items": [dict(f, type=t) for t, f in fields["items"]]}
    return {"v": PROTOCOL, "type": kind, **fields}


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)  # batches nest
@given(messages(AGENT_TO_KERNEL))
def test_every_agent_message_round_trips(msg):
    kind, fields = msg
    out = K.decode(A.encode(kind, **fields))
    assert out == decoded(kind, fields)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(messages(KERNEL_TO_AGENT))
def test_every_kernel_message_round_trips(msg):
    kind, fields = msg
    out = A.decode(K.encode(kind, **fields))
    assert out == decoded(kind, fields)


@settings(max_examples=500)
@given(st.lists(st.binary(max_size=300), max_size=4))
def test_random_frames_raise_only_codec_error(frames):
    with pytest.raises(CodecError):
        K.decode(frames)


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_random_payload_with_a_valid_signature_raises_only_codec_error(payload):
    """A peer that knows the token but sends garbage still never reaches a handler."""
    import hmac
    frames = [hmac.digest(KEY, payload, "sha256"), payload]
    try:
        msg = K.decode(frames)
    except CodecError as exc:
        assert exc.reason in REASONS  # a countable label, never another exception
        return
    # the rare payload that decodes is a complete, well-typed message of a kind agents send
    schema = AGENT_TO_KERNEL[msg["type"]]
    assert msg["v"] == PROTOCOL and set(msg) == set(schema) | {"v", "type"}


REASONS = {"frame-count", "oversize", "signature", "msgpack", "not-a-map", "protocol", "type", "fields",
           "field-type"}


def signed(obj):
    import hmac
    payload = msgpack.packb(obj, use_bin_type=True)
    return [hmac.digest(KEY, payload, "sha256"), payload]


@pytest.mark.parametrize("obj, reason", [
    ([1, 2], "not-a-map"),
    ({"v": 99, "type": "heartbeat"}, "protocol"),
    ({"v": PROTOCOL, "type": "nope"}, "type"),
    ({"v": PROTOCOL, "type": "welcome", "experiment": "x", "function": b"", "heartbeat": 1, "env": {}}, "type"),
    ({"v": PROTOCOL, "type": "log", "trial": 1}, "fields"),
    ({"v": PROTOCOL, "type": "log", "trial": 1, "lines": [], "extra": 1}, "fields"),
    ({"v": PROTOCOL, "type": "log", "trial": "1", "lines": []}, "field-type"),
    ({"v": PROTOCOL, "type": "log", "trial": True, "lines": []}, "field-type"),
    ({"v": PROTOCOL, "type": "log", "trial": 1, "lines": [1]}, "field-type"),
    ({"v": PROTOCOL, "type": "metric", "trial": 1, "points": [[1, "x"]]}, "field-type"),
    ({"v": PROTOCOL, "type": "metric", "trial": 1, "points": [[1, float("nan")]]}, "field-type"),
    ({"v": PROTOCOL, "type": "metric", "trial": 1, "points": [[1, 2, None]]}, "field-type"),  # named: a dict
    ({"v": PROTOCOL, "type": "metric", "trial": 1, "points": [[1, 2, {}]]}, "field-type"),
    ({"v": PROTOCOL, "type": "metric", "trial": 1, "points": [[1, None]]}, "field-type"),  # None only with names
    ({"v": PROTOCOL, "type": "metric", "trial": 1, "points": [[True, 1.0]]}, "field-type"),  # a bool is no step
    ({"v": PROTOCOL, "type": "metric", "trial": 1, "points": [[1, 2.0, {"a": True}]]}, "field-type"),
    ({"v": PROTOCOL, "type": "metric", "trial": 1, "points": [[1, 2.0, {"a": float("nan")}]]}, "field-type"),
    ({"v": PROTOCOL, "type": "metric", "trial": 1, "points": [[1, 2.0, {"a": 1}, 4]]}, "field-type"),
    ({"v": PROTOCOL, "type": "metric", "trial": 1, "points": [[1]]}, "field-type"),
    ({"v": PROTOCOL, "type": "metric", "trial": 1, "points": [1]}, "field-type"),
    ({"v": PROTOCOL, "type": "final", "trial": 1, "rank": 0, "outcome": "ok", "result": None, "error": None,
      "traceback": None, "started": 1.0, "duration": True, "step": None, "value": None, "saved": False,
      "points": [], "compile": None}, "field-type"),
    ({"v": PROTOCOL, "type": "final", "trial": 1, "rank": 0, "outcome": "ok", "result": None, "error": None,
      "traceback": None, "started": 1.0, "duration": 1, "step": None, "value": None, "saved": False,
      "points": [[1, "x"]], "compile": None}, "field-type"),  # a final's points are checked as a metric's
    ({"v": PROTOCOL, "type": "final", "trial": 1, "rank": 0, "outcome": "ok", "result": None, "error": None,
      "traceback": None, "started": 1.0, "duration": 1, "step": None, "value": None, "saved": 0,
      "points": [], "compile": None}, "field-type"),
    ({"v": PROTOCOL, "type": "final", "trial": 1, "rank": 0, "outcome": "ok", "result": None, "error": None,
      "traceback": None, "started": 1.0, "duration": 1, "step": None, "value": None, "saved": False,
      "points": [], "compile": [1.0, -1, 0]}, "field-type"),  # [seconds, compiled, loaded], none negative
    ({"v": PROTOCOL, "type": "final", "trial": 1, "rank": 0, "outcome": "ok", "result": None, "error": None,
      "traceback": None, "started": 1.0, "duration": 1, "step": None, "value": None, "saved": False,
      "points": [], "compile": [1.0, 2]}, "field-type"),
    ({"v": PROTOCOL, "type": "batch", "items": [["hello", {}]]}, "type"),  # a batch carries trials' messages only
    ({"v": PROTOCOL, "type": "batch", "items": [["batch", {"items": []}]]}, "type"),  # never batches
    ({"v": PROTOCOL, "type": "batch", "items": [["log", {"trial": 1}]]}, "fields"),
    ({"v": PROTOCOL, "type": "batch", "items": [["log", {"trial": 1, "lines": [2]}]]}, "field-type"),
    ({"v": PROTOCOL, "type": "batch", "items": [{"log": 1}]}, "field-type"),
    ({"v": PROTOCOL, "type": "batch", "items": [["log", {"trial": 1, "lines": []}, 3]]}, "field-type"),
])
def test_invalid_messages_name_their_reason(obj, reason):
    with pytest.raises(CodecError) as info:
        K.decode(signed(obj))
    assert info.value.reason == reason


def test_metric_points_that_are_kept():
    """Numbers (int or float), a None value beside named values, named values alone."""
    points = [[0, 1], [1.5, 2.5], [2, None, {"acc": 0.5}], [3, 0.25, {"acc": 1, "loss": 2.0}]]
    msg = K.decode(signed({"v": PROTOCOL, "type": "metric", "trial": 1, "points": points}))
    assert msg["points"] == points


def test_a_wrong_token_is_refused_before_decoding():
    other = agent_codec(token_key("another-token"))
    with pytest.raises(CodecError) as info:
        K.decode(other.encode("heartbeat"))
    assert info.value.reason == "signature"


def test_oversize_payload_is_refused():
    small = kernel_codec(KEY, max_size=1000)
    with pytest.raises(CodecError) as info:
        small.decode(A.encode("log", trial=1, lines=["x" * 2000]))
    assert info.value.reason == "oversize"


def test_numpy_scalars_cross_the_wire_as_numbers():
    np = pytest.importorskip("numpy")
    out = K.decode(A.encode("final", trial=1, rank=0, outcome="ok", result={"acc": np.float32(0.5), "n": np.int64(3)},
                            error=None, traceback=None, started=0.0, duration=1.0, step=None, value=None, saved=False,
                            points=[[0, np.float64(0.25)]], compile=None))
    assert out["result"] == {"acc": 0.5, "n": 3} and out["points"] == [[0, 0.25]]
