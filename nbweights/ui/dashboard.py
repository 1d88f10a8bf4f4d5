"""The dashboard: lays the views out, owns the entry Dropdown and the step slider, and paces
redraws.

Inside a Jupyter kernel, redraws run on a daemon thread (:mod:`nbweights.ui.redrawer`): the
watcher's listener, on the training thread, only marks the dashboard dirty, and the thread draws
at most ``max_fps`` times a second. Every redraw draws the selected panel's curves and the step
slider; the rest (the selected panel's images, metrics, the layer table, health signals, other
panels) is drawn in turn, as much as fits in ``redraw_budget`` seconds, at least one part each
time. One lock serialises every redraw and every control handler that writes widgets; the
watcher's lock is held while the history is read, so a record never changes it under a redraw.

Where the kernel runs subshells (ipykernel 7.4, :mod:`nbweights.ui.subshell`), the Dropdown, the
slider, "follow" and the health buttons are heard at once even while a synchronous loop runs, so
the kernel knows which panel is shown and draws it in full. Elsewhere the Dropdown switches an
ipywidgets.Stack in the browser (``jslink``) and redraws keep the other panels fresh in turn.
Outside a kernel (scripts, tests) redraws run on the training thread.

>>> w = nbw.watch(model, optimizer)
>>> w.dashboard.configure(class_names=["T-shirt", "Trouser", ...])   # or just `w` in a cell
"""
from __future__ import annotations

import functools
import logging
import threading
import time
from contextlib import nullcontext
from typing import Any, Callable, Sequence

import ipywidgets as widgets

from .closing import close_widgets
from .redrawer import RedrawThread
from .subshell import route_to_subshell
from ..views import View, ViewOptions
from ..views.activations import ActivationFractionsView, FeatureMapsView
from ..views.class_images import ClassImagesView
from ..views.distribution import DistributionView
from ..views.filters import FilterMosaicView
from ..views.health import HealthView
from ..views.heatmap import HeatmapView
from ..views.histogram import HistogramView
from ..views.layer_table import LayerTableView
from ..views.metrics import MetricsView
from ..views.trajectories import TrajectoriesView

log = logging.getLogger("nbweights")

#: Views drawn for every parameter (curves: drawn at each redraw of the selected panel).
CURVE_VIEWS = (HistogramView, functools.partial(HistogramView, of="grad"), DistributionView)
#: Picture views, each shown where it applies (images: drawn in turn with the other parts).
PICTURE_VIEWS = (HeatmapView, FilterMosaicView, ClassImagesView, TrajectoriesView)
#: Views of a module's outputs (``activations=``), and of its feature maps (``probe``).
ACTIVATION_VIEWS = (functools.partial(HistogramView, of="activation"),
                    functools.partial(DistributionView, of="activation"), ActivationFractionsView)
#: Dropdown label of a module's output panel.
ACTIVATION_PREFIX = "activation: "
#: Redraws per second at most (the browser shows >= 10 while a plain loop trains).
MAX_FPS = 12.0
#: Bytes one redraw may send beyond the selected panel's curves, whatever the model's size.
BYTE_BUDGET = 64 * 1024
#: Seconds per redraw, on average, for what comes after the selected panel's curves (its
#: images, metrics, tables, other panels); what does not fit waits for the next redraws.
REDRAW_BUDGET = 0.001
#: The status line and the layer table are redrawn at most this often (seconds).
STATUS_PERIOD, TABLE_PERIOD = 0.5, 1.0
#: A kernel that recorded nothing for this long is idle: a control handler may redraw itself.
IDLE_SECONDS = 0.5

STYLE = """<style>
.nbw-pixelated { image-rendering: pixelated; }
.nbw-title { font-size: 12px; font-weight: 600; margin: 2px 0; }
.nbw-note, .nbw-picture-notes { color: var(--jp-ui-font-color2, #777); font-size: 11px; }
.nbw-error { color: var(--jp-error-color1, #d32f2f); font-size: 12px; }
.nbw-status { font-size: 12px; font-variant-numeric: tabular-nums; }
.nbw-colorbar { display: flex; align-items: center; gap: 6px; font-size: 11px; }
.nbw-colorbar-ramp { display: inline-block; width: 160px; height: 10px; }
.nbw-class-label { font-size: 11px; text-align: center; }
.nbw-layer-table { max-height: 340px; overflow: auto; }
.nbw-table { border-collapse: collapse; font-size: 11px; font-variant-numeric: tabular-nums; }
.nbw-table th, .nbw-table td { padding: 1px 6px; text-align: right;
  border-bottom: 1px solid var(--jp-border-color2, #ddd); }
.nbw-table td:first-child, .nbw-table th:first-child { text-align: left; font-family: monospace; }
.nbw-table tr.nbw-unhealthy td { background: rgba(230, 60, 60, 0.18); }
.nbw-table td.nbw-earlier { color: var(--jp-ui-font-color2, #777); }
.nbw-health-table td, .nbw-health-table th { text-align: left; overflow: hidden; overflow-wrap: anywhere;
  white-space: normal; vertical-align: middle; }
.nbw-health-table tr.nbw-signal td { background: rgba(230, 60, 60, 0.10); }
.nbw-health { max-height: 340px; overflow: auto; }
.nbw-health .widget-html, .nbw-health .widget-html-content { height: auto; line-height: normal; margin: 0; }
.nbw-signal-row { align-items: center; margin: 0; }
.nbw-dashboard .nbw-table, .nbw-dashboard .nbw-title { color: var(--jp-ui-font-color1, #222); }
.nbw-dashboard .bqplot { --bq-content-font-color: var(--jp-ui-font-color1, #222);
  --bq-axis-tick-text-fill: var(--jp-ui-font-color1, #222); --bq-axislabel-fill: var(--jp-ui-font-color1, #222);
  --bq-mainheading-fill: var(--jp-ui-font-color1, #222); }
</style>"""


class Panel:
    """The views of one entry, in one box: curves on top, the picture views that apply below.

    An entry is a parameter (``"fc.weight"``) or a module's outputs (``"activation: fc"``).
    """

    def __init__(self, history, name: str, options: ViewOptions):
        self.name = name
        self.module = name[len(ACTIVATION_PREFIX):] if name.startswith(ACTIVATION_PREFIX) else None
        reasons = []
        if self.module is None:
            self.curves: list[View] = [make(name, options) for make in CURVE_VIEWS]
            candidates = PICTURE_VIEWS
        else:
            recorded = self.module in history.names_of("activation")
            self.curves = [make(self.module, options) for make in ACTIVATION_VIEWS] if recorded else []
            if not recorded:
                reasons.append(f"outputs of {self.module} are not summarised: watch(..., activations=True)")
            candidates = (FeatureMapsView,)
        self.pictures: list[View] = []
        for view_class in candidates:
            target = self.module or name
            reason = view_class.applies(history, target, options)
            if reason is None:
                self.pictures.append(view_class(target, options))
            else:
                reasons.append(reason)
        notes = widgets.HTML("<br>".join(reasons))
        notes.add_class("nbw-picture-notes")
        row = widgets.HBox([v.widget for v in self.curves], layout=widgets.Layout(flex_flow="row wrap"))
        pictures = widgets.HBox([v.widget for v in self.pictures], layout=widgets.Layout(flex_flow="row wrap"))
        self.widget = widgets.VBox([row, pictures, notes])
        self.widget.add_class("nbw-panel")


def entries_of(history) -> list[str]:
    """Dropdown entries: the parameters, then each module whose outputs or feature maps are kept."""
    modules = list(dict.fromkeys([*history.names_of("activation"), *history.feature_map_names]))
    return history.names + [ACTIVATION_PREFIX + m for m in modules]


class Dashboard(widgets.VBox):
    """Live views of a watched model (``Watcher.dashboard``, or a saved ``History``).

    Options: ``image_shape=`` (e.g. ``(28, 28)``: the image a Linear layer's inputs are, for class
    images), ``class_names=`` (labels of the class images), ``max_fps=`` (redraws per second at
    most), ``byte_budget=`` (bytes per redraw at most, beyond the selected panel's curves),
    ``redraw_budget=`` (seconds per redraw, beyond the selected panel's curves), ``threaded=``
    (redraw on a daemon thread; default: inside a Jupyter kernel).
    """

    def __init__(self, source: Any, *, image_shape: Sequence[int] | None = None,
                 class_names: Sequence[str] | None = None, max_fps: float = MAX_FPS,
                 byte_budget: int = BYTE_BUDGET, redraw_budget: float = REDRAW_BUDGET,
                 threaded: bool | None = None):
        self.watcher = source if hasattr(source, "add_listener") else None
        self.history = source.history if hasattr(source, "history") else source
        if not hasattr(self.history, "histograms"):
            raise TypeError(f"Dashboard() expected a Watcher or a History, got {type(source).__name__}")
        if max_fps <= 0 or byte_budget <= 0 or redraw_budget <= 0:
            raise ValueError(f"max_fps=, byte_budget= and redraw_budget= must be positive, got "
                             f"{max_fps!r}, {byte_budget!r}, {redraw_budget!r}")
        self._max_fps, self.byte_budget, self.redraw_budget = float(max_fps), int(byte_budget), float(redraw_budget)
        self.options = ViewOptions(tuple(image_shape) if image_shape else None, class_names,
                                   getattr(self.watcher, "thresholds", None))
        #: Serialises redraws and the control handlers that write widgets (any thread).
        self.lock = threading.RLock()
        self._history_lock = getattr(self.watcher, "lock", None) or nullcontext()
        latest = self.history.latest_step or 0
        self.dropdown = widgets.Dropdown(options=entries_of(self.history), description="show",
                                         layout=widgets.Layout(width="420px"))
        self.stack = widgets.Stack([])
        #: Browser-side links: they work while a cell runs, whether the kernel hears or not.
        self.links = [widgets.jslink((self.dropdown, "index"), (self.stack, "selected_index"))]
        self.slider = widgets.IntSlider(min=0, max=latest, value=latest, description="step",
                                        layout=widgets.Layout(width="420px"))
        self.play = widgets.Play(min=0, max=latest, interval=150, layout=widgets.Layout(width="90px"))
        # Only the value is linked: the kernel sets both maxima. A linked max came back from the
        # browser late (mid-run, heard on the subshell), shrank the slider's max in the kernel and
        # clamped its value to an old step, which switched "follow latest" off.
        self.links += [widgets.jslink((self.play, "value"), (self.slider, "value"))]
        self.follow = widgets.ToggleButton(value=True, description="follow latest", icon="forward",
                                           tooltip="show each new step as it is recorded")
        self.status = widgets.HTML("")
        self.status.add_class("nbw-status")
        self.table, self.metrics = LayerTableView(self.options), MetricsView(self.options)
        self.health = HealthView(self.options, select=self.select, can_select=self.can_select)
        for widget, css in ((self.dropdown, "nbw-parameter"), (self.slider, "nbw-step"), (self.play, "nbw-play"),
                            (self.follow, "nbw-follow"), (self.stack, "nbw-stack")):
            widget.add_class(css)
        controls = widgets.HBox([self.dropdown, self.play, self.slider, self.follow])
        controls.add_class("nbw-controls")
        super().__init__([widgets.HTML(STYLE), controls, self.status, self.stack, self.metrics.widget,
                          self.table.widget, self.health.widget])
        self.add_class("nbw-dashboard")

        self.selected = 0  # the panel the kernel knows is shown
        self.last_redraw_seconds = 0.0
        self.last_redraw_bytes = 0
        self._panels: list[Panel] = []
        self._entries: list[str] = []
        self._cursor = self._part_cursor = self._heavy_cursor = self._redraws = 0
        self._tokens = 0.0
        self._last_status = self._last_table = self._last_record = float("-inf")
        self._pending = False
        self._fresh_selection = True  # draw the selected panel's images at the next redraw
        self._moving_slider = False
        self._closed = False
        self._failed: set[tuple[str, str]] = set()
        self._build_panels()
        self.dropdown.observe(self._on_select, "index")
        self.slider.observe(self._on_scrub, "value")
        self.follow.observe(self._on_follow, "value")
        #: Whether the kernel hears the controls while a cell runs (kernel subshell routing).
        self.selection_known = self._ipython_kernel() and all(
            [route_to_subshell(w) for w in (self.dropdown, self.slider, self.follow)])
        self.health.on_new_button = route_to_subshell if self.selection_known else None
        if threaded is None:
            threaded = self.watcher is not None and self._ipython_kernel()
        self._thread = RedrawThread(self._draw_from_thread, self._max_fps) if threaded else None
        if self.watcher is not None:
            self.watcher.add_listener(self._on_record)
        self._ipython = _ipython()
        if self._ipython is not None:
            self._ipython.events.register("post_run_cell", self._after_cell)

    # ----- public -------------------------------------------------------------------------
    @property
    def panels(self) -> list[Panel]:
        return list(self._panels)

    @property
    def threaded(self) -> bool:
        """Whether redraws run on the dashboard's own thread."""
        return self._thread is not None

    @property
    def max_fps(self) -> float:
        return self._max_fps

    @max_fps.setter
    def max_fps(self, value: float) -> None:
        self._max_fps = float(value)
        if self._thread is not None:
            self._thread.max_fps = self._max_fps

    def panel(self, name: str) -> Panel:
        """The panel of an entry: a parameter's qualified name (``"layer1.0.conv1.weight"``) or a
        module's outputs (``"activation: layer1.0.relu"``)."""
        for panel in self._panels:
            if panel.name == name:
                return panel
        raise KeyError(f"no entry {name!r}; shown: {', '.join(self._entries[:8])}")

    def entry_of(self, name: str) -> int | None:
        """Dropdown index of what a health signal is about: a parameter, or a module's outputs."""
        name = name[:-len(" (output)")] if name.endswith(" (output)") else name
        for candidate in (name, ACTIVATION_PREFIX + name):
            if candidate in self._entries:
                return self._entries.index(candidate)
        return None

    def can_select(self, name: str) -> bool:
        return self.entry_of(name) is not None

    def select(self, name: str) -> bool:
        """Show the panel of a parameter or module (as choosing it in the Dropdown does)."""
        index = self.entry_of(name)
        if index is None:
            return False
        with self.lock:
            self.dropdown.index = index
        return True

    def configure(self, *, image_shape: Sequence[int] | None = None,
                  class_names: Sequence[str] | None = None) -> "Dashboard":
        """Change what the views know about the model, rebuild the panels; returns the dashboard."""
        self.options = ViewOptions(tuple(image_shape) if image_shape else self.options.image_shape,
                                   class_names if class_names is not None else self.options.class_names,
                                   self.options.thresholds)
        with self.lock:
            self._build_panels()
        return self

    def redraw(self, full: bool = False, settle: bool = False) -> None:
        """Draw the latest state now (``full``: every panel, images included, whatever it costs;
        ``settle``: every part of the selected panel and the model views, as after a cell)."""
        with self.lock, self._history_lock:
            if not self._closed:
                self._redraw(full, float("inf") if settle else self.redraw_budget, settle)

    def detach(self) -> None:
        """The watcher stopped: stop the redraw thread and the after-cell callback, and stop
        listening. The widgets stay shown and the controls still redraw. Safe to repeat."""
        if getattr(self, "_thread", None) is not None:
            self._thread.stop()
            self._thread = None  # redraws asked by the controls now run where they are asked
        if getattr(self, "watcher", None) is not None:
            self.watcher.remove_listener(self._on_record)
        if getattr(self, "_ipython", None) is not None:
            try:
                self._ipython.events.unregister("post_run_cell", self._after_cell)
            except ValueError:
                pass

    def close(self) -> None:
        """Stop redrawing and close every widget of the dashboard (the watcher keeps recording)."""
        self._closed = True
        self.detach()
        with getattr(self, "lock", nullcontext()):
            close_widgets([self, *getattr(self, "links", [])])

    # ----- drawing ------------------------------------------------------------------------
    def _build_panels(self) -> None:
        self._entries = entries_of(self.history)
        self._panels = [Panel(self.history, name, self.options) for name in self._entries]
        index = min(self.dropdown.index or 0, len(self._entries) - 1) if self._entries else None
        with self.dropdown.hold_sync():
            if list(self.dropdown.options) != self._entries:
                self.dropdown.options = self._entries
            self.dropdown.index = index
        with self.stack.hold_sync():
            self.stack.children = [p.widget for p in self._panels]
            self.stack.selected_index = index
        self.selected = index or 0
        self.redraw(full=True)

    def _redraw(self, full: bool, budget: float, settle: bool = False) -> None:
        started = time.perf_counter()
        self._pending = False
        self._redraws += 1
        if len(self.history.feature_map_names) + len(self.history.names) + \
                len(self.history.names_of("activation")) != len(self._entries) + self._shared_entries():
            self._build_panels()  # w.probe(x) added modules: rebuilt once, drawn in full there
            return
        step = None if self.follow.value else self.slider.value
        sent = self._update_controls(started, full or settle)
        panels = self._panels
        selected = panels[min(self.selected, len(panels) - 1)] if panels else None
        if selected is not None:
            sent += self._draw_views(selected.curves, step)
            if self._fresh_selection:
                self._fresh_selection = False
                sent += self._draw_views(selected.pictures, step)
        if not (full or self.selection_known):
            # The browser may show any panel (switched there, unheard here): one more panel's
            # curves on every redraw, so that all are fresh within a few seconds.
            sent += self._draw_others(selected, step, full) or 0
        # The other parts share a budget: redraw_budget seconds per redraw on average. A part is
        # drawn while the budget is positive and paid for after, so a part dearer than one
        # redraw's share (ten class images) still comes, on fewer redraws.
        self._tokens = min(self._tokens + budget, 2 * budget)
        parts = self._parts(selected, step, full)
        for i in range(len(parts)):
            if not (full or settle) and (self._tokens <= 0 or sent > self.byte_budget):
                self._part_cursor = (self._part_cursor + i) % len(parts)
                break
            part_started = time.perf_counter()
            drawn = parts[(self._part_cursor + i) % len(parts)]()
            self._tokens -= time.perf_counter() - part_started
            sent += drawn or 0
        else:
            self._part_cursor = 0
        self.last_redraw_bytes = sent
        self.last_redraw_seconds = time.perf_counter() - started

    def _shared_entries(self) -> int:
        """Modules counted twice by _redraw's check (outputs and feature maps both kept)."""
        return len(set(self.history.names_of("activation")) & set(self.history.feature_map_names))

    def _parts(self, selected: Panel | None, step: int | None, full: bool) -> list[Callable[[], int | None]]:
        """What redraws draw in turn after the selected panel's curves; each returns bytes sent,
        or None when it had nothing due."""
        def pictures() -> int | None:
            return self._draw_views(selected.pictures, step) if selected is not None and selected.pictures else None

        def metrics() -> int | None:
            return self._draw_views([self.metrics], step) or None

        def table() -> int | None:
            now = time.perf_counter()
            if not full and now - self._last_table < TABLE_PERIOD:
                return None
            self._last_table = now
            return self._draw_views([self.table], step)

        def health() -> int | None:
            if full:
                self.health._next_search = float("-inf")
            return self._draw_views([self.health], step) or None

        def others() -> int | None:
            return self._draw_others(selected, step, full)

        def other_pictures() -> int | None:
            return self._draw_other_pictures(selected, step, full)

        parts = [pictures, metrics, table, health]
        if full:
            parts.append(others)
        if full or not self.selection_known:  # the browser may show any panel: keep all fresh
            parts.append(other_pictures)
        return parts

    def _draw_others(self, selected: Panel | None, step: int | None, full: bool) -> int | None:
        others = [p for p in self._panels if p is not selected]
        if not others:
            return None
        started, sent, visited = time.perf_counter(), 0, 0
        for i in range(len(others)):
            panel = others[(self._cursor + i) % len(others)]
            sent += self._draw_views(panel.curves, step)
            visited += 1
            if not full and (time.perf_counter() - started > self.redraw_budget or sent > self.byte_budget):
                break
        self._cursor = (self._cursor + visited) % len(others)
        return sent

    def _draw_other_pictures(self, selected: Panel | None, step: int | None, full: bool) -> int | None:
        others = [p for p in self._panels if p is not selected and p.pictures]
        if not others:
            return None
        if full:
            return sum(self._draw_views(p.pictures, step) for p in others)
        self._heavy_cursor = (self._heavy_cursor + 1) % len(others)
        return self._draw_views(others[self._heavy_cursor].pictures, step)

    def _draw_views(self, views: list[View], step: int | None) -> int:
        sent = 0
        for view in views:
            try:
                sent += view.update(self.history, step)
            except Exception as error:  # a view must never break training; say it in the view
                key = (type(view).__name__, getattr(view, "name", ""))
                if key not in self._failed:
                    self._failed.add(key)
                    log.exception("nbweights: %s of %s failed (logged once)", *key)
                try:
                    sent += view.fail(error)
                except Exception:
                    pass
        return sent

    def _update_controls(self, now: float, full: bool) -> int:
        latest = self.history.latest_step or 0
        sent = 0
        self._moving_slider = True
        try:
            # The max and the value go in separate messages, the max first. In one message the
            # browser's slider applies the max first, and its noUiSlider reports its handle, still
            # at the old step, as a change of value: that old step came back to the kernel, which
            # took it for a person scrubbing and switched "follow latest" off.
            if self.slider.max != latest:
                self.play.max = self.slider.max = latest  # the Play's too: the kernel clamps its value
                sent += 2 * 450
            if self.follow.value and self.slider.value != latest:
                self.slider.value = latest
                sent += 450
        finally:
            self._moving_slider = False
        if not full and now - self._last_status < STATUS_PERIOD:
            return sent
        self._last_status = now
        names = self.history.names
        snapshots = len(self.history.steps(names[0])) if names else 0
        overhead = getattr(getattr(self.watcher, "pacer", None), "overhead", None)
        parts = [f"step {latest}", f"{snapshots} snapshots"]
        if overhead is not None:
            parts.append(f"capture overhead {overhead:.1%}")
        if self.last_redraw_seconds:
            parts.append(f"redraw {1000 * self.last_redraw_seconds:.1f} ms, {self.last_redraw_bytes / 1024:.0f} KB")
        markup = " · ".join(parts)
        if self.status.value == markup:
            return sent
        self.status.value = markup
        return sent + 400 + len(markup)

    # ----- events (any thread) ------------------------------------------------------------
    def _draw_from_thread(self) -> None:
        settle, self._settle = self._settle, False
        self.redraw(settle=settle)

    _settle = _unsettled = False

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

    _last_redraw_end = float("-inf")

    def _after_cell(self, *_: Any) -> None:
        """IPython's post_run_cell: the run is over, draw what was left for later."""
        if self._closed or not (self._pending or self._unsettled):
            return
        self._unsettled = False
        if self._thread is not None:
            self._settle = True
            self._thread.request()
        else:
            self._safe_redraw(settle=True)

    def _safe_redraw(self, full: bool = False, settle: bool = False) -> None:
        try:
            self.redraw(full, settle)
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
                time.perf_counter() - self._last_record > IDLE_SECONDS:
            self._safe_redraw()
        else:
            self._pending = True

    def _on_select(self, change: dict) -> None:
        if change["new"] is not None:
            self.selected = change["new"]
            self._fresh_selection = True
            self._request()

    def _on_scrub(self, change: dict) -> None:
        if self._moving_slider:
            return
        if self.follow.value and change["new"] != (self.history.latest_step or 0):
            with self.lock:
                self.follow.value = False  # redraws via _on_follow
        else:
            self._fresh_selection = True
            self._request()

    def _on_follow(self, change: dict) -> None:
        self._fresh_selection = True
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
