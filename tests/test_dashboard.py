"""The dashboard's controls, browser-side switching, pacing and display."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch import nn

import nbweights as nbw
from nbweights.ui.dashboard import Dashboard


def step(model, optimizer, value=None):
    if value is not None:
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(value)
    optimizer.zero_grad()
    model(torch.randn(4, 3)).square().mean().backward()
    optimizer.step()


@pytest.fixture
def trained():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    watcher = nbw.watch(model, optimizer, every=1)
    dashboard = Dashboard(watcher, max_fps=1e9)
    for value in (0.25, 0.5, 0.75):
        step(model, optimizer, value)
    return model, optimizer, watcher, dashboard


def test_choosing_an_entry_builds_its_views_and_shows_only_them(trained):
    _, _, watcher, dashboard = trained
    names = ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert list(dashboard.dropdown.options) == names == watcher.history.names == dashboard.entries
    assert [p.name for p in dashboard.panels] == ["0.weight"]  # built when shown, not before
    assert dashboard.panel_box.children == (dashboard.shown.widget,)
    dashboard.dropdown.index = 2  # the kernel hears it: that entry's views are built and drawn
    assert dashboard.selected == 2 and dashboard.shown.name == "2.weight"
    assert dashboard.panel_box.children == (dashboard.shown.widget,)
    drawn = dashboard.shown.curves[0]
    assert drawn.drawn and np.asarray(drawn.current.y)[:-1].sum() == pytest.approx(8)  # 2 x 4 weights
    assert [p.name for p in dashboard.panels] == ["0.weight", "2.weight"]


def test_scrubbing_the_slider_leaves_follow_mode_and_shows_that_step(trained):
    _, _, watcher, dashboard = trained
    histogram = dashboard.panel("0.weight").curves[0]
    assert dashboard.slider.max == 3 and dashboard.slider.value == 3 and dashboard.follow.value
    def peak(lines):  # centre of the fullest bin of a step line over the bin edges
        x, y = np.asarray(lines.x), np.asarray(lines.y)[:-1]
        return (x[np.argmax(y)] + x[np.argmax(y) + 1]) / 2

    latest_centre = peak(histogram.current)
    dashboard.slider.value = 1
    assert dashboard.follow.value is False
    centre = peak(histogram.current)
    assert centre == pytest.approx(0.25, abs=1 / 32) and latest_centre == pytest.approx(0.75, abs=1 / 64)
    dashboard.follow.value = True
    assert dashboard.slider.value == 3
    assert peak(histogram.current) == pytest.approx(latest_centre)


def test_the_slider_gets_its_new_max_before_its_new_value(trained):
    model, optimizer, _, dashboard = trained
    messages = []
    dashboard.slider._send = lambda msg, buffers=None: messages.append(msg["state"])
    step(model, optimizer)
    # One message {max: 4, value: 4} made the browser's slider report its old value (3) back:
    # the kernel took it for scrubbing and left follow mode.
    assert messages == [{"max": 4}, {"value": 4}]
    assert dashboard.play.max == 4  # the kernel's Play must not clamp the value the browser links to it
    dashboard.play.value = 4
    assert dashboard.play.value == 4 and dashboard.follow.value
    # No browser-side link of the maxima: a stale max sent back mid-run clamped the kernel's slider.
    assert [(l.source[1], l.target[1]) for l in dashboard.links] == [("value", "value")]
    assert dashboard.play.value == dashboard.slider.value  # a Play at 0 pulled the slider back to 0


def test_a_dashboard_shown_after_training_opens_at_the_latest_step_and_follows():
    model = nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    watcher = nbw.watch(model, optimizer, every=1)
    for _ in range(30):
        step(model, optimizer)
    dashboard = watcher.dashboard  # first built now, after training
    assert dashboard.follow.value and dashboard.slider.value == dashboard.play.value == 30
    histogram = dashboard.panel("weight").curves[1]  # the gradient's, recorded from step 1
    assert histogram.drawn and not histogram._showing_message


@pytest.fixture
def ipython_shell():
    from IPython.core.interactiveshell import InteractiveShell
    shell = InteractiveShell.instance()
    yield shell
    InteractiveShell.clear_instance()


def test_after_a_cell_ipython_event_draws_what_was_left(trained, ipython_shell):
    model, optimizer, watcher, _ = trained
    dashboard = Dashboard(watcher, max_fps=0.001)
    step(model, optimizer, 0.9)  # the first capture after the dashboard draws at once
    step(model, optimizer, 0.9)  # the next waits: one redraw per 1000 s at most
    assert dashboard.dirty
    callbacks = list(ipython_shell.events.callbacks["post_run_cell"])
    ipython_shell.events.trigger("post_run_cell", None)
    assert "step 5" in dashboard.status.value and not dashboard.dirty
    dashboard.close()
    assert len(ipython_shell.events.callbacks["post_run_cell"]) == len(callbacks) - 1


def test_redraws_are_throttled_and_the_last_state_drawn_after_the_cell(trained):
    model, optimizer, watcher, dashboard = trained
    dashboard.max_fps = 0.001  # at most one redraw per 1000 s: the next capture comes too soon
    drawn = dashboard.status.value
    step(model, optimizer, 0.9)
    assert dashboard.status.value == drawn and dashboard.dirty
    dashboard.flush()  # what IPython's post_run_cell does
    assert "step 4" in dashboard.status.value and not dashboard.dirty


def test_status_line_names_step_snapshots_and_overhead(trained):
    _, _, watcher, dashboard = trained
    dashboard.flush()  # the status line is redrawn twice a second at most, and after a cell
    status = dashboard.status.value
    assert "step 3" in status and "4 snapshots" in status
    model = nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    auto = nbw.watch(model, optimizer)  # every="auto": the pacer measures its overhead
    dashboard = Dashboard(auto, max_fps=1e9)
    for _ in range(300):  # the overhead is known from the third capture on
        step(model, optimizer)
    dashboard.flush()
    assert re.search(r"capture overhead \d+\.\d%", dashboard.status.value), dashboard.status.value


def test_figures_have_fixed_pixel_sizes_and_stable_css_classes(trained):
    _, _, _, dashboard = trained
    panel = dashboard.panel("0.weight")
    for view in panel.curves:
        layout = view.figure.layout
        assert layout.width.endswith("px") and layout.height.endswith("px")
    assert "nbw-dashboard" in dashboard._dom_classes
    assert "nbw-panel" in panel.widget._dom_classes
    assert [c for v in panel.curves for c in v.widget._dom_classes if c != "nbw-view"] == \
        ["nbw-histogram", "nbw-histogram", "nbw-distribution"]
    assert "nbw-heatmap" in panel.pictures[0].widget._dom_classes
    bias = dashboard.panel("0.bias")  # views that do not apply take no space
    assert [type(v).__name__ for v in bias.pictures] == ["TrajectoriesView"]
    assert any("heatmap: needs a 2-D weight matrix" in r for r in bias.reasons)


def test_watcher_and_dashboard_display_as_the_widget(trained):
    _, _, watcher, dashboard = trained
    assert watcher.dashboard is watcher.dashboard
    bundle = watcher._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == watcher.dashboard.model_id
    shown = nbw.show(nn.Linear(3, 2))
    assert isinstance(shown, Dashboard) and shown.status.value.startswith("step 0")


def test_configure_and_watch_options_reach_the_class_images():
    model = nn.Linear(12, 2)
    watcher = nbw.watch(model, every=1, image_shape=(3, 4), class_names=["cat", "dog"])
    view = next(v for v in watcher.dashboard.panel("weight").pictures if type(v).__name__ == "ClassImagesView")
    assert view.labels == ["cat", "dog"]
    watcher.dashboard.configure(class_names=["a", "b"])
    view = next(v for v in watcher.dashboard.panel("weight").pictures if type(v).__name__ == "ClassImagesView")
    assert view.labels == ["a", "b"]


def test_close_stops_redrawing(trained):
    model, optimizer, watcher, dashboard = trained
    dashboard.close()
    step(model, optimizer)  # must not touch the closed widgets
    assert dashboard.trigger.recorded not in watcher._listeners and dashboard.trigger.closed


def test_bad_arguments_say_what_was_expected():
    with pytest.raises(TypeError, match="Watcher or a History, got str"):
        Dashboard("model")
