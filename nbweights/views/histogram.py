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
    """Bars of the element counts per bin; ``of="grad"`` shows the gradient's histogram.

    "log count" shows a second pair of lines on a log scale, with its own y axis, and hides the
    first: no mark or axis ever changes scale. bqplot's Axis takes a new scale's view without
    giving it the plot's height (ticks stacked at the top, NaN positions until the figure is laid
    out again), and a mark redraws with the scale it still has (zero counts on a log scale).
    """

    css_class = "nbw-histogram"
    has_figure = True

    def __init__(self, name: str, options: ViewOptions, of: str = "weight"):
        self.name, self.of = name, of
        what = {"grad": "gradient", "activation": "output"}.get(of, "value")
        self.x_scale = bqplot.LinearScale()
        # max pinned: a log scale's domain from no data is [0, 1], NaN for every tick.
        self.linear_scale, self.log_scale = bqplot.LinearScale(min=0), bqplot.LogScale(min=LOG_FLOOR, max=1.0)
        colour = ORANGE if of == "grad" else BLUE
        self._lines = {scale: self._pair(scale, colour, visible=scale is self.linear_scale)
                       for scale in (self.linear_scale, self.log_scale)}
        title = f"{name} ({ {'grad': 'gradient', 'activation': 'outputs'}.get(of, 'values') })"
        # padding_y=0: counts start at 0 (bqplot pads a scale's domain even when its min is set).
        self.figure = figure([*self._lines[self.linear_scale], *self._lines[self.log_scale]], self.x_scale,
                             self.linear_scale, title, f"{what} (grey: first step)", "count of elements",
                             "nbw-histogram-figure", y_format=COUNT_FORMAT, padding_y=0.0)
        linear_axis = self.figure.axes[1]
        log_axis = bqplot.Axis(**{k: getattr(linear_axis, k) for k in ("label", "side", "num_ticks", "tick_format",
                                                                       "label_offset")},
                               scale=self.log_scale, visible=False)
        self.figure.axes = [*self.figure.axes, log_axis]
        self._y_axes = {self.linear_scale: linear_axis, self.log_scale: log_axis}
        self.log_toggle = widgets.Checkbox(value=False, description="log count", indent=False,
                                           layout=widgets.Layout(width="110px"))
        self.log_toggle.observe(self._set_log, "value")
        self.controls = [self.log_toggle]
        super().__init__(widgets.VBox([self.figure, self.log_toggle]))
        self._edges = {"first": None, "current": None}
        self._counts: dict[str, np.ndarray | None] = {"first": None, "current": None}
        #: (lowest edge, highest edge, largest count) of each line drawn: the axes' ticks.
        self._extent = {"first": None, "current": None}

    def _pair(self, scale, colour: str, visible: bool) -> tuple[bqplot.Lines, bqplot.Lines]:
        """The first step's grey line behind the current step's coloured one, on ``scale``."""
        scales = {"x": self.x_scale, "y": scale}
        first = bqplot.Lines(scales=scales, colors=[GREY], fill="bottom", fill_colors=[GREY], fill_opacities=[0.35],
                             stroke_width=0.5, interpolation="step-after", visible=visible)
        current = bqplot.Lines(scales=scales, colors=[colour], fill="bottom", fill_colors=[colour], fill_opacities=[0.6],
                               stroke_width=1, interpolation="step-after", visible=visible)
        return first, current

    @property
    def y_scale(self):
        """The scale shown: log while "log count" is on."""
        return self.log_scale if self.log_toggle.value else self.linear_scale

    @property
    def first(self) -> bqplot.Lines:
        """The first step's line on the shown scale."""
        return self._lines[self.y_scale][0]

    @property
    def current(self) -> bqplot.Lines:
        """The drawn step's line on the shown scale."""
        return self._lines[self.y_scale][1]

    def _set_log(self, _change) -> None:
        with self.lock:
            self._switch_scale()

    def _switch_scale(self) -> None:
        """Draw the lines of the chosen scale, then show them and their axis, hiding the others."""
        self._edges = {"first": None, "current": None}
        self.redraw()
        shown = self.y_scale
        for scale, lines in self._lines.items():
            for line in lines:
                line.visible = scale is shown
            self._y_axes[scale].visible = scale is shown

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
        """Round ticks over both lines: values on x; whole counts from 0 (log: powers of ten, the
        log scale's top at the largest count, as a linear scale's is from the data)."""
        extents = [e for e in self._extent.values() if e is not None]
        low, high = min(e[0] for e in extents), max(e[1] for e in extents)
        largest = max(e[2] for e in extents)
        if self.log_toggle.value:
            counts = log_ticks(1.0, largest)
            if self.log_scale.max != max(largest, 1.0):
                self.log_scale.max = max(largest, 1.0)
        else:
            counts = nice_ticks(0.0, largest, whole=True)
        set_ticks(self.figure.axes[0], nice_ticks(low, high))
        set_ticks(self._y_axes[self.y_scale], counts)

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
