"""A weight's output units as points in 2-D: PCA of the kept picture, aligned step to step
(:mod:`nbweights.history.projection`), as a bqplot Scatter coloured by unit (or class)."""
from __future__ import annotations

import bqplot
import numpy as np

from .base import View, ViewOptions
from .figures import figure, fit_title, float32, nice_ticks, set_ticks


class ProjectionView(View):
    """Each output unit of a 2-D or convolution weight a point; the axes fixed over the steps
    drawn so far, so that the points' motion shows. t-SNE/UMAP of one step:
    ``w.history.projection(name, step, method="tsne")``."""

    css_class = "nbw-projection"
    kind = "picture"
    has_figure = True

    def __init__(self, name: str, options: ViewOptions):
        self.name, self.options = name, options
        x_scale, y_scale = bqplot.LinearScale(), bqplot.LinearScale()
        self.colors = bqplot.ColorScale(scheme="viridis")
        self.scatter = bqplot.Scatter(scales={"x": x_scale, "y": y_scale, "color": self.colors},
                                      default_size=24, stroke="#555", display_names=False)
        self.figure = figure([self.scatter], x_scale, y_scale, f"{name}: units by PCA", "PC 1", "PC 2",
                             "nbw-projection-figure")
        super().__init__(self.figure)
        self._units = -1

    @classmethod
    def applies(cls, history, name: str, options: ViewOptions) -> str | None:
        if not history.projectable(name):
            return f"projection: needs a 2-D or convolution weight with 3 or more units; {name} has shape " \
                   f"{tuple(history.shape(name))}"
        return None

    def draw(self, history, step: int | None) -> None:
        steps, series = history.projection_series(self.name)
        last = len(steps) if step is None else int(np.searchsorted(steps, step, side="right"))
        if last < 1:
            return self.say("no picture of this weight kept at or before this step")
        coords = series[last - 1]
        limit = float(np.abs(series[:last]).max()) * 1.05 or 1.0
        x, y = float32(coords[:, 0]), float32(coords[:, 1])
        self.say(None)
        with self.scatter.hold_sync():
            if len(coords) != self._units:
                self._units = len(coords)
                names = self.options.class_names
                labelled = names is not None and len(names) == len(coords)
                self.scatter.color = float32(np.arange(len(coords)))
                self.scatter.names = [str(n) for n in names] if labelled else [str(i) for i in range(len(coords))]
                self.scatter.display_names = labelled or len(coords) <= 16
            self.scatter.x, self.scatter.y = x, y
            for scale in (self.scatter.scales["x"], self.scatter.scales["y"]):
                if (scale.min, scale.max) != (-limit, limit):
                    scale.min, scale.max = -limit, limit
        self.figure.title = fit_title(f"{self.name}: {len(coords)} units by PCA, step {int(steps[last - 1])}")
        ticks = nice_ticks(-limit, limit)
        set_ticks(self.figure.axes[0], ticks)
        set_ticks(self.figure.axes[1], ticks)
