"""Metrics: one small curve per value given to ``w.log(loss=..., accuracy=...)``, against step."""
from __future__ import annotations

import bqplot
import ipywidgets as widgets

from ..colors import BLUE
from . import View, ViewOptions, array_bytes, figure, float32, thin_indices

#: Points per curve at most (older steps thinned evenly, the latest kept).
MAX_POINTS = 400


class MetricsView(View):
    css_class = "nbw-metrics"

    def __init__(self, options: ViewOptions):
        self.row = widgets.HBox([], layout=widgets.Layout(flex_flow="row wrap"))
        super().__init__(self.row)
        self.curves: dict[str, bqplot.Lines] = {}
        self._drawn_lengths: dict[str, tuple[int, float]] = {}

    def _curve(self, name: str) -> bqplot.Lines:
        if name not in self.curves:
            x_scale, y_scale = bqplot.LinearScale(), bqplot.LinearScale()
            lines = bqplot.Lines(scales={"x": x_scale, "y": y_scale}, colors=[BLUE], stroke_width=1.5)
            fig = figure([lines], x_scale, y_scale, name, "step", name, "nbw-metric-figure")
            self.curves[name] = lines
            self.row.children = [*self.row.children, fig]
        return self.curves[name]

    def draw(self, history, step: int | None) -> int:
        if not history.metric_names:
            return self.say("no metrics yet: call w.log(loss=loss.item()) in the training loop")
        sent = self.say(None)
        for name in history.metric_names:
            steps, values = history.metric(name)
            if self._drawn_lengths.get(name) == (len(steps), steps[-1]):
                continue  # unchanged since the last redraw: send nothing
            self._drawn_lengths[name] = (len(steps), steps[-1])
            keep = thin_indices(len(steps), MAX_POINTS)
            x, y = float32(steps[keep]), float32(values[keep])
            lines = self._curve(name)
            with lines.hold_sync():
                lines.x, lines.y = x, y
            sent += array_bytes(x, y)
        return sent
