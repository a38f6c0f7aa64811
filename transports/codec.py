"""The wire format: the only module that knows how a message becomes bytes and back.

A message is one msgpack map ``{"v": PROTOCOL, "type": T, ...fields}``, sent as two frames:
an HMAC-SHA256 signature and the msgpack payload. The signature is checked *before* any
byte is decoded (a peer without the experiment's token never reaches msgpack, let alone a
handler); then msgpack decodes with hard limits, and a per-type schema validates the fields.
Anything that fails raises :class:`CodecError` and nothing else, so a receive loop needs
one ``except`` to stay alive under hostile input.

Encoding and decoding are pure and symmetric: no socket I/O here.
"""
from __future__ import annotations

import hashlib
import hmac
from typing import Any, Iterable, Mapping

import msgpack

PROTOCOL = 7  # 2: trial.verdicts and the verdict message; 3: a large function travels in parts;
# 4: batches, trials handed out ahead (leased), and the "skipped" outcome of a leased trial never run;
# 5: a final carries its trial's last broadcasts (final.points); 6: a final says what its trial
# compiled (final.compile), a trial which hyperparameters a compiled step takes as arguments (trial.traced);
# 7: trials packed into one run, one lane each (trial.pack: the ids of the pack's trials, lane order)
PART_SIZE = 8 * 1024 * 1024  # a function larger than this is fetched by the agent in parts of this size
SIGNATURE_BYTES = 32
DEFAULT_MAX_SIZE = 64 * 1024 * 1024  # a welcome carries the pickled function; keep room for closures

# Field kinds used by the schemas below.
_NUM = (int, float)
_OPT_NUM = (int, float, type(None))
_STR = (str,)
_OPT_STR = (str, type(None))
_INT = (int,)
_BYTES = (bytes,)
_OPT_BYTES = (bytes, type(None))
_MAP = (dict,)
_OPT_MAP = (dict, type(None))
_LIST = (list,)
_OPT_LIST = (list, type(None))
_BOOL = (bool,)
_ANY = (object,)

# type -> {field: allowed python types}; every listed field is required, no others allowed.
AGENT_TO_KERNEL: dict[str, dict[str, tuple]] = {
    "hello": {"agent": _STR, "host": _STR, "pid": _INT, "devices": _LIST, "protocol": _INT,
              "address": _STR, "port": _INT},
    "ready": {"ok": _BOOL, "error": _OPT_STR},
    "metric": {"trial": _INT, "points": _LIST},
    "log": {"trial": _INT, "lines": _LIST},
    "final": {
        "trial": _INT,
        "rank": _INT,
        "outcome": _STR,
        "result": _ANY,
        "error": _OPT_STR,
        "traceback": _OPT_STR,
        "started": _NUM,
        "duration": _NUM,
        "step": _OPT_NUM,
        "value": _OPT_NUM,
        "saved": _BOOL,  # the function asked for its checkpoint folder (the kernel looks there only then)
        "points": _LIST,  # its last broadcasts not sent yet, as metric.points (one message, not two)
        "compile": _OPT_LIST,  # [seconds, programs compiled, loaded from the cache]; None: no JAX there
    },
    "heartbeat": {},
    "bye": {"reason": _STR},
    "fetch": {"offset": _INT},  # the next part of a large function, from this byte on
    "batch": {"items": _LIST},  # [[type, fields], ...] of BATCHED types, handled in order
}
KERNEL_TO_AGENT: dict[str, dict[str, tuple]] = {
    "welcome": {"experiment": _STR, "function": _BYTES, "size": _INT, "heartbeat": _NUM, "env": _MAP,
                "inject": _OPT_BYTES},
    "part": {"offset": _INT, "data": _BYTES},
    "trial": {"trial": _INT, "params": _MAP, "budget": _OPT_NUM, "checkpoint": _OPT_STR,
              "parent_checkpoint": _OPT_STR, "run": _OPT_MAP, "extra": _OPT_MAP, "verdicts": _BOOL,
              "metric": _OPT_STR,  # the name the search optimizes (among named broadcast values)
              "traced": _OPT_LIST,  # hyperparameters a step gets as traced arguments (None: the floats)
              "pack": _OPT_LIST},  # the trials run together as lanes of one program, this one among them
    "verdict": {"trial": _INT, "stop": _BOOL},  # the answer to one broadcast of a judged trial
    "abort": {"trial": _INT, "reason": _STR},
    "kill": {"trial": _INT},
    "stop": {"trial": _INT},
    "skip": {"trial": _INT},  # drop this trial handed out ahead if it has not started (else nothing)
    "rejoin": {},  # this agent was given up on (silent too long): drop what it holds, say hello again
    "heartbeat": {},
    "shutdown": {"reason": _STR},
    "batch": {"items": _LIST},
}
OUTCOMES = ("ok", "stopped", "error", "skipped")  # skipped: a leased trial dropped before it started
BATCHED = frozenset({"metric", "log", "final", "trial", "skip"})
"""What may travel inside a ``batch``: the messages of running trials. One batch costs one
signature, one frame pair and one wake-up of the receiver for what would be dozens of messages
when trials are short; everything else (hello, welcome, heartbeats) travels alone."""


def final_fields(trial: int, *, outcome: str, rank: int = 0, result: Any = None, error: str | None = None,
                 traceback: str | None = None, started: float = 0.0, duration: float = 0.0,
                 step: float | None = None, value: float | None = None, saved: bool = False,
                 points: list | None = None, compile: list | None = None) -> dict[str, Any]:
    """The fields of a ``final`` message (the schema above), built in this one place by every
    sender: an agent's trial, a child process's run, a failure before the function could run."""
    return {"trial": trial, "rank": rank, "outcome": outcome, "result": result, "error": error,
            "traceback": traceback, "started": started, "duration": duration, "step": step, "value": value,
            "saved": saved, "points": [] if points is None else points, "compile": compile}


def traced_of(traced: list[str] | None, params: Mapping[str, Any]) -> list[str]:
    """The hyperparameters a compiled step takes as traced arguments: ``trial.traced`` as the
    kernel sent it, or, where it sent None, those whose value is a float."""
    return list(traced) if traced is not None else [k for k, v in params.items() if type(v) is float]


class CodecError(ValueError):
    """A frame list that is not a valid message; ``reason`` is a short, countable label."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def _default(obj: Any) -> Any:
    """Let numpy and JAX scalars (and small arrays) cross the wire as plain numbers and lists."""
    item = getattr(obj, "item", None)
    if item is not None and getattr(obj, "size", 1) == 1:
        return item()
    tolist = getattr(obj, "tolist", None)
    if tolist is not None:
        return tolist()
    raise TypeError(f"cannot send a {type(obj).__name__} to the kernel; use numbers, strings, lists or dicts")


class Codec:
    """Signs, packs, verifies and unpacks messages for one experiment.

    ``key`` is the experiment's shared secret; ``accept`` is the schema table of messages this
    side may receive (the kernel accepts AGENT_TO_KERNEL, an agent KERNEL_TO_AGENT).
    """

    def __init__(self, key: bytes, accept: Mapping[str, Mapping[str, tuple]],
                 max_size: int = DEFAULT_MAX_SIZE):
        if not key:
            raise ValueError("a codec needs a non-empty key")
        self._key = bytes(key)
        self._accept = {name: _Schema(name, fields) for name, fields in accept.items()}
        self.max_size = max_size
        self._packer = msgpack.Packer(default=_default, use_bin_type=True)
        # Containers may not claim more entries than a message could hold; strings and binaries
        # are bounded by the size check before decoding.
        self._unpack_opts = dict(
            raw=False, strict_map_key=True, use_list=True,
            max_str_len=max_size, max_bin_len=max_size,
            max_array_len=1_000_000, max_map_len=100_000, max_ext_len=0,
        )

    def encode(self, msg_type: str, **fields: Any) -> list[bytes]:
        payload = self._packer.pack({"v": PROTOCOL, "type": msg_type, **fields})
        return [hmac.digest(self._key, payload, "sha256"), payload]

    def encode_all(self, items: list[list]) -> list[bytes]:
        """``[[type, fields], ...]`` as one message: the message itself when there is one, else
        a batch (its types must be BATCHED)."""
        if len(items) == 1:
            kind, fields = items[0]
            return self.encode(kind, **fields)
        return self.encode("batch", items=items)

    def decode(self, frames: Iterable[bytes]) -> dict[str, Any]:
        frames = list(frames)
        if len(frames) != 2:
            raise CodecError("frame-count", f"expected 2 frames, got {len(frames)}")
        signature, payload = frames
        if len(payload) > self.max_size:
            raise CodecError("oversize", f"{len(payload)} bytes > {self.max_size}")
        if len(signature) != SIGNATURE_BYTES or not hmac.compare_digest(
            signature, hmac.digest(self._key, payload, "sha256")
        ):
            raise CodecError("signature", "bad or missing signature (wrong token?)")
        try:
            msg = msgpack.unpackb(payload, **self._unpack_opts)
        except Exception as exc:  # msgpack raises many types; all mean the same thing here
            raise CodecError("msgpack", type(exc).__name__) from None
        return self.validate(msg)

    def validate(self, msg: Any) -> dict[str, Any]:
        if not isinstance(msg, dict):
            raise CodecError("not-a-map", type(msg).__name__)
        if msg.get("v") != PROTOCOL:
            raise CodecError("protocol", f"version {msg.get('v')!r}, expected {PROTOCOL}")
        msg_type = msg.get("type")
        schema = self._accept.get(msg_type) if isinstance(msg_type, str) else None
        if schema is None:
            raise CodecError("type", f"unexpected message type {msg_type!r}")
        schema.check(msg, 2)
        if msg_type == "batch":
            msg["items"] = [self._item(item) for item in msg["items"]]
        return msg

    def _item(self, item: Any) -> dict[str, Any]:
        """One message of a batch, validated as if it had come alone (``type`` added)."""
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str) and isinstance(item[1], dict)):
            raise CodecError("field-type", "batch.items must be [type, fields] pairs")
        item_type, fields = item
        schema = self._accept.get(item_type)
        if schema is None or item_type not in BATCHED:
            raise CodecError("type", f"a batch may not carry {item_type!r}")
        schema.check(fields, 0)
        fields["type"] = item_type
        return fields


class _Schema:
    """One message type's fields, ready to check: exactly these names (plus ``envelope`` keys:
    v and type), each of an allowed type, compared exactly (msgpack makes no subclasses, and a
    bool is never a number), then the type's own check. Every trial brings two of these
    checks to the kernel, so they are written to be cheap."""

    __slots__ = ("name", "keys", "typed", "extra")

    def __init__(self, name: str, fields: Mapping[str, tuple]):
        self.name = name
        self.keys = frozenset(fields)
        self.typed = tuple((field, kinds) for field, kinds in fields.items() if kinds is not _ANY)
        self.extra = _CHECKS.get(name)

    def check(self, msg: dict, envelope: int) -> None:
        if len(msg) != len(self.keys) + envelope or not self.keys <= msg.keys():
            extra = set(msg) - self.keys - {"v", "type"}
            missing = self.keys - set(msg)
            raise CodecError("fields", f"{self.name}: missing {sorted(missing)}, unexpected {sorted(map(str, extra))}")
        for field, kinds in self.typed:
            if type(msg[field]) not in kinds:
                raise CodecError("field-type", f"{self.name}.{field} is {type(msg[field]).__name__}")
        if self.extra is not None:
            self.extra(msg)


def _finite(x: Any) -> bool:
    """A number that is not NaN (and not a bool)."""
    kind = type(x)
    return kind is int or (kind is float and x == x)


_POINTS = "metric.points must be [step, value] or [step, value, {name: value}]"


def _check_metric(msg: dict) -> None:
    """Points are [step, value] or [step, value or None, {name: value}] (named values).
    Written out, without a call per number: ten points per trivial trial made this a sixth of
    the kernel's time on one."""
    for point in msg["points"]:
        if type(point) is not list:
            raise CodecError("field-type", _POINTS)
        if len(point) == 2:
            step, value = point
            named = False  # none given (a given one must be a non-empty dict)
        elif len(point) == 3:
            step, value, named = point
        else:
            raise CodecError("field-type", _POINTS)
        kind = type(step)
        if not (kind is int or (kind is float and step == step)):
            raise CodecError("field-type", _POINTS)
        kind = type(value)
        if not (kind is float and value == value or kind is int) and not (value is None and named is not False):
            raise CodecError("field-type", _POINTS)
        if named is not False and not (type(named) is dict and named and all(
                type(k) is str and _finite(v) for k, v in named.items())):
            raise CodecError("field-type", "metric.points' named values must be {name: number}")


def _check_log(msg: dict) -> None:
    if not all(isinstance(line, str) for line in msg["lines"]):
        raise CodecError("field-type", "log.lines must be strings")


def _check_final(msg: dict) -> None:
    if msg["outcome"] not in OUTCOMES:
        raise CodecError("field-type", f"final.outcome {msg['outcome']!r} not in {OUTCOMES}")
    _check_metric(msg)
    compiled = msg["compile"]
    if compiled is not None and not (len(compiled) == 3 and _finite(compiled[0]) and compiled[0] >= 0
                                     and all(type(n) is int and n >= 0 for n in compiled[1:])):
        raise CodecError("field-type", "final.compile must be [seconds, compiled, loaded] (numbers >= 0)")


def _check_trial(msg: dict) -> None:
    if not all(isinstance(k, str) for k in msg["params"]):
        raise CodecError("field-type", "trial.params keys must be strings")
    if msg["traced"] is not None and not all(type(k) is str for k in msg["traced"]):
        raise CodecError("field-type", "trial.traced must name hyperparameters")
    if msg["pack"] is not None and not (all(type(t) is int for t in msg["pack"]) and msg["trial"] in msg["pack"]):
        raise CodecError("field-type", "trial.pack must list trial ids, this one among them")


_CHECKS = {"metric": _check_metric, "log": _check_log, "final": _check_final, "trial": _check_trial}


def kernel_codec(key: bytes, max_size: int = DEFAULT_MAX_SIZE) -> Codec:
    return Codec(key, AGENT_TO_KERNEL, max_size)


def agent_codec(key: bytes, max_size: int = DEFAULT_MAX_SIZE) -> Codec:
    return Codec(key, KERNEL_TO_AGENT, max_size)


def token_key(token: str) -> bytes:
    """The signing key derived from an experiment token (the token itself never signs)."""
    return hashlib.sha256(b"lagom-kernel/v1/" + token.encode()).digest()
