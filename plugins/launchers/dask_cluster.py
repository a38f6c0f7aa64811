"""Agents as long-running tasks on a dask.distributed cluster (``launcher="dask"``): one task per
agent, each holding a worker thread (and the resources it asks for) until the kernel says
shutdown.

The token travels as a task argument (through Dask's scheduler, never on a command line). A
task that fails or is cancelled tells the kernel at once. A worker that dies is another matter:
Dask runs its task again elsewhere (a fresh agent, as the local launcher's replacement is), so
the kernel finds the lost agent itself: when it next sends to it (ZeroMQ knows the peer is
gone), at worst by its silence after ``agent_timeout``; its trial runs again. A launcher that
cannot start its agents says why at once: no scheduler at the address, or fewer workers (or
resources) than agents. The LocalCluster made here starts its workers with ``spawn``, which
imports the main script again in each: a script needs ``if __name__ == "__main__":``.
"""
from __future__ import annotations

import os
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

from .base import Exit, Launcher, LauncherError, OnExit


def _run_agent(url: str, token: str, agent_id: str, insecure: bool, path: list[str]) -> int:
    for entry in reversed(path):  # the driver's modules (the training function's) import here too
        if entry not in sys.path:
            sys.path.insert(0, entry)
    from kernel.agent import Agent

    return Agent(url, token, agent_id=agent_id, insecure=insecure).run()  # the process is Dask's


class DaskLauncher(Launcher):
    """``client``: a ``distributed.Client`` to use; or ``address`` of a scheduler to connect to;
    or neither, for a ``LocalCluster`` of one single-threaded worker process per agent, made here
    (and closed at the end). ``resources_per_agent``: worker resources each task needs (e.g.
    ``{"GPU": 1}``, as the workers declare them with ``--resources``)."""

    def __init__(self, client: Any = None, address: str | None = None,
                 resources_per_agent: dict[str, float] | None = None):
        self.client, self.address, self.resources = client, address, dict(resources_per_agent or {})
        self.futures: dict[str, Any] = {}
        self._stopping = threading.Event()
        self._own: list[Any] = []

    def start(self, *, url: str, token: str, count: int, log_dir: Path, on_exit: OnExit,
              insecure: bool = False) -> list[str]:
        client = self._connect(count)
        self._check_workers(client, count)
        prefix = f"dask-{uuid.uuid4().hex[:6]}"
        path = [p for p in sys.path if p]
        for i in range(count):
            agent_id = f"{prefix}-{i}"
            future = client.submit(_run_agent, url, token, agent_id, insecure, path, key=f"lagom-agent-{agent_id}",
                                   pure=False, resources=self.resources or None)
            future.add_done_callback(lambda f, agent_id=agent_id: self._ended(agent_id, f, on_exit))
            self.futures[agent_id] = future
        return list(self.futures)

    def _connect(self, count: int):
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise LauncherError('launcher="dask" needs dask.distributed: pip install "lagom-kernel[dask]"') from None
        if self.client is not None:
            return self.client
        try:
            if self.address is None:
                try:
                    cluster = LocalCluster(n_workers=count, threads_per_worker=1, processes=True,
                                           dashboard_address=None, resources=self.resources or None)
                except RuntimeError as exc:  # "Nanny failed to start": its worker process died starting
                    raise LauncherError(
                        f"Dask's local workers could not start ({exc}); each imports the main script again, "
                        f"so a script needs its lagom() call under  if __name__ == \"__main__\":") from None
                self._own.append(cluster)
                self.client = Client(cluster)
            else:
                self.client = Client(self.address, timeout=10)
        except (OSError, TimeoutError) as exc:
            raise LauncherError(f"cannot start agents on Dask: no scheduler at {self.address or 'a LocalCluster'} "
                                f"({type(exc).__name__}: {str(exc).splitlines()[0][:300]})") from None
        self._own.append(self.client)
        return self.client

    def _check_workers(self, client: Any, count: int) -> None:
        workers = client.scheduler_info().get("workers", {}).values()
        threads = sum(w.get("nthreads", 1) for w in workers)
        if threads < count:
            raise LauncherError(f"the Dask cluster has {threads} worker thread(s) but {count} agents each hold one "
                                f"for the whole experiment; add workers or start fewer agents")
        for name, each in self.resources.items():
            have = sum(w.get("resources", {}).get(name, 0) for w in workers)
            if have < count * each:
                raise LauncherError(f"the Dask workers have {have:g} {name} but {count} agents need {count * each:g} "
                                    f"(resources_per_agent={self.resources}); start workers with --resources")

    def _ended(self, agent_id: str, future: Any, on_exit: OnExit) -> None:
        if self._stopping.is_set():
            return
        try:
            exc = None if future.cancelled() else future.exception()
            detail: Exit | str = "its Dask task was cancelled" if future.cancelled() else (
                Exit(future.result()) if exc is None else
                f"its Dask task failed ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})")
        except Exception as err:  # noqa: BLE001 (cancelled while being read: FutureCancelledError)
            detail = f"its Dask task ended ({type(err).__name__})"
        if not self._stopping.is_set():
            on_exit(agent_id, detail)

    def worker_pids(self) -> dict[str, int]:
        """The process id of each worker (to kill one, in a test of the real fault)."""
        return self.client.run(os.getpid)

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self.futures:
            from distributed import wait

            try:
                wait(list(self.futures.values()), timeout=timeout)  # they were told to shut down
            except Exception:  # noqa: BLE001 (a timeout: what is left is cancelled)
                pass
            for future in self.futures.values():
                future.cancel()
        for owned in reversed(self._own):
            try:
                owned.close()
            except Exception:  # noqa: BLE001
                pass
        if self._own:
            self.client = None  # made here, closed here: the next experiment makes its own
        self._own.clear()
        self.futures = {}
