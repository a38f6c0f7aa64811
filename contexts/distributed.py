"""``Distributed``: one training run over every device of one agent, or of many agents.

``strategy="pmap"`` (data parallel over one agent's local devices, built on jax.jit with
shardings), ``"multihost"`` (the same across agents: the kernel picks rank 0's host and port as
JAX's coordinator and gives each agent its process id), ``"jaxpmap"`` (literal jax.pmap),
``"single"``, any registered strategy, or an instance. The run happens in a fresh process on each
agent, so device settings apply and a failed peer never poisons a long-lived agent; a failure
on one agent aborts the others at once and raises here.
"""
from __future__ import annotations

from typing import Any

import cloudpickle

from kernel.controller import Controller, TrialSpec
from plugins.registry import PluginError, load, names
from plugins.strategies import MultiHost, Strategy

from .base import ConfigError, Context, OneTrial, check_int
from .single import TrialFailed


class Distributed(Context):
    """Run the function once, data parallel, on ``agents`` agents.

    ``start_agents=False`` starts no local agent: the run begins when ``agents`` agents started
    by hand (``python -m kernel.agent``, on other hosts) have joined; pass ``listen=`` to lagom.
    ``cpu_devices=N`` gives each run N CPU devices (XLA's forced host device count), to try
    data parallelism on a machine without accelerators; ``env`` adds environment variables for
    the run's process; ``timeout`` bounds how long processes wait for each other (seconds).
    """

    name = "distributed"
    provides = frozenset({"hparams", "reporter", "strategy"})

    def __init__(self, strategy: Any = "pmap", agents: int | None = None, *,
                 hparams: dict[str, Any] | None = None, cpu_devices: int | None = None,
                 env: dict[str, str] | None = None, timeout: int = 60, metric: str | None = None,
                 direction: str = "max", launcher: Any = "local", start_agents: bool = True,
                 study: Any = None, name: str | None = None):
        owner = "Distributed"
        multihost = self._is_multihost(strategy)
        if agents is None:
            agents = 2 if multihost else 1
        check_int("agents", agents, 1, owner)
        check_int("cpu_devices", cpu_devices, 1, owner, allow_none=True)
        check_int("timeout", timeout, 5, owner)
        if agents > 1 and not multihost:
            raise ConfigError(f"{owner}(strategy={strategy!r}, agents={agents}): this strategy spans one "
                              f"agent's devices; use strategy='multihost' to train across {agents} agents")
        if hparams is not None and not isinstance(hparams, dict):
            raise ConfigError(f"{owner}(hparams={hparams!r}): hparams must be a dict")
        self._use_study(study)
        self.strategy = strategy
        self.agents = agents
        self.workers = agents if start_agents else 0  # 0: agents started by hand join (listen=...)
        self.hparams = dict(hparams or {})
        self.env = {str(k): str(v) for k, v in (env or {}).items()}
        if cpu_devices:
            self.env["XLA_FLAGS"] = (self.env.get("XLA_FLAGS", "") +
                                     f" --xla_force_host_platform_device_count={cpu_devices}").strip()
        self.timeout = timeout
        self.metric, self.direction = metric, direction
        self.launcher = launcher
        if name is not None:
            self.name = name

    @staticmethod
    def _is_multihost(strategy: Any) -> bool:
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
        raise ConfigError(f"Distributed(strategy={strategy!r}): pass a registered name or a "
                          f"plugins.strategies.Strategy instance")

    def controller(self) -> Controller:
        run = {"env": self.env, "timeout": self.timeout}
        if isinstance(self.strategy, str):
            run["strategy"] = self.strategy
        else:
            run["strategy"] = type(self.strategy).__name__
            run["strategy_pickle"] = cloudpickle.dumps(self.strategy)
        return OneTrial(TrialSpec(dict(self.hparams), gang=self.agents, run=run), self.metric, self.direction,
                        {"gang": self.agents, "strategy": run["strategy"]})

    def finish(self, result):
        trial = result.trials[0] if result.trials else None
        if trial is not None and trial.state in ("failed", "lost"):
            raise TrialFailed(f"the distributed run failed: {trial.error}\n\n{trial.traceback or ''}", result)
        return result

    def __repr__(self) -> str:
        return f"Distributed(strategy={self.strategy!r}, agents={self.agents})"
