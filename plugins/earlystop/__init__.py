"""Early-stopping rules, registered in the entry-point group ``lagom.earlystop``."""
from .base import EarlyStopper
from .median import MedianStopping
from .none import NoStopping

__all__ = ["EarlyStopper", "NoStopping", "MedianStopping"]
