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

A step that asks for ``hparams`` (``def train_step(state, batch, hparams)``) gets the trial's
hyperparameters, the numeric ones that do not change shapes (a search space's DOUBLEs, by
default) as traced arguments: one compiled program then serves every trial of a shape, since
a learning rate closed over by the step would be baked into its program as a constant, and a
new value would compile it again (docs/compile.md). The others (a width, a depth, a choice)
reach it as plain Python values, as they must to shape the program.
"""
from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from typing import Any, Callable

from transports.codec import traced_of

from . import checkpoint


def asks_hparams(fn: Callable) -> bool:
    """Whether a step takes the trial's hyperparameters (a parameter named ``hparams``)."""
    try:
        return "hparams" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


class Strategy(ABC):
    name = "strategy"
    lanes = 1  # trials one step trains at once (``packed``: one per lane)
    hparams: dict[str, Any] = {}  # this trial's hyperparameters, set by the agent (``bind``)
    traced: frozenset[str] = frozenset()  # those a step that asks for ``hparams`` gets traced

    def bind(self, hparams: dict[str, Any], traced: list[str] | None = None) -> None:
        """The trial about to run: its hyperparameters, and the names a step takes as traced
        arguments (None: those whose value is a float)."""
        self.hparams = dict(hparams)
        self.traced = frozenset(traced_of(traced, hparams))

    def with_hparams(self, fn: Callable, compile: Callable[[Callable], Callable], key: Any = ()) -> Callable:
        """``compile(fn)``, or, when ``fn`` asks for ``hparams``, a compiled step given them:
        the traced ones as arguments (placed as ``replicate`` places state), the rest fixed.

        A step defined at a module's top level is compiled once per shape (its fixed
        hyperparameters and ``key``) for every trial this process runs: later trials trace
        nothing. One defined inside the training function is a new function each trial, so
        it is traced anew and its program comes from JAX's persistent cache."""
        if not asks_hparams(fn):
            return compile(fn)
        fixed = {k: v for k, v in self.hparams.items() if k not in self.traced}
        traced = self.replicate({k: v for k, v in self.hparams.items() if k in self.traced})
        shared = "<locals>" not in getattr(fn, "__qualname__", "<locals>")  # lives as long as the process
        memo = (fn, repr(sorted(fixed.items())), key)
        compiled = self._compiled.get(memo) if shared else None
        if compiled is None:
            def with_traced(*args: Any, traced_hparams: dict[str, Any], **kwargs: Any) -> Any:
                return fn(*args, hparams={**fixed, **traced_hparams}, **kwargs)

            compiled = compile(with_traced)
            if shared:
                self._compiled[memo] = compiled

        def step(*args: Any, **kwargs: Any) -> Any:
            return compiled(*args, traced_hparams=traced, **kwargs)

        return step

    @property
    def _compiled(self) -> dict:
        """Steps compiled in this process, by (function, fixed hyperparameters, layout)."""
        memo = self.__dict__.get("_compiled_steps")
        if memo is None:
            memo = self.__dict__["_compiled_steps"] = {}
        return memo

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

    def init(self, make: Callable[[dict[str, Any]], Any]) -> Any:
        """The starting state, ``make(hparams)``, placed as ``replicate`` places it. Under
        ``packed`` each lane is made from its own trial's hyperparameters (its own seed, say),
        as that trial would start alone."""
        return self.replicate(make(self.hparams))

    def evaluate(self, fn: Callable) -> Callable:
        """``fn(state, *shared)`` compiled to read a trial's state (an accuracy on held-out
        data): one value per lane under ``packed``, one value otherwise."""
        import jax

        return jax.jit(fn)

    def save(self, state: Any, reporter: Any, **extras: Any) -> None:
        """Save ``state`` in the trial's checkpoint folder, with ``extras`` (numbers: the epoch
        reached, say), for a trial that continues it (``restore``). Under ``packed`` each lane
        goes to its own trial's folder."""
        if not self.is_main:
            return
        tree = self.gather(state)
        for lane, folder in enumerate(reporter.checkpoint_dirs):
            if folder is not None:
                checkpoint.write(folder, self.lane_of(tree, lane), extras)

    def restore(self, state: Any, reporter: Any) -> tuple[Any, dict[str, Any]]:
        """``state`` continued from what the trial's parent saved (an ASHA promotion), and the
        extras saved with it; ``state`` itself and ``{}`` for a trial that starts afresh."""
        folder = reporter.parent_checkpoint_dirs[0]
        saved = checkpoint.read(folder, state) if folder else None
        return (state, {}) if saved is None else (self.replicate(saved[0]), saved[1])

    def lane_of(self, tree: Any, lane: int) -> Any:
        """One trial's part of a gathered ``tree`` (the whole tree, but under ``packed``)."""
        return tree

    def mean(self, tree: Any) -> Any:
        """Average ``tree`` across devices, inside a step."""
        return tree

    @abstractmethod
    def gather(self, tree: Any) -> Any:
        """Bring replicated values back to the host as numpy."""
