"""The ablator interface: which components of a study to leave out, one trial each.

An ablator reads the study (its included features, layers, layer groups and custom model
generators) and lists the trials as :class:`Component` values, the baseline (nothing left out)
first. The context turns each component into a trial; the agents' generators build the data set
and the model without it. ``count`` and ``next_trial`` have defaults over ``components``, so an
ablator implements one method.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Component:
    kind: str  # "baseline", "feature", "features" (a group), "layer", "group", "model", or a plugin's own
    name: str
    features: tuple[str, ...] = ()  # features left out of the data set
    layers: tuple[str, ...] = ()    # layers left out of the model
    model: str | None = None        # a custom model generator, by name
    hparams: tuple[tuple[str, Any], ...] = ()  # hyperparameters this trial overrides (a plugin's kind)

    @property
    def label(self) -> str:
        return "baseline" if self.kind == "baseline" else f"{self.kind} {self.name}"

    def to_extra(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "features": list(self.features),
                "layers": list(self.layers), "model": self.model}  # hparams travel as the trial's own


BASELINE = Component("baseline", "baseline")


class Ablator(ABC):
    study: Any = None

    def setup(self, study: Any) -> None:
        self.study = study
        self._queue: list[Component] | None = None

    @abstractmethod
    def components(self) -> list[Component]:
        """Every trial of the study, the baseline first."""

    def count(self) -> int:
        return len(self.components())

    def next_trial(self) -> Component | None:
        """The next component to leave out, or None when every one has been issued."""
        if self._queue is None:
            self._queue = list(self.components())
        return self._queue.pop(0) if self._queue else None
