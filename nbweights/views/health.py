"""Health panel: the signals of :mod:`nbweights.health`, grouped by kind, each kind with its count
and its first few signals, each of those with a button that shows what it is about.

A model of a thousand tensors can fire a signal on hundreds of them; listed one per row they are
unreadable. Grouped, the panel has at most ``len(KINDS) * PER_KIND`` rows whatever the model, and
says how many more of each kind there are. Rows are widgets reused from one redraw to the next;
nothing is sent while the signals stay the same. The search itself is shared with the layer
table (:class:`nbweights.health.SignalSearch`).
"""
from __future__ import annotations

from typing import Callable

import ipywidgets as widgets

from ..health import KINDS, LABELS, Signal
from .base import View, ViewOptions
from .markup import set_html, text, title, title_html

COLUMNS = ("kind", "name", "step", "message")
#: Column widths (CSS pixels): one-row tables line up as one table; the "show" button follows
#: each row in a column of its own.
WIDTHS = (80, 220, 60, 460)
BUTTON_WIDTH = 64
#: Signals named per kind at most (the oldest: where it started going wrong).
PER_KIND = 3


def _row_html(cells: list[str], tag: str, css: str, button_column: bool = False) -> str:
    """One row as a fixed-layout table, so that one-row tables line up as one table. Cells wrap
    (a long message is read whole) and carry their full text as a tooltip."""
    widths = (*WIDTHS, BUTTON_WIDTH) if button_column else WIDTHS
    cols = "".join(f'<col style="width: {w}px">' for w in widths)
    body = "".join(f'<{tag} title="{text(c)}">{text(c)}</{tag}>' for c in cells)
    if button_column:
        body += f"<{tag}></{tag}>"
    return (f'<table class="nbw-table nbw-health-table" style="table-layout: fixed; width: {sum(widths)}px">'
            f'<colgroup>{cols}</colgroup><tr class="{text(css)}">{body}</tr></table>')


def grouped(signals: list[Signal], per_kind: int = PER_KIND) -> list[tuple[str, int, list[Signal]]]:
    """``(kind, how many, the first per_kind)`` for each kind that fired, in :data:`KINDS` order."""
    groups = []
    for kind in KINDS:
        of_kind = [s for s in signals if s.kind == kind]
        if of_kind:
            groups.append((kind, len(of_kind), of_kind[:per_kind]))
    return groups


class HealthView(View):
    """``select(name) -> bool`` is called with a signal's name when its button is clicked; it
    returns whether the dashboard has an entry for it (else the button is disabled).

    ``signals`` is set by :meth:`show` (the dashboard passes the shared search's result).
    """

    css_class = "nbw-health"

    def __init__(self, options: ViewOptions, select: Callable[[str], bool] | None = None,
                 can_select: Callable[[str], bool] | None = None):
        self.select, self.can_select = select, can_select or (lambda name: select is not None)
        self.title = title_html("health signals")
        self.header = widgets.HTML(_row_html(list(COLUMNS), "th", "nbw-health-header", button_column=True))
        self.body = widgets.VBox([])
        super().__init__(widgets.VBox([self.title, self.header, self.body]))
        self.signals: list[Signal] = []
        #: The signals shown with a row each, in order, and their rows: (signal, box, cells, button).
        self.rows: list[tuple[Signal, widgets.HBox, widgets.HTML, widgets.Button]] = []
        self._pool: list[tuple[widgets.HBox, widgets.HTML, widgets.Button]] = []
        self._summaries: dict[str, widgets.HTML] = {}
        self._shown: list[Signal] = []
        #: Called with each new row's button (the dashboard routes it to the kernel subshell).
        self.on_new_button: Callable[[widgets.Button], None] | None = None

    def draw(self, history, step: int | None) -> None:
        self.show(self.signals)

    def show(self, signals: list[Signal]) -> None:
        """Show these signals, grouped by kind."""
        self.signals = list(signals)
        if not self.signals:
            self.rows = []
            self.say("no health signals: nothing went wrong so far")
            return
        self.say(None)
        children, self.rows = [], []
        for kind, count, first in grouped(self.signals):
            summary = self._summaries.setdefault(kind, widgets.HTML(""))
            summary.add_class("nbw-health-kind")
            more = f", {count - len(first)} more not listed" if count > len(first) else ""
            set_html(summary, title(f"{LABELS[kind]}: {count} signal{'s' if count != 1 else ''}"
                                    f" (first at step {first[0].step}{more})"))
            children.append(summary)
            for signal in first:
                box, cells, button = self._row(len(self.rows))
                set_html(cells, _row_html([signal.kind, signal.name, str(signal.step), signal.message],
                                          "td", f"nbw-signal nbw-signal-{signal.kind}"))
                disabled = not self.can_select(signal.name)
                if button.disabled != disabled or button.tooltip != signal.name:
                    with button.hold_sync():
                        button.disabled, button.tooltip = disabled, signal.name
                self.rows.append((signal, box, cells, button))
                children.append(box)
        if tuple(self.body.children) != tuple(children):
            self.body.children = children
        set_html(self.title, title(f"health signals: {len(self.signals)}"))

    def _row(self, index: int) -> tuple[widgets.HBox, widgets.HTML, widgets.Button]:
        while len(self._pool) <= index:
            position = len(self._pool)
            cells = widgets.HTML("")
            button = widgets.Button(description="show", layout=widgets.Layout(
                width=f"{BUTTON_WIDTH - 4}px", height="22px", margin="0 0 0 4px"))
            button.add_class("nbw-signal-select")
            button.on_click(lambda _, i=position: self._clicked(i))
            box = widgets.HBox([cells, button], layout=widgets.Layout(align_items="center"))
            box.add_class("nbw-signal-row")
            self._pool.append((box, cells, button))
            if self.on_new_button is not None:
                self.on_new_button(button)
        return self._pool[index]

    def _clicked(self, index: int) -> None:
        if self.select is not None and index < len(self.rows):
            self.select(self.rows[index][0].name)
