"""The contexts a training function runs in; each is a validated config that builds a controller.

    Single(hparams={...})                   one run, here
    HyperparameterSearch(searchspace, ...)  many trials on local or remote agents
"""
from .base import ConfigError, Context
from .hpo import HyperparameterSearch
from .searchspace import Searchspace, SearchspaceError
from .single import Single, TrialFailed

__all__ = ["Context", "ConfigError", "Single", "HyperparameterSearch", "Searchspace",
           "SearchspaceError", "TrialFailed"]
