"""Search algorithms, registered in the entry-point group ``lagom.optimizers``."""
from .base import FINISHED, WAIT, Decision, Observation, Optimizer, Suggestion

__all__ = ["Optimizer", "Suggestion", "Observation", "Decision", "WAIT", "FINISHED"]
