"""Which way a metric improves: the one place that knows whether bigger is better.

Kernel, optimizers, early stoppers, reports and ablation rankings all compare metrics; each
used to write its own ``a > b if direction == "max" else a < b``. A :class:`Direction` is a
string (``"max"`` or ``"min"``, so it journals and compares as one) with the comparisons on it.
"""
from __future__ import annotations

import enum
import math
from typing import Any, Callable, Iterable, TypeVar

T = TypeVar("T")


class Direction(enum.StrEnum):
    MAX = "max"
    MIN = "min"

    @classmethod
    def of(cls, value: Any) -> "Direction":
        """``"max"``/``"min"`` (``"maximize"``/``"minimize"`` too, as Optuna spells them) as a
        Direction; anything else raises ValueError."""
        if isinstance(value, str) and value.lower() in _ALIASES:
            return _ALIASES[value.lower()]
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"direction {value!r}: use 'max' or 'min'") from None

    @property
    def sign(self) -> float:
        """+1 for max, -1 for min: ``sign * value`` is larger for better values."""
        return 1.0 if self is Direction.MAX else -1.0

    @property
    def worst(self) -> float:
        """A value every real metric beats."""
        return -math.inf if self is Direction.MAX else math.inf

    def better(self, a: float, b: float) -> bool:
        """True when ``a`` is strictly better than ``b``."""
        return a > b if self is Direction.MAX else a < b

    def best(self, values: Iterable[float]) -> float:
        """The best of ``values`` (max or min)."""
        return max(values) if self is Direction.MAX else min(values)

    def ranked(self, items: Iterable[T], key: Callable[[T], float]) -> list[T]:
        """``items`` best first (a stable sort: ties keep their order)."""
        sign = self.sign
        return sorted(items, key=lambda item: -sign * key(item))


_ALIASES = {"max": Direction.MAX, "maximize": Direction.MAX, "min": Direction.MIN, "minimize": Direction.MIN}
