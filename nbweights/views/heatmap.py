"""Heatmap of a 2-D weight matrix (rows = outputs, columns = inputs) as a PNG image.

Diverging colours centred at 0 over a symmetric range. A multi-head attention ``in_proj_weight``
[3E, E] is shown as its three parts Q, K and V, on one shared range.
"""
from __future__ import annotations

import ipywidgets as widgets
import numpy as np

from .colors import DIVERGING_PALETTE, colorbar_html, diverging, encode_png, fit_factor, symmetric_limit
from .base import PictureView, ViewOptions
from .markup import png_image, set_png, text

#: Screen size each matrix image is scaled towards (whole screen pixels per element, nearest).
TARGET_WIDTH, TARGET_HEIGHT = 320, 240


def matrix_parts(name: str, shape: tuple[int, ...], matrix: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """``[(label, rows)]``: Q, K, V of an attention in_proj_weight, else the whole matrix."""
    if name.endswith("in_proj_weight") and len(shape) == 2 and shape[0] == 3 * shape[1]:
        third = matrix.shape[0] // 3
        return [(label, matrix[i * third:(i + 1) * third]) for i, label in enumerate("QKV")]
    return [("", matrix)]


class HeatmapView(PictureView):
    """One PNG per part of the matrix, a colour bar of the shared range, and the matrix's size."""

    css_class = "nbw-heatmap"

    def __init__(self, name: str, options: ViewOptions):
        self.parts = widgets.HBox([])
        super().__init__(name, [self.parts])
        self._images: list[widgets.Image] = []
        self._labels: list[widgets.HTML] = []

    @classmethod
    def applies(cls, history, name: str, options: ViewOptions) -> str | None:
        shape = history.shape(name)
        picture = history.picture(name)
        if len(shape) != 2 or min(shape) < 2:
            return f"heatmap: needs a 2-D weight matrix; {name} has shape {tuple(shape)}"
        if picture is None or picture.kind not in ("matrix", "values"):
            return f"heatmap: no picture of {name} is recorded"
        return None

    def _ensure_images(self, labels: list[str]) -> None:
        if [label.value for label in self._labels] == [text(label) for label in labels]:
            return
        self._images = [png_image("nbw-heatmap-image") for _ in labels]
        self._labels = [widgets.HTML(text(label)) for label in labels]
        self.parts.children = [widgets.VBox([label, image]) for label, image in zip(self._labels, self._images)]

    def draw(self, history, step: int | None) -> None:
        picture = history.picture(self.name, step)
        shape = history.shape(self.name)
        matrix = picture.array.astype(np.float32).reshape(picture.array.shape[0], -1)
        parts = matrix_parts(self.name, shape, matrix)
        self._ensure_images([label for label, _ in parts])
        limit = symmetric_limit(matrix)
        self.say(None)
        for image, (_, rows) in zip(self._images, parts):
            scale_y = fit_factor(rows.shape[0], TARGET_HEIGHT)
            scale_x = fit_factor(rows.shape[1], TARGET_WIDTH // len(parts))
            png = encode_png(diverging(rows, limit), DIVERGING_PALETTE)
            set_png(image, png, rows.shape[0] * scale_y, rows.shape[1] * scale_x)
        note = "" if matrix.shape == tuple(shape) else f", block means on {matrix.shape[0]}x{matrix.shape[1]}"
        self.show_text(f"{self.name}: {shape[0]} outputs (rows) x {shape[1]} inputs (columns){note}, "
                       f"step {picture.step}", colorbar_html(limit, "weight value"))
