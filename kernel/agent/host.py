"""What an agent tells the kernel about its host: devices, the address its peers reach it at,
a free port for a distributed run's coordinator."""
from __future__ import annotations

import os
import socket

def devices() -> list[str]:
    devices = [f"cpu:{os.cpu_count() or 1}"]
    gpus = os.environ.get("CUDA_VISIBLE_DEVICES")
    if gpus:
        devices += [f"gpu:{g}" for g in gpus.split(",") if g.strip()]
    return devices


def address_towards(url: str) -> str:
    """This host's address as the kernel's network sees it (for peers of a distributed run)."""
    from transports import parse

    address = parse(url)
    if address.scheme != "tcp" or address.is_loopback:
        return "127.0.0.1"
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((address.host, address.port or 9))  # no packet is sent
            return s.getsockname()[0]
    except OSError:
        return socket.gethostname()


def free_port() -> int:
    """A port that was free a moment ago: rank 0 of a distributed run hosts JAX's coordinator there."""
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]
