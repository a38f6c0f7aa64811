"""The contexts a training function runs in; each is a validated config that builds a controller.

    Single(hparams={...})                   one run, here
    HyperparameterSearch(searchspace, ...)  many trials on local or remote agents
    Distributed(strategy="pmap", agents=1)  one run over the devices of one or many agents
    Ablation(study, ablator="loco")         leave one feature or layer out at a time
"""
from .ablation import Ablation, AblationStudy
from .base import ConfigError, Context
from .distributed import Distributed
from .hpo import HyperparameterSearch
from .searchspace import Searchspace, SearchspaceError
from .single import Single, TrialFailed

__all__ = ["Context", "ConfigError", "Single", "HyperparameterSearch", "Distributed", "Ablation",
           "AblationStudy", "Searchspace",
           "SearchspaceError", "TrialFailed"]
