"""Attention maps of one ``nn.MultiheadAttention`` on the probe's first sequence: one tile per
head, queries down and keys across, as one PNG: white is 0, dark red the largest weight of the
step's heads (near-uniform attention, 1/keys everywhere, would be all white on a fixed 0..1 scale)."""
from __future__ import annotations

import ipywidgets as widgets
import numpy as np

from .colors import DIVERGING_PALETTE, NONFINITE_INDEX, colorbar_html, diverging, encode_png, fit_factor, symmetric_limit
from .base import View, ViewOptions
from .markup import png_image, set_html, set_png, text, title, title_html
from .filters import mosaic

#: Screen pixels a head's tile is scaled towards.
TILE_PIXELS = 120


class AttentionView(View):
    """Heads x queries x keys of the attention weights recorded by ``w.probe(x)``."""

    css_class = "nbw-attention"
    kind = "picture"

    def __init__(self, name: str, options: ViewOptions):
        self.name = name
        self.title = title_html(name)
        self.image = png_image("nbw-attention-image")
        self.colorbar = widgets.HTML("")
        super().__init__(widgets.VBox([self.title, self.image, self.colorbar]))
        #: Heads in the last mosaic drawn.
        self.heads = 0

    @classmethod
    def applies(cls, history, name: str, options: ViewOptions) -> str | None:
        if name not in history.attention_names:
            return f"attention: call w.probe(x) to record the attention maps of {name}"
        return None

    def draw(self, history, step: int | None) -> None:
        try:
            maps = history.attention(self.name, step)
        except LookupError:
            return self.say("no attention maps recorded at or before this step")
        recorded = history.attention_steps(self.name)
        shown = int(recorded[-1] if step is None else recorded[max(0, np.searchsorted(recorded, step, "right") - 1)])
        limit = symmetric_limit(maps)
        image = mosaic(diverging(maps, limit), NONFINITE_INDEX)
        self.heads = len(maps)
        zoom = fit_factor(max(maps.shape[1:]), TILE_PIXELS)
        self.say(None)
        set_png(self.image, encode_png(image, DIVERGING_PALETTE), image.shape[0] * zoom, image.shape[1] * zoom)
        set_html(self.colorbar, colorbar_html(limit, "attention weight (rows sum to 1; 0 is white)"))
        set_html(self.title, title(f"{self.name}: {len(maps)} heads, {maps.shape[1]} queries (down) x "
                                   f"{maps.shape[2]} keys (across) of the probe sequence, step {shown}"))
