"""Ways to start agents, registered in the entry-point group ``lagom.launchers``."""
from .base import Launcher
from .null import NullLauncher

__all__ = ["Launcher", "NullLauncher"]
