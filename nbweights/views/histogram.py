"""Histogram of a parameter (or its gradient) at the current step, the first step drawn behind.

Drawn as filled step lines (x: the bin edges) rather than bqplot Bars: Bars in a figure that is
laid out while hidden (a Stack page not shown, a view showing its message) get a negative band
width, which Chromium logs as "<rect> attribute width: A negative value".
"""
from __future__ import annotations

import bqplot
import ipywidgets as widgets
import numpy as np

from .colors import BLUE, GREY, ORANGE
from .base import View, ViewOptions
from .figures import COUNT_FORMAT, figure, float32, log_ticks, nice_ticks, set_ticks

#: Bars of a log axis start here, so that empty bins draw nothing and one element still shows
#: (a positive count is at least 1: counts of a sample are scaled up, never down); its ticks
#: start at 1.
LOG_FLOOR = 0.5


class HistogramView(View):
    """Bars of the element counts per bin; ``of="grad"`` shows the gradient's histogram."""

    css_class = "nbw-histogram"
    has_figure = True

    def __init__(self, name: str, options: ViewOptions, of: str = "weight"):
        self.name, self.of = name, of
        what = {"grad": "gradient", "activation": "output"}.get(of, "value")
        self.x_scale = bqplot.LinearScale()
        self.linear_scale, self.log_scale = bqplot.LinearScale(min=0), bqplot.LogScale(min=LOG_FLOOR)
        scales = {"x": self.x_scale, "y": self.linear_scale}
        self.first = bqplot.Lines(scales=scales, colors=[GREY], fill="bottom", fill_colors=[GREY],
                                  fill_opacities=[0.35], stroke_width=0.5, interpolation="step-after")
        colour = ORANGE if of == "grad" else BLUE
        self.current = bqplot.Lines(scales=scales, colors=[colour], fill="bottom", fill_colors=[colour],
                                    fill_opacities=[0.6], stroke_width=1, interpolation="step-after")
        title = f"{name} ({ {'grad': 'gradient', 'activation': 'outputs'}.get(of, 'values') })"
        # padding_y=0: counts start at 0 (bqplot pads a scale's domain even when its min is set).
        self.figure = figure([self.first, self.current], self.x_scale, self.linear_scale, title,
                             f"{what} (grey: first step)", "count of elements", "nbw-histogram-figure",
                             y_format=COUNT_FORMAT, padding_y=0.0)
        self.log_toggle = widgets.Checkbox(value=False, description="log count", indent=False,
                                           layout=widgets.Layout(width="110px"))
        self.log_toggle.observe(self._set_log, "value")
        self.controls = [self.log_toggle]
        super().__init__(widgets.VBox([self.figure, self.log_toggle]))
        self._edges = {"first": None, "current": None}
        self._counts: dict[str, np.ndarray | None] = {"first": None, "current": None}
        #: (lowest edge, highest edge, largest count) of each line drawn: the axes' ticks.
        self._extent = {"first": None, "current": None}


    def _set_log(self, change) -> None:
        with self.lock:
            self._switch_scale(change)

    def _switch_scale(self, change) -> None:
        """Each line's heights and its scale change in one message, the axis's scale and ticks in
        another: a zero count or a 0 tick never meets the log scale (NaN in the drawn SVG)."""
        y_scale = self.log_scale if change["new"] else self.linear_scale
        for which, bars in (("first", self.first), ("current", self.current)):
            with bars.hold_sync():
                if self._counts[which] is not None:
                    bars.y = self._heights(self._counts[which])
                bars.scales = {"x": self.x_scale, "y": y_scale}
        with self.figure.axes[1].hold_sync():
            self.figure.axes[1].scale = y_scale
            if any(e is not None for e in self._extent.values()):
                self._set_ticks()
        self._edges = {"first": None, "current": None}
        self.redraw()

    def _heights(self, counts: np.ndarray) -> np.ndarray:
        """y of a step line: bin i's count (the last repeated to close it), floored on a log axis."""
        heights = np.maximum(counts, LOG_FLOOR) if self.log_toggle.value else counts
        return float32(np.append(heights, heights[-1:]))

    def _set_bars(self, bars: bqplot.Lines, which: str, edges: np.ndarray, counts: np.ndarray) -> None:
        """Step line over the bin edges."""
        x = None if self._edges[which] is not None and np.array_equal(self._edges[which], edges) else float32(edges)
        with bars.hold_sync():
            if x is not None:
                bars.x = x
                self._edges[which] = edges
            bars.y = self._heights(counts)
        self._counts[which] = counts
        finite = counts[np.isfinite(counts)]
        self._extent[which] = (float(edges[0]), float(edges[-1]), float(finite.max()) if finite.size else 0.0)

    def _set_ticks(self) -> None:
        """Round ticks over both lines: values on x; whole counts from 0 (log: powers of ten)."""
        extents = [e for e in self._extent.values() if e is not None]
        low, high = min(e[0] for e in extents), max(e[1] for e in extents)
        largest = max(e[2] for e in extents)
        counts = log_ticks(1.0, largest) if self.log_toggle.value else nice_ticks(0.0, largest, whole=True)
        x_axis, y_axis = self.figure.axes
        set_ticks(x_axis, nice_ticks(low, high))
        set_ticks(y_axis, counts)

    def draw(self, history, step: int | None) -> None:
        steps = history.steps(self.name, of=self.of)
        if len(steps) == 0 or (step is not None and step < steps[0]):
            return self.say(f"no {'gradient' if self.of == 'grad' else 'output'} recorded yet: it comes with the "
                            "first optimizer step" if self.of in ("grad", "activation") else "nothing recorded yet")
        self.say(None)
        if self._edges["first"] is None:
            self._set_bars(self.first, "first", *history.histogram(self.name, int(steps[0]), of=self.of))
        self._set_bars(self.current, "current", *history.histogram(self.name, step, of=self.of))
        self._set_ticks()
