"""How agents run a trial when it needs more than the agent's own process: a distribution
strategy (``pmap``, ``multihost``, ...), the environment of the fresh process it runs in (CPU
devices to try data parallelism without accelerators), and how many agents run it together.
``Distributed`` runs one such trial; a search or an ablation runs each of its trials so.
"""
from __future__ import annotations

from typing import Any

import cloudpickle

from plugins.registry import PluginError, load, names
from plugins.strategies import MultiHost, Strategy

from .base import ConfigError, check_int


def is_multihost(strategy: Any, owner: str) -> bool:
    """Whether ``strategy`` (a registered name or an instance) spans several agents."""
    if isinstance(strategy, str):
        if strategy not in names("lagom.strategies"):
            raise ConfigError(f"unknown strategy {strategy!r}; registered strategies: "
                              f"{', '.join(names('lagom.strategies'))}")
        try:
            cls = load("lagom.strategies", strategy)
        except PluginError as exc:
            raise ConfigError(str(exc)) from None
        return isinstance(cls, type) and issubclass(cls, MultiHost)
    if isinstance(strategy, Strategy):
        return isinstance(strategy, MultiHost)
    raise ConfigError(f"{owner}(strategy={strategy!r}): pass a registered name or a "
                      f"plugins.strategies.Strategy instance")


def check_gang(strategy: Any, agents: int, owner: str, what: str = "agents") -> bool:
    """``agents`` per run for ``strategy``; True when it spans several agents."""
    multihost = is_multihost(strategy, owner)
    check_int(what, agents, 1, owner)
    if agents > 1 and not multihost:
        raise ConfigError(f"{owner}(strategy={strategy!r}, {what}={agents}): this strategy spans one "
                          f"agent's devices; use strategy='multihost' to train across {agents} agents")
    return multihost


def run_spec(strategy: Any, env: dict[str, str], cpu_devices: int | None, timeout: int) -> dict[str, Any]:
    """What each agent is told about how to run the trial (it reaches kernel/agent/child.py)."""
    env = {str(k): str(v) for k, v in (env or {}).items()}
    if cpu_devices:
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={cpu_devices}").strip()
    run: dict[str, Any] = {"env": env, "timeout": timeout}
    if isinstance(strategy, str):
        run["strategy"] = strategy
    else:
        run["strategy"] = type(strategy).__name__
        run["strategy_pickle"] = cloudpickle.dumps(strategy)
    return run
