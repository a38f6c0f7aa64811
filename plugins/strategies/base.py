"""The strategy interface: what a training function needs to write its step once.

    state = strategy.replicate(state)            # the same state on every device
    step = strategy.step(train_step)             # compiled for this layout
    for batch in batches:
        state, metrics = step(state, strategy.shard(batch))   # one batch shard per device
    metrics = strategy.gather(metrics)           # to the host, as numpy

Inside ``train_step``, ``strategy.mean(grads)`` averages across devices. Where the compiler
already computes the step on the global batch (single device, jit with shardings) it returns its
argument; under literal ``jax.pmap`` it is ``lax.pmean``. So the same function gives the same
numbers under every strategy.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable


class Strategy(ABC):
    name = "strategy"

    def configure(self, run: dict[str, Any]) -> None:
        """Take the run's placement from the kernel, before ``setup`` (optional): for a run
        over several agents, ``run`` has ``coordinator``, ``num_processes``, ``process_id``
        and ``timeout``."""

    def setup(self) -> None:
        """Called once, in the process that trains, before the function runs (optional)."""

    def teardown(self) -> None:
        """Called once after the function returned and its final was sent (optional): leave a
        process group, release devices."""

    @property
    def num_devices(self) -> int:
        """Devices one step spans (all processes together)."""
        return 1

    @property
    def process_index(self) -> int:
        return 0

    @property
    def process_count(self) -> int:
        return 1

    @property
    def is_main(self) -> bool:
        """True in the process whose metrics the kernel reports (rank 0)."""
        return self.process_index == 0

    @abstractmethod
    def replicate(self, tree: Any) -> Any:
        """Place ``tree`` (parameters, optimizer state) on every device."""

    @abstractmethod
    def shard(self, batch: Any) -> Any:
        """Split this process's ``batch`` along its first axis, one part per local device."""

    @abstractmethod
    def step(self, fn: Callable, *, donate_argnums: tuple[int, ...] = ()) -> Callable:
        """Compile ``fn(state, batch, ...)`` for this layout."""

    def mean(self, tree: Any) -> Any:
        """Average ``tree`` across devices, inside a step."""
        return tree

    @abstractmethod
    def gather(self, tree: Any) -> Any:
        """Bring replicated values back to the host as numpy."""
