"""Ways to start agents, registered in the entry-point group ``lagom.launchers``."""
from .base import Launcher

__all__ = ["Launcher"]
