"""Widget state each view produces from tensors whose summaries are known by hand."""
from __future__ import annotations

import json
from collections import OrderedDict
import logging
import struct
import threading
import zlib

import numpy as np
import pytest
import torch
from torch import nn

import ipywidgets
import nbweights as nbw
from nbweights.ui.dashboard import Dashboard
from nbweights.views import ViewOptions as ViewOptionsForTest, log_ticks, nice_ticks
from nbweights.views.distribution import DistributionView, percentiles_from_histograms
from nbweights.views.heatmap import HeatmapView
from nbweights.views.layer_table import LayerTableView


def decode_png(data: bytes) -> np.ndarray:
    """[H, W, 3] uint8 of a non-interlaced 8-bit RGB or palette PNG with filter 0 rows."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    at, chunks = 8, {}
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        body = data[at + 8:at + 8 + length]
        assert struct.unpack(">I", data[at + 8 + length:at + 12 + length])[0] == zlib.crc32(kind + body)
        chunks[kind] = chunks.get(kind, b"") + body
        at += 12 + length
    width, height, depth, color_type = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    channels = 3 if color_type == 2 else 1
    raw = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(height, 1 + width * channels)
    assert depth == 8 and (raw[:, 0] == 0).all()
    pixels = raw[:, 1:].reshape(height, width, channels)
    if color_type == 3:
        palette = np.frombuffer(chunks[b"PLTE"], np.uint8).reshape(-1, 3)
        return palette[pixels[..., 0]]
    return pixels


def watched(model: nn.Module, steps: int = 3, lr: float = 0.0, **options):
    """A watcher (every step) and its dashboard after ``steps`` optimizer steps on random data."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    watcher = nbw.watch(model, optimizer, every=1)
    dashboard = Dashboard(watcher, max_fps=1e9, **options)
    for _ in range(steps):
        train_step(model, optimizer)
    dashboard.flush()  # the cell ends: what redraws left for later is drawn
    return watcher, dashboard, optimizer


def train_step(model: nn.Module, optimizer) -> None:
    first = next(model.parameters())
    inputs = torch.randn(4, *first.shape[1:2]) if first.dim() == 2 else torch.randn(2, first.shape[1], 8, 8)
    optimizer.zero_grad()
    model(inputs).square().mean().backward()
    optimizer.step()


def test_histogram_bars_are_the_known_counts():
    model = nn.Linear(4, 2, bias=False)
    with torch.no_grad():  # range 1.0 (max |w| 0.9), 64 bins of 1/32: bins 3, 35 and 60
        model.weight.copy_(torch.tensor([[-0.9, -0.9, 0.1, 0.1], [0.1, 0.1, 0.1, 0.9]]))
    _, dashboard, _ = watched(model)
    view = dashboard.panel("weight").curves[0]
    heights = np.asarray(view.current.y)
    assert view.current.y.dtype == np.float32 and view.current.x.dtype == np.float32
    assert np.flatnonzero(heights).tolist() == [3, 35, 60]
    assert heights[[3, 35, 60]].tolist() == [2, 5, 1]
    assert np.asarray(view.first.y)[[3, 35, 60]].tolist() == [2, 5, 1]  # first step, behind
    assert view.current.x[35] == pytest.approx((35 / 32) - 1) and len(view.current.x) == 65  # bin edges
    assert "weight" in view.figure.title and view.figure.axes[1].label == "count of elements"
    # Counts start at 0: no padding below the scale's min (bqplot pads it: ticks "-233", "-0.417").
    x_axis, y_axis, log_axis = view.figure.axes
    assert np.asarray(y_axis.tick_values).tolist() == [0, 1, 2, 3, 4, 5] or \
        np.asarray(y_axis.tick_values).tolist() == [0, 2, 4]  # whole counts, round steps
    assert y_axis.tick_format == "~s" and x_axis.tick_format == ".3~g"
    assert np.asarray(x_axis.tick_values).tolist() == pytest.approx([-1, -0.5, 0, 0.5, 1])
    assert not log_axis.visible and y_axis.visible
    # The browser gives a mark or an axis a new scale badly (ticks at NaN, zeros on a log scale):
    # "log count" shows other lines and another axis, and nothing ever changes scale.
    log_lines = [m for m in view.figure.marks if m.scales["y"] is view.log_scale]
    linear_lines = [m for m in view.figure.marks if m.scales["y"] is view.linear_scale]
    sent = []
    for widget in (*view.figure.marks, y_axis, log_axis, view.log_scale):
        def record(key=None, _widget=widget, _send=widget.send_state):
            sent.append((_widget, _widget.get_state(key)))
            return _send(key)
        widget.send_state = record
    view.log_toggle.value = True
    assert view.current in log_lines and type(view.current.scales["y"]).__name__ == "LogScale"
    assert [m.visible for m in log_lines] == [True, True] and [m.visible for m in linear_lines] == [False, False]
    assert log_axis.visible and not y_axis.visible and view.log_scale.min == 0.5 and view.log_scale.max == 5
    assert np.asarray(view.current.y)[0] == 0.5  # empty bins sit on the log axis floor
    assert np.asarray(log_axis.tick_values).tolist() == [1, 2, 5]  # from 1 (largest count 5): 1, 2, 5
    view.log_toggle.value = False
    assert view.current in linear_lines and np.asarray(view.current.y)[0] == 0 and y_axis.visible
    assert not any("scales" in state or "scale" in state for _, state in sent)
    for widget, state in sent:  # what the log scale's lines and axis hold is drawable on it
        if widget in log_lines and "y" in state:
            assert np.frombuffer(state["y"]["value"], np.float32).min() >= 0.5
        if widget is log_axis and "tick_values" in state:
            assert np.frombuffer(state["tick_values"]["value"], np.float32).min() >= 1


def test_a_view_redrawn_by_its_control_waits_while_a_capture_writes_the_history():
    """A control heard mid-run (on a kernel subshell thread) redraws its view from the history:
    not while the training thread is appending to it."""
    watcher, dashboard, _ = watched(nn.Linear(4, 2))
    view = dashboard.panel("weight").curves[0]
    toggled = threading.Event()
    with watcher.lock:  # what a capture holds while it appends
        thread = threading.Thread(target=lambda: (setattr(view.log_toggle, "value", True), toggled.set()))
        thread.start()
        assert not toggled.wait(0.3), "the view redrew while the history was being written"
    assert toggled.wait(10) and type(view.current.scales["y"]).__name__ == "LogScale"
    thread.join()


def test_long_names_are_cut_in_the_middle_to_fit_a_figure_title():
    from nbweights.views.figures import TITLE_CHAR_PIXELS, fit_title
    long = "blocks.layers.11.self_attn.out_proj.weight (values)"
    cut = fit_title(long, 320)
    assert len(cut) * TITLE_CHAR_PIXELS <= 320 < len(long) * TITLE_CHAR_PIXELS
    head, tail = cut.split("…")  # block and layer at the start, parameter and what is drawn at the end
    assert long.startswith(head) and long.endswith(tail) and head.startswith("blocks.layers.11")
    assert tail.endswith("weight (values)")
    assert fit_title("conv.weight (values)") == "conv.weight (values)"
    name = "a_rather_long_block_name_for_one_layer"
    _, dashboard, _ = watched(nn.Sequential(OrderedDict([(name, nn.Linear(4, 2))])))
    figures = [v.figure for v in dashboard.panel(f"{name}.weight").curves if hasattr(v, "figure")]
    assert len(figures) >= 3 and any("…" in f.title for f in figures), [f.title for f in figures]
    assert all(len(f.title) * TITLE_CHAR_PIXELS <= float(f.layout.width.rstrip("px")) for f in figures)


def test_round_ticks_never_repeat_and_steps_are_whole():
    assert nice_ticks(-233, 8070, whole=True).tolist() == [0, 2000, 4000, 6000, 8000]
    assert nice_ticks(0, 1, whole=True).tolist() == [0, 1]  # not "0 0 1 1 1"
    assert nice_ticks(199, 401, whole=True).tolist() == [200, 250, 300, 350, 400]
    assert nice_ticks(-0.0528, 0.0528).tolist() == pytest.approx([-0.04, -0.02, 0, 0.02, 0.04])
    assert nice_ticks(0.695, 0.695).tolist() == pytest.approx([0.695])  # one point: its value
    assert nice_ticks(float("nan"), 1.0).size == 0
    assert "0.0" in map(str, nice_ticks(-0.5, 0.5)) and "-0.0" not in map(str, nice_ticks(-0.5, 0.5))
    assert log_ticks(0.5, 8070).tolist() == [1, 10, 100, 1000]
    # A short log axis (counts of a 36-element filter bank) gets 2 and 5 too, not one label.
    assert log_ticks(1, 9).tolist() == [1, 2, 5]
    assert log_ticks(1, 60).tolist() == pytest.approx([1, 3, 10, 30])
    assert log_ticks(0.004, 0.03).tolist() == pytest.approx([0.005, 0.01, 0.02])
    for low, high in [(0, 3), (0, 7), (5, 64), (0, 1e6), (1, 2)]:
        ticks = nice_ticks(low, high, whole=True)
        assert len(set(ticks.astype(int).tolist())) == len(ticks) <= 5 and (ticks == ticks.round()).all()


def test_step_axes_of_few_steps_have_whole_distinct_ticks():
    model = nn.Linear(3, 2)
    watcher, dashboard, optimizer = watched(model, steps=1)  # steps 0 and 1 recorded
    distribution = dashboard.panel("weight").curves[2]
    x_axis, y_axis = distribution.figure.axes
    assert x_axis.tick_format == "d" and np.asarray(x_axis.tick_values).tolist() == [0, 1]
    low, high = watcher.history.stats("weight")["min"].min(), watcher.history.stats("weight")["max"].max()
    ticks = np.asarray(y_axis.tick_values)
    assert 2 <= len(ticks) <= 5 and low <= ticks.min() and ticks.max() <= high


def test_gradient_histogram_waits_for_the_first_step_then_draws():
    model = nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    watcher = nbw.watch(model, optimizer, every=1)
    dashboard = Dashboard(watcher, max_fps=1e9)
    grad_view = dashboard.panel("weight").curves[1]
    assert "no gradient recorded yet" in grad_view.message.value
    # Hidden by visibility, never display:none: bqplot lays a figure first drawn in a display:none
    # box out at 0 x 0 and leaves it blank once shown (the blank gradient histogram).
    assert grad_view.content.layout.visibility == "hidden" and grad_view.content.layout.display is None
    train_step(model, optimizer)
    assert grad_view.message.layout.display == "none"
    assert grad_view.content.layout.visibility is None and grad_view.content.layout.display is None
    assert np.asarray(grad_view.current.y)[:-1].sum() == pytest.approx(8)  # 8 gradient elements


def test_no_figure_view_is_ever_hidden_with_display_none():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    watcher = nbw.watch(model, optimizer, every=1, activations=True)
    dashboard = Dashboard(watcher, max_fps=1e9)  # step 0: no gradient, no outputs, no metrics yet
    with_figures, hidden = [], []
    for name in dashboard.entries:  # each entry's views, drawn when it is shown
        dashboard.select(name)
        dashboard.flush()
        views = [*dashboard.shown.views, dashboard.metrics]
        with_figures += [v for v in views if "Figure" in repr(v.content)]
        hidden += [v for v in views if "Figure" in repr(v.content) and v._showing_message]
        assert all(v.content.layout.display is None and v.content.layout.visibility == "hidden"
                   for v in views if "Figure" in repr(v.content) and v._showing_message)
    assert len(with_figures) >= 3 * 4 + 3 and all(v.has_figure for v in with_figures)
    assert len(hidden) >= 4 + 3  # gradient histograms, output views, metrics


def test_percentiles_from_a_hand_computed_histogram():
    # Two bins over [-1, 1] holding 1 and 3 elements: the CDF is 0, 0.25, 1 at -1, 0, 1,
    # so the median is a third of the way into the second bin.
    lines = percentiles_from_histograms(np.array([1.0]), np.array([[1.0, 3.0]]), np.array([-0.8]),
                                        np.array([0.9]), percents=(0, 25, 50, 100))
    assert lines[:, 0] == pytest.approx([-0.8, 0.0, 1 / 3, 0.9])


def test_a_long_run_distribution_reads_only_the_steps_it_draws():
    # 400 recorded steps, 160 drawn: histograms() and stats() read those rows, and the rows read
    # are those of the whole series at the same indices.
    history = nbw.watch(nn.Linear(3, 2), every=1).history
    for step in range(1, 400):
        history.record("weight", step, history_summary(step))
    keep = np.array([0, 7, 399])
    steps, ranges, counts = history.histograms("weight", rows=keep)
    all_steps, all_ranges, all_counts = history.histograms("weight")
    assert steps.tolist() == [0, 7, 399] and np.array_equal(ranges, all_ranges[keep])
    assert np.array_equal(counts, all_counts[keep]) and counts[2].sum() == pytest.approx(6.0)
    assert history.stats("weight", rows=keep)["max"].tolist() == history.stats("weight")["max"][keep].tolist()
    calls = []
    real = history.histograms
    history.histograms = lambda *args, **kw: calls.append(len(kw["rows"])) or real(*args, **kw)
    view = DistributionView("weight", ViewOptionsForTest())
    view.draw(history, None)
    assert calls == [160] and np.asarray(view.bands.x)[[0, -1]].tolist() == [0, 399]


def history_summary(step: int):
    """A summary of the two watched tensors of nn.Linear(3, 2): their max is the step."""
    from nbweights.summaries import FIELDS, Summary
    fields = np.zeros((2, len(FIELDS)))
    fields[:, FIELDS.index("count")] = [6, 2]
    fields[:, FIELDS.index("max")] = step
    fields[:, FIELDS.index("sampled")] = [6, 2]
    counts = np.zeros((2, 64), np.float32)
    counts[:, 40] = [6, 2]
    return Summary(fields, counts, np.full(2, 2.0, np.float32))


def test_distribution_bands_are_monotone_and_match_the_weights():
    model = nn.Linear(10, 10, bias=False)
    values = torch.linspace(-1, 1, 100)
    with torch.no_grad():
        model.weight.copy_(values.reshape(10, 10))
    _, dashboard, _ = watched(model, steps=4)
    view = dashboard.panel("weight").curves[2]
    assert isinstance(view, DistributionView)
    y = np.asarray(view.bands.y)
    assert y.dtype == np.float32 and y.shape == (7, 5)  # 7 percentiles x 5 recorded steps
    assert np.asarray(view.bands.x).tolist() == [0, 1, 2, 3, 4]
    assert (np.diff(y, axis=0) >= 0).all()
    expected = np.percentile(values.numpy(), [0, 7, 16, 50, 84, 93, 100])
    assert y[:, -1] == pytest.approx(expected, abs=1 / 32)  # within one bin's width
    assert y[0, -1] == pytest.approx(-1.0) and y[-1, -1] == pytest.approx(1.0)  # exact min, max


def test_heatmap_png_is_red_where_positive_and_blue_where_negative():
    model = nn.Linear(8, 6, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
        model.weight[0, 0] = 1.0
        model.weight[5, 7] = -1.0
    _, dashboard, _ = watched(model)
    view = dashboard.panel("weight").pictures[0]
    assert isinstance(view, HeatmapView)
    image = view._images[0]
    pixels = decode_png(image.value)
    assert pixels.shape == (6, 8, 3)  # one pixel per weight: rows = outputs, columns = inputs
    red, blue, white = pixels[0, 0].astype(int), pixels[5, 7].astype(int), pixels[2, 3].astype(int)
    assert red[0] > red[2] + 50 and red[1] < 50  # the darkest red of the map at +max
    assert blue[2] > blue[0] + 50 and blue[0] < 50
    assert white.min() > 230
    zoom = int(image.layout.width[:-2]) // 8
    assert zoom > 1 and image.layout.height == f"{6 * zoom}px"
    assert "6 outputs (rows) x 8 inputs" in view.title.value
    assert "-1" in view.colorbar.value and "nbw-colorbar" in view.colorbar.value


def test_attention_in_proj_weight_shows_q_k_v():
    model = nn.MultiheadAttention(8, 2)
    watcher = nbw.watch(model, every=1)
    dashboard = Dashboard(watcher, max_fps=1e9)
    view = dashboard.panel("in_proj_weight").pictures[0]
    assert [label.value for label in view._labels] == ["Q", "K", "V"]
    assert [decode_png(image.value).shape for image in view._images] == [(8, 8, 3)] * 3


def test_filter_mosaic_has_one_tile_per_filter():
    model = nn.Conv2d(4, 5, 3, bias=False)
    with torch.no_grad():
        for f in range(5):  # filter f: +1 on even filters, -1 on odd ones (channel 0)
            model.weight[f] = 1.0 if f % 2 == 0 else -1.0
    _, dashboard, _ = watched(model)
    view = dashboard.panel("weight").pictures[0]
    assert list(view.channel.options) == [f"channel {c}" for c in range(4)]  # no RGB: 4 inputs
    pixels = decode_png(view.image.value)
    assert pixels.shape == (2 * 4 + 1, 3 * 4 + 1, 3)  # 5 tiles of 3x3 on 3 columns, 2 rows
    centres = [pixels[1 + (f // 3) * 4 + 1, 1 + (f % 3) * 4 + 1] for f in range(5)]
    assert [int(c[0]) > int(c[2]) for c in centres] == [True, False, True, False, True]
    grey_gap = pixels[0, 0]
    assert (pixels[:, 0] == grey_gap).all() and (pixels[0] == grey_gap).all()
    assert "5 of 5 filters" in view.title.value


def test_filter_mosaic_of_a_colour_input_layer_is_rgb():
    model = nn.Conv2d(3, 4, 3, bias=False)
    with torch.no_grad():
        model.weight.zero_()
        model.weight[:, 0] = 1.0  # red input channel only
    _, dashboard, _ = watched(model)
    view = dashboard.panel("weight").pictures[0]
    assert view.channel.value == "RGB"
    pixels = decode_png(view.image.value)
    assert pixels[2, 2].tolist() == [255, 127, 127]


def test_class_images_one_labelled_panel_per_class():
    names = ["T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Boot"]
    model = nn.Linear(784, 10)
    with torch.no_grad():
        model.weight.zero_()
        model.weight[3, 0] = 0.5  # top-left pixel of class 3
    _, dashboard, _ = watched(model, class_names=names)
    view = next(v for v in dashboard.panel("weight").pictures if type(v).__name__ == "ClassImagesView")
    assert len(view.panels.children) == 10
    assert [box.children[0].value.split(">")[1].split("<")[0] for box in view.panels.children] == names
    dress = decode_png(view.images[3].value)
    assert dress.shape == (28, 28, 3) and dress[0, 0, 0] > dress[0, 0, 2] + 50
    assert decode_png(view.images[0].value)[0, 0].min() > 230  # zero weight: white


def test_trajectories_one_line_per_weight_following_its_values():
    model = nn.Linear(3, 2, bias=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    watcher = nbw.watch(model, optimizer, every=1)
    dashboard = Dashboard(watcher, max_fps=1e9)
    for step in range(1, 4):
        with torch.no_grad():
            model.weight.fill_(float(step))
        train_step(model, optimizer)
    dashboard.flush()  # pictures are drawn in turn within a time budget: all of them now
    view = next(v for v in dashboard.panel("weight").pictures if type(v).__name__ == "TrajectoriesView")
    y = np.asarray(view.lines.y)
    assert y.shape == (6, 4) and y.dtype == np.float32
    assert y[:, 1:] == pytest.approx(np.tile([1.0, 2.0, 3.0], (6, 1)))
    view.picker.value = "0, 4-5"
    assert np.asarray(view.lines.y).shape == (3, 4) and list(view.lines.labels) == ["[0, 0]", "[1, 1]", "[1, 2]"]


def test_layer_table_marks_a_nan_row():
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    watcher = nbw.watch(model, optimizer, every=1)
    dashboard = Dashboard(watcher, max_fps=1e9)
    with torch.no_grad():
        model[1].bias[0] = float("nan")
    watcher.snapshot()
    dashboard.redraw(full=True)
    rows = dashboard.table.table.value.split("<tr")[2:]  # after the header row
    assert len(rows) == 4
    marked = [("nbw-unhealthy" in row, "NaN/Inf" in row) for row in rows]
    assert marked == [(False, False), (False, False), (False, False), (True, True)]


def test_a_metric_logged_once_is_drawn_as_a_marker_on_labelled_axes():
    model = nn.Linear(3, 2)
    watcher, dashboard, optimizer = watched(model, steps=2)
    watcher.log(test_accuracy=0.695)
    dashboard.flush()
    lines = dashboard.metrics.curves["test_accuracy"]
    assert lines.marker == "circle"  # a single point draws no line
    assert np.asarray(lines.x).tolist() == [2, 2] and np.asarray(lines.y) == pytest.approx([0.695, 0.695])
    x_axis, y_axis = dashboard.metrics.figures["test_accuracy"].axes
    assert (x_axis.label, y_axis.label) == ("step", "test_accuracy")
    assert np.asarray(x_axis.tick_values).tolist() == [2]
    assert np.asarray(y_axis.tick_values) == pytest.approx([0.695])
    assert (x_axis.scale.min, x_axis.scale.max) == (1, 3)  # one value: the point and its tick mid-axis
    assert (y_axis.scale.min, y_axis.scale.max) == pytest.approx((0.695 - 0.0695, 0.695 + 0.0695))
    for step in range(3, 3 + 30):
        watcher.history.log(step, test_accuracy=0.7)
    dashboard.redraw(full=True)
    assert lines.marker is None  # a long curve is a line
    assert (x_axis.scale.min, x_axis.scale.max) == (None, None)  # the data's own range again


def test_layer_table_shows_the_last_measured_update_ratio_and_gradient_norm():
    model = nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    watcher = nbw.watch(model, optimizer, every=2)
    for _ in range(3):
        train_step(model, optimizer)
    watcher.snapshot()  # step 3, between captures: no update ratio, no gradient measured there
    history = watcher.history
    assert history.steps("weight").tolist() == [0, 2, 3] and history.steps("weight", of="grad").tolist() == [2, 3]
    ratios, grad_norms = history.stats("weight")["update_ratio"], history.stats("weight", of="grad")["norm"]
    assert np.isfinite(ratios[1]) and np.isnan(ratios[2]) and np.isfinite(grad_norms[0])
    table = LayerTableView(ViewOptionsForTest())
    latest = table.row(history, "weight", None)
    assert latest["update_ratio"] == pytest.approx(ratios[1]) and latest["measured at"]["update_ratio"] == 2
    at_two = table.row(history, "weight", 2)  # gradients start later than weights
    assert at_two["update_ratio"] == pytest.approx(ratios[1]) and at_two["grad norm"] == pytest.approx(grad_norms[0])
    at_one = table.row(history, "weight", 1)  # nothing measured yet at or before step 1
    assert np.isnan(at_one["update_ratio"]) and np.isnan(at_one["grad norm"])
    table.draw(history, None)
    weight_row = table.table.value.split("<tr")[2]
    assert f">{ratios[1]:.3g}<" in weight_row and 'class="nbw-earlier" title="measured at step 2"' in weight_row
    table.draw(history, 2)
    weight_row = table.table.value.split("<tr")[2]
    assert f">{grad_norms[0]:.3g}<" in weight_row and "–" not in weight_row and "nbw-earlier" not in weight_row


def test_metrics_lines_follow_logged_values():
    model = nn.Linear(3, 2)
    watcher, dashboard, optimizer = watched(model, steps=0)
    for step, loss in enumerate([2.0, 1.5, 1.25], start=1):
        train_step(model, optimizer)
        watcher.log(loss=loss, accuracy=step / 10)
    dashboard.flush()
    assert set(dashboard.metrics.curves) == {"loss", "accuracy"}
    assert np.asarray(dashboard.metrics.curves["loss"].y).tolist() == [2.0, 1.5, 1.25]
    assert np.asarray(dashboard.metrics.curves["loss"].x).tolist() == [1, 2, 3]


def test_a_diverged_metric_draws_its_finite_values_and_counts_the_rest():
    model = nn.Linear(3, 2)
    watcher, dashboard, optimizer = watched(model, steps=0)
    for loss in (2.0, 1e3, 1e39, float("inf"), float("nan")):  # 1e39 overflows float32
        train_step(model, optimizer)
        watcher.log(loss=loss)
    dashboard.flush()
    lines = dashboard.metrics.curves["loss"]
    assert np.asarray(lines.y).tolist() == [2.0, 1000.0] and np.asarray(lines.x).tolist() == [1, 2]
    assert dashboard.metrics.figures["loss"].title == "loss (3 NaN/inf not drawn)"


def test_a_view_that_does_not_apply_says_so():
    model = nn.Linear(3, 2)
    _, dashboard, _ = watched(model)
    bias = dashboard.panel("bias")
    assert not any(isinstance(v, HeatmapView) for v in bias.pictures)
    notes = "; ".join(bias.reasons)  # views that do not apply take no space; reasons kept
    assert "heatmap: needs a 2-D weight matrix; bias has shape (2,)" in notes
    assert "filters: needs a 4-D convolution weight" in notes
    assert len(bias.widget.children[1].children) == len(bias.pictures) == 1  # trajectories only


def test_one_redraw_of_resnet18_sends_at_most_64_kb(monkeypatch):
    torchvision = pytest.importorskip("torchvision")
    sent = []
    original = ipywidgets.Widget._send

    def counting(self, msg, buffers=None):
        # The Jupyter session packs messages as UTF-8 JSON; 400 bytes of envelope each.
        sent.append(len(json.dumps(msg, ensure_ascii=False).encode()) + 400
                    + sum(memoryview(b).nbytes for b in buffers or []))
        return original(self, msg, buffers)

    model = torchvision.models.resnet18(num_classes=10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    watcher = nbw.watch(model, optimizer, every=1)
    dashboard = Dashboard(watcher, max_fps=1e9)
    monkeypatch.setattr(ipywidgets.Widget, "_send", counting)
    per_redraw = []
    for _ in range(3):
        optimizer.zero_grad()
        model(torch.randn(2, 3, 32, 32)).square().mean().backward()
        sent.clear()
        optimizer.step()  # captures, then the dashboard redraws once
        per_redraw.append(sum(sent))
    assert 2_000 < max(per_redraw) <= 64 * 1024, per_redraw
    # What the dashboard says it sent is what left through ipywidgets, counted in one place.
    assert dashboard.last_redraw_bytes == per_redraw[-1]
    # Whatever the model, one entry's views are built: the widget count does not grow with it.
    assert [p.name for p in dashboard.panels] == ["conv1.weight"]


def test_a_failing_view_shows_an_error_and_never_reaches_the_optimizer(monkeypatch, caplog):
    def broken(self, history, step):
        raise RuntimeError("boom")

    monkeypatch.setattr(DistributionView, "draw", broken)
    model = nn.Linear(3, 2)
    with caplog.at_level(logging.ERROR, logger="nbweights"):
        _, dashboard, optimizer = watched(model, steps=3)  # optimizer.step() must not raise
    view = dashboard.panel("weight").curves[2]
    assert "RuntimeError: boom" in view.message.value and "nbw-error" in view.message.value
    assert view.content.layout.visibility == "hidden"  # keeps its size: see has_figure
    assert np.asarray(dashboard.panel("weight").curves[0].current.y)[:-1].sum() == pytest.approx(6)
    dashboard.select("bias")
    dashboard.watcher.snapshot()
    dashboard.flush()
    failures = [r for r in caplog.records if "DistributionView" in r.getMessage()]
    assert len(failures) == 2  # once per view (weight's, then bias's when shown), not once per redraw
