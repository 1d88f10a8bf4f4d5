"""The dashboard: lays the views out, owns the entry chooser and the step slider, draws in turn.

Its size does not depend on the model: the entry shown gets its views built when it is chosen
(:mod:`nbweights.ui.panels` keeps the last few), the model-wide views (overview, metrics, table,
health) are one each, the chooser lists at most a hundred entries (:mod:`nbweights.ui.navigator`).
:class:`nbweights.ui.scheduler.RedrawScheduler` decides what each redraw draws; what it sends is
measured (:mod:`nbweights.views.wire`).

When it redraws is :mod:`nbweights.ui.trigger`'s business. Where the kernel runs subshells
(ipykernel 7, :mod:`nbweights.ui.subshell`), every control (the chooser, the slider, each view's
own controls, the health buttons, the overview's "open" list) is heard at once, even while a
synchronous loop trains; elsewhere when the cell ends (the chooser says so), or at once from an
``async`` training cell that awaits between steps.

>>> w = nbw.watch(model, optimizer)
>>> w.dashboard.configure(class_names=["T-shirt", "Trouser", ...])   # or just `w` in a cell
"""
from __future__ import annotations

import logging
import threading
import time
from contextlib import nullcontext
from typing import Any, Sequence

import ipywidgets as widgets

from ..health import SignalSearch
from ..views import View, ViewOptions, close_tree, measure
from ..views.markup import text
from ..views.health import HealthView
from ..views.layer_table import LayerTableView
from ..views.metrics import MetricsView
from ..views.overview import OverviewView
from .locks import HeldTogether
from .navigator import Navigator
from .panels import ACTIVATION_PREFIX, ATTENTION_PREFIX, ATTRIBUTIONS_ENTRY, Panel, PanelCache, entries_of  # noqa: F401
from .scheduler import RedrawScheduler
from .status import status_line
from .steps import StepControls
from .style import STYLE
from .subshell import route_to_subshell
from .trigger import RedrawTrigger, in_kernel

log = logging.getLogger("nbweights")

#: Redraws per second at most (the browser shows >= 10 while a plain loop trains).
MAX_FPS = 12.0
#: Bytes one redraw may send beyond the shown entry's curves, whatever the model's size.
BYTE_BUDGET = 64 * 1024
#: Seconds per redraw, on average, for what comes after the shown entry's curves.
REDRAW_BUDGET = 0.002
#: Least seconds between two draws of each model-wide part.
PART_PERIODS = {"pictures": 0.0, "metrics": 0.25, "status": 0.5, "table": 1.0, "health": 1.0, "overview": 1.0}
#: What the chooser says where the kernel cannot hear it while a cell runs.
HEARD_AFTER_CELL = ("this kernel hears the chooser when the cell ends (ipykernel 7 hears it at once; "
                    "so does an async training loop)")


def _positive(name: str, value: float) -> float:
    """The one check of the dashboard's rates and budgets, at construction and in setters."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name}= must be a positive number, got {value!r}")
    return float(value)


class Dashboard(widgets.VBox):
    """Live views of a watched model (``Watcher.dashboard``), a followed run, or a saved ``History``.

    Options: ``image_shape=`` (e.g. ``(28, 28)``: the image a Linear layer's inputs are, for class
    images), ``class_names=`` (labels of the class images), ``max_fps=`` (redraws per second at
    most), ``byte_budget=`` (bytes per redraw beyond the shown entry's curves), ``redraw_budget=``
    (seconds per redraw beyond them), ``threaded=`` (redraw on a daemon thread; default: inside a
    Jupyter kernel), ``cached_panels=`` (entries whose views stay built).
    """

    def __init__(self, source: Any, *, image_shape: Sequence[int] | None = None,
                 class_names: Sequence[str] | None = None, max_fps: float = MAX_FPS,
                 byte_budget: int = BYTE_BUDGET, redraw_budget: float = REDRAW_BUDGET,
                 threaded: bool | None = None, cached_panels: int = 4):
        self.watcher = source if hasattr(source, "add_listener") else None
        self.history = source.history if hasattr(source, "history") else source
        if not hasattr(self.history, "histograms"):
            raise TypeError(f"Dashboard() expected a Watcher or a History, got {type(source).__name__}")
        self._max_fps = _positive("max_fps", max_fps)
        self.scheduler = RedrawScheduler(PART_PERIODS, _positive("redraw_budget", redraw_budget),
                                         int(_positive("byte_budget", byte_budget)))
        self.options = ViewOptions(tuple(image_shape) if image_shape else None, class_names,
                                   getattr(self.watcher, "thresholds", None))
        self.search = SignalSearch(self.options.thresholds)
        #: Serialises redraws and every handler that writes widgets (any thread).
        self.lock = threading.RLock()
        self._history_lock = getattr(self.watcher, "lock", None) or nullcontext()
        #: Held by a view redrawing after one of its controls changed (on a subshell thread mid-run).
        self._view_lock = HeldTogether(self.lock, self._history_lock)
        self._entries = entries_of(self.history)
        self.panels = PanelCache(cached_panels)
        self.navigator = Navigator(self._entries, self.select)
        self.dropdown = self.navigator.dropdown
        self.steps = StepControls(self.history.latest_step or 0, self._on_step)
        self.slider, self.play, self.follow = self.steps.slider, self.steps.play, self.steps.follow
        self.links = self.steps.links
        self.status = widgets.HTML("")
        self.status.add_class("nbw-status")
        self.panel_box = widgets.Box([], layout=widgets.Layout(min_height="280px"))
        self.panel_box.add_class("nbw-stack")
        self.overview = OverviewView(self.options, open_row=lambda row: self.select(self.history.names[row]))
        self.table, self.metrics = LayerTableView(self.options), MetricsView(self.options)
        self.health = HealthView(self.options, select=self.select, can_select=self.can_select)
        model_views = [self.overview.widget] if len(self._entries) >= 40 else []
        super().__init__([widgets.HTML(STYLE), self.navigator.widget, self.steps.widget, self.status, *model_views,
                          self.panel_box, *([] if model_views else [self.overview.widget]), self.metrics.widget,
                          self.table.widget, self.health.widget])
        self.add_class("nbw-dashboard")
        self.shown: Panel | None = None
        self.last_redraw_seconds = 0.0
        self.last_redraw_bytes = 0
        self._wanted = self._entries[0] if self._entries else None
        self._closed = False
        self._failed: set[tuple[str, str]] = set()
        for view in (self.overview, self.metrics, self.table, self.health):
            view.lock = self._view_lock
        #: Whether the kernel hears the controls while a cell runs (kernel subshell routing).
        self.selection_known = in_kernel() and all(
            route_to_subshell(w) for w in [*self.navigator.widgets, *self.steps.widgets,
                                           self.overview.statistic, self.overview.open])
        self.health.on_new_button = route_to_subshell if self.selection_known else None
        if in_kernel() and not self.selection_known:
            self.navigator.note.value = HEARD_AFTER_CELL
        if threaded is None:
            threaded = self.watcher is not None and in_kernel()
        self.trigger = RedrawTrigger(lambda settle: self.redraw(settle=settle), self._max_fps, threaded,
                                     before_settle=self.search.expire)
        if self.watcher is not None:
            self.watcher.add_listener(self.trigger.recorded)
        self.redraw(full=True)

    # ----- public -------------------------------------------------------------------------
    @property
    def entries(self) -> list[str]:
        """Every entry the chooser can show: parameters, then modules ("activation: fc")."""
        return list(self._entries)

    @property
    def selected(self) -> int:
        """Index in :attr:`entries` of the entry shown (or about to be, once drawn)."""
        return self._entries.index(self._wanted) if self._wanted in self._entries else 0

    @property
    def dirty(self) -> bool:
        """Whether something recorded waits to be drawn (by the next redraw, or the cell's end)."""
        return self.trigger.pending

    @property
    def threaded(self) -> bool:
        """Whether redraws run on the dashboard's own thread."""
        return self.trigger.thread is not None

    @property
    def max_fps(self) -> float:
        return self._max_fps

    @max_fps.setter
    def max_fps(self, value: float) -> None:
        self._max_fps = _positive("max_fps", value)
        self.trigger.set_max_fps(self._max_fps)

    def panel(self, name: str) -> Panel:
        """The views of an entry, built if need be: a parameter's qualified name
        (``"layer1.0.conv1.weight"``) or a module's (``"activation: layer1.0.relu"``)."""
        if name not in self._entries:
            raise KeyError(f"no entry {name!r}; entries: {', '.join(self._entries[:8])}"
                           f"{', ...' if len(self._entries) > 8 else ''}")
        with self.lock:
            return self._panel(name)

    def entry_of(self, name: str) -> str | None:
        """The entry a health signal's name is about: a parameter, or a module's outputs."""
        for suffix in (" (output)", " (gradient)"):
            name = name[: -len(suffix)] if name.endswith(suffix) else name
        for candidate in (name, ACTIVATION_PREFIX + name, ATTENTION_PREFIX + name):
            if candidate in self._entries:
                return candidate
        return None

    def can_select(self, name: str) -> bool:
        return self.entry_of(name) is not None

    def select(self, name: str) -> bool:
        """Show an entry (a parameter, a module, or what a health signal names); False if unknown."""
        entry = self.entry_of(name)
        if entry is None:
            return False
        with self.lock:
            self._wanted = entry
            self.navigator.relist(entry)
            self.scheduler.expire("pictures")
        self.trigger.request()
        return True

    def configure(self, *, image_shape: Sequence[int] | None = None,
                  class_names: Sequence[str] | None = None) -> "Dashboard":
        """Change what the views know about the model; the entries' views are built again."""
        self.options = ViewOptions(tuple(image_shape) if image_shape else self.options.image_shape,
                                   class_names if class_names is not None else self.options.class_names,
                                   self.options.thresholds)
        with self.lock:
            self.panels.clear()
            self.shown = None
        self.redraw(full=True)
        return self

    def redraw(self, full: bool = False, settle: bool = False) -> None:
        """Draw the latest state now (``full`` or ``settle``: every part, whatever it costs)."""
        with self.lock, self._history_lock:
            if not self._closed:
                self._redraw(full or settle)

    def flush(self) -> None:
        """Draw everything that is due now, on this thread: what a cell's end does (for tests,
        scripts and a loaded history)."""
        self.trigger.settled()
        self.search.expire()
        self.redraw(full=True)

    def close(self) -> None:
        """Stop redrawing and close every widget of the dashboard (the watcher keeps recording)."""
        self._closed = True
        if hasattr(self, "trigger"):
            self.trigger.close()
            if self.watcher is not None:
                self.watcher.remove_listener(self.trigger.recorded)
        with getattr(self, "lock", nullcontext()):
            if hasattr(self, "panels"):
                self.panels.clear()
            if hasattr(self, "steps"):
                self.steps.close()
            for view in (getattr(self, name, None) for name in ("overview", "metrics", "table", "health")):
                if view is not None:
                    view.close()
            close_tree(self, root=False)
            super().close()

    # ----- drawing ------------------------------------------------------------------------
    def _panel(self, name: str) -> Panel:
        cached = name in self.panels
        panel = self.panels.get(self.history, name, self.options)
        if not cached:
            for view in panel.views:
                view.lock = self._view_lock
                if self.selection_known:
                    for control in view.controls:
                        route_to_subshell(control)
        return panel

    def _redraw(self, full: bool) -> None:
        started = time.perf_counter()
        self.trigger.drawn()
        with measure() as sent:
            if entries_of(self.history) != self._entries:
                self._entries = entries_of(self.history)  # w.probe(x) added modules
                self.navigator.set_entries(self._entries, self._wanted)
            self.steps.catch_up(self.history.latest_step or 0)
            step = self.steps.step
            if self._wanted is not None and (self.shown is None or self.shown.name != self._wanted):
                self.shown = self._panel(self._wanted)
                # Data before the page shows it: each figure renders once, with its data.
                self._draw_views(self.shown.curves, step)
                self.panel_box.children = [self.shown.widget]
                self.table.focus = self.overview.focus = self._wanted
                self.scheduler.expire("pictures")
            elif self.shown is not None:
                self._draw_views(self.shown.curves, step)
        total = sent.bytes
        for part in self.scheduler.parts(total, full):
            part_started = time.perf_counter()
            with measure() as part_sent:
                self._draw_part(part, step, full)
            self.scheduler.drawn(part, time.perf_counter() - part_started, part_sent.bytes)
            total += part_sent.bytes
        self.last_redraw_bytes = total
        self.last_redraw_seconds = time.perf_counter() - started

    def _draw_part(self, part: str, step: int | None, full: bool) -> None:
        if part == "pictures":
            self._draw_views(self.shown.pictures if self.shown is not None else [], step)
        elif part == "metrics":
            self._draw_views([self.metrics], step)
        elif part == "status":
            self._draw_status()
        elif part == "overview":
            self._draw_views([self.overview], step)
        elif part in ("table", "health"):
            signals = self.search.current(self.history, force=full)
            self.table.signals = self.health.signals = signals
            self._draw_views([self.table if part == "table" else self.health], step)

    def _draw_views(self, views: list[View], step: int | None) -> None:
        for view in views:
            try:
                view.update(self.history, step)
            except Exception as error:  # a view must never break training; say it in the view
                key = (type(view).__name__, getattr(view, "name", ""))
                if key not in self._failed:
                    self._failed.add(key)
                    log.exception("nbweights: %s of %s failed (logged once)", *key)
                try:
                    view.fail(error)
                except Exception:
                    pass

    def _draw_status(self) -> None:
        markup = text(status_line(self.history, self.watcher, self.last_redraw_seconds, self.last_redraw_bytes))
        if self.status.value != markup:
            self.status.value = markup

    # ----- events (any thread) ------------------------------------------------------------
    def _on_step(self) -> None:
        self.scheduler.expire("pictures")
        self.trigger.request()
