"""``pmap`` (and ``sharded``): data parallelism with pmap's meaning, built on ``jax.jit``.

Parameters are replicated (``PartitionSpec()``), each batch is split along its first axis over a
one-axis mesh (``PartitionSpec("dp")``), and ``jax.jit`` compiles the step for the global batch:
XLA inserts the all-reduce of the gradients, so they are averaged across devices exactly as
``lax.pmean`` would, without ``jax.pmap``'s per-call cost (see DESIGN-notes.md).

``multihost`` is the same over every device of every process, after ``jax.distributed.initialize``.
"""
from __future__ import annotations

import os
from typing import Any, Callable

from .base import Strategy


class DataParallel(Strategy):
    """Over this process's local devices (``devices=`` takes a count to use fewer)."""

    name = "pmap"
    axis = "dp"

    def __init__(self, devices: int | None = None):
        self.devices = devices
        self._mesh = None

    def _all_devices(self) -> list:
        import jax

        devs = jax.local_devices()
        return devs[: self.devices] if self.devices else devs

    def setup(self) -> None:
        import numpy as np
        from jax.sharding import Mesh, NamedSharding, PartitionSpec

        devs = self._all_devices()
        self._mesh = Mesh(np.array(devs), (self.axis,))
        if len(devs) == 1:  # one device: plain placement, no sharding annotations to dispatch
            self._replicated = self._split = devs[0]
        else:
            self._replicated = NamedSharding(self._mesh, PartitionSpec())
            self._split = NamedSharding(self._mesh, PartitionSpec(self.axis))

    @property
    def mesh(self):
        if self._mesh is None:
            self.setup()
        return self._mesh

    @property
    def num_devices(self) -> int:
        return self.mesh.devices.size

    def replicate(self, tree: Any) -> Any:
        import jax

        self.mesh
        return jax.device_put(tree, self._replicated)

    def shard(self, batch: Any) -> Any:
        import jax

        self.mesh
        n = self.num_devices

        def put(x):
            if x.shape[0] % n:
                raise ValueError(f"a batch of {x.shape[0]} does not split over {n} devices; "
                                 f"use a batch size divisible by strategy.num_devices")
            return jax.device_put(x, self._split)

        return jax.tree_util.tree_map(put, batch)

    def step(self, fn: Callable, *, donate_argnums: tuple[int, ...] = ()) -> Callable:
        import jax

        # shardings come with the arguments
        return self.with_hparams(fn, lambda f: jax.jit(f, donate_argnums=donate_argnums), donate_argnums)

    def gather(self, tree: Any) -> Any:
        import jax

        return jax.device_get(tree)


class MultiHost(DataParallel):
    """Every device of every process. The kernel sends each agent its coordinator address,
    process count and process id; ``setup`` joins the runtime (``jax.distributed.initialize``)
    before anything else touches JAX, which is why a multihost run gets a fresh process."""

    name = "multihost"

    def __init__(self, coordinator: str | None = None, num_processes: int | None = None,
                 process_id: int | None = None, timeout_s: int = 60):
        super().__init__()
        self.coordinator = coordinator or os.environ.get("LAGOM_COORDINATOR")
        self.num_processes = num_processes or int(os.environ.get("LAGOM_NUM_PROCESSES", "1"))
        self.process_id = process_id if process_id is not None else int(os.environ.get("LAGOM_PROCESS_ID", "0"))
        self.timeout_s = timeout_s
        self._initialized = False

    def configure(self, run: dict[str, Any]) -> None:
        self.coordinator = run.get("coordinator", self.coordinator)
        self.num_processes = int(run.get("num_processes", 1))
        self.process_id = int(run.get("process_id", 0))
        self.timeout_s = int(run.get("timeout", self.timeout_s))

    def teardown(self) -> None:
        if self._initialized:
            import jax

            jax.distributed.shutdown()
            self._initialized = False

    def setup(self) -> None:
        import jax
        import numpy as np
        from jax.sharding import Mesh, NamedSharding, PartitionSpec

        if not self._initialized and self.num_processes > 1:
            jax.distributed.initialize(
                coordinator_address=self.coordinator, num_processes=self.num_processes,
                process_id=self.process_id, initialization_timeout=self.timeout_s,
                heartbeat_timeout_seconds=max(10, self.timeout_s // 3),  # a dead peer surfaces in seconds
            )
            self._initialized = True
        self._mesh = Mesh(np.array(jax.devices()), (self.axis,))
        self._replicated = NamedSharding(self._mesh, PartitionSpec())
        self._split = NamedSharding(self._mesh, PartitionSpec(self.axis))

    @property
    def process_index(self) -> int:
        return self.process_id

    @property
    def process_count(self) -> int:
        return self.num_processes

    def replicate(self, tree: Any) -> Any:
        import jax
        import numpy as np

        self.mesh
        return jax.tree_util.tree_map(
            lambda x: jax.make_array_from_callback(np.shape(x), self._replicated,
                                                   lambda idx, x=np.asarray(x): x[idx]), tree)

    def shard(self, batch: Any) -> Any:
        """``batch`` is this process's part of the global batch (each process feeds its devices)."""
        import jax

        self.mesh
        return jax.tree_util.tree_map(
            lambda x: jax.make_array_from_process_local_data(self._split, x), batch)

    def gather(self, tree: Any) -> Any:
        import jax
        import numpy as np

        def host(x):
            if getattr(x, "is_fully_addressable", True):
                return jax.device_get(x)
            if x.sharding.is_fully_replicated:
                return np.asarray(x.addressable_data(0))
            raise ValueError("gather() brings replicated values to the host; this one is sharded")

        return jax.tree_util.tree_map(host, tree)
