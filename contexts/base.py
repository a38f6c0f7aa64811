"""What every context shares: validated options, and the hooks the kernel's runner calls."""
from __future__ import annotations

import secrets
from abc import ABC, abstractmethod
from typing import Any

from kernel.controller import DONE, Controller, TrialSpec
from kernel.direction import Direction


class ConfigError(ValueError):
    """A context built with a value it cannot use; the message names the fix."""


def check_int(name: str, value: Any, minimum: int, owner: str, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{owner}({name}={value!r}): {name} must be an integer >= {minimum}")


def check_pack(pack: Any, run: Any, strategy: Any, owner: str) -> int:
    """``pack``: how many trials of one shape may run as the lanes of one program (docs/packing.md)."""
    check_int("pack", pack, 1, owner)
    if pack > 1 and run is not None:
        raise ConfigError(f"{owner}(pack={pack}, strategy={strategy!r}): a pack runs its trials as lanes of "
                          f"one program in the agent's process; leave strategy out, or pack=1")
    return pack


def check_direction(direction: Any, owner: str) -> Direction:
    try:
        return Direction.of(direction)
    except ValueError:
        raise ConfigError(f"{owner}(direction={direction!r}): use 'max' or 'min'") from None


class OneTrial(Controller):
    """The controller of contexts that run the function once (Single, Distributed)."""

    def __init__(self, spec: TrialSpec, metric: str | None, direction: str, description: dict[str, Any]):
        self.spec, self.metric, self.direction = spec, metric, Direction.of(direction)
        self._description = dict(description, total_trials=1)
        self._issued = False

    def next_trial(self, trial_id: int):
        if self._issued:
            return DONE
        self._issued = True
        return self.spec

    def score(self, result: Any) -> float | None:
        if isinstance(result, dict):
            value = result.get(self.metric) if self.metric else None
            return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        return super().score(result)

    def describe(self) -> dict[str, Any]:
        return self._description


class Context(ABC):
    """A way to run the training function. Subclasses validate in ``__init__``."""

    provides: frozenset[str] = frozenset({"hparams", "reporter", "strategy"})
    launcher: Any = "local"
    workers: int = 1
    name: str = "experiment"
    study: Any = None
    max_time: float | None = None  # seconds for the whole experiment (kernel/deadlines.py)
    trial_timeout: float | None = None  # seconds one trial may run

    def _use_study(self, study: Any) -> None:
        """Give the function the study's ``dataset`` and ``model``, with nothing left out."""
        self.study = study
        if study is not None:
            study.validate()
            self.provides = self.provides | study.provides()

    def missing(self, name: str) -> str | None:
        """How to give the function ``name`` when this context does not (named in the error
        raised before anything starts), or None."""
        if name in ("dataset", "model") and self.study is not None:
            return self.study.missing(name)
        return None

    def check_resume(self, saved: "Context") -> dict[str, list] | None:
        """Raise ConfigError (or a ValueError) if a study saved as ``saved`` cannot be resumed
        with this context: a change its journal's replay could not honour. Returns what it
        changes that can be (``{setting: [before, now]}``: journaled, shown by status)."""

    def check_function(self, names: list[str]) -> None:
        """Raise ConfigError if the function, asking for ``names``, cannot run in this context:
        a packed one runs the function once for several trials, through ``strategy``."""
        pack = self.__dict__.get("pack", 1)
        if pack > 1 and "strategy" not in names:
            raise ConfigError(f"{type(self).__name__}(pack={pack}) runs {pack} trials as the lanes of one program "
                              f"through `strategy` (strategy.step, strategy.evaluate), but the function does not ask "
                              f"for strategy; write its step with it (docs/packing.md), or pack=1")

    @abstractmethod
    def controller(self) -> Controller:
        """A fresh controller for one run of this context."""

    def injector(self) -> Any:
        """An object shipped once to every agent whose ``provide(extra)`` returns more arguments
        for a trial (``dataset``, ``model``), or None. See kernel/injection.py."""
        return self.study.injector() if self.study is not None else None

    def default_url(self) -> str:
        """Where the kernel listens when the user names no address."""
        from transports import private_ipc_url

        return private_ipc_url()

    def finish(self, result: Any) -> Any:
        """Post-process the result before ``lagom`` returns it (default: as it is)."""
        return result


def inproc_url() -> str:
    return f"inproc://lagom-{secrets.token_hex(6)}"
