"""Figures for the curve views: fixed-size bqplot figures, round tick values, float32 arrays."""
from __future__ import annotations

from typing import Any

import ipywidgets as widgets
import numpy as np


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
    spread = np.linspace(0, length - 1, most).round().astype(np.int64)
    # More than one step apart, rounded values never meet: np.unique (a sort) only if they did.
    return spread if (np.diff(spread) > 0).all() else np.unique(spread)


#: Every figure gets a fixed pixel size: bqplot measures its element when it is shown, and a
#: figure first shown inside a Stack switched in the browser must not come up at zero size.
FIGURE_WIDTH, FIGURE_HEIGHT = 320, 240
FIGURE_MARGIN = {"top": 36, "bottom": 42, "left": 56, "right": 12}
#: Tick formats (d3-format): steps and counts are whole numbers ("1", "2"; "8k"), values keep
#: three significant digits without trailing zeros ("0.05", "-0.125", "1e-5").
STEP_FORMAT, COUNT_FORMAT, VALUE_FORMAT = "d", "~s", ".3~g"
#: Ticks per axis at most (a 320-pixel figure has room for about five labels).
MOST_TICKS = 5


#: Pixels per character of a figure title (12 px sans-serif, measured in Chromium: 6.0 to 6.6).
TITLE_CHAR_PIXELS = 6.6


def fit_title(title: str, width: int = FIGURE_WIDTH) -> str:
    """``title`` cut in the middle ("blocks.layers.1…out_proj.weight (values)") to fit a figure
    ``width`` pixels wide: SVG text is clipped at the figure's edge, not wrapped, and both the
    start (block, layer) and the end (parameter, what is drawn) of a long name say which it is."""
    most = int(width / TITLE_CHAR_PIXELS)
    if len(title) <= most:
        return title
    tail = (most - 1) // 2
    return title[: most - 1 - tail] + "…" + title[len(title) - tail:]


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
    fig = bqplot.Figure(marks=marks, axes=axes, title=fit_title(title, width), fig_margin=dict(FIGURE_MARGIN),
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
    """Powers of ten within ``[low, high]`` (every other one, or fewer, when there are many); over
    less than two decades also 2 and 5 (or 3) times them, so that a short log axis has labels."""
    if not (np.isfinite(low) and np.isfinite(high)) or low <= 0 or high < low:
        return np.zeros(0, np.float32)
    exponents = np.arange(np.ceil(np.log10(low) - 1e-9), np.floor(np.log10(high) + 1e-9) + 1)
    if len(exponents) < 3:
        around = 10.0 ** np.arange(np.floor(np.log10(low)), np.floor(np.log10(high)) + 1)
        for mantissas in ((1.0, 2.0, 5.0), (1.0, 3.0)):
            ticks = (np.array(mantissas) * around[:, None]).ravel()
            ticks = ticks[(ticks >= low * (1 - 1e-6)) & (ticks <= high * (1 + 1e-6))]
            if len(ticks) <= most:
                return ticks.astype(np.float32)
    stride = int(np.ceil(len(exponents) / most)) if len(exponents) > most else 1
    return (10.0 ** exponents[::stride]).astype(np.float32)


def finite_range(*arrays: Any) -> tuple[float, float]:
    """(smallest, largest) finite value of the arrays; (nan, nan) when there is none."""
    values = np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays])
    values = values[np.isfinite(values)]
    return (float(values.min()), float(values.max())) if values.size else (float("nan"), float("nan"))


def set_ticks(axis, ticks: np.ndarray) -> None:
    """Set an axis's tick values if they changed."""
    ticks = float32(ticks)
    current = axis.tick_values
    if current is None or not np.array_equal(np.asarray(current), ticks):
        axis.tick_values = ticks
