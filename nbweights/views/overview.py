"""Model overview: every parameter tensor at a glance, whatever the model's size.

One image: a row per parameter tensor in model order, a column per recorded step (thinned to
:data:`MAX_COLUMNS`), the colour a chosen statistic — by default log10 of the update ratio
‖Δw‖/‖w‖ on a diverging map centred on the customary 1e-3 (blue: barely learning, red: updates
large against the weights). One PNG of at most ``tensors x MAX_COLUMNS`` pixels (an ipywidgets Image:
bqplot's Image mark failed to render in JupyterLab 4.6 here), with an "open" list of the rows that
stand out most at the step shown, choosing one opens that tensor. Beside it, the update ratio against step:
the median over the weight matrices, their 10–90 % band, and the tensor shown.
"""
from __future__ import annotations

from typing import Callable

import bqplot
import ipywidgets as widgets
import numpy as np

from .base import View, ViewOptions
from .colors import BLUE, DIVERGING_PALETTE, GREY, NONFINITE_INDEX, ORANGE, colorbar_html, diverging, encode_png
from .figures import figure, float32, log_ticks, set_ticks, step_ticks, thin_indices
from .markup import note, set_html, text, title

#: Statistics the overview can colour by: label -> (stat of History.stat_matrix, group, log10, centre).
STATISTICS = {
    "update ratio (log10)": ("update_ratio", "weight", True, -3.0),
    "gradient norm (log10)": ("norm", "grad", True, None),
    "std of the weights": ("std", "weight", False, None),
    "NaN/Inf": ("nonfinite", "weight", False, 0.0),
}
#: Step columns at most, and the figure's size in CSS pixels.
MAX_COLUMNS = 120
WIDTH, CURVE_WIDTH = 560, 360
#: The update ratio practitioners aim for (Karpathy's rule of thumb): the overview's white.
REFERENCE_RATIO = 1e-3


def overview_values(history, statistic: str) -> tuple[np.ndarray, np.ndarray]:
    """``(steps [C], values [tensors, C])`` of a statistic, columns thinned to MAX_COLUMNS."""
    stat, group, logarithmic, _ = STATISTICS[statistic]
    steps, values = history.stat_matrix(stat, of=group)
    if statistic == "NaN/Inf":
        grad_steps, grads = history.stat_matrix("nonfinite", of="grad")
        if len(grad_steps) and len(steps):
            at = np.clip(np.searchsorted(grad_steps, steps, side="right") - 1, 0, len(grad_steps) - 1)
            values = values + np.where((grad_steps[at] <= steps)[:, None], np.nan_to_num(grads[at]), 0)
    keep = thin_indices(len(steps), MAX_COLUMNS) if len(steps) else np.zeros(0, np.int64)
    values = values[keep].T  # [tensors, columns]
    if logarithmic:
        with np.errstate(divide="ignore", invalid="ignore"):
            values = np.where(values > 0, np.log10(np.where(values > 0, values, 1.0)), np.nan)
    return steps[keep], values


def colour_rows(values: np.ndarray, statistic: str) -> tuple[np.ndarray, float, float]:
    """Palette indices [tensors, columns] and the (centre, half range) they are coloured over.

    Unmeasured cells (NaN: no gradient yet, a bias's update ratio) are grey, like NaN/Inf.
    """
    centre = STATISTICS[statistic][3]
    finite = values[np.isfinite(values)]
    if centre is None:
        centre = float(np.median(finite)) if finite.size else 0.0
    spread = float(np.abs(finite - centre).max()) if finite.size else 1.0
    if statistic == "update ratio (log10)":
        spread = max(spread, 3.0)  # 1e-6 .. 1 at least: a healthy run reads white-ish, not saturated
    spread = spread if spread > 0 else 1.0
    if statistic == "NaN/Inf":
        index = np.where(values > 0, NONFINITE_INDEX, 127).astype(np.uint8)
        return index, 0.0, 1.0
    return diverging(values - centre, spread), centre, spread


class OverviewView(View):
    """The overview image, its statistic chooser, and the update-ratio curves.

    ``open_row(index)`` is called with the row (tensor index in model order) a person clicked.
    ``focus`` is set by the dashboard to the tensor shown (its curve is drawn in orange).
    """

    css_class = "nbw-overview"
    kind = "picture"

    def __init__(self, options: ViewOptions, open_row: Callable[[int], None] | None = None):
        self.open_row = open_row
        self.focus: str | None = None
        self.statistic = widgets.Dropdown(options=list(STATISTICS), description="colour",
                                          layout=widgets.Layout(width="280px"))
        self.statistic.observe(self.redraw, "value")
        self.png = widgets.Image(format="png", layout=widgets.Layout(width=f"{WIDTH}px", height="200px",
                                                                    object_fit="fill"))
        self.png.add_class("nbw-pixelated")
        self.png.add_class("nbw-overview-image")
        self.map_title = widgets.HTML("")
        self.open = widgets.Dropdown(description="open", options=[("rows that stand out", -1)], value=-1,
                                     layout=widgets.Layout(width=f"{WIDTH}px"))
        self.open.observe(self._chosen, "value")
        self.colorbar = widgets.HTML("")
        self.rows_note = widgets.HTML("")
        self.rows_note.add_class("nbw-note")
        # A log scale with no data has no domain: bqplot then places its axis at NaN and fails to
        # lay the figure out ("translate(291,NaN)"). Fixed bounds around the customary 1e-3.
        cx, cy = bqplot.LinearScale(min=0.0, max=1.0), bqplot.LogScale(min=1e-7, max=10.0)
        self.band = bqplot.Lines(scales={"x": cx, "y": cy}, colors=[GREY], fill="between", fill_colors=[GREY],
                                 fill_opacities=[0.3], stroke_width=0.5)
        self.median = bqplot.Lines(scales={"x": cx, "y": cy}, colors=[BLUE], stroke_width=1.5)
        self.shown = bqplot.Lines(scales={"x": cx, "y": cy}, colors=[ORANGE], stroke_width=1.5)
        self.reference = bqplot.Lines(scales={"x": cx, "y": cy}, colors=[GREY], line_style="dashed")
        self.curves = figure([self.band, self.median, self.shown, self.reference], cx, cy,
                             "update ratio ‖Δw‖/‖w‖ per step", "step", "update ratio", "nbw-update-ratio-figure",
                             width=CURVE_WIDTH, y_format="~e")  # "2e-4": "0.0002" ran into the axis label
        # The legend under the figure: a title that said it all was clipped at the figure's width.
        legend = widgets.HTML(text("blue: median of the weight matrices · grey: their 10–90 % band · "
                                   "orange: the tensor shown · dashed: 1e-3"),
                              layout=widgets.Layout(width=f"{CURVE_WIDTH}px"))
        legend.add_class("nbw-note")
        # Until a ratio is measured: this note, not bqplot's ticks spread over an empty log scale.
        self.curves_note = widgets.HTML(note("the update ratio per step appears with the first captured "
                                             "optimizer step: it compares a step's change with the weights"),
                                        layout=widgets.Layout(width=f"{CURVE_WIDTH}px"))
        # Folded to no height rather than display: none, where bqplot would lay the figure out at
        # zero size ("<rect> attribute width: A negative value").
        self._curves_drawn = widgets.VBox([self.curves, legend], layout=widgets.Layout(overflow="hidden"))
        _folded(self._curves_drawn, True)
        left = widgets.VBox([self.statistic, self.map_title, self.png, self.colorbar, self.rows_note, self.open])
        super().__init__(widgets.HBox([left, widgets.VBox([self.curves_note, self._curves_drawn])],
                                      layout=widgets.Layout(flex_flow="row wrap")))
        self.names: list[str] = []
        self.controls = [self.statistic, self.open]

    def _chosen(self, change: dict) -> None:
        row = change["new"]
        if row is not None and row >= 0 and self.open_row is not None and row < len(self.names):
            self.open_row(row)

    def _standouts(self, values: np.ndarray, centre: float, most: int = 12) -> list[tuple[str, int]]:
        """Dropdown options: the rows farthest from the centre in the last column shown."""
        last = values[:, -1] if values.shape[1] else np.zeros(len(self.names))
        distance = np.where(np.isfinite(last), np.abs(last - centre), -1.0)
        order = [int(i) for i in np.argsort(-distance, kind="stable")[:most] if distance[i] >= 0]
        return [("rows that stand out", -1)] + [
            (f"row {i}: {self.names[i]} ({last[i]:.3g})", i) for i in order]

    def draw(self, history, step: int | None) -> None:
        self.names = history.names
        steps, values = overview_values(history, self.statistic.value)
        if not len(steps) or not self.names:
            return self.say("the overview fills in as captures are recorded")
        if step is not None:
            shown = steps <= step
            steps, values = steps[shown], values[:, shown]
            if not len(steps):
                return self.say("nothing recorded at or before this step")
        self.say(None)
        measured = self.statistic.value == "NaN/Inf" or bool(np.isfinite(values).any())
        _shown(self.png, measured)
        _shown(self.colorbar, measured)
        if not measured:  # one grey block said nothing: say what will fill it
            set_html(self.map_title, note(f"no {self.statistic.value} recorded yet (step {int(steps[-1])}): "
                                          f"{self.statistic.value.split(' (')[0]} appears with the next captured "
                                          "optimizer step; choose another colour to see the tensors now"))
        index, centre, spread = colour_rows(values, self.statistic.value)
        png = encode_png(index, DIVERGING_PALETTE)
        height = f"{int(np.clip(2 * len(self.names), 120, 420))}px"
        if self.png.layout.height != height:
            self.png.layout.height = height
        if self.png.value != png:
            self.png.value = png
        if measured:
            set_html(self.map_title, title(f"every parameter tensor (rows) over steps {int(steps[0])}–{int(steps[-1])} "
                                           f"(columns): {self.statistic.value}"))
        options = self._standouts(values, centre)
        if list(self.open.options) != options:
            self.open.options = options
            self.open.value = -1
        label = self.statistic.value
        if label == "NaN/Inf":
            bar = text("grey: a tensor with NaN/Inf at that step")
        elif label == "update ratio (log10)":
            bar = colorbar_html(spread, f"log10 update ratio − log10 {REFERENCE_RATIO:g} (white: {REFERENCE_RATIO:g})")
        else:
            bar = colorbar_html(spread, f"{label} − {centre:.3g} (the median)")
        set_html(self.colorbar, bar)
        set_html(self.rows_note, text(f"{len(self.names)} tensors, rows in model order: row 0 {self.names[0]} … "
                                      f"row {len(self.names) - 1} {self.names[-1]}; open one below"))
        self._draw_curves(history, step)

    def _draw_curves(self, history, step: int | None) -> None:
        steps, ratios = history.stat_matrix("update_ratio")
        matrices = [i for i, name in enumerate(history.names) if len(history.shape(name)) >= 2]
        keep = thin_indices(len(steps), 160) if len(steps) else np.zeros(0, np.int64)
        if step is not None:
            keep = keep[steps[keep] <= step]
        ratios = ratios[keep][:, matrices] if matrices else np.zeros((len(keep), 0))
        with np.errstate(all="ignore"):
            positive = np.where(ratios > 0, ratios, np.nan)
            measured = np.isfinite(positive).any(axis=1) if positive.size else np.zeros(len(keep), bool)
        x = float32(steps[keep][measured])
        _shown(self.curves_note, not len(x))
        _folded(self._curves_drawn, not len(x))
        if not len(x):
            return
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            low, mid, high = (np.nanpercentile(positive[measured], q, axis=1) for q in (10, 50, 90))
        cx, cy = self.median.scales["x"], self.median.scales["y"]
        first, last = float(x[0]), float(x[-1]) if x[-1] > x[0] else float(x[0]) + 1
        values = np.concatenate([low, high, [REFERENCE_RATIO]])
        values = values[np.isfinite(values) & (values > 0)]
        bottom, top = float(values.min()) / 2, float(values.max()) * 2
        with cx.hold_sync():
            cx.min, cx.max = first, last
        with cy.hold_sync():
            cy.min, cy.max = bottom, top
        # Powers of ten only: bqplot's own log ticks crowd a narrow domain with overlapping labels.
        ticks = log_ticks(bottom, top)
        set_ticks(self.curves.axes[1], ticks if len(ticks) >= 2 else float32([bottom * 2, top / 2]))
        with self.band.hold_sync():
            self.band.x, self.band.y = x, float32(np.stack([low, high]))
        self.median.x, self.median.y = x, float32(mid)
        self.reference.x, self.reference.y = float32([x[0], x[-1]]), float32([REFERENCE_RATIO, REFERENCE_RATIO])
        if self.focus in history.names:
            own = ratios[measured][:, matrices.index(history.names.index(self.focus))] \
                if history.names.index(self.focus) in matrices else None
            if own is not None and np.isfinite(own).all() and (own > 0).all():
                self.shown.x, self.shown.y = x, float32(own)
            else:
                self.shown.x, self.shown.y = x[:1], float32([REFERENCE_RATIO])
        set_ticks(self.curves.axes[0], step_ticks(x))


def _shown(widget: widgets.Widget, shown: bool) -> None:
    """Show or hide ``widget`` (taking no space), sending only a change."""
    display = None if shown else "none"
    if widget.layout.display != display:
        widget.layout.display = display


def _folded(box: widgets.Box, folded: bool) -> None:
    """Give ``box`` no height (its children keep their size, clipped) or its own again."""
    height = "0px" if folded else None
    if box.layout.max_height != height:
        box.layout.max_height = height
