"""CurveZMQ for tcp://: encryption, and authentication of both ends, by default.

Per experiment a kernel key pair and an agents' key pair are derived from the token: an agent
knows the kernel's public key, so it refuses a kernel without the matching secret key before it
accepts any code, and the kernel admits only the agents' public key. ipc:// relies on a 0700
folder and inproc:// never leaves the process, so they use the signing secret alone.

Admission is part of the listening socket: each listener owns its ZeroMQ context and runs one
ZAP handler (an :class:`Admission`) on that very context for the context's whole life, since a
ZAP handler serves only the context it was started on.
"""
from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass

import zmq


@dataclass(frozen=True)
class Credentials:
    """What one side needs: the kernel's public key, this side's key pair, and (the kernel's
    side) the agents' public keys it admits."""

    server_public: bytes
    public: bytes
    secret: bytes
    clients: frozenset[bytes] = frozenset()


def _keypair(token: str, role: bytes) -> tuple[bytes, bytes]:
    secret = zmq.utils.z85.encode(hashlib.sha256(b"lagom-kernel/curve/" + role + b"/" + token.encode()).digest())
    return zmq.curve_public(secret), secret


def derive(token: str) -> tuple[Credentials, Credentials]:
    """(the kernel's credentials, the agents') from an experiment's token.

    Both key pairs are derived from the token, so the token stays one short string that a user
    may also choose (``lagom(token=...)``), and whoever holds it can take part, as with the
    signing secret; nobody without it can connect, read or inject."""
    server_public, server_secret = _keypair(token, b"kernel")
    client_public, client_secret = _keypair(token, b"agent")
    return (Credentials(server_public, server_public, server_secret, frozenset({client_public})),
            Credentials(server_public, client_public, client_secret))


class Admission:
    """The ZAP credentials provider of one listener: admits its agents' keys, counts the rest."""

    def __init__(self, keys: frozenset[bytes]):
        self._keys = set(keys)
        self._lock = threading.Lock()  # called on the authenticator's thread
        self.denied = 0

    def callback(self, domain: str, key: bytes) -> bool:
        with self._lock:
            ok = key in self._keys
            if not ok:
                self.denied += 1
            return ok

    def revoke(self, key: bytes) -> None:
        with self._lock:
            self._keys.discard(key)
