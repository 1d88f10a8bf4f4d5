"""Which views the dashboard builds for each kind of entry: adding a view is one line here.

An entry is a parameter (``"fc.weight"``) or a module (``"activation: fc"``: its outputs, with
``watch(..., activations=True)``, and its probe feature maps, with ``w.probe(x)``). Each entry's
views are built only when it is shown, and only those whose ``applies`` says yes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .activations import ActivationFractionsView, FeatureMapsView
from .attention import AttentionView
from .attributions import AttributionsView
from .base import View, ViewOptions
from .class_images import ClassImagesView
from .distribution import DistributionView
from .filters import FilterMosaicView
from .heatmap import HeatmapView
from .histogram import HistogramView
from .projection import ProjectionView
from .trajectories import TrajectoriesView


@dataclass(frozen=True)
class ViewSpec:
    """A view class with its constructor's keywords, and which recorded group it reads."""

    view: type[View]
    keywords: dict[str, Any] = field(default_factory=dict)
    #: "weight" views read parameters; "activation" views a module's recorded outputs;
    #: "feature_maps" views its probe feature maps.
    reads: str = "weight"

    @property
    def kind(self) -> str:
        return self.view.kind

    def applies(self, history, name: str, options: ViewOptions) -> str | None:
        if self.reads == "activation" and name not in history.names_of("activation"):
            return f"outputs of {name} are not summarised: watch(..., activations=True)"
        if self.reads == "feature_maps" and name not in history.feature_map_names:
            return f"feature maps: call w.probe(x) to record the feature maps of {name}"
        return self.view.applies(history, name, options)

    def build(self, name: str, options: ViewOptions) -> View:
        return self.view(name, options, **self.keywords)


#: Views of a parameter: curves first, then pictures.
PARAMETER_VIEWS = (
    ViewSpec(HistogramView), ViewSpec(HistogramView, {"of": "grad"}), ViewSpec(DistributionView),
    ViewSpec(HeatmapView), ViewSpec(FilterMosaicView), ViewSpec(ClassImagesView), ViewSpec(TrajectoriesView),
    ViewSpec(ProjectionView),
)
#: Views of a module: its outputs' histogram, bands and dead/saturated fractions; its feature maps.
MODULE_VIEWS = (
    ViewSpec(HistogramView, {"of": "activation"}, reads="activation"),
    ViewSpec(DistributionView, {"of": "activation"}, reads="activation"),
    ViewSpec(ActivationFractionsView, reads="activation"),
    ViewSpec(FeatureMapsView, reads="feature_maps"),
)
#: Views of an attention module's maps on the probe sequence (``w.probe(x)``).
ATTENTION_VIEWS = (ViewSpec(AttentionView),)
#: Views of the probe's attributions (``w.probe(x, attributions=True)``).
ATTRIBUTION_VIEWS = (ViewSpec(AttributionsView),)
