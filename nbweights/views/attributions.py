"""Attributions of the probe samples (``w.probe(x, attributions=True)``): for each sample, the
input, its integrated gradients and the interior gradients at each scale alpha, side by side
as one PNG; each map on its own symmetric range (red: evidence for the class, blue: against)."""
from __future__ import annotations

import html
import math

import ipywidgets as widgets
import numpy as np

from .colors import DIVERGING_PALETTE, NONFINITE_RGB, colorbar_html, diverging, encode_png, fit_factor
from .base import View, ViewOptions
from .markup import png_image, set_html, set_png, text, title, title_html

#: Screen pixels a tile is scaled towards.
TILE_PIXELS = 84


def as_images(array: np.ndarray, options: ViewOptions) -> np.ndarray:
    """[samples, H, W] or [samples, H, W, 3] of inputs or maps: channels-first images as they
    are (1 channel: grey, 3: colour, else summed), flat inputs by ``image_shape=`` or as a square."""
    samples = len(array)
    if array.ndim == 4:
        return array.transpose(0, 2, 3, 1) if array.shape[1] == 3 else array.sum(axis=1)
    if array.ndim == 3:
        return array
    flat = array.reshape(samples, -1)
    shape = tuple(options.image_shape or ())
    if shape and math.prod(shape) == flat.shape[1]:
        return as_images(flat.reshape(samples, *shape), ViewOptions())
    side = math.isqrt(flat.shape[1])
    return flat.reshape(samples, side, side) if side * side == flat.shape[1] else flat.reshape(samples, 1, -1)


def _input_rgb(image: np.ndarray) -> np.ndarray:
    """An input image as RGB on its own range (min black, max white)."""
    low, high = np.nanmin(image), np.nanmax(image)
    scaled = (image - low) / (high - low) if high > low else np.zeros_like(image)
    grey = np.clip(np.nan_to_num(scaled) * 255, 0, 255).astype(np.uint8)
    return grey if grey.ndim == 3 else np.repeat(grey[..., None], 3, axis=-1)


def _map_rgb(image: np.ndarray) -> np.ndarray:
    """An attribution map (colour channels summed) as RGB on its own symmetric range."""
    values = image.sum(axis=-1) if image.ndim == 3 else image
    finite = np.abs(values[np.isfinite(values)])
    limit = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    return DIVERGING_PALETTE[diverging(values, limit)]


def sheet(tiles: list[list[np.ndarray]]) -> np.ndarray:
    """RGB tiles [h, w, 3] in rows and columns, one grey pixel between them."""
    height, width = tiles[0][0].shape[:2]
    rows, columns = len(tiles), len(tiles[0])
    grid = np.empty((rows * (height + 1) + 1, columns * (width + 1) + 1, 3), np.uint8)
    grid[:] = NONFINITE_RGB
    for r, row in enumerate(tiles):
        for c, tile in enumerate(row):
            top, left = 1 + r * (height + 1), 1 + c * (width + 1)
            grid[top:top + height, left:left + width] = tile
    return grid


class AttributionsView(View):
    """One row per attributed probe sample: input, integrated gradients, interior gradients."""

    css_class = "nbw-attributions"
    kind = "picture"

    def __init__(self, name: str, options: ViewOptions):
        self.name, self.options = name, options
        self.title = title_html("attributions of the probe samples")
        self.image = png_image("nbw-attributions-image")
        self.caption = widgets.HTML("")
        self.caption.add_class("nbw-picture-notes")
        self.colorbar = widgets.HTML(colorbar_html(1.0, "each map over its own symmetric range"))
        super().__init__(widgets.VBox([self.title, self.caption, self.image, self.colorbar]))
        #: Rows and columns of tiles in the last picture drawn.
        self.grid = (0, 0)

    @classmethod
    def applies(cls, history, name: str, options: ViewOptions) -> str | None:
        if not len(history.attribution_steps):
            return "attributions: call w.probe(x, attributions=True) to record integrated gradients"
        return None

    def draw(self, history, step: int | None) -> None:
        try:
            record = history.attribution_record(step)
        except LookupError:
            return self.say("no attributions recorded at or before this step")
        inputs = as_images(record["inputs"], self.options)
        maps = as_images(record["maps"], self.options)
        interior = [as_images(grads, self.options) for grads in record["interior"]]
        tiles = [[_input_rgb(inputs[i]), _map_rgb(maps[i])] + [_map_rgb(g[i]) for g in interior]
                 for i in range(len(inputs))]
        image = sheet(tiles)
        self.grid = (len(tiles), len(tiles[0]))
        zoom = fit_factor(max(inputs.shape[1:3]), TILE_PIXELS)
        alphas = ", ".join(f"{a:g}" for a in record["alphas"])
        classes = ", ".join(str(int(t)) for t in record["targets"])
        delta = float(np.abs(record["delta"]).max())
        self.say(None)
        set_png(self.image, encode_png(image), image.shape[0] * zoom, image.shape[1] * zoom)
        set_html(self.caption, html.escape(f"columns: input · integrated gradients · interior gradients at "
                                                   f"alpha = {alphas}; rows: samples, classes {classes}"))
        set_html(self.title, title(f"attributions of {len(tiles)} probe samples, step {record['step']} "
                                   f"(completeness delta {delta:.2g})"))
