"""Ablators, registered in the entry-point group ``lagom.ablators``."""
from .base import Ablator, Component
from .loco import LOCO

__all__ = ["Ablator", "Component", "LOCO"]
