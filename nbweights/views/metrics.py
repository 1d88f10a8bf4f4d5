"""Metrics: one small curve per value given to ``w.log(loss=..., accuracy=...)``, against step."""
from __future__ import annotations

import bqplot
import ipywidgets as widgets
import numpy as np

from .colors import BLUE
from .base import View, ViewOptions
from .figures import figure, finite_range, fit_title, float32, nice_ticks, set_ticks, step_ticks, thin_indices

#: Points per curve at most (older steps thinned evenly, the latest kept).
MAX_POINTS = 400
#: A curve of this many points or fewer gets a marker on each (one point alone draws no line).
MARKER_POINTS = 20


class MetricsView(View):
    css_class = "nbw-metrics"
    has_figure = True

    def __init__(self, options: ViewOptions):
        self.row = widgets.HBox([], layout=widgets.Layout(flex_flow="row wrap"))
        super().__init__(self.row)
        self.curves: dict[str, bqplot.Lines] = {}
        self.figures: dict[str, bqplot.Figure] = {}
        self._drawn_lengths: dict[str, tuple[int, float]] = {}

    def _curve(self, name: str) -> bqplot.Lines:
        if name not in self.curves:
            x_scale, y_scale = bqplot.LinearScale(), bqplot.LinearScale()
            lines = bqplot.Lines(scales={"x": x_scale, "y": y_scale}, colors=[BLUE], stroke_width=1.5,
                                 marker_size=24)
            fig = figure([lines], x_scale, y_scale, name, "step", name, "nbw-metric-figure")
            self.curves[name], self.figures[name] = lines, fig
            self.row.children = [*self.row.children, fig]
        return self.curves[name]

    def draw(self, history, step: int | None) -> None:
        if not history.metric_names:
            return self.say("no metrics yet: call w.log(loss=loss.item()) in the training loop")
        self.say(None)
        for name in history.metric_names:
            steps, values = history.metric(name)
            if self._drawn_lengths.get(name) == (len(steps), steps[-1]):
                continue  # unchanged since the last redraw: send nothing
            self._drawn_lengths[name] = (len(steps), steps[-1])
            keep = thin_indices(len(steps), MAX_POINTS)
            x, y = float32(steps[keep]), float32(values[keep])
            # A diverged run logs inf/NaN (or values beyond float32): bqplot cannot scale them.
            finite = np.isfinite(y)
            lines = self._curve(name)
            title = name if finite.all() else f"{name} ({int((~finite).sum())} NaN/inf not drawn)"
            if self.figures[name].title != title:
                self.figures[name].title = fit_title(title)
            x, y = x[finite], y[finite]
            if not len(y):
                continue
            marker = "circle" if len(steps) <= MARKER_POINTS else None
            with lines.hold_sync():
                lines.x, lines.y = x, y
                if lines.marker != marker:
                    lines.marker = marker
            x_axis, y_axis = self.figures[name].axes
            low, high = finite_range(y)
            _fit_scale(lines.scales["x"], float(x[0]), float(x[-1]), 1.0)
            _fit_scale(lines.scales["y"], low, high, 0.1 * abs(low) if low else 1.0)
            set_ticks(x_axis, step_ticks(x))
            set_ticks(y_axis, nice_ticks(low, high))


def _fit_scale(scale, low: float, high: float, margin: float) -> None:
    """Widen a scale around a single value (one point, or a flat curve), else leave it to the data:
    a scale whose domain is one value puts the point mid-axis and its tick at the end."""
    bounds = (low - margin, high + margin) if low == high else (None, None)
    if (scale.min, scale.max) != bounds:
        with scale.hold_sync():
            scale.min, scale.max = bounds
