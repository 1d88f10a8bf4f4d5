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
    """What the user told the dashboard about the model (see :class:`nbweights.ui.dashboard.Dashboard`)."""

    image_shape: tuple[int, ...] | None = None
    class_names: Sequence[str] | None = None
    #: :class:`nbweights.health.Thresholds` for the layer table (None: the defaults).
    thresholds: Any = None


def array_bytes(*arrays: np.ndarray) -> int:
    """Bytes one comm message carrying these arrays costs on the wire (estimate)."""
    return MESSAGE_OVERHEAD + sum(int(np.asarray(a).nbytes) + 64 for a in arrays)


def float32(values: Any) -> np.ndarray:
    """The float32 copy that bqplot sends as a binary buffer (never float64, never a list);
    values beyond float32's range become +-inf, which the views leave out or clip."""
    with np.errstate(over="ignore"):
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
    #: The content holds a bqplot figure: a message hides it by visibility, keeping its size.
    has_figure = False

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
                self._show_content(True)
            return 2 * MESSAGE_OVERHEAD
        kind = "nbw-error" if error else "nbw-note"
        markup = f'<span class="{kind}">{html.escape(text)}</span>'
        if self._showing_message and self.message.value == markup:
            return 0
        self._showing_message = True
        self.message.value = markup
        self.message.layout.display = None
        self._show_content(False)
        self._drawn = None
        return 3 * MESSAGE_OVERHEAD + len(markup)

    def _show_content(self, shown: bool) -> None:
        if self.has_figure:
            # A bqplot figure first drawn inside a display:none box measures 0 x 0, hides itself
            # (visibility: hidden) and is not laid out again when the box is shown: it stays
            # blank. Hidden by visibility, it keeps its size and is drawn at its size.
            self.content.layout.visibility = None if shown else "hidden"
        else:
            self.content.layout.display = None if shown else "none"

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
#: Tick formats (d3-format): steps and counts are whole numbers ("1", "2"; "8k"), values keep
#: three significant digits without trailing zeros ("0.05", "-0.125", "1e-5").
STEP_FORMAT, COUNT_FORMAT, VALUE_FORMAT = "d", "~s", ".3~g"
#: Ticks per axis at most (a 320-pixel figure has room for about five labels).
MOST_TICKS = 5


def figure(marks: list, x_scale, y_scale, title: str, x_label: str, y_label: str,
           css_class: str, width: int = FIGURE_WIDTH, y_format: str = VALUE_FORMAT,
           padding_y: float = 0.025):
    """A bqplot Figure of fixed pixel size with labelled axes.

    The views set the axes' ``tick_values`` as they draw (:func:`set_ticks`): bqplot's own ticks
    are either ten (labels overlap) or ``num_ticks`` evenly spread from end to end (``8.07e+3``,
    fractional steps shown as ``0 0 1 1 1``). ``padding_y=0`` for axes that must start where the
    scale does (counts at 0).
    """
    import bqplot
    x_format = STEP_FORMAT if x_label == "step" else VALUE_FORMAT
    axes = [bqplot.Axis(scale=x_scale, label=x_label, num_ticks=MOST_TICKS + 2, tick_format=x_format),
            bqplot.Axis(scale=y_scale, label=y_label, side="left", num_ticks=MOST_TICKS + 2,
                        tick_format=y_format, label_offset="40px")]
    fig = bqplot.Figure(marks=marks, axes=axes, title=title, fig_margin=dict(FIGURE_MARGIN),
                        animation_duration=0, title_style={"font-size": "12px"}, padding_y=padding_y,
                        layout=widgets.Layout(width=f"{width}px", height=f"{FIGURE_HEIGHT}px",
                                              min_width=f"{width}px", flex="0 0 auto"))
    fig.add_class(css_class)
    return fig


def nice_ticks(low: float, high: float, most: int = MOST_TICKS, whole: bool = False) -> np.ndarray:
    """At most ``most`` round tick values within ``[low, high]``: multiples of 1, 2 or 5 times a
    power of ten (``whole``: whole numbers only, for steps and counts). One value when
    ``low == high``; none when either is not finite."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return np.zeros(0, np.float32)
    low, high = min(low, high), max(low, high)
    if whole:
        low, high = np.ceil(low - 1e-9), np.floor(high + 1e-9)
        if high < low:
            return np.zeros(0, np.float32)
    if high == low:
        return np.array([low], np.float32)
    power = 10.0 ** np.floor(np.log10((high - low) / most))
    for factor in (1, 2, 5, 10, 20):
        step = factor * power
        if whole and step < 1:
            continue
        first, last = np.ceil(low / step - 1e-9), np.floor(high / step + 1e-9)
        if last - first + 1 <= most:
            break
    return (np.arange(first, last + 1) * step + 0.0).astype(np.float32)  # + 0.0: no "-0" label


def step_ticks(steps: np.ndarray) -> np.ndarray:
    """Whole-number ticks over the steps drawn (a step axis never shows "0 0 1 1 1")."""
    return nice_ticks(float(steps[0]), float(steps[-1]), whole=True) if len(steps) else np.zeros(0, np.float32)


def log_ticks(low: float, high: float, most: int = MOST_TICKS) -> np.ndarray:
    """Powers of ten within ``[low, high]`` (every other one, or fewer, when there are many)."""
    if not (np.isfinite(low) and np.isfinite(high)) or low <= 0 or high < low:
        return np.zeros(0, np.float32)
    exponents = np.arange(np.ceil(np.log10(low) - 1e-9), np.floor(np.log10(high) + 1e-9) + 1)
    stride = int(np.ceil(len(exponents) / most)) if len(exponents) > most else 1
    return (10.0 ** exponents[::stride]).astype(np.float32)


def finite_range(*arrays: Any) -> tuple[float, float]:
    """(smallest, largest) finite value of the arrays; (nan, nan) when there is none."""
    values = np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays])
    values = values[np.isfinite(values)]
    return (float(values.min()), float(values.max())) if values.size else (float("nan"), float("nan"))


def set_ticks(axis, ticks: np.ndarray) -> int:
    """Set an axis's tick values if they changed; returns bytes sent."""
    ticks = float32(ticks)
    current = axis.tick_values
    if current is not None and np.array_equal(np.asarray(current), ticks):
        return 0
    axis.tick_values = ticks
    return array_bytes(ticks)


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
