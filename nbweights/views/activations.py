"""Views of one module's outputs (``watch(..., activations=True)``): the fraction of dead units and
of saturated outputs against step, and the probe input's feature maps as one mosaic PNG.

The output histogram and its percentile bands over time are the parameter views with
``of="activation"`` (:class:`~nbweights.views.histogram.HistogramView`,
:class:`~nbweights.views.distribution.DistributionView`).
"""
from __future__ import annotations

import bqplot
import ipywidgets as widgets
import numpy as np

from ..history.timeline import rows_through

from .colors import BLUE, DIVERGING_PALETTE, NONFINITE_INDEX, ORANGE, colorbar_html, diverging, encode_png, fit_factor
from .base import PictureView, View, ViewOptions
from .figures import figure, float32, nice_ticks, set_ticks, step_ticks, thin_indices
from .markup import png_image, set_png
from .filters import mosaic

#: Steps per curve at most (older steps thinned evenly, the latest kept).
MAX_POINTS = 160
#: Screen pixels a feature-map tile is scaled towards.
TILE_PIXELS = 48


class ActivationFractionsView(View):
    """Two curves against step: units that output exactly zero for the whole batch (dead), and
    outputs within 1 % of a tanh/sigmoid limit (saturated; NaN, not drawn, for other modules)."""

    css_class = "nbw-activation-fractions"
    has_figure = True

    def __init__(self, name: str, options: ViewOptions):
        self.name = name
        x_scale, y_scale = bqplot.LinearScale(), bqplot.LinearScale(min=0.0, max=1.0)
        self.lines = bqplot.Lines(scales={"x": x_scale, "y": y_scale}, colors=[BLUE, ORANGE], stroke_width=1.5,
                                  labels=["dead units", "saturated outputs"], display_legend=True)
        self.figure = figure([self.lines], x_scale, y_scale, f"{name} (dead: blue, saturated: orange)",
                             "step", "fraction", "nbw-activation-fractions-figure")
        set_ticks(self.figure.axes[1], nice_ticks(0.0, 1.0))
        super().__init__(self.figure)

    def draw(self, history, step: int | None) -> None:
        steps = history.steps(self.name, of="activation")
        last = rows_through(steps, step)
        if last < 1:
            return self.say("no output recorded yet: outputs are summarised from the first optimizer step")
        stats = history.stats(self.name, of="activation")
        keep = thin_indices(last, MAX_POINTS)
        curves = [stats["dead_fraction"][keep]]
        if np.isfinite(stats["saturated_fraction"][keep]).any():  # tanh/sigmoid only
            curves.append(stats["saturated_fraction"][keep])
        y = np.stack(curves)
        drawn = np.isfinite(y).all(axis=0)  # bqplot cannot place NaN: steps without a value are left out
        x, y = float32(steps[keep][drawn]), float32(y[:, drawn] if len(curves) > 1 else y[0, drawn])
        if not len(x):
            return self.say("no dead or saturated fraction measured yet")
        self.say(None)
        with self.lines.hold_sync():
            if len(self.lines.colors) != len(curves):
                self.lines.colors = [BLUE, ORANGE][: len(curves)]
                self.lines.labels = ["dead units", "saturated outputs"][: len(curves)]
            self.lines.x, self.lines.y = x, y
        set_ticks(self.figure.axes[0], step_ticks(x))


class FeatureMapsView(PictureView):
    """The probe input's feature maps after a module, one tile per channel, each tile on its own
    symmetric range (white is 0, red positive, blue negative)."""

    css_class = "nbw-feature-maps"

    def __init__(self, name: str, options: ViewOptions):
        self.image = png_image("nbw-feature-maps-image")
        super().__init__(name, [self.image])
        #: Tiles in the last mosaic drawn (one per recorded channel).
        self.tiles = 0

    @classmethod
    def applies(cls, history, name: str, options: ViewOptions) -> str | None:
        if name not in history.feature_map_names:
            return f"feature maps: call w.probe(x) to record the feature maps of {name}"
        return None

    def draw(self, history, step: int | None) -> None:
        try:
            picture = history.feature_maps(self.name, step)
        except LookupError:
            return self.say("no feature maps recorded at or before this step")
        maps = picture.array.reshape(-1, *picture.array.shape[-2:])  # [channels, h, w]
        magnitude = np.abs(np.nan_to_num(maps, nan=0.0, posinf=0.0, neginf=0.0)).max(axis=(1, 2), keepdims=True)
        tiles = diverging(maps / np.where(magnitude > 0, magnitude, 1.0), 1.0)
        image = mosaic(tiles, NONFINITE_INDEX)
        self.tiles = len(maps)
        zoom = fit_factor(max(maps.shape[1:]), TILE_PIXELS)
        self.say(None)
        set_png(self.image, encode_png(image, DIVERGING_PALETTE), image.shape[0] * zoom, image.shape[1] * zoom)
        self.show_text(f"{self.name}: {len(maps)} feature maps {maps.shape[1]}x{maps.shape[2]} of the probe input, "
                       f"step {picture.step}", colorbar_html(1.0, "each map over its own symmetric range"))
