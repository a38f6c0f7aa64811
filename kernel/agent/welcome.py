"""The welcome: the training function (fetched part by part when it is large), what it asks
for, and the agent's answer, ready or not and why.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

import cloudpickle

from .. import shipping
from ..injection import InjectionError, requested
from ..reporter import Shutdown
from . import compiles

if TYPE_CHECKING:
    from .serve import Agent

PROVIDED = ("hparams", "reporter", "strategy")


def take(agent: "Agent", msg: dict) -> None:
    """Take the function (again, if the kernel restarted) and say whether it can run here."""
    agent.heartbeat = float(msg["heartbeat"])
    for key, value in msg["env"].items():
        os.environ.setdefault(str(key), str(value))
    if agent.own_process:  # before the function (and JAX with it) is unpickled
        compiles.use_persistent_cache()
    try:
        agent.function_bytes, agent.inject_bytes = _whole_function(agent, msg), msg["inject"]
        agent.injector = cloudpickle.loads(msg["inject"]) if msg["inject"] is not None else None
        fn, agent.data = shipping.split(shipping.unpack(agent.function_bytes))
        provided = PROVIDED + tuple(getattr(agent.injector, "provides", ())) + tuple(agent.data)
        agent.names = requested(fn, provided, "this agent")
        agent.fn = fn
    except InjectionError as exc:
        agent.send("ready", ok=False, error=str(exc))
        return
    except Exception as exc:
        hint = (" (make that module importable on this host: install it, or run the agent "
                "from the project's folder)") if isinstance(exc, ImportError) else ""
        agent.send("ready", ok=False,
                   error=f"could not load the training function: {type(exc).__name__}: {exc}{hint}")
        return
    agent.send("ready", ok=True, error=None)


def _whole_function(agent: "Agent", welcome: dict) -> bytes:
    """The function's bytes: in the welcome, or fetched part by part when it is large."""
    data = bytearray(welcome["function"])
    while len(data) < welcome["size"]:
        agent.send("fetch", offset=len(data))
        msg = agent.next_message()
        while msg is None or msg["type"] != "part" or msg["offset"] != len(data):
            if msg is not None and msg["type"] == "shutdown":
                raise Shutdown(msg["reason"])
            msg = agent.next_message()
        data += msg["data"]
    return bytes(data)
