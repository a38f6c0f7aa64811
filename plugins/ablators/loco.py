"""LOCO: leave one component out. One trial per included feature, feature group, layer, layer
group and custom model generator, after the baseline."""
from __future__ import annotations

from .base import BASELINE, Ablator, Component


class LOCO(Ablator):
    def components(self) -> list[Component]:
        study = self.study
        out = [BASELINE]
        out += [Component("feature", f, features=(f,)) for f in study.features.included]
        out += [Component("features", name, features=tuple(members))
                for name, members in study.features.groups().items()]
        out += [Component("layer", name, layers=(name,)) for name in study.model.layers.included]
        out += [Component("group", name, layers=tuple(members))
                for name, members in study.model.layers.groups().items()]
        out += [Component("model", name, model=name) for name in study.model.custom_generators]
        return out
