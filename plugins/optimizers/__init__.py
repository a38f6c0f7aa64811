"""Search algorithms, registered in the entry-point group ``lagom.optimizers``."""
from .asha import ASHA, Hyperband
from .base import FINISHED, WAIT, Decision, Observation, Optimizer, Proposer, Suggestion
from .grid_search import GridSearch
from .null import NullOptimizer
from .pbt import PBT
from .random_search import RandomSearch
from .tpe import TPE

__all__ = ["Optimizer", "Suggestion", "Observation", "Decision", "WAIT", "FINISHED",
           "RandomSearch", "GridSearch", "ASHA", "Hyperband", "TPE", "Proposer", "NullOptimizer", "PBT"]
