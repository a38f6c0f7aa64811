"""Agents as Ray actors (``launcher="ray"``): one long-running actor per agent, on a local Ray
or an existing cluster, each with the resources it asks for.

Each actor runs the agent (``kernel.agent.Agent``) in its own worker process and connects back to
the kernel with the token, which travels as an argument of the actor's method (through Ray's
object store, never on a command line). When an actor dies (killed, its node lost, its process
crashed) its task fails at once and the kernel is told, as fast as a local agent's exit; its
trial runs again elsewhere. A launcher that cannot start its agents says why before anything
waits: Ray not reachable, or a cluster without the resources ``count`` agents need.

On a cluster the kernel must be reachable from the nodes: ``lagom(..., listen="tcp://0.0.0.0:7777")``,
and this package importable there (installed, or ``runtime_env={"py_modules": [...]}``).
"""
from __future__ import annotations

import os
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

from .base import Exit, Launcher, LauncherError, OnExit


class _AgentActor:
    """What runs inside each Ray actor: one agent, until the kernel says shutdown."""

    def run(self, url: str, token: str, agent_id: str, insecure: bool) -> int:
        from kernel.agent import Agent

        return Agent(url, token, agent_id=agent_id, insecure=insecure).run()  # its process is Ray's

    def pid(self) -> int:
        return os.getpid()


class RayLauncher(Launcher):
    """``address``: an existing cluster (``"auto"``, ``"ray://head:10001"``), or None for a local
    Ray started here (and shut down at the end); ``resources_per_agent``: what each actor
    reserves, e.g. ``{"CPU": 1, "GPU": 1}`` or a custom resource; ``runtime_env``: Ray's (by
    default the driver's ``sys.path`` as PYTHONPATH, so the function's modules import)."""

    def __init__(self, address: str | None = None, resources_per_agent: dict[str, float] | None = None,
                 runtime_env: dict[str, Any] | None = None, init_kwargs: dict[str, Any] | None = None):
        self.address, self.runtime_env, self.init_kwargs = address, runtime_env, dict(init_kwargs or {})
        self.resources = dict(resources_per_agent or {"CPU": 1})
        self.actors: dict[str, Any] = {}
        self._refs: dict[Any, str] = {}
        self._stopping = threading.Event()
        self._own_ray = False
        self._thread: threading.Thread | None = None

    def start(self, *, url: str, token: str, count: int, log_dir: Path, on_exit: OnExit,
              insecure: bool = False) -> list[str]:
        ray = self._connect()
        try:
            self._check_resources(ray, count)
        except LauncherError:
            self.stop()  # a Ray started here for nothing is shut down again
            raise
        options = {"num_cpus": self.resources.get("CPU", 0), "num_gpus": self.resources.get("GPU", 0),
                   "resources": {k: v for k, v in self.resources.items() if k not in ("CPU", "GPU")} or None,
                   "max_restarts": 0, "runtime_env": self._runtime_env()}
        actor_class = ray.remote(_AgentActor).options(**{k: v for k, v in options.items() if v is not None})
        prefix = f"ray-{uuid.uuid4().hex[:6]}"
        for i in range(count):
            agent_id = f"{prefix}-{i}"
            actor = actor_class.remote()
            self.actors[agent_id] = actor
            self._refs[actor.run.remote(url, token, agent_id, insecure)] = agent_id
        self._thread = threading.Thread(target=self._watch, args=(ray, on_exit), name="lagom-ray", daemon=True)
        self._thread.start()
        return list(self.actors)

    def _connect(self):
        try:
            import ray
        except ImportError:
            raise LauncherError('launcher="ray" needs Ray: pip install "lagom-kernel[ray]"') from None
        if not ray.is_initialized():
            kwargs = {"include_dashboard": False, "log_to_driver": False, **self.init_kwargs}
            try:
                ray.init(address=self.address, **kwargs)
            except Exception as exc:  # noqa: BLE001 (Ray raises many kinds; each one means "not reachable")
                where = self.address or "a local Ray"
                raise LauncherError(f"cannot start agents on Ray: {where} is not reachable "
                                    f"({type(exc).__name__}: {str(exc).splitlines()[0][:300]})") from None
            self._own_ray = True
        return ray

    def _check_resources(self, ray, count: int) -> None:
        """Fail now, not after waiting forever for actors a cluster can never place."""
        total = ray.cluster_resources()
        for name, each in self.resources.items():
            if each and total.get(name, 0) < count * each:
                raise LauncherError(f"the Ray cluster has {total.get(name, 0):g} {name} but {count} agents need "
                                    f"{count * each:g} ({each:g} each, resources_per_agent={self.resources}); "
                                    f"start fewer workers or ask for less")

    def _runtime_env(self) -> dict[str, Any]:
        if self.runtime_env is not None:
            return self.runtime_env
        return {"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}}

    def _watch(self, ray, on_exit: OnExit) -> None:
        """Each actor's task ends when its agent leaves, or fails the moment its actor dies."""
        pending = list(self._refs)
        while pending and not self._stopping.is_set():
            # the timeout only lets this thread see a stop; an actor's end returns at once
            done, pending = ray.wait(pending, num_returns=1, timeout=1.0)
            for ref in done:
                agent_id = self._refs[ref]
                try:
                    detail: Exit | str = Exit(ray.get(ref))
                except Exception as exc:  # noqa: BLE001 (RayActorError, a worker crash, a lost node)
                    detail = f"its Ray actor died ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
                if not self._stopping.is_set():
                    on_exit(agent_id, detail)

    def pids(self) -> dict[str, int]:
        import ray

        return {agent_id: ray.get(actor.pid.remote()) for agent_id, actor in self.actors.items()}

    def stop(self, timeout: float = 5.0) -> None:
        """Let the actors end (the agents were told to shut down), end those that did not, and
        drop every handle before a Ray started here is shut down (a handle outliving its Ray
        makes Ray's core worker end this process a minute later)."""
        if self._thread is not None and self._refs:
            import ray

            ray.wait(list(self._refs), num_returns=len(self._refs), timeout=timeout)
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
        try:
            import ray

            for actor in self.actors.values():
                ray.kill(actor)
        except Exception:  # noqa: BLE001 (a cluster gone already has nothing left to end)
            pass
        self.actors, self._refs, self._thread = {}, {}, None
        if self._own_ray:
            import gc

            import ray

            gc.collect()
            ray.shutdown()
        self._own_ray = False
