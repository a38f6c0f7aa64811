"""How bytes move between the kernel and its agents.

Transports move lists of frames; the wire format lives in :mod:`transports.codec` alone.
A backend is chosen by the URL's scheme through the small table below, so a new scheme is
one entry here and the rest of the system only ever calls :func:`listen` and :func:`connect`.
"""
from __future__ import annotations

from typing import Callable

from .address import Address, AddressError, parse
from .codec import DEFAULT_MAX_SIZE
from .zeromq import ZmqConnection, ZmqListener, private_ipc_url

_LISTENERS: dict[str, Callable[..., ZmqListener]] = {
    "tcp": ZmqListener, "ipc": ZmqListener, "inproc": ZmqListener,
}
_CONNECTORS: dict[str, Callable[..., ZmqConnection]] = {
    "tcp": ZmqConnection, "ipc": ZmqConnection, "inproc": ZmqConnection,
}


def listen(url: str, *, max_size: int = DEFAULT_MAX_SIZE, curve=None) -> ZmqListener:
    """Bind the kernel's end at ``url`` (``tcp://host:0`` picks a free port); ``curve``: the
    kernel's CurveZMQ credentials (transports/curve.py), or None."""
    return _LISTENERS[parse(url).scheme](url, max_size=max_size, curve=curve)


def connect(url: str, *, identity: bytes, max_size: int = DEFAULT_MAX_SIZE, curve=None) -> ZmqConnection:
    """Connect an agent's end to the kernel at ``url`` (``curve``: the agent's credentials)."""
    return _CONNECTORS[parse(url).scheme](url, identity=identity, max_size=max_size, curve=curve)


__all__ = ["Address", "AddressError", "parse", "listen", "connect", "private_ipc_url"]
