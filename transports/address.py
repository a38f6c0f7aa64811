"""The one parser for transport URLs, used by the kernel, the agents and the launchers.

A URL names a scheme (``tcp``, ``ipc``, ``inproc``) and where to find the kernel. Parsing
happens once, here, so every part of the system agrees on what an address means.
"""
from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

_WILDCARDS = {"0.0.0.0", "*", "::", "[::]", ""}


class AddressError(ValueError):
    """A transport URL that cannot be used, with what a valid one looks like."""


@dataclass(frozen=True)
class Address:
    scheme: str
    host: str = ""
    port: int = 0
    path: str = ""

    @property
    def url(self) -> str:
        if self.scheme == "tcp":
            host = f"[{self.host}]" if ":" in self.host else self.host
            return f"tcp://{host}:{self.port}"
        return f"{self.scheme}://{self.path}"

    @property
    def is_loopback(self) -> bool:
        """True when only this machine can reach the address (ipc and inproc always are)."""
        if self.scheme != "tcp":
            return True
        return self.host in ("localhost", "::1") or self.host.startswith("127.")

    def for_local_agents(self) -> "Address":
        """The address an agent on this machine connects to (a wildcard bind becomes loopback)."""
        if self.scheme == "tcp" and self.host in _WILDCARDS:
            return Address("tcp", "127.0.0.1", self.port)
        return self

    def for_remote_agents(self) -> "Address":
        """The address to print for agents on other hosts: a wildcard bind becomes a name or
        address of this host that is not loopback (a name that resolves to 127.x reaches nobody)."""
        if self.scheme == "tcp" and self.host in _WILDCARDS:
            return Address("tcp", reachable_host(), self.port)
        return self


def _is_loopback(ip: str) -> bool:
    return ip.startswith("127.") or ip == "::1"


def reachable_host() -> str:
    """This host as other hosts can reach it: its name if that resolves to a non-loopback
    address, else the address of the interface that holds the default route."""
    name = socket.gethostname()
    try:
        if not all(_is_loopback(ip) for ip in socket.gethostbyname_ex(name)[2]):
            return name
    except OSError:
        pass
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # a documentation address; connect() on UDP sends nothing
            ip = s.getsockname()[0]
            if not _is_loopback(ip):
                return ip
    except OSError:
        pass
    return name


def parse(url: str) -> Address:
    """Parse ``tcp://host:port``, ``ipc:///path/to/socket`` or ``inproc://name``."""
    if not isinstance(url, str) or "://" not in url:
        raise AddressError(
            f"{url!r} is not a transport URL; use tcp://HOST:PORT, ipc:///PATH or inproc://NAME"
        )
    from . import SCHEMES  # the backends' schemes (transports/__init__.py)

    scheme = url.split("://", 1)[0].lower()
    if scheme not in SCHEMES:
        raise AddressError(
            f"unknown transport scheme {scheme!r} in {url!r}; known schemes: {', '.join(SCHEMES)}"
        )
    rest = url.split("://", 1)[1]
    if scheme == "tcp":
        parts = urlsplit(f"tcp://{rest}")
        try:
            port = parts.port
        except ValueError as exc:
            raise AddressError(f"bad port in {url!r}: {exc}") from None
        if port is None:
            raise AddressError(f"{url!r} has no port; use tcp://HOST:PORT (port 0 picks a free one)")
        host = parts.hostname or ""
        if rest.startswith("*"):
            host = "0.0.0.0"
        return Address("tcp", host, port)
    if not rest:
        raise AddressError(f"{url!r} names no {'path' if scheme == 'ipc' else 'endpoint'}")
    return Address(scheme, path=rest)
