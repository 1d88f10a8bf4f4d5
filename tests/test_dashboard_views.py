"""Issue #8's views in the dashboard: gradient and activation histograms, feature maps, health,
and the redraw design (selection heard mid-run, redraw thread)."""
from __future__ import annotations

import html
import threading
import time

import numpy as np
import pytest
import torch
from torch import nn

import nbweights as nbw
from nbweights.ui.dashboard import ACTIVATION_PREFIX, Dashboard
from nbweights.ui.redrawer import RedrawThread
from nbweights.views.activations import ActivationFractionsView, FeatureMapsView
from nbweights.views import ViewOptions
from nbweights.views.health import HealthView
from nbweights.views.histogram import HistogramView


def sgd_steps(model, optimizer, steps, inputs):
    for _ in range(steps):
        optimizer.zero_grad()
        model(inputs).square().mean().backward()
        optimizer.step()


def test_gradient_histogram_counts_match_the_recorded_gradient():
    model = nn.Linear(4, 2, bias=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    watcher = nbw.watch(model, optimizer, every=1)
    dashboard = Dashboard(watcher, max_fps=1e9)
    sgd_steps(model, optimizer, 2, torch.randn(8, 4))
    dashboard.flush()
    view = dashboard.panel("weight").curves[1]
    assert isinstance(view, HistogramView) and view.of == "grad"
    edges, counts = watcher.history.histogram("weight", of="grad")
    assert np.asarray(view.current.y)[:-1].tolist() == pytest.approx(counts.tolist())
    assert np.asarray(view.current.x) == pytest.approx(edges)  # a step line over the bin edges
    assert np.asarray(view.current.y)[:-1].sum() == pytest.approx(8)


@pytest.fixture
def cnn_watched():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 6 * 6, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    watcher = nbw.watch(model, optimizer, every=1, activations=True)
    watcher.probe(torch.randn(1, 1, 6, 6))
    dashboard = Dashboard(watcher, max_fps=1e9)
    sgd_steps(model, optimizer, 3, torch.randn(4, 1, 6, 6))
    dashboard.flush()
    return model, optimizer, watcher, dashboard


def test_activation_entries_follow_the_parameters_in_the_dropdown(cnn_watched):
    _, _, watcher, dashboard = cnn_watched
    modules = watcher.history.names_of("activation")
    assert modules == ["0", "1", "3"]
    assert list(dashboard.dropdown.options) == watcher.history.names + [ACTIVATION_PREFIX + m for m in modules]
    assert len(dashboard.panel_box.children) == 1  # one entry's views at a time


def test_activation_panel_histogram_follows_the_recorded_counts(cnn_watched):
    _, _, watcher, dashboard = cnn_watched
    dashboard.select("1")  # the ReLU's outputs
    assert dashboard.dropdown.value == "activation: 1" and dashboard.selected == dashboard.dropdown.index
    panel = dashboard.panel("activation: 1")
    histogram, distribution, fractions = panel.curves
    assert histogram.of == "activation" and "nbw-histogram" in histogram.widget._dom_classes
    _, counts = watcher.history.histogram("1", of="activation")
    assert np.asarray(histogram.current.y)[:-1] == pytest.approx(counts)
    assert np.asarray(histogram.current.y)[:-1].sum() == pytest.approx(4 * 3 * 6 * 6, rel=0.02)
    assert np.asarray(distribution.bands.y).shape == (7, 3)  # steps 1..3 (outputs come with steps)
    assert isinstance(fractions, ActivationFractionsView)
    dead = watcher.history.stats("1", of="activation")["dead_fraction"]
    # A ReLU cannot saturate: one curve, no all-NaN one (bqplot places NaN at 'undefined').
    assert np.asarray(fractions.lines.y).tolist() == pytest.approx(dead.astype(np.float32).tolist())
    assert np.asarray(fractions.lines.x).tolist() == [1, 2, 3]


def test_feature_map_mosaic_has_one_tile_per_channel(cnn_watched):
    from tests.test_views import decode_png
    _, _, watcher, dashboard = cnn_watched
    panel = dashboard.panel("activation: 0")  # the conv layer, probed by default
    view = next(v for v in panel.pictures if isinstance(v, FeatureMapsView))
    dashboard.select("0")
    dashboard.redraw(settle=True)
    assert view.tiles == 3
    pixels = decode_png(view.image.value)
    assert pixels.shape[:2] == (2 * (6 + 1) + 1, 2 * (6 + 1) + 1)  # 3 tiles on a 2x2 grid, 1 px gaps
    maps = watcher.history.feature_maps("0").array
    assert "nbw-feature-maps-image" in view.image._dom_classes
    positive = np.unravel_index(np.argmax(maps[1]), maps[1].shape)
    red = pixels[1 + positive[0], 1 + 7 + positive[1]].astype(int)  # tile 1: top row, second column
    assert red[0] > 90 and red[0] > red[2] + 40


def test_health_panel_lists_nan_and_its_button_selects_the_parameter():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e12)
    watcher = nbw.watch(model, optimizer, every=1)
    dashboard = Dashboard(watcher, max_fps=1e9)
    inputs = torch.randn(16, 4) * 100
    for _ in range(6):
        optimizer.zero_grad()
        model(inputs).pow(4).mean().backward()
        optimizer.step()
    dashboard.redraw(full=True)
    health = dashboard.health
    assert isinstance(health, HealthView) and "nbw-health" in health.widget._dom_classes
    kinds = [s.kind for s in health.signals]
    assert "nonfinite" in kinds
    nan = next(s for s in health.signals if s.kind == "nonfinite")
    rows = [cells.value for _, _, cells, _ in health.rows]
    assert any('class="nbw-signal nbw-signal-nonfinite"' in r and nan.name in r for r in rows)
    _, box, _, button = next(row for row in health.rows if row[0] is nan)
    assert "nbw-signal-row" in box._dom_classes and "nbw-signal-select" in button._dom_classes
    dashboard.dropdown.index = len(dashboard.dropdown.options) - 1 if nan.name != watcher.history.names[-1] else 0
    button.click()
    assert dashboard.dropdown.value == nan.name and dashboard.selected == watcher.history.names.index(nan.name)
    assert dashboard.shown.name == nan.name


def test_health_rows_wrap_their_message_and_line_up_with_their_button():
    from nbweights.ui.dashboard import STYLE
    from nbweights.health import Signal
    from nbweights.views.health import BUTTON_WIDTH, WIDTHS
    health = HealthView(ViewOptions(), select=lambda name: True)
    message = "fc.weight: updates of 0.11 of the weights' size at step 18 (healthy is ~1e-3); lower the lr"
    health.show([Signal("exploding", "fc.weight", 18, 0.11, message)])
    _, box, cells, button = health.rows[0]
    assert f'title="{html.escape(message)}">{html.escape(message)}</td>' in cells.value  # whole, and as tooltip
    header_cols = health.header.value.count("<col ")
    assert header_cols == len(WIDTHS) + 1 and f"width: {sum(WIDTHS) + BUTTON_WIDTH}px" in health.header.value
    assert f"width: {sum(WIDTHS)}px" in cells.value  # the row's table, then the button's column
    assert int(button.layout.width[:-2]) + int(button.layout.margin.split()[3][:-2]) == BUTTON_WIDTH
    assert box.layout.align_items == "center"
    health_css = [line for line in STYLE.splitlines() if "nbw-health-table" in line]
    assert health_css and not any("nowrap" in line or "ellipsis" in line for line in health_css)


def test_health_signals_are_searched_at_most_once_a_period(monkeypatch):
    model = nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    watcher = nbw.watch(model, optimizer, every=1)
    dashboard = Dashboard(watcher, max_fps=1e9)
    calls = []
    import nbweights.health as health_module
    original = health_module.find_signals
    monkeypatch.setattr(health_module, "find_signals", lambda *a: calls.append(1) or original(*a))
    dashboard.search.period = 60.0  # a slow machine must not make the loop outlast the period
    sgd_steps(model, optimizer, 1, torch.randn(4, 3))
    dashboard.flush()  # searches at once
    for _ in range(20):
        sgd_steps(model, optimizer, 1, torch.randn(4, 3))
        dashboard.redraw()
    assert len(calls) == 1  # 20 redraws within the period: one search, shared by table and panel
    dashboard.flush()  # a cell's end searches again
    assert len(calls) == 2


def test_selection_heard_mid_run_draws_that_panel_fully_at_the_next_redraw():
    model = nn.Sequential(nn.Linear(6, 5), nn.Linear(5, 4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    watcher = nbw.watch(model, optimizer, every=1)
    dashboard = Dashboard(watcher, max_fps=1e9)
    sgd_steps(model, optimizer, 2, torch.randn(3, 6))
    assert "1.weight" not in [p.name for p in dashboard.panels]  # not shown: not even built
    # The handler on the subshell thread while training runs (a capture just now): it only sets
    # the selection; the next capture's redraw builds and draws that entry.
    sgd_steps(model, optimizer, 1, torch.randn(3, 6))
    worker = threading.Thread(target=lambda: setattr(dashboard.dropdown, "index", 2))
    worker.start()
    worker.join()
    assert dashboard.selected == 2 and dashboard.dirty and dashboard.shown.name == "0.weight"
    sgd_steps(model, optimizer, 1, torch.randn(3, 6))  # the next capture's redraw
    version = watcher.history.version
    other = dashboard.shown
    assert other.name == "1.weight" and all(v.drawn for v in other.curves)
    dashboard.flush()
    assert all(v._drawn == (version, None) for v in other.curves + other.pictures)


def test_redraw_thread_draws_off_the_training_thread_and_stops():
    model = nn.Linear(4, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    watcher = nbw.watch(model, optimizer, every=1)
    dashboard = Dashboard(watcher, max_fps=50, threaded=True)
    drawn_on = []
    original = dashboard._redraw
    dashboard._redraw = lambda *a: drawn_on.append(threading.current_thread().name) or original(*a)
    sgd_steps(model, optimizer, 5, torch.randn(2, 4))
    deadline = time.time() + 5
    while time.time() < deadline and (not drawn_on or dashboard.dirty):
        time.sleep(0.02)
    assert drawn_on and set(drawn_on) == {"nbweights-redraw"}
    view = dashboard.panel("weight").curves[0]
    assert view._drawn == (watcher.history.version, None)
    thread = next(t for t in threading.enumerate() if t.name == "nbweights-redraw")
    dashboard.close()
    thread.join(2)
    assert not thread.is_alive()


def test_redraw_thread_survives_a_failing_redraw(caplog):
    calls = []

    def draw():
        calls.append(1)
        raise RuntimeError("boom")

    thread = RedrawThread(draw, max_fps=1000)
    for _ in range(3):
        thread.request()
        time.sleep(0.05)
    assert len(calls) == 3 and thread.alive
    assert sum("redraw failed" in r.getMessage() for r in caplog.records) == 1
    thread.stop()
    thread.thread.join(2)
    assert not thread.alive
