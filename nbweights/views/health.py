"""Health panel: the signals of :func:`nbweights.health.find_signals` as a table, each row with a
button that shows the parameter (or module output) it is about in the dashboard.

Finding signals reads every summary, so it runs at most once per ``period`` seconds, and less
often when it is slow (at most ~2 % of the time between two runs). Rows are widgets reused from
one redraw to the next; nothing is sent while the signals stay the same.
"""
from __future__ import annotations

import html
import time
from typing import Callable

import ipywidgets as widgets

from ..health import Thresholds, find_signals
from . import MESSAGE_OVERHEAD, View, ViewOptions, set_html, title_html

COLUMNS = ("kind", "name", "step", "message")
#: Column widths (CSS pixels): one-row tables line up as one table; the "show" button follows
#: each row in a column of its own.
WIDTHS = (80, 220, 60, 460)
BUTTON_WIDTH = 64
#: Rows shown at most (the oldest signals: where it started going wrong).
MAX_ROWS = 40
#: Seconds between two searches for signals at least.
PERIOD = 1.0
#: Fraction of the time a search may take (slower searches are spaced further apart).
SHARE = 0.02


def _row_html(cells: list[str], tag: str, css: str, button_column: bool = False) -> str:
    """One row as a fixed-layout table, so that one-row tables line up as one table. Cells wrap
    (a long message is read whole) and carry their full text as a tooltip."""
    widths = (*WIDTHS, BUTTON_WIDTH) if button_column else WIDTHS
    cols = "".join(f'<col style="width: {w}px">' for w in widths)
    body = "".join(f'<{tag} title="{html.escape(c)}">{html.escape(c)}</{tag}>' for c in cells)
    if button_column:
        body += f"<{tag}></{tag}>"
    return (f'<table class="nbw-table nbw-health-table" style="table-layout: fixed; width: {sum(widths)}px">'
            f'<colgroup>{cols}</colgroup><tr class="{css}">{body}</tr></table>')


class HealthView(View):
    """``select(name) -> bool`` is called with a signal's name when its button is clicked; it
    returns whether the dashboard has an entry for it (else the button is disabled)."""

    css_class = "nbw-health"

    def __init__(self, options: ViewOptions, select: Callable[[str], bool] | None = None,
                 can_select: Callable[[str], bool] | None = None, period: float = PERIOD):
        self.thresholds = options.thresholds or Thresholds()
        self.select, self.can_select = select, can_select or (lambda name: select is not None)
        self.period = period
        self.title = title_html("health signals")
        self.header = widgets.HTML(_row_html(list(COLUMNS), "th", "nbw-health-header", button_column=True))
        self.rows = widgets.VBox([])
        super().__init__(widgets.VBox([self.title, self.header, self.rows]))
        self.signals: list = []
        self._row_widgets: list[tuple[widgets.HBox, widgets.HTML, widgets.Button]] = []
        self._names: list[str] = []
        self._next_search = float("-inf")
        self._searched_version = None
        #: Called with each new row's button (the dashboard routes it to the kernel subshell).
        self.on_new_button: Callable[[widgets.Button], None] | None = None

    def update(self, history, step: int | None, force: bool = False) -> int:
        now = time.perf_counter()
        if not force and (now < self._next_search or history.version == self._searched_version):
            return 0
        self._searched_version = history.version
        started = time.perf_counter()
        signals = find_signals(history, self.thresholds)
        cost = time.perf_counter() - started
        self._next_search = now + max(self.period, cost / SHARE)
        return self.show(signals)

    def show(self, signals: list) -> int:
        """Show these signals (the first :data:`MAX_ROWS`); returns bytes sent."""
        self.signals = list(signals)
        shown = self.signals[:MAX_ROWS]
        if not shown:
            return self.say("no health signals: nothing went wrong so far")
        sent = self.say(None)
        while len(self._row_widgets) < len(shown):
            sent += self._add_row()
        self._names = [s.name for s in shown]
        for (box, cells, button), signal in zip(self._row_widgets, shown):
            sent += set_html(cells, _row_html([signal.kind, signal.name, str(signal.step), signal.message],
                                              "td", f"nbw-signal nbw-signal-{signal.kind}"))
            disabled = not self.can_select(signal.name)
            if button.disabled != disabled or button.tooltip != signal.name:
                with button.hold_sync():
                    button.disabled, button.tooltip = disabled, signal.name
                sent += MESSAGE_OVERHEAD
        children = tuple(box for box, _, _ in self._row_widgets[:len(shown)])
        if self.rows.children != children:
            self.rows.children = children
            sent += MESSAGE_OVERHEAD
        set_html(self.title, f'<div class="nbw-title">health signals: {len(self.signals)}'
                             f'{f" (first {MAX_ROWS} shown)" if len(self.signals) > MAX_ROWS else ""}</div>')
        return sent

    def _add_row(self) -> int:
        index = len(self._row_widgets)
        cells = widgets.HTML("")
        button = widgets.Button(description="show", layout=widgets.Layout(width=f"{BUTTON_WIDTH - 4}px", height="22px",
                                                                         margin="0 0 0 4px"))
        button.add_class("nbw-signal-select")
        button.on_click(lambda _, i=index: self._clicked(i))
        box = widgets.HBox([cells, button], layout=widgets.Layout(align_items="center"))
        box.add_class("nbw-signal-row")
        self._row_widgets.append((box, cells, button))
        if self.on_new_button is not None:
            self.on_new_button(button)
        return 4 * MESSAGE_OVERHEAD

    def _clicked(self, index: int) -> None:
        if self.select is not None and index < len(self._names):
            self.select(self._names[index])

    def draw(self, history, step: int | None) -> int:  # update() is overridden
        return self.update(history, step, force=True)
