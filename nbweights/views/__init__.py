"""Views: each reads the history and writes bqplot/ipywidgets state; one module per view.

The contract every view keeps is stated in :mod:`nbweights.views.base` (``applies``, ``draw``,
``update`` and the bytes it returns, curve and picture views). Which views an entry of the
dashboard gets is :mod:`nbweights.views.registry`: adding a view is one module here and one line
there. Shared pieces: :mod:`~nbweights.views.markup` (all HTML, escaped), :mod:`~.figures` (bqplot
figures and ticks), :mod:`~.colors` (colour maps, PNG), :mod:`~.wire` (bytes sent, counted).
"""
from .base import PictureView, View, ViewOptions, close_tree
from .figures import (COUNT_FORMAT, FIGURE_HEIGHT, FIGURE_WIDTH, MOST_TICKS, STEP_FORMAT, VALUE_FORMAT, figure,
                      finite_range, float32, log_ticks, nice_ticks, set_ticks, step_ticks, thin_indices)
from .markup import png_image, set_html, set_png, title_html
from .wire import MESSAGE_OVERHEAD, measure

__all__ = ["View", "PictureView", "ViewOptions", "close_tree", "figure", "finite_range", "float32", "log_ticks",
           "nice_ticks", "set_ticks", "step_ticks", "thin_indices", "png_image", "set_html", "set_png",
           "title_html", "measure", "MESSAGE_OVERHEAD", "COUNT_FORMAT", "FIGURE_HEIGHT", "FIGURE_WIDTH",
           "MOST_TICKS", "STEP_FORMAT", "VALUE_FORMAT"]
