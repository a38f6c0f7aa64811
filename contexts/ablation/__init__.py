"""Ablation studies: leave one feature, layer, layer group or model variant out at a time."""
from .context import Ablation
from .generators import DatasetGenerator, LayerSpec, ModelGenerator
from .study import AblationStudy

__all__ = ["Ablation", "AblationStudy", "DatasetGenerator", "ModelGenerator", "LayerSpec"]
