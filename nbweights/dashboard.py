"""The dashboard: lays the views out, owns the parameter Dropdown and the step slider, and paces
redraws from the watcher's listener on the training thread.

While a synchronous training loop runs in a later cell, the kernel hears nothing from the browser
(ipykernel handles comm messages only between cells), but its own updates reach the browser. So
the Dropdown switches an ipywidgets.Stack of per-parameter panels *in the browser* (``jslink``),
and every redraw keeps the panels fresh: the panel the kernel knows is selected in full, then the
curves of the other panels in turn, within ``byte_budget`` bytes and a few milliseconds, and
their images less often. When the browser's messages do arrive (after the cell, or between awaits
of an async loop) the selected panel is drawn in full.

>>> w = nbw.watch(model, optimizer)
>>> w.dashboard.configure(class_names=["T-shirt", "Trouser", ...])   # or just `w` in a cell
"""
from __future__ import annotations

import functools
import logging
import time
from typing import Any, Sequence

import ipywidgets as widgets

from .views import View, ViewOptions
from .views.class_images import ClassImagesView
from .views.distribution import DistributionView
from .views.filters import FilterMosaicView
from .views.heatmap import HeatmapView
from .views.histogram import HistogramView
from .views.layer_table import LayerTableView
from .views.metrics import MetricsView
from .views.trajectories import TrajectoriesView

log = logging.getLogger("nbweights")

#: Views drawn for every parameter (curves: cheap, refreshed for every panel in turn).
CURVE_VIEWS = (HistogramView, functools.partial(HistogramView, of="grad"), DistributionView)
#: Picture views, each shown where it applies (images: refreshed less often when not selected).
PICTURE_VIEWS = (HeatmapView, FilterMosaicView, ClassImagesView, TrajectoriesView)
#: Redraws per second at most: each redraw costs the training thread ~1-5 ms.
MAX_FPS = 15.0
#: Bytes one redraw may send, whatever the model's size.
BYTE_BUDGET = 64 * 1024
#: Time one redraw may spend on panels other than the selected one.
ROUND_ROBIN_SECONDS = 0.004
#: The other panels' images are refreshed on one redraw in this many.
HEAVY_EVERY = 4
#: The layer table is redrawn at most this often (seconds): it is the largest text sent.
TABLE_PERIOD = 1.0

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
</style>"""


class Panel:
    """The views of one parameter, in one box: curves on top, the picture views that apply below."""

    def __init__(self, history, name: str, options: ViewOptions):
        self.name = name
        self.curves: list[View] = [make(name, options) for make in CURVE_VIEWS]
        self.pictures: list[View] = []
        reasons = []
        for view_class in PICTURE_VIEWS:
            reason = view_class.applies(history, name, options)
            if reason is None:
                self.pictures.append(view_class(name, options))
            else:
                reasons.append(reason)
        notes = widgets.HTML("<br>".join(reasons))
        notes.add_class("nbw-picture-notes")
        row = widgets.HBox([v.widget for v in self.curves], layout=widgets.Layout(flex_flow="row wrap"))
        pictures = widgets.HBox([v.widget for v in self.pictures], layout=widgets.Layout(flex_flow="row wrap"))
        self.widget = widgets.VBox([row, pictures, notes])
        self.widget.add_class("nbw-panel")
        #: Bytes the curves sent last time: the estimate the byte budget goes by.
        self.curve_bytes = 8 * 1024


class Dashboard(widgets.VBox):
    """Live views of a watched model (``Watcher.dashboard``, or a saved ``History``).

    Options: ``image_shape=`` (e.g. ``(28, 28)``: the image a Linear layer's inputs are, for class
    images), ``class_names=`` (labels of the class images), ``max_fps=`` (redraws per second at
    most), ``byte_budget=`` (bytes per redraw at most, beyond the selected panel's first draw).
    """

    def __init__(self, source: Any, *, image_shape: Sequence[int] | None = None,
                 class_names: Sequence[str] | None = None, max_fps: float = MAX_FPS,
                 byte_budget: int = BYTE_BUDGET):
        self.watcher = source if hasattr(source, "add_listener") else None
        self.history = source.history if hasattr(source, "history") else source
        if not hasattr(self.history, "histograms"):
            raise TypeError(f"Dashboard() expected a Watcher or a History, got {type(source).__name__}")
        if max_fps <= 0 or byte_budget <= 0:
            raise ValueError(f"max_fps= and byte_budget= must be positive, got {max_fps!r}, {byte_budget!r}")
        self.max_fps, self.byte_budget = float(max_fps), int(byte_budget)
        self.options = ViewOptions(tuple(image_shape) if image_shape else None, class_names,
                                   getattr(self.watcher, "thresholds", None))
        names = self.history.names
        latest = self.history.latest_step or 0
        self.dropdown = widgets.Dropdown(options=names, description="parameter",
                                         layout=widgets.Layout(width="360px"))
        self.stack = widgets.Stack([])
        #: Browser-side links: they work while a cell runs, when the kernel hears nothing.
        self.links = [widgets.jslink((self.dropdown, "index"), (self.stack, "selected_index"))]
        self.slider = widgets.IntSlider(min=0, max=latest, value=latest, description="step",
                                        layout=widgets.Layout(width="420px"))
        self.play = widgets.Play(min=0, max=latest, interval=150, layout=widgets.Layout(width="90px"))
        self.links += [widgets.jslink((self.play, "value"), (self.slider, "value")),
                       widgets.jslink((self.play, "max"), (self.slider, "max"))]
        self.follow = widgets.ToggleButton(value=True, description="follow latest", icon="forward",
                                           tooltip="show each new step as it is recorded")
        self.status = widgets.HTML("")
        self.status.add_class("nbw-status")
        self.table, self.metrics = LayerTableView(self.options), MetricsView(self.options)
        for widget, css in ((self.dropdown, "nbw-parameter"), (self.slider, "nbw-step"), (self.play, "nbw-play"),
                            (self.follow, "nbw-follow"), (self.stack, "nbw-stack")):
            widget.add_class(css)
        controls = widgets.HBox([self.dropdown, self.play, self.slider, self.follow])
        controls.add_class("nbw-controls")
        super().__init__([widgets.HTML(STYLE), controls, self.status, self.stack, self.metrics.widget,
                          self.table.widget])
        self.add_class("nbw-dashboard")

        self.selected = 0  # the panel the kernel knows is shown
        self.last_redraw_seconds = 0.0
        self.last_redraw_bytes = 0
        self._panels: list[Panel] = []
        self._cursor = self._heavy_cursor = self._redraws = 0
        self._last_redraw = self._last_table = float("-inf")
        self._pending = False
        self._moving_slider = False
        self._failed: set[tuple[str, str]] = set()
        self._build_panels()
        self.dropdown.observe(self._on_select, "index")
        self.slider.observe(self._on_scrub, "value")
        self.follow.observe(self._on_follow, "value")
        if self.watcher is not None:
            self.watcher.add_listener(self._on_record)
        self._ipython = _ipython()
        if self._ipython is not None:
            self._ipython.events.register("post_run_cell", self._after_cell)

    # ----- public -------------------------------------------------------------------------
    @property
    def panels(self) -> list[Panel]:
        return list(self._panels)

    def panel(self, name: str) -> Panel:
        """The panel of a parameter, by its qualified name (``"layer1.0.conv1.weight"``)."""
        for panel in self._panels:
            if panel.name == name:
                return panel
        raise KeyError(f"no parameter {name!r}; watched: {', '.join(self.history.names[:8])}")

    def configure(self, *, image_shape: Sequence[int] | None = None,
                  class_names: Sequence[str] | None = None) -> "Dashboard":
        """Change what the views know about the model, rebuild the panels; returns the dashboard."""
        self.options = ViewOptions(tuple(image_shape) if image_shape else self.options.image_shape,
                                   class_names if class_names is not None else self.options.class_names,
                                   self.options.thresholds)
        self._build_panels()
        return self

    def redraw(self, full: bool = False) -> None:
        """Draw the latest state now (``full``: every panel, images included, whatever it costs)."""
        started = time.perf_counter()
        self._pending = False
        self._redraws += 1
        step = None if self.follow.value else self.slider.value
        sent = self._update_controls()
        panels, selected = self._panels, None
        if panels:
            selected = panels[min(self.selected, len(panels) - 1)]
            sent += self._draw_views(selected.curves + selected.pictures, step)
        sent += self._draw_views([self.metrics], step)
        if full or started - self._last_table >= TABLE_PERIOD:
            self._last_table = started
            sent += self._draw_views([self.table], step)
        others = [panels[(self._cursor + i) % len(panels)] for i in range(len(panels))] if panels else []
        others = [p for p in others if p is not selected]
        visited, round_robin_started = 0, time.perf_counter()
        for panel in others:
            over_time = time.perf_counter() - round_robin_started > ROUND_ROBIN_SECONDS
            if not full and (over_time or sent + panel.curve_bytes > self.byte_budget):
                break
            panel.curve_bytes = max(self._draw_views(panel.curves, step), 1024)
            sent += panel.curve_bytes
            visited += 1
        self._cursor = (self._cursor + visited) % max(len(panels), 1)
        if others and (full or self._redraws % HEAVY_EVERY == 0):
            for panel in others if full else [others[self._heavy_cursor % len(others)]]:
                if full or sent < self.byte_budget // 2:
                    sent += self._draw_views(panel.pictures, step)
            self._heavy_cursor += 1
        self.last_redraw_bytes = sent
        self.last_redraw_seconds = time.perf_counter() - started
        self._last_redraw = time.perf_counter()

    def close(self) -> None:
        """Stop redrawing and close the widgets (the watcher keeps recording)."""
        if getattr(self, "watcher", None) is not None:
            self.watcher.remove_listener(self._on_record)
        if getattr(self, "_ipython", None) is not None:
            try:
                self._ipython.events.unregister("post_run_cell", self._after_cell)
            except ValueError:
                pass
        super().close()

    # ----- internals ----------------------------------------------------------------------
    def _build_panels(self) -> None:
        self._panels = [Panel(self.history, name, self.options) for name in self.history.names]
        with self.stack.hold_sync():
            self.stack.children = [p.widget for p in self._panels]
            self.stack.selected_index = self.dropdown.index
        self.redraw(full=True)

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

    def _update_controls(self) -> int:
        latest = self.history.latest_step or 0
        self._moving_slider = True
        try:
            with self.slider.hold_sync():
                if self.slider.max != latest:
                    self.slider.max = latest
                if self.follow.value and self.slider.value != latest:
                    self.slider.value = latest
        finally:
            self._moving_slider = False
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
            return 0
        self.status.value = markup
        return 400 + len(markup)

    def _on_record(self, step: int) -> None:
        """Watcher listener, on the training thread: redraw at most ``max_fps`` times a second."""
        if time.perf_counter() - self._last_redraw < 1.0 / self.max_fps:
            self._pending = True  # drawn by the next redraw, or after the cell ends
            return
        try:
            self.redraw()
        except Exception:
            log.exception("nbweights: dashboard redraw failed")

    def _after_cell(self, *_: Any) -> None:
        if self._pending:
            self._safe_redraw()

    def _safe_redraw(self, full: bool = False) -> None:
        try:
            self.redraw(full)
        except Exception:
            log.exception("nbweights: dashboard redraw failed")

    def _on_select(self, change: dict) -> None:
        if change["new"] is not None:
            self.selected = change["new"]
            self._safe_redraw()

    def _on_scrub(self, change: dict) -> None:
        if self._moving_slider:
            return
        if self.follow.value and change["new"] != (self.history.latest_step or 0):
            self.follow.value = False  # redraws via _on_follow
        else:
            self._safe_redraw()

    def _on_follow(self, change: dict) -> None:
        self._safe_redraw()


def _ipython():
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()
