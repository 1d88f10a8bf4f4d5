"""Views: each reads the history and writes bqplot/ipywidgets state; one module per view.

A view is a small class with a ``widget`` and ``update(history, step) -> bytes sent``. Views of
one parameter are built per parameter (``ParameterView``); the layer table and the metrics are
about the whole model (``ModelView``). Adding a view is one module here and one line in
``PARAMETER_VIEWS`` or ``MODEL_VIEWS``.
"""
from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from typing import Any, Sequence

import ipywidgets as widgets
import numpy as np

log = logging.getLogger("nbweights")

#: Estimated bytes of a comm message beyond its state (Jupyter header, parent header, metadata).
MESSAGE_OVERHEAD = 400


@dataclass(frozen=True)
class ViewOptions:
    """What the user told the dashboard about the model (see :class:`nbweights.dashboard.Dashboard`)."""

    image_shape: tuple[int, ...] | None = None
    class_names: Sequence[str] | None = None
    #: :class:`nbweights.health.Thresholds` for the layer table (None: the defaults).
    thresholds: Any = None


def array_bytes(*arrays: np.ndarray) -> int:
    """Bytes one comm message carrying these arrays costs on the wire (estimate)."""
    return MESSAGE_OVERHEAD + sum(int(np.asarray(a).nbytes) + 64 for a in arrays)


def float32(values: Any) -> np.ndarray:
    """The float32 copy that bqplot sends as a binary buffer (never float64, never a list)."""
    return np.ascontiguousarray(values, dtype=np.float32)


def thin_indices(length: int, most: int) -> np.ndarray:
    """At most ``most`` evenly spread indices of ``range(length)``, first and last included.

    A single index is given twice: bqplot squeezes a [1, 1] array to a scalar and refuses it.
    """
    if length == 1:
        return np.zeros(2, np.int64)
    if length <= most:
        return np.arange(length)
    return np.unique(np.linspace(0, length - 1, most).round().astype(np.int64))


class View:
    """A view's widget: a title line, a message line (shown instead of the content when the view
    does not apply or failed), and the content."""

    css_class = "nbw-view"
    #: Images are refreshed less often than curves in panels the dashboard does not know are shown.
    heavy = False

    def __init__(self, content: widgets.Widget, title: str = ""):
        self.content = content
        self.message = widgets.HTML("", layout=widgets.Layout(display="none"))
        self.message.add_class("nbw-message")
        self.widget = widgets.VBox([self.message, content])
        self.widget.add_class("nbw-view")
        self.widget.add_class(self.css_class)
        self._drawn: tuple | None = None
        self._showing_message = False

    def say(self, text: str | None, error: bool = False) -> int:
        """Show ``text`` instead of the content (None: show the content again). Returns bytes sent."""
        if text is None:
            if not self._showing_message:
                return 0
            self._showing_message = False
            with self.widget.hold_sync():
                self.message.layout.display = "none"
                self.content.layout.display = None
            return 2 * MESSAGE_OVERHEAD
        kind = "nbw-error" if error else "nbw-note"
        markup = f'<span class="{kind}">{html.escape(text)}</span>'
        if self._showing_message and self.message.value == markup:
            return 0
        self._showing_message = True
        self.message.value = markup
        self.message.layout.display = None
        self.content.layout.display = "none"
        self._drawn = None
        return 3 * MESSAGE_OVERHEAD + len(markup)

    def fail(self, error: BaseException) -> int:
        """Show a failure as a small error line (the dashboard logs it once)."""
        return self.say(f"{type(self).__name__} failed: {type(error).__name__}: {error}", error=True)

    def update(self, history, step: int | None) -> int:
        """Redraw from ``history`` at ``step`` (None: latest); returns bytes sent (0: unchanged)."""
        self._last = (history, step)
        key = (history.version, step)
        if key == self._drawn:
            return 0
        sent = self.draw(history, step)
        self._drawn = None if self._showing_message else key
        return sent

    def draw(self, history, step: int | None) -> int:
        raise NotImplementedError

    def redraw(self, *_: Any) -> None:
        """Draw again at the last drawn state (after a control of the view changed)."""
        self._drawn = None
        if self._last is not None:
            try:
                self.update(*self._last)
            except Exception as error:  # a control change must not raise into the kernel
                log.exception("nbweights: %s failed", type(self).__name__)
                self.fail(error)

    _last: tuple | None = None


#: Every figure gets a fixed pixel size: bqplot measures its element when it is shown, and a
#: figure first shown inside a Stack switched in the browser must not come up at zero size.
FIGURE_WIDTH, FIGURE_HEIGHT = 320, 240
FIGURE_MARGIN = {"top": 36, "bottom": 42, "left": 56, "right": 12}


def figure(marks: list, x_scale, y_scale, title: str, x_label: str, y_label: str,
           css_class: str, width: int = FIGURE_WIDTH):
    """A bqplot Figure of fixed pixel size with labelled axes."""
    import bqplot
    # Steps are whole numbers: ticks without fractions.
    axes = [bqplot.Axis(scale=x_scale, label=x_label, num_ticks=5, tick_format="d" if x_label == "step" else ".3~g"),
            bqplot.Axis(scale=y_scale, label=y_label, side="left", num_ticks=5,
                        tick_format=".3~g", label_offset="40px")]
    fig = bqplot.Figure(marks=marks, axes=axes, title=title, fig_margin=dict(FIGURE_MARGIN),
                        animation_duration=0, title_style={"font-size": "12px"},
                        layout=widgets.Layout(width=f"{width}px", height=f"{FIGURE_HEIGHT}px",
                                              min_width=f"{width}px", flex="0 0 auto"))
    fig.add_class(css_class)
    return fig


def png_image(css_class: str) -> widgets.Image:
    """An empty PNG image widget; CSS keeps its pixels square when the browser scales it."""
    image = widgets.Image(format="png", layout=widgets.Layout(flex="0 0 auto", object_fit="fill"))
    image.add_class("nbw-pixelated")
    image.add_class(css_class)
    return image


def title_html(text: str) -> widgets.HTML:
    label = widgets.HTML(f'<div class="nbw-title">{html.escape(text)}</div>')
    label.add_class("nbw-title-line")
    return label


def set_html(widget: widgets.HTML, markup: str) -> int:
    """Set an HTML widget's value if it changed; returns bytes sent."""
    if widget.value == markup:
        return 0
    widget.value = markup
    return MESSAGE_OVERHEAD + len(markup.encode())


def set_png(image: widgets.Image, png: bytes, screen_height: int, screen_width: int) -> int:
    """Show PNG bytes scaled to ``screen_height`` x ``screen_width`` CSS pixels (square pixels
    when the factors are whole numbers). Sends nothing when unchanged; returns bytes sent."""
    sent = 0
    size = (f"{screen_width}px", f"{screen_height}px")
    if (image.layout.width, image.layout.height) != size:
        with image.layout.hold_sync():
            image.layout.width, image.layout.height = size
        sent += MESSAGE_OVERHEAD
    if image.value != png:
        image.value = png
        sent += MESSAGE_OVERHEAD + len(png)
    return sent
