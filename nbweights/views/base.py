"""The View contract, and the base of the picture views.

A view shows one thing of a history (one entry's histogram, a matrix as an image, the whole
model's table) in one widget. The dashboard only ever uses what this module declares:

- ``View.applies(history, name, options) -> str | None`` (a classmethod): None when the view can
  show ``name``, else the reason it cannot. A view that does not apply is not built: it takes no
  space (the reason is kept for a tooltip and for tests).
- ``view.draw(history, step)``: write the widgets' state for ``step`` (None: the latest). It
  returns nothing and counts nothing: what it sends is measured where it leaves
  (:mod:`nbweights.views.wire`).
- ``view.update(history, step) -> int``: draw unless nothing changed since the last draw (same
  history version and step); returns the bytes that actually crossed to the browser.
- ``kind``: ``"curve"`` views (bqplot lines of a few KB) are drawn at every redraw of the entry
  shown; ``"picture"`` views (PNG images) are drawn in turn, within the redraw budget.
"""
from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import ipywidgets as widgets

from . import markup
from .wire import measure

log = logging.getLogger("nbweights")


@dataclass(frozen=True)
class ViewOptions:
    """What the user told the dashboard about the model (see :class:`nbweights.ui.dashboard.Dashboard`)."""

    image_shape: tuple[int, ...] | None = None
    class_names: Sequence[str] | None = None
    #: :class:`nbweights.health.Thresholds` for the health views (None: the defaults).
    thresholds: Any = None


class View:
    """A view's widget: a message line (shown instead of the content when the view has nothing
    to show yet, or failed) above the content."""

    css_class = "nbw-view"
    kind: ClassVar[str] = "curve"
    #: The content holds a bqplot figure: a message hides it by visibility, keeping its size.
    has_figure = False
    #: The widgets a person changes (a log toggle, a channel picker): the dashboard routes them
    #: to the kernel subshell, so that they are heard while a cell trains.
    controls: Sequence[widgets.Widget] = ()
    #: Held while the view redraws after one of its controls changed (the dashboard's lock).
    lock: Any = nullcontext()

    def __init__(self, content: widgets.Widget):
        self.content = content
        self.message = widgets.HTML("", layout=widgets.Layout(display="none"))
        self.message.add_class("nbw-message")
        self.widget = widgets.VBox([self.message, content])
        self.widget.add_class("nbw-view")
        self.widget.add_class(self.css_class)
        self._drawn: tuple | None = None
        self._last: tuple | None = None
        self._showing_message = False

    @classmethod
    def applies(cls, history, name: str, options: ViewOptions) -> str | None:
        """None when this view can show ``name`` (the default), else why it cannot."""
        return None

    def draw(self, history, step: int | None) -> None:
        raise NotImplementedError

    @property
    def drawn(self) -> bool:
        """Whether the view shows the latest state it was asked to draw (no message in its place)."""
        return self._drawn is not None

    def update(self, history, step: int | None) -> int:
        """Redraw from ``history`` at ``step`` (None: latest); returns bytes sent (0: unchanged)."""
        self._last = (history, step)
        key = (history.version, step)
        if key == self._drawn:
            return 0
        with measure() as sent:
            self.draw(history, step)
        self._drawn = None if self._showing_message else key
        return sent.bytes

    def say(self, text: str | None, error: bool = False) -> None:
        """Show ``text`` instead of the content (None: show the content again)."""
        if text is None:
            if self._showing_message:
                self._showing_message = False
                with self.widget.hold_sync():
                    self.message.layout.display = "none"
                    self._show_content(True)
            return
        value = markup.note(text, error)
        self._drawn = None
        if self._showing_message and self.message.value == value:
            return
        self._showing_message = True
        self.message.value = value
        self.message.layout.display = None
        self._show_content(False)

    def _show_content(self, shown: bool) -> None:
        if self.has_figure:
            # A bqplot figure first drawn inside a display:none box measures 0 x 0, hides itself
            # (visibility: hidden) and is not laid out again when the box is shown: it stays
            # blank. Hidden by visibility, it keeps its size and is drawn at its size.
            self.content.layout.visibility = None if shown else "hidden"
        else:
            self.content.layout.display = None if shown else "none"

    def fail(self, error: BaseException) -> int:
        """Show a failure as an error line in the view (the dashboard logs it once); returns bytes sent."""
        with measure() as sent:
            self.say(f"{type(self).__name__} failed: {type(error).__name__}: {error}", error=True)
        return sent.bytes

    def redraw(self, *_: Any) -> None:
        """Draw again at the last drawn state (after a control of the view changed)."""
        with self.lock:
            self._drawn = None
            if self._last is not None:
                try:
                    self.update(*self._last)
                except Exception as error:  # a control change must not raise into the kernel
                    log.exception("nbweights: %s failed", type(self).__name__)
                    self.fail(error)

    def close(self) -> None:
        """Close every widget of this view (frees the models in the kernel and the browser),
        those not shown now too (a histogram's spare log scale)."""
        close_tree(self.widget)
        for value in list(vars(self).values()):
            if isinstance(value, widgets.Widget):
                close_tree(value)


class PictureView(View):
    """A picture view: a title line, the view's own body (controls, PNG images), a colour bar."""

    kind = "picture"

    def __init__(self, name: str, body: Sequence[widgets.Widget]):
        self.name = name
        self.title = markup.title_html(name)
        self.colorbar = widgets.HTML("")
        super().__init__(widgets.VBox([self.title, *body, self.colorbar]))

    def show_text(self, title: str, colorbar: str) -> None:
        """Set the title (the entry's full name on hover) and the colour bar's markup."""
        markup.set_html(self.title, markup.title(title, hover=self.name))
        markup.set_html(self.colorbar, colorbar)


def close_tree(widget: widgets.Widget, root: bool = True) -> None:
    """Close a widget (unless ``root`` is False), its layout and style, and every widget below it."""
    stack, seen = [widget], set()
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        for name in ("children", "marks", "axes", "scales", "scale", "layout", "style", "scale_x", "scale_y",
                     "interaction", "tooltip"):
            value = getattr(current, name, None)
            if isinstance(value, widgets.Widget):
                stack.append(value)
            elif isinstance(value, (list, tuple)):
                stack.extend(v for v in value if isinstance(v, widgets.Widget))
            elif isinstance(value, dict):
                stack.extend(v for v in value.values() if isinstance(v, widgets.Widget))
        if root or current is not widget:
            current.close()
