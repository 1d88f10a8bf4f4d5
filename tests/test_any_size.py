"""Any model size: the dashboard's widget count and first bytes are flat in the number of tensors,
the chooser lists a bounded number of entries, and navigation finds any of them."""
from __future__ import annotations

import ipywidgets
import numpy as np
import pytest
import torch
from torch import nn

import nbweights as nbw
from nbweights.ui.dashboard import Dashboard
from nbweights.ui.navigator import MAX_OPTIONS, EntryTree, module_path
from nbweights.views import measure


def stack_of(blocks: int, per_block: int = 5) -> nn.Module:
    """blocks x (per_block Linear(4, 4)) = blocks * per_block * 2 tensors, named like a transformer."""
    return nn.ModuleDict({"layers": nn.ModuleList(
        nn.Sequential(*[nn.Linear(4, 4) for _ in range(per_block)]) for _ in range(blocks))})


def open_widgets() -> int:
    return len(ipywidgets.Widget.widgets)


def dashboard_cost(model: nn.Module) -> tuple[int, int]:
    """(widget models created, bytes sent) by building and first drawing a dashboard."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    watcher = nbw.watch(model, optimizer, every=1)
    before = open_widgets()
    with measure() as sent:
        dashboard = Dashboard(watcher, max_fps=1e9)
    created = open_widgets() - before
    dashboard.close()
    watcher.close()
    return created, sent.bytes


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_widget_models_and_first_bytes_are_flat_from_10_to_1000_tensors():
    small = dashboard_cost(stack_of(1))       # 10 tensors
    large = dashboard_cost(stack_of(100))     # 1,000 tensors
    assert sum(1 for _ in stack_of(100).parameters()) == 1000
    assert large[0] <= small[0] * 1.1 + 5, (small, large)
    # Bytes: the overview PNG and the table grow a little with the model (bounded rows and image).
    assert large[1] <= small[1] * 1.1 + 48_000, (small, large)


def test_entry_tree_lists_modules_with_counts_and_bounds_the_list():
    entries = [f"layers.{b}.{i}.{p}" for b in range(100) for i in range(5) for p in ("weight", "bias")]
    tree = EntryTree(entries)
    assert module_path("layers.3.0.weight") == ["layers", "3", "0"]
    assert module_path("activation: layers.3.0") == ["layers", "3", "0"]
    assert tree.choices("")[:2] == [("whole model (1000)", ""), ("  layers (1000)", "layers")]
    inside = tree.choices("layers.42")
    assert ("    layers.42 (10)", "layers.42") in inside and len(inside) == 1 + 2 + 5
    listed, found = tree.shown("", "", keep=None)
    assert found == 1000 and len(listed) == MAX_OPTIONS
    listed, found = tree.shown("layers.42", "bias", keep=None)
    assert found == 5 and listed == [f"layers.42.{i}.bias" for i in range(5)]
    listed, found = tree.shown("", "42.3 weight", keep="layers.0.0.bias")  # words in any order
    assert listed == ["layers.0.0.bias", "layers.42.3.weight"] and found == 1


def test_filtering_then_choosing_opens_the_1000th_tensor():
    model = stack_of(100)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    watcher = nbw.watch(model, optimizer, every=1)
    dashboard = Dashboard(watcher, max_fps=1e9)
    last = watcher.history.names[-1]
    assert last == "layers.99.4.bias" and last not in dashboard.dropdown.options
    dashboard.navigator.filter.value = "99.4"
    assert list(dashboard.dropdown.options)[1:] == ["layers.99.4.weight", "layers.99.4.bias"]
    assert "2 of 1000 entries match" in dashboard.navigator.note.value
    dashboard.dropdown.value = last
    dashboard.flush()
    assert dashboard.shown.name == last and dashboard.shown.curves[0].drawn
    dashboard.navigator.module.value = "layers"
    assert [v for _, v in dashboard.navigator.module.options][:3] == ["", "layers", "layers.0"]
    dashboard.navigator.filter.value = "42.3 weight"  # one entry left: shown without picking it
    dashboard.flush()
    assert dashboard.shown.name == dashboard.dropdown.value == "layers.42.3.weight"
    dashboard.navigator.filter.value = "weight"  # many again: what is shown stays
    dashboard.flush()
    assert dashboard.shown.name == "layers.42.3.weight"


def test_a_newly_shown_entry_has_its_curves_data_before_the_page_is_told_to_show_it(monkeypatch):
    """The browser then renders each new figure once, with its data (not empty, then again)."""
    model = stack_of(1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    watcher = nbw.watch(model, optimizer, every=1)
    optimizer.zero_grad()
    model["layers"][0](torch.randn(3, 4)).sum().backward()
    optimizer.step()
    dashboard = Dashboard(watcher, max_fps=1e9)
    dashboard.flush()
    sent, send = [], ipywidgets.Widget._send

    def spy(widget, msg, buffers=None):
        sent.append((widget, set(msg.get("state", {}))))
        return send(widget, msg, buffers)

    monkeypatch.setattr(ipywidgets.Widget, "_send", spy)
    assert dashboard.select("layers.0.3.weight")
    dashboard.redraw()
    line = dashboard.shown.curves[0].current
    data = [k for k, (widget, keys) in enumerate(sent) if widget is line and "y" in keys]
    shown = [k for k, (widget, keys) in enumerate(sent) if widget is dashboard.panel_box and "children" in keys]
    assert data and shown and data[0] < shown[0], (data, shown)


def test_the_model_overview_has_a_row_per_tensor_and_opens_what_stands_out():
    from tests.test_views import decode_png
    model = stack_of(3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    watcher = nbw.watch(model, optimizer, every=1)
    dashboard = Dashboard(watcher, max_fps=1e9)
    for _ in range(4):
        optimizer.zero_grad()
        model["layers"][2](model["layers"][1](model["layers"][0](torch.randn(3, 4)))).sum().backward()
        optimizer.step()
    dashboard.flush()
    pixels = decode_png(dashboard.overview.png.value)
    assert pixels.shape[:2] == (30, 5)  # 30 tensors x 5 recorded steps
    options = dashboard.overview.open.options
    assert len(options) == 13 and options[0][1] == -1  # the 12 rows that stand out most, then open one
    row = options[3][1]
    dashboard.overview.open.value = row
    assert dashboard.selected == row and dashboard.dropdown.value == watcher.history.names[row]
    # The update-ratio curves' log axis is labelled within its domain only, at powers of ten (and
    # 2 and 5 times them over less than two decades), in short labels ("2e-4").
    axis, scale = dashboard.overview.curves.axes[1], dashboard.overview.curves.axes[1].scale
    ticks = np.asarray(axis.tick_values)
    assert len(ticks) >= 2 and ((ticks >= scale.min) & (ticks <= scale.max)).all(), (ticks, scale.min, scale.max)
    mantissas = ticks / 10.0 ** np.floor(np.log10(ticks) + 1e-6)
    assert np.isin(np.round(mantissas, 3), [1, 2, 3, 5]).all(), ticks
    assert axis.tick_format == "~e"


def test_the_overview_says_what_will_appear_before_the_first_optimizer_step():
    """At watch() only step 0's weights exist: no grey block of unmeasured update ratios and no
    bqplot ticks spread over an empty log scale, but notes of what comes; then the pictures."""
    model = stack_of(2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    watcher = nbw.watch(model, optimizer, every=1)
    dashboard = Dashboard(watcher, max_fps=1e9)
    dashboard.flush()
    overview = dashboard.overview
    hidden = lambda w: w.layout.display == "none"  # noqa: E731
    assert hidden(overview.png) and hidden(overview.colorbar) and overview._curves_drawn.layout.max_height == "0px"
    assert "no update ratio (log10) recorded yet (step 0)" in overview.map_title.value
    assert "appears with the first captured optimizer step" in overview.curves_note.value
    overview.statistic.value = "std of the weights"  # measured at step 0: drawn now
    assert not hidden(overview.png) and "every parameter tensor" in overview.map_title.value
    overview.statistic.value = "update ratio (log10)"
    optimizer.zero_grad()
    model["layers"][1](model["layers"][0](torch.randn(3, 4))).sum().backward()
    optimizer.step()
    dashboard.flush()
    assert not hidden(overview.png) and overview._curves_drawn.layout.max_height is None and hidden(overview.curves_note)
    assert "every parameter tensor" in overview.map_title.value and len(overview.median.x) == 1


def test_max_fps_is_checked_by_the_setter_as_by_the_constructor():
    watcher = nbw.watch(nn.Linear(2, 2), every=1)
    with pytest.raises(ValueError, match="max_fps= must be a positive number, got 0"):
        Dashboard(watcher, max_fps=0)
    dashboard = Dashboard(watcher)
    with pytest.raises(ValueError, match="max_fps= must be a positive number, got 0"):
        dashboard.max_fps = 0
    assert dashboard.max_fps > 0
