"""Class images: a Linear layer reading image pixels, each output unit's weights shaped back to
the image, one labelled panel per unit (per class, for a last layer), on one symmetric range."""
from __future__ import annotations

import math

import ipywidgets as widgets
import numpy as np

from .colors import DIVERGING_PALETTE, colorbar_html, diverging, encode_png, fit_factor, symmetric_limit
from .base import PictureView, ViewOptions
from .markup import png_image, set_png, text

#: Image shapes guessed from a layer's input size when ``image_shape=`` is not given.
KNOWN_IMAGE_SHAPES = {784: (28, 28), 1024: (32, 32), 3072: (3, 32, 32)}
#: Panels shown at most (the first output units).
MAX_PANELS = 64
PANEL_PIXELS = 84


def image_shape_of(history, name: str, options: ViewOptions) -> tuple[int, ...] | None:
    shape = history.shape(name)
    if len(shape) != 2:
        return None
    wanted = tuple(options.image_shape) if options.image_shape else KNOWN_IMAGE_SHAPES.get(shape[1])
    return wanted if wanted and math.prod(wanted) == shape[1] else None


def to_pixels(images: np.ndarray, image_shape: tuple[int, ...], limit: float):
    """``(pixels, palette)``: [N, H, W, 3] RGB around mid grey for colour images (palette None),
    else [N, H, W] indices into the diverging palette."""
    if len(image_shape) == 3 and 3 in (image_shape[0], image_shape[-1]):
        colour = images if image_shape[-1] == 3 else images.transpose(0, 2, 3, 1)
        return np.clip(np.nan_to_num((colour / limit + 1) * 127.5, nan=127.5), 0, 255).astype(np.uint8), None
    return diverging(images.reshape(len(images), image_shape[-2], image_shape[-1]), limit), DIVERGING_PALETTE


class ClassImagesView(PictureView):
    """Each output unit's weights as an image over the input pixels, one labelled panel per unit."""

    css_class = "nbw-class-images"

    def __init__(self, name: str, options: ViewOptions):
        self.options = options
        self.panels = widgets.Box([], layout=widgets.Layout(flex_flow="row wrap", max_width="980px"))
        super().__init__(name, [self.panels])
        self.images: list[widgets.Image] = []
        self.labels: list[str] = []

    @classmethod
    def applies(cls, history, name: str, options: ViewOptions) -> str | None:
        shape = history.shape(name)
        if image_shape_of(history, name, options) is None:
            return (f"class images: needs a Linear weight whose inputs are image pixels (784, 1024, "
                    f"3072 or image_shape=...); {name} has shape {tuple(shape)}")
        picture = history.picture(name)
        if picture is None or picture.array.size != math.prod(shape):
            return (f"class images: the recorded picture of {name} is downsampled; watch with "
                    f"pictures=PictureLimits(matrix={math.prod(shape)}) to keep it whole")
        return None

    def _ensure_panels(self, units: int) -> None:
        if len(self.images) == units:
            return
        names = list(self.options.class_names or [])
        self.labels = [str(names[i]) if i < len(names) else f"unit {i}" for i in range(units)]
        self.images = [png_image("nbw-class-image") for _ in range(units)]
        boxes = []
        for label, image in zip(self.labels, self.images):
            caption = widgets.HTML(f'<div class="nbw-class-label">{text(label)}</div>')
            box = widgets.VBox([caption, image], layout=widgets.Layout(margin="2px", align_items="center"))
            box.add_class("nbw-class-panel")
            boxes.append(box)
        self.panels.children = boxes

    def draw(self, history, step: int | None) -> None:
        image_shape = image_shape_of(history, self.name, self.options)
        picture = history.picture(self.name, step)
        shape = history.shape(self.name)
        units = min(shape[0], MAX_PANELS)
        weights = picture.array.astype(np.float32).reshape(shape)[:units]
        self._ensure_panels(units)
        limit = symmetric_limit(weights)
        pixels, palette = to_pixels(weights.reshape((units,) + image_shape), image_shape, limit)
        height, width = pixels.shape[1:3]
        zoom = fit_factor(max(height, width), PANEL_PIXELS)
        self.say(None)
        for image, one in zip(self.images, pixels):
            set_png(image, encode_png(one, palette), height * zoom, width * zoom)
        shown = "" if units == shape[0] else f" (first {units} of {shape[0]})"
        self.show_text(f"{self.name}: weights of each output unit as a {'x'.join(map(str, image_shape))} "
                       f"image{shown}, step {picture.step}", colorbar_html(limit, "weight value (shared range)"))
