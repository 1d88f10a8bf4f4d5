"""Widget state each view produces from tensors whose summaries are known by hand."""
from __future__ import annotations

import json
import logging
import struct
import zlib

import numpy as np
import pytest
import torch
from torch import nn

import ipywidgets
import nbweights as nbw
from nbweights.dashboard import Dashboard
from nbweights.views.distribution import DistributionView, percentiles_from_histograms
from nbweights.views.heatmap import HeatmapView


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
    dashboard._after_cell()  # the cell ends: what redraws left for later is drawn
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
    view.log_toggle.value = True
    assert type(view.current.scales["y"]).__name__ == "LogScale"
    assert np.asarray(view.current.y)[0] == 0.5  # empty bins sit on the log axis floor


def test_gradient_histogram_waits_for_the_first_step_then_draws():
    model = nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    watcher = nbw.watch(model, optimizer, every=1)
    dashboard = Dashboard(watcher, max_fps=1e9)
    grad_view = dashboard.panel("weight").curves[1]
    assert "no gradient recorded yet" in grad_view.message.value
    assert grad_view.content.layout.display == "none"
    train_step(model, optimizer)
    assert grad_view.message.layout.display == "none" and grad_view.content.layout.display is None
    assert np.asarray(grad_view.current.y)[:-1].sum() == pytest.approx(8)  # 8 gradient elements


def test_percentiles_from_a_hand_computed_histogram():
    # Two bins over [-1, 1] holding 1 and 3 elements: the CDF is 0, 0.25, 1 at -1, 0, 1,
    # so the median is a third of the way into the second bin.
    lines = percentiles_from_histograms(np.array([1.0]), np.array([[1.0, 3.0]]), np.array([-0.8]),
                                        np.array([0.9]), percents=(0, 25, 50, 100))
    assert lines[:, 0] == pytest.approx([-0.8, 0.0, 1 / 3, 0.9])


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


def test_metrics_lines_follow_logged_values():
    model = nn.Linear(3, 2)
    watcher, dashboard, optimizer = watched(model, steps=0)
    for step, loss in enumerate([2.0, 1.5, 1.25], start=1):
        train_step(model, optimizer)
        watcher.log(loss=loss, accuracy=step / 10)
    dashboard._after_cell()
    assert set(dashboard.metrics.curves) == {"loss", "accuracy"}
    assert np.asarray(dashboard.metrics.curves["loss"].y).tolist() == [2.0, 1.5, 1.25]
    assert np.asarray(dashboard.metrics.curves["loss"].x).tolist() == [1, 2, 3]


def test_a_view_that_does_not_apply_says_so():
    model = nn.Linear(3, 2)
    _, dashboard, _ = watched(model)
    bias = dashboard.panel("bias")
    assert not any(isinstance(v, HeatmapView) for v in bias.pictures)
    notes = bias.widget.children[2].value
    assert "heatmap: needs a 2-D weight matrix; bias has shape (2,)" in notes
    assert "filters: needs a 4-D convolution weight" in notes


def test_one_redraw_of_resnet18_sends_at_most_64_kb(monkeypatch):
    torchvision = pytest.importorskip("torchvision")
    sent = []
    original = ipywidgets.Widget._send

    def counting(self, msg, buffers=None):
        sent.append(len(json.dumps(msg)) + 400 + sum(memoryview(b).nbytes for b in buffers or []))
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
    # Freshness: with no new capture, further redraws reach every panel's curves in turn
    # (at least one other panel per redraw, when the kernel cannot know which one is shown).
    for _ in range(len(dashboard.panels) + 5):
        dashboard.redraw()
    version = watcher.history.version
    stale = [p.name for p in dashboard.panels if p.curves[0]._drawn != (version, None)]
    assert stale == []


def test_a_failing_view_shows_an_error_and_never_reaches_the_optimizer(monkeypatch, caplog):
    def broken(self, history, step):
        raise RuntimeError("boom")

    monkeypatch.setattr(DistributionView, "draw", broken)
    model = nn.Linear(3, 2)
    with caplog.at_level(logging.ERROR, logger="nbweights"):
        _, dashboard, optimizer = watched(model, steps=3)  # optimizer.step() must not raise
    view = dashboard.panel("weight").curves[2]
    assert "RuntimeError: boom" in view.message.value and "nbw-error" in view.message.value
    assert view.content.layout.display == "none"
    assert np.asarray(dashboard.panel("weight").curves[0].current.y)[:-1].sum() == pytest.approx(6)
    failures = [r for r in caplog.records if "DistributionView" in r.getMessage()]
    assert len(failures) == 2  # once per parameter (weight, bias), not once per redraw
