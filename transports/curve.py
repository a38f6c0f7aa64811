"""CurveZMQ for tcp://: encryption, and authentication of both ends, by default.

Per experiment a kernel key pair and an agents' key pair are derived from the token: an agent
knows the kernel's public key, so it refuses a kernel without the matching secret key before it
accepts any code, and the kernel's ZAP handler admits only the agents' public key. ipc:// relies on a 0700 folder and inproc:// never leaves
the process, so they use the signing secret alone.

One authenticator thread serves the process for its whole life (stopping one made later CURVE
connections in the same context hang), and consults the set of keys of running experiments.
"""
from __future__ import annotations

import hashlib
import threading
from collections import Counter
from dataclasses import dataclass

import zmq
import zmq.auth.thread

_HEX = 64  # a 32-byte key in hex


@dataclass(frozen=True)
class Credentials:
    """What one side needs: the kernel's public key, and this side's key pair."""

    server_public: bytes
    public: bytes
    secret: bytes


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
    return (Credentials(server_public, server_public, server_secret),
            Credentials(server_public, client_public, client_secret))


class _Allowed:
    """The ZAP callback: admits the client keys of the experiments running in this process."""

    def __init__(self) -> None:
        self.keys: set[bytes] = set()
        self.denied: Counter[bytes] = Counter()  # by server key the denied client tried
        self._lock = threading.Lock()

    def callback(self, domain: str, key: bytes) -> bool:
        with self._lock:
            ok = key in self.keys
            if not ok:
                self.denied[b"*"] += 1
            return ok


_allowed = _Allowed()
_authenticator: zmq.auth.thread.ThreadAuthenticator | None = None
_start_lock = threading.Lock()


def admit(ctx: zmq.Context, client_public: bytes) -> None:
    """Let agents holding this public key connect (starts the authenticator on first use)."""
    global _authenticator
    with _start_lock:
        if _authenticator is None:
            _authenticator = zmq.auth.thread.ThreadAuthenticator(ctx)
            _authenticator.start()
            _authenticator.configure_curve_callback(domain="*", credentials_provider=_allowed)
    with _allowed._lock:
        _allowed.keys.add(client_public)


def revoke(client_public: bytes) -> None:
    with _allowed._lock:
        _allowed.keys.discard(client_public)


def denied_count() -> int:
    """Handshakes refused so far in this process (a wrong key pair)."""
    return _allowed.denied[b"*"]
