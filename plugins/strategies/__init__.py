"""Distribution strategies, registered in the entry-point group ``lagom.strategies``.

A training function writes its step once against this small interface; the strategy decides
where it runs. See base.py for the interface and DESIGN-notes.md in this folder for why the
``pmap`` strategy is built on ``jax.jit`` with shardings rather than on ``jax.pmap``.
"""
from .base import Strategy
from .data_parallel import DataParallel, MultiHost
from .literal_pmap import LiteralPmap
from .packed import Packed
from .single import SingleDevice

__all__ = ["Strategy", "SingleDevice", "DataParallel", "MultiHost", "LiteralPmap", "Packed"]
