"""Trajectories: the values of individual weights against step, from the whole-tensor pictures
that capture keeps of small parameters (kind "values")."""
from __future__ import annotations

import bqplot
import ipywidgets as widgets
import numpy as np

from ..history.timeline import rows_through

from .base import View, ViewOptions
from .figures import figure, finite_range, fit_title, float32, nice_ticks, set_ticks, step_ticks, thin_indices

#: Lines drawn at most, and steps per line at most (older steps thinned evenly).
MAX_LINES = 32
MAX_POINTS = 120


def parse_indices(text: str, numel: int) -> list[int]:
    """Flat indices from ``"0, 5, 10-20"``; raises ValueError naming what is wrong."""
    chosen: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        first, _, last = part.partition("-")
        low, high = int(first), int(last) if last else int(first)
        if not 0 <= low <= high < numel:
            raise ValueError(f"index {part!r} is outside 0-{numel - 1}")
        chosen.extend(range(low, high + 1))
    return list(dict.fromkeys(chosen))[:MAX_LINES]


def default_indices(numel: int) -> list[int]:
    """Every weight of a small tensor, else MAX_LINES spread evenly over it."""
    return list(range(numel)) if numel <= MAX_LINES else \
        sorted(set(np.linspace(0, numel - 1, MAX_LINES).round().astype(int).tolist()))


class TrajectoriesView(View):
    css_class = "nbw-trajectories"
    kind = "picture"  # drawn from the kept pictures, in turn with the images
    has_figure = True

    def __init__(self, name: str, options: ViewOptions):
        self.name = name
        x_scale, y_scale = bqplot.LinearScale(), bqplot.LinearScale()
        self.lines = bqplot.Lines(scales={"x": x_scale, "y": y_scale}, stroke_width=1.2)
        self.figure = figure([self.lines], x_scale, y_scale, f"{name} (individual weights)",
                             "step", "weight value", "nbw-trajectories-figure", width=400)
        self.picker = widgets.Text(description="indices", placeholder="e.g. 0-7, 12",
                                   continuous_update=False, layout=widgets.Layout(width="260px"))
        self.picker.observe(self.redraw, "value")
        self.controls = [self.picker]
        super().__init__(widgets.VBox([self.figure, self.picker]))
        self._indices: list[int] | None = None

    @classmethod
    def applies(cls, history, name: str, options: ViewOptions) -> str | None:
        picture = history.picture(name)
        if picture is None or picture.kind != "values":
            return f"trajectories: kept only for small tensors (PictureLimits.values); {name} has shape " \
                   f"{tuple(history.shape(name))}"
        return None

    def draw(self, history, step: int | None) -> None:
        _, steps, arrays = history.picture_series(self.name)
        numel = int(np.prod(arrays.shape[1:]))
        try:
            indices = parse_indices(self.picker.value, numel) if self.picker.value.strip() else default_indices(numel)
        except ValueError as error:
            return self.say(f"trajectories: {error}", error=True)
        last = rows_through(steps, step)
        keep = thin_indices(last, MAX_POINTS)
        x = float32(steps[keep])
        y = float32(arrays.reshape(len(arrays), -1)[keep][:, indices].T)
        self.say(None)
        with self.lines.hold_sync():
            if indices != self._indices:
                shape = arrays.shape[1:]
                self.lines.labels = [str([int(k) for k in np.unravel_index(i, shape)]) for i in indices]
                self._indices = indices
                self.figure.title = fit_title(f"{self.name}: {len(indices)} of {numel} weights", 400)
            self.lines.x, self.lines.y = x, y
        x_axis, y_axis = self.figure.axes
        set_ticks(x_axis, step_ticks(x))
        set_ticks(y_axis, nice_ticks(*finite_range(y)))
