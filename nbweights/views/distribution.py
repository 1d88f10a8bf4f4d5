"""Distribution over time: percentile bands of a parameter against step (TensorBoard's
"distributions"), computed from the recorded histograms by interpolating their CDF."""
from __future__ import annotations

import bqplot
import numpy as np

from ..history.timeline import rows_through

from .colors import BLUE
from .base import View, ViewOptions
from .figures import figure, finite_range, float32, nice_ticks, set_ticks, step_ticks, thin_indices

#: Lines drawn, bottom to top; 0 and 100 are the exact recorded min and max.
PERCENTILES = (0, 7, 16, 50, 84, 93, 100)
#: Most steps drawn: older history is thinned evenly, the latest step always kept.
MAX_POINTS = 160


def percentiles_from_histograms(ranges: np.ndarray, counts: np.ndarray, lows: np.ndarray,
                                highs: np.ndarray, percents=PERCENTILES) -> np.ndarray:
    """[len(percents), T] values at each percentile of T histograms over ``[-ranges, ranges]``.

    Elements are taken as spread evenly within a bin; results are clipped to ``[lows, highs]``.
    """
    steps, bins = counts.shape
    ranges = np.where(ranges > 0, ranges, 1.0)
    cumulative = np.cumsum(counts, axis=1)
    total = np.where(cumulative[:, -1:] > 0, cumulative[:, -1:], 1.0)
    cdf = np.concatenate([np.zeros((steps, 1)), cumulative / total], axis=1)  # at the bin edges
    q = np.asarray(percents, dtype=np.float64)[:, None, None] / 100  # [P, 1, 1]
    upper = np.clip((cdf[None] < q).sum(axis=2), 1, bins)  # [P, T]: first edge whose CDF reaches q
    rows = np.arange(steps)[None, :]
    below, above = cdf[rows, upper - 1], cdf[rows, upper]
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.clip(np.where(above > below, (q[:, :, 0] - below) / (above - below), 0.0), 0, 1)
    width = 2.0 / bins
    out = (-1.0 + (upper - 1 + fraction) * width) * ranges[None, :]
    out[0], out[-1] = lows, highs
    return np.clip(out, lows, highs)


class DistributionView(View):
    """Bands min-7-16-50-84-93-max of a parameter's values at every recorded step."""

    css_class = "nbw-distribution"
    has_figure = True

    def __init__(self, name: str, options: ViewOptions, of: str = "weight"):
        self.name, self.of = name, of
        x_scale, y_scale = bqplot.LinearScale(), bqplot.LinearScale()
        # fill="between" fills from line i to line i+1: three shades, darkest at the middle.
        self.bands = bqplot.Lines(scales={"x": x_scale, "y": y_scale}, fill="between",
                                  colors=[BLUE] * 7, fill_colors=[BLUE] * 7, stroke_width=1,
                                  opacities=[0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
                                  fill_opacities=[0.15, 0.3, 0.45, 0.45, 0.3, 0.15, 0.0],
                                  labels=[f"p{p}" for p in PERCENTILES])
        self.figure = figure([self.bands], x_scale, y_scale, f"{name} (percentile bands)",
                             "step", "value", "nbw-distribution-figure")
        super().__init__(self.figure)


    def draw(self, history, step: int | None) -> None:
        last = rows_through(history.steps(self.name, of=self.of), step)
        if last < 1:
            return self.say("nothing recorded yet")
        keep = thin_indices(last, MAX_POINTS)  # only these rows are read: a long run costs what 160 steps do
        steps, ranges, counts = history.histograms(self.name, of=self.of, rows=keep)
        stats = history.stats(self.name, of=self.of, rows=keep)
        lines = percentiles_from_histograms(ranges, counts, stats["min"], stats["max"])
        x, y = float32(steps), float32(lines)
        self.say(None)
        with self.bands.hold_sync():
            self.bands.x, self.bands.y = x, y
        x_axis, y_axis = self.figure.axes
        set_ticks(x_axis, step_ticks(x))
        set_ticks(y_axis, nice_ticks(*finite_range(y)))
