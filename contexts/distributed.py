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

from kernel.controller import Controller, TrialSpec

from .base import ConfigError, Context, OneTrial, check_int
from .runs import check_gang, run_spec
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
        if agents is None:
            agents = 2 if check_gang(strategy, 1, owner) else 1
        check_gang(strategy, agents, owner)
        check_int("cpu_devices", cpu_devices, 1, owner, allow_none=True)
        check_int("timeout", timeout, 5, owner)
        if hparams is not None and not isinstance(hparams, dict):
            raise ConfigError(f"{owner}(hparams={hparams!r}): hparams must be a dict")
        self._use_study(study)
        self.strategy = strategy
        self.agents = agents
        self.workers = agents if start_agents else 0  # 0: agents started by hand join (listen=...)
        self.hparams = dict(hparams or {})
        self.run = run_spec(strategy, env or {}, cpu_devices, timeout)
        self.metric, self.direction = metric, direction
        self.launcher = launcher
        if name is not None:
            self.name = name

    def controller(self) -> Controller:
        return OneTrial(TrialSpec(dict(self.hparams), gang=self.agents, run=self.run), self.metric, self.direction,
                        {"gang": self.agents, "strategy": self.run["strategy"]})

    def finish(self, result):
        trial = result.trials[0] if result.trials else None
        if trial is not None and trial.state in ("failed", "lost"):
            raise TrialFailed(f"the distributed run failed: {trial.error}\n\n{trial.traceback or ''}", result)
        return result

    def __repr__(self) -> str:
        return f"Distributed(strategy={self.strategy!r}, agents={self.agents})"
