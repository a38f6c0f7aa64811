"""How bytes move between the kernel and its agents.

Transports move lists of frames; the wire format lives in :mod:`transports.codec` alone.
A backend is chosen by the URL's scheme through the table below, built from the schemes each
backend declares, so a new backend is one entry here and the rest of the system only ever
calls :func:`listen` and :func:`connect` (typed by the protocols in :mod:`transports.base`).
"""
from __future__ import annotations

from . import zeromq
from .address import Address, AddressError, parse
from .base import Connection, Listener
from .codec import DEFAULT_MAX_SIZE
from .curve import Credentials
from .zeromq import private_ipc_url

_BACKENDS: dict[str, tuple[type, type]] = {
    scheme: (zeromq.ZmqListener, zeromq.ZmqConnection) for scheme in zeromq.SCHEMES
}
SCHEMES: tuple[str, ...] = tuple(_BACKENDS)


def listen(url: str, *, max_size: int = DEFAULT_MAX_SIZE, curve: Credentials | None = None) -> Listener:
    """Bind the kernel's end at ``url`` (``tcp://host:0`` picks a free port); ``curve``: the
    kernel's CurveZMQ credentials (transports/curve.py), or None."""
    return _BACKENDS[parse(url).scheme][0](url, max_size=max_size, curve=curve)


def connect(url: str, *, identity: bytes, max_size: int = DEFAULT_MAX_SIZE,
            curve: Credentials | None = None, watch: bool = False) -> Connection:
    """Connect an agent's end to the kernel at ``url`` (``curve``: the agent's credentials;
    ``watch``: report the connection dropping and coming back, ``Connection.link_changes``)."""
    return _BACKENDS[parse(url).scheme][1](url, identity=identity, max_size=max_size, curve=curve, watch=watch)


__all__ = ["Address", "AddressError", "Connection", "Listener", "SCHEMES", "parse", "listen", "connect",
           "private_ipc_url"]
