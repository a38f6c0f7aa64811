"""Ways to start agents, registered in the entry-point group ``lagom.launchers``."""
from .base import Exit, Launcher, LauncherError
from .null import NullLauncher

__all__ = ["Exit", "Launcher", "LauncherError", "NullLauncher"]
