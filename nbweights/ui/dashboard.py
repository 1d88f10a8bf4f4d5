"""The dashboard: lays the views out, owns the entry chooser and the step slider, draws in turn.

Its size does not depend on the model: the entry shown gets its views built when it is chosen
(:mod:`nbweights.ui.panels` keeps the last few), the model-wide views (overview, metrics, table,
health) are one each, and the chooser lists at most a hundred entries
(:mod:`nbweights.ui.navigator`). What each redraw draws is decided by
:class:`nbweights.ui.scheduler.RedrawScheduler`; what it sends is measured
(:mod:`nbweights.views.wire`).

Inside a Jupyter kernel, redraws run on a daemon thread (:mod:`nbweights.ui.redrawer`): the
watcher's listener, on the training thread, only marks the dashboard dirty. Where the kernel runs
subshells (ipykernel 7, :mod:`nbweights.ui.subshell`), every control (the chooser, the slider,
each view's own controls, the health buttons, a click on the overview) is heard at once, even
while a synchronous loop trains. Elsewhere they are heard when the cell ends, which the chooser
says; an ``async`` training cell that awaits between steps is heard at once too.

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
from ..views.health import HealthView
from ..views.layer_table import LayerTableView
from ..views.metrics import MetricsView
from ..views.overview import OverviewView
from .navigator import Navigator
from .panels import ACTIVATION_PREFIX, Panel, PanelCache, entries_of
from .redrawer import RedrawThread
from .scheduler import RedrawScheduler
from .style import STYLE
from .subshell import route_to_subshell

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
        self._entries = entries_of(self.history)
        self.panels = PanelCache(cached_panels)
        self.navigator = Navigator(self._entries, self.select)
        self.dropdown = self.navigator.dropdown
        latest = self.history.latest_step or 0
        self.slider = widgets.IntSlider(min=0, max=latest, value=latest, description="step",
                                        layout=widgets.Layout(width="420px"))
        # The Play starts at the latest step too: its value is linked to the slider's in the
        # browser, and a Play at 0 pulled a dashboard shown after training back to step 0.
        self.play = widgets.Play(min=0, max=latest, value=latest, interval=150, layout=widgets.Layout(width="90px"))
        # Only the value is linked: the kernel sets both maxima (a linked max came back late and
        # clamped the kernel's slider to an old step, which switched "follow latest" off).
        self.links = [widgets.jslink((self.play, "value"), (self.slider, "value"))]
        self.follow = widgets.ToggleButton(value=True, description="follow latest", icon="forward",
                                           tooltip="show each new step as it is recorded")
        self.status = widgets.HTML("")
        self.status.add_class("nbw-status")
        self.panel_box = widgets.Box([], layout=widgets.Layout(min_height="280px"))
        self.panel_box.add_class("nbw-stack")
        self.overview = OverviewView(self.options, open_row=lambda row: self.select(self.history.names[row]))
        self.table, self.metrics = LayerTableView(self.options), MetricsView(self.options)
        self.health = HealthView(self.options, select=self.select, can_select=self.can_select)
        for widget, css in ((self.slider, "nbw-step"), (self.play, "nbw-play"), (self.follow, "nbw-follow")):
            widget.add_class(css)
        steps = widgets.HBox([self.play, self.slider, self.follow])
        steps.add_class("nbw-controls")
        model_views = [self.overview.widget] if len(self._entries) >= 40 else []
        super().__init__([widgets.HTML(STYLE), self.navigator.widget, steps, self.status, *model_views,
                          self.panel_box, *([] if model_views else [self.overview.widget]), self.metrics.widget,
                          self.table.widget, self.health.widget])
        self.add_class("nbw-dashboard")

        self.shown: Panel | None = None
        self.last_redraw_seconds = 0.0
        self.last_redraw_bytes = 0
        self._wanted = self._entries[0] if self._entries else None
        self._pending = self._unsettled = self._settle = False
        self._moving_slider = False
        self._closed = False
        self._failed: set[tuple[str, str]] = set()
        self._last_record = self._last_redraw_end = float("-inf")
        self.slider.observe(self._on_scrub, "value")
        self.follow.observe(self._on_follow, "value")
        for view in (self.overview, self.metrics, self.table, self.health):
            view.lock = self.lock
        #: Whether the kernel hears the controls while a cell runs (kernel subshell routing).
        self.selection_known = self._ipython_kernel() and all(
            route_to_subshell(w) for w in [*self.navigator.widgets, self.slider, self.follow,
                                           self.overview.statistic, self.overview.image])
        self.health.on_new_button = route_to_subshell if self.selection_known else None
        if self._ipython_kernel() and not self.selection_known:
            self.navigator.note.value = HEARD_AFTER_CELL
        if threaded is None:
            threaded = self.watcher is not None and self._ipython_kernel()
        self._thread = RedrawThread(self._draw_from_thread, self._max_fps) if threaded else None
        if self.watcher is not None:
            self.watcher.add_listener(self._on_record)
        self._ipython = _ipython()
        if self._ipython is not None:
            self._ipython.events.register("post_run_cell", self._after_cell)
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
        return self._pending

    @property
    def threaded(self) -> bool:
        """Whether redraws run on the dashboard's own thread."""
        return self._thread is not None

    @property
    def max_fps(self) -> float:
        return self._max_fps

    @max_fps.setter
    def max_fps(self, value: float) -> None:
        self._max_fps = _positive("max_fps", value)
        if self._thread is not None:
            self._thread.max_fps = self._max_fps

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
        for candidate in (name, ACTIVATION_PREFIX + name):
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
        self._request()
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
        self._unsettled = self._pending = False
        self.search.expire()
        self.redraw(full=True)

    def close(self) -> None:
        """Stop redrawing and close every widget of the dashboard (the watcher keeps recording)."""
        self._closed = True
        if getattr(self, "_thread", None) is not None:
            self._thread.stop()
        if getattr(self, "watcher", None) is not None:
            self.watcher.remove_listener(self._on_record)
        if getattr(self, "_ipython", None) is not None:
            try:
                self._ipython.events.unregister("post_run_cell", self._after_cell)
            except ValueError:
                pass
        with getattr(self, "lock", nullcontext()):
            if hasattr(self, "panels"):
                self.panels.clear()
            for link in getattr(self, "links", []):
                link.close()
            close_tree(self, root=False)
            super().close()

    # ----- drawing ------------------------------------------------------------------------
    def _panel(self, name: str) -> Panel:
        cached = name in self.panels
        panel = self.panels.get(self.history, name, self.options)
        if not cached:
            for view in panel.views:
                view.lock = self.lock
                if self.selection_known:
                    for control in view.controls:
                        route_to_subshell(control)
        return panel

    def _redraw(self, full: bool) -> None:
        started = time.perf_counter()
        self._pending = False
        if len(entries_of(self.history)) != len(self._entries):
            self._entries = entries_of(self.history)  # w.probe(x) added modules
            self.navigator.set_entries(self._entries, self._wanted)
        step = None if self.follow.value else self.slider.value
        with measure() as sent:
            self._update_controls()
            if self._wanted is not None and (self.shown is None or self.shown.name != self._wanted):
                self.shown = self._panel(self._wanted)
                self.panel_box.children = [self.shown.widget]
                self.table.focus = self.overview.focus = self._wanted
                self.scheduler.expire("pictures")
            if self.shown is not None:
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

    def _update_controls(self) -> None:
        latest = self.history.latest_step or 0
        self._moving_slider = True
        try:
            # The max and the value go in separate messages, the max first. In one message the
            # browser's slider applies the max first, and its noUiSlider reports its handle, still
            # at the old step, as a change of value: that old step came back to the kernel, which
            # took it for a person scrubbing and switched "follow latest" off.
            if self.slider.max != latest:
                self.play.max = self.slider.max = latest  # the Play's too: the kernel clamps its value
            if self.follow.value and self.slider.value != latest:
                self.slider.value = latest
        finally:
            self._moving_slider = False

    def _draw_status(self) -> None:
        latest = self.history.latest_step or 0
        names = self.history.names
        parts = [f"step {latest}", f"{len(self.history.steps(names[0])) if names else 0} snapshots"]
        overhead = getattr(getattr(self.watcher, "pacer", None), "overhead", None)
        if overhead is not None:
            parts.append(f"capture overhead {overhead:.1%}")
        if self.last_redraw_seconds:
            parts.append(f"redraw {1000 * self.last_redraw_seconds:.1f} ms, {self.last_redraw_bytes / 1024:.0f} KB")
        failures = getattr(self.watcher, "failures", None)
        if failures:
            parts.append(f"capture failed for {len(failures)}: {', '.join(list(failures)[:3])}")
        markup = " · ".join(parts)
        if self.status.value != markup:
            from ..views.markup import text
            self.status.value = text(markup)

    # ----- events (any thread) ------------------------------------------------------------
    def _draw_from_thread(self) -> None:
        settle, self._settle = self._settle, False
        self.redraw(settle=settle)

    def _on_record(self, step: int) -> None:
        """Watcher listener, on the training thread: mark dirty (threaded), or redraw at most
        ``max_fps`` times a second."""
        self._last_record = time.perf_counter()
        self._unsettled = True
        if self._thread is not None:
            self._pending = True
            self._thread.request()
            return
        if self._last_record - self._last_redraw_end < 1.0 / self._max_fps:
            self._pending = True  # drawn by the next redraw, or after the cell ends
            return
        self._safe_redraw()

    def _after_cell(self, *_: Any) -> None:
        """IPython's post_run_cell: the run is over, draw what was left for later."""
        if self._closed or not (self._pending or self._unsettled):
            return
        self._unsettled = False
        self.search.expire()
        if self._thread is not None:
            self._settle = True
            self._thread.request()
        else:
            self._safe_redraw(settle=True)

    def _safe_redraw(self, settle: bool = False) -> None:
        try:
            self.redraw(settle=settle)
        except Exception:
            log.exception("nbweights: dashboard redraw failed")
        self._last_redraw_end = time.perf_counter()

    def _request(self) -> None:
        """Redraw soon: on the redraw thread; else now, unless this is a subshell thread while
        training runs on the main thread (then the next capture's redraw draws it)."""
        if self._closed:
            return
        if self._thread is not None:
            self._thread.request()
        elif threading.current_thread() is threading.main_thread() or \
                time.perf_counter() - self._last_record > 0.5:
            self._safe_redraw()
        else:
            self._pending = True

    def _on_scrub(self, change: dict) -> None:
        if self._moving_slider:
            return
        if self.follow.value and change["new"] != (self.history.latest_step or 0):
            with self.lock:
                self.follow.value = False  # redraws via _on_follow
        else:
            self.scheduler.expire("pictures")
            self._request()

    def _on_follow(self, change: dict) -> None:
        self.scheduler.expire("pictures")
        self._request()

    @staticmethod
    def _ipython_kernel() -> bool:
        shell = _ipython()
        return shell is not None and getattr(shell, "kernel", None) is not None


def _ipython():
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()
