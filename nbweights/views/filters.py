"""Filter mosaic of a convolution weight: one small image per output filter, as one PNG.

RGB when the layer reads 3 input channels (a first layer on colour images), else one input
channel at a time on diverging colours; normalised per filter or on one shared range.
"""
from __future__ import annotations

import math

import ipywidgets as widgets
import numpy as np

from .colors import DIVERGING_PALETTE, NONFINITE_INDEX, NONFINITE_RGB, colorbar_html, diverging, encode_png, fit_factor
from .base import PictureView, ViewOptions
from .markup import png_image, set_png, text

#: Pixels a filter tile is scaled towards; tiles are separated by one grey pixel.
TILE_PIXELS = 32
#: Filters and input channels shown at most (what capture keeps of a large layer by default).
MOSAIC_FILTERS, MOSAIC_CHANNELS = 64, 8
RGB = "RGB"


def _limits(filters: np.ndarray, per_filter: bool) -> np.ndarray:
    """Symmetric range per filter [F, 1, ...] or shared, never 0."""
    magnitude = np.abs(np.nan_to_num(filters, nan=0.0, posinf=0.0, neginf=0.0))
    axes = tuple(range(1, filters.ndim)) if per_filter else None
    limit = magnitude.max(axis=axes, keepdims=True) if per_filter else np.full((1,) * filters.ndim, magnitude.max())
    return np.where(limit > 0, limit, 1.0)


def mosaic(tiles: np.ndarray, gap) -> np.ndarray:
    """Tiles [F, h, w] (palette indices) or [F, h, w, 3] (RGB) on a near-square grid, one
    ``gap``-coloured pixel between them."""
    count, height, width = tiles.shape[:3]
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    grid = np.empty((rows * (height + 1) + 1, columns * (width + 1) + 1) + tiles.shape[3:], np.uint8)
    grid[:] = gap
    for i, tile in enumerate(tiles):
        top, left = 1 + (i // columns) * (height + 1), 1 + (i % columns) * (width + 1)
        grid[top:top + height, left:left + width] = tile
    return grid


class FilterMosaicView(PictureView):
    """The filters of a convolution as one mosaic PNG, an input channel (or RGB) at a time."""

    css_class = "nbw-filters"

    def __init__(self, name: str, options: ViewOptions):
        self.image = png_image("nbw-filters-image")
        self.channel = widgets.Dropdown(options=[RGB], description="input", layout=widgets.Layout(width="190px"))
        self.normalise = widgets.ToggleButtons(options=["per filter", "shared"], value="per filter",
                                               style={"button_width": "80px"})
        self.channel.observe(self.redraw, "value")
        self.normalise.observe(self.redraw, "value")
        self.controls = [self.channel, self.normalise]
        super().__init__(name, [widgets.HBox(self.controls), self.image])

    @classmethod
    def applies(cls, history, name: str, options: ViewOptions) -> str | None:
        picture = history.picture(name)
        if len(history.shape(name)) != 4 or picture is None or picture.kind not in ("filters", "values"):
            return f"filters: needs a 4-D convolution weight; {name} has shape {tuple(history.shape(name))}"
        return None

    def _channel_options(self, in_channels: int, kept: int) -> None:
        options = ([RGB] if in_channels == 3 else []) + [f"channel {c}" for c in range(kept)]
        if list(self.channel.options) != options:
            self.channel.options = options
            self.channel.value = options[0]

    def draw(self, history, step: int | None) -> None:
        picture = history.picture(self.name, step)
        shape = history.shape(self.name)
        # [F, C, kh, kw]: the first filters and channels ("filters"), or all of a small layer ("values")
        filters = picture.array[:MOSAIC_FILTERS, :MOSAIC_CHANNELS].astype(np.float32)
        self._channel_options(shape[1], filters.shape[1])
        per_filter = self.normalise.value == "per filter"
        zoom = fit_factor(max(filters.shape[2:]), TILE_PIXELS)
        if self.channel.value == RGB:
            rgb = filters[:, :3].transpose(0, 2, 3, 1)
            scaled = (rgb / _limits(rgb, per_filter) + 1) * 127.5
            tiles = np.clip(np.nan_to_num(scaled, nan=127.5), 0, 255).astype(np.uint8)
            image, palette = mosaic(tiles, NONFINITE_RGB), None
            bar = text("RGB: 0 is mid grey, each channel over a symmetric range")
        else:
            channel = filters[:, int(self.channel.value.split()[-1])]
            limits = _limits(channel, per_filter)
            image, palette = mosaic(diverging(channel / limits, 1.0), NONFINITE_INDEX), DIVERGING_PALETTE
            bar = colorbar_html(1.0 if per_filter else float(limits.max()),
                                "each filter over its own symmetric range" if per_filter else "weight value")
        self.say(None)
        set_png(self.image, encode_png(image, palette), image.shape[0] * zoom, image.shape[1] * zoom)
        self.show_text(f"{self.name}: {len(filters)} of {shape[0]} filters, {shape[2]}x{shape[3]}, "
                       f"{self.channel.value}, step {picture.step}", bar)
