"""Issue #17: attributions, attention maps and weight projections of the probe, recorded without
changing training, kept in the history and drawn by their views."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from torch import nn

import nbweights as nbw
from nbweights.history import History
from nbweights.history.projection import pca_2d
from nbweights.ui.dashboard import ATTENTION_PREFIX, ATTRIBUTIONS_ENTRY, Dashboard
from nbweights.views import ViewOptions
from nbweights.views.attention import AttentionView
from nbweights.views.attributions import AttributionsView
from nbweights.views.projection import ProjectionView
from test_views import decode_png

pytest.importorskip("captum")


class ConvAttention(nn.Module):
    """Conv (BatchNorm, dropout) -> each pixel a token -> a Transformer encoder layer -> classes."""

    def __init__(self, classes: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.norm = nn.BatchNorm2d(8)
        self.drop = nn.Dropout(0.2)
        self.layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.1, batch_first=True)
        self.head = nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.drop(torch.relu(self.norm(self.conv(x)))).flatten(2).transpose(1, 2)  # [B, 16, 8]
        mask = torch.triu(torch.ones(h.shape[1], h.shape[1], dtype=torch.bool), 1)
        return self.head(self.layer(h, src_mask=mask).mean(1))


def train(model: nn.Module, optimizer, steps: int, seed: int = 1) -> None:
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.rand(8, 1, 4, 4, generator=generator)
        y = torch.randint(0, 3, (8,), generator=generator)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()


def watched_model(steps: int = 4, **probe):
    torch.manual_seed(0)
    model = ConvAttention()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    watcher = nbw.watch(model, optimizer, every=1)
    probe_inputs = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(7))
    watcher.probe(probe_inputs, **probe)
    train(model, optimizer, steps)
    return model, watcher, probe_inputs


# ----- attributions ---------------------------------------------------------------------------
def test_integrated_gradients_are_complete_within_captums_delta():
    model, watcher, x = watched_model(attributions=True)
    inputs, maps, delta = watcher.history.attributions()
    record = watcher.history.attribution_record()
    assert record["step"] == 4 and inputs.shape == maps.shape == (3, 1, 4, 4) and delta.shape == (3,)
    np.testing.assert_array_equal(inputs, x.numpy())
    model.eval()
    with torch.no_grad():
        logits, baseline = model(x), model(torch.zeros_like(x))
    model.train()
    np.testing.assert_array_equal(record["targets"], logits.argmax(1).numpy())  # the predicted class
    rows = np.arange(3)
    difference = (logits - baseline).numpy()[rows, record["targets"]]
    sums = maps.reshape(3, -1).sum(1)
    # Captum's delta is sum(maps) - (F(x) - F(0)); completeness holds up to it.
    np.testing.assert_allclose(sums - difference, delta, atol=1e-5)
    assert np.all(np.abs(delta) <= 0.05 * np.abs(difference).max() + 1e-4), (delta, difference)
    assert np.abs(maps).max() > 0


def test_interior_gradient_at_alpha_one_is_the_plain_input_gradient():
    model, watcher, x = watched_model(attributions=True, target=2)
    record = watcher.history.attribution_record()
    assert record["targets"].tolist() == [2, 2, 2]
    model.eval()
    x = x.clone().requires_grad_(True)
    expected, = torch.autograd.grad(model(x)[:, 2].sum(), x)
    model.train()
    alphas = record["alphas"].tolist()
    np.testing.assert_allclose(record["interior"][alphas.index(1.0)], expected.numpy(), rtol=1e-4, atol=1e-6)
    small = record["interior"][0]
    assert not np.allclose(small, expected.numpy())  # at 0.02 x the gradient differs


def test_probe_arguments_are_checked():
    torch.manual_seed(0)
    model = ConvAttention()
    watcher = nbw.watch(model)
    with pytest.raises(ValueError, match="floating-point inputs"):
        watcher.probe(torch.ones(2, 1, 4, 4, dtype=torch.long), attributions=True)
    with pytest.raises(ValueError, match="needs attributions=True"):
        watcher.probe(torch.rand(2, 1, 4, 4), target=1)
    with pytest.raises(TypeError, match="target="):
        watcher.probe(torch.rand(2, 1, 4, 4), attributions=True, target=[1, 2])
    with pytest.raises(TypeError, match="attributions="):
        watcher.probe(torch.rand(2, 1, 4, 4), attributions="yes")
    with pytest.raises(ValueError, match=r"\[batch, classes\]"):
        conv = nn.Conv2d(1, 2, 3)
        nbw.watch(conv).probe(torch.rand(2, 1, 4, 4), attributions=True)


def test_missing_captum_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "captum.attr", None)  # import fails as if not installed
    model = ConvAttention()
    watcher = nbw.watch(model)
    with pytest.raises(ImportError, match=r"pip install nbweights\[attributions\]"):
        watcher.probe(torch.rand(2, 1, 4, 4), attributions=True)
    watcher.probe(torch.rand(2, 1, 4, 4))  # without attributions the probe needs no Captum


# ----- attention ------------------------------------------------------------------------------
def test_attention_maps_equal_need_weights_true_inside_an_encoder_layer():
    model, watcher, x = watched_model()
    maps = watcher.history.attention("layer.self_attn")
    assert maps.shape == (2, 16, 16)
    model.eval()
    with torch.no_grad():
        h = torch.relu(model.norm(model.conv(x))).flatten(2).transpose(1, 2)
        mask = torch.triu(torch.ones(16, 16, dtype=torch.bool), 1)
        _, expected = model.layer.self_attn(h, h, h, attn_mask=mask, need_weights=True,
                                            average_attn_weights=False)
    model.train()
    np.testing.assert_allclose(maps, expected[0].numpy(), atol=1e-3)  # kept as float16
    assert np.all(np.triu(maps[0], 1) == 0)  # the causal mask was applied
    np.testing.assert_allclose(maps.sum(-1), 1.0, atol=1e-2)


@pytest.mark.parametrize("batch_first", [True, False])
def test_attention_maps_with_padding_mask_and_sequence_first(batch_first: bool):
    torch.manual_seed(0)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(6, 3, batch_first=batch_first, add_bias_kv=True)

        def forward(self, x):
            seq = x if batch_first else x.transpose(0, 1)
            padding = torch.zeros(x.shape[0], x.shape[1], dtype=torch.bool)
            padding[:, -2:] = True
            return self.attn(seq, seq, seq, key_padding_mask=padding, need_weights=False)[0].sum()

    model = Model()
    x = torch.randn(2, 5, 6)
    watcher = nbw.watch(model)
    watcher.probe(x)
    seq = x if batch_first else x.transpose(0, 1)
    padding = torch.zeros(2, 5, dtype=torch.bool)
    padding[:, -2:] = True
    model.eval()
    _, expected = model.attn(seq, seq, seq, key_padding_mask=padding, average_attn_weights=False)
    maps = watcher.history.attention("attn")
    assert maps.shape == (3, 5, 6)  # 5 keys and the bias key
    np.testing.assert_allclose(maps, expected[0].detach().numpy(), atol=1e-3)
    assert np.all(maps[:, :, 3:5] == 0)


def test_attention_off_records_none_and_unknown_module_is_named():
    model, watcher, _ = watched_model(attention=False)
    assert watcher.history.attention_names == []
    with pytest.raises(KeyError, match="layer.self_attn"):
        watcher.history.attention("layer.self_attn")


# ----- no observer effect ---------------------------------------------------------------------
def test_every_option_on_leaves_training_bit_identical():
    def run(watching: bool):
        torch.manual_seed(0)
        model = ConvAttention()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        watcher = None
        if watching:
            watcher = nbw.watch(model, optimizer, every=1, activations=True)
            watcher.probe(torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(3)), attributions=True)
        train(model, optimizer, 5)
        grads = {n: p.grad.clone() for n, p in model.named_parameters()}
        return model, grads, watcher

    plain, plain_grads, _ = run(False)
    watched, watched_grads, watcher = run(True)
    assert len(watcher.history.attribution_steps) == 6 and len(watcher.history.attention_steps("layer.self_attn")) == 6
    for (name, a), b in zip(plain.state_dict().items(), watched.state_dict().values()):
        assert torch.equal(a, b), name  # weights and BatchNorm statistics
    for name, grad in plain_grads.items():
        assert torch.equal(grad, watched_grads[name]), name
    assert all(m.training for m in watched.modules())
    assert torch.backends.mha.get_fastpath_enabled()


def test_a_failing_probe_does_not_break_training(caplog):
    torch.manual_seed(0)
    model = ConvAttention()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    watcher = nbw.watch(model, optimizer, every=1)
    watcher.probe(torch.rand(3, 1, 4, 4), attributions=True)
    watcher._probe.inputs = torch.rand(3, 2, 4, 4)  # now the wrong channel count: every probe run fails
    train(model, optimizer, 3)
    assert watcher.history.steps("conv.weight").tolist() == [0, 1, 2, 3]  # captures went on
    said = [r for r in caplog.records if r.name == "nbweights" and "probe" in r.getMessage()]
    assert len(said) == 1 and "probe" in watcher.failures  # logged once, named for the dashboard
    assert watcher._probe is None  # removed: later captures do not try it again


# ----- projections ----------------------------------------------------------------------------
def _history_of(matrices: list[np.ndarray]) -> History:
    history = History()
    history.declare("weight", ["w"], [matrices[0].shape])
    for step, matrix in enumerate(matrices):
        history.record_picture("w", step, "matrix", matrix)
    return history


def test_projection_keeps_its_sign_and_orientation_from_step_to_step():
    # Twelve units on a circle (equal variance on two axes) with a little noise at each step:
    # the geometry hardly moves, but each step's own PCA axes come out turned or reflected at
    # random. Aligned, consecutive steps stay within the noise.
    rng = np.random.default_rng(0)
    angles = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    plane = 2 * np.stack([np.cos(angles), np.sin(angles)], 1)
    basis = np.linalg.qr(rng.normal(size=(20, 2)))[0].T
    matrices = [(plane @ basis + rng.normal(scale=0.02, size=(12, 20))).astype(np.float32) for _ in range(8)]
    history = _history_of(matrices)
    raw = [pca_2d(m) for m in matrices]
    assert max(np.abs(b - a).max() for a, b in zip(raw, raw[1:])) > 1.0  # unaligned PCA jumps
    steps, series = history.projection_series("w")
    assert steps.tolist() == list(range(8)) and series.shape == (8, 12, 2)
    for before, after in zip(series[:-1], series[1:]):
        assert np.abs(after - before).max() < 0.2
        assert ((before * after).sum(0) > 0).all()  # each axis keeps its sign
    np.testing.assert_allclose(np.linalg.norm(series[5], axis=1), np.linalg.norm(raw[5], axis=1), rtol=1e-3)  # float16 pictures
    np.testing.assert_array_equal(history.projection("w", step=5), series[5])


def test_projection_moves_smoothly_while_training():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 5))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    watcher = nbw.watch(model, optimizer, every=1)
    generator = torch.Generator().manual_seed(0)
    for _ in range(30):
        optimizer.zero_grad()
        x = torch.randn(32, 10, generator=generator)
        nn.functional.cross_entropy(model(x), x[:, :5].argmax(1)).backward()
        optimizer.step()
    steps, series = watcher.history.projection_series("0.weight")
    assert series.shape == (31, 16, 2)
    for before, after in zip(series[:-1], series[1:]):
        assert ((before * after).sum(0) > 0).all()  # each axis agrees in sign with the step before
        assert np.abs(after - before).max() < 0.25 * np.abs(before).max()
    with pytest.raises(ValueError, match="method="):
        watcher.history.projection("0.weight", method="lda")
    with pytest.raises(ValueError, match="2-D or convolution"):
        watcher.history.projection("0.bias")


@pytest.mark.slow
def test_tsne_of_one_step_separates_two_clusters():
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(0)
    matrix = np.concatenate([rng.normal(-3, 0.1, (10, 8)), rng.normal(3, 0.1, (10, 8))]).astype(np.float32)
    coords = _history_of([matrix]).projection("w", method="tsne")
    assert coords.shape == (20, 2)
    a, b = coords[:10].mean(0), coords[10:].mean(0)
    spread = max(coords[:10].std(0).max(), coords[10:].std(0).max())
    assert np.linalg.norm(a - b) > 3 * spread


# ----- saving ---------------------------------------------------------------------------------
def test_attention_and_attributions_survive_save_and_load(tmp_path):
    _, watcher, _ = watched_model(steps=2, attributions=True)
    path = tmp_path / "run.nbw"
    watcher.save(str(path))
    loaded = nbw.load(str(path))
    np.testing.assert_array_equal(loaded.attention("layer.self_attn", step=1), watcher.history.attention("layer.self_attn", step=1))
    for a, b in zip(loaded.attributions(), watcher.history.attributions()):
        np.testing.assert_array_equal(a, b)
    assert loaded.attribution_steps.tolist() == [0, 1, 2]


# ----- views ----------------------------------------------------------------------------------
def test_attention_view_draws_one_tile_per_head_with_the_weights_colours():
    history = History()
    maps = np.zeros((3, 4, 5), np.float32)
    maps[:, np.arange(4), np.arange(4)] = 1.0  # each query attends to its own position
    history.record_attention("enc.attn", 7, maps)
    view = AttentionView("enc.attn", ViewOptions())
    assert AttentionView.applies(history, "enc.attn", ViewOptions()) is None
    assert "w.probe" in AttentionView.applies(history, "other", ViewOptions())
    assert view.update(history, None) > 0
    pixels = decode_png(view.image.value)
    assert view.heads == 3
    assert pixels.shape == (2 * (4 + 1) + 1, 2 * (5 + 1) + 1, 3)  # 3 heads on a 2 x 2 grid, 1-pixel gaps
    first = pixels[1:5, 1:6]
    assert (first[0, 0] == first[3, 3]).all() and first[0, 0, 0] > 100 and first[0, 0, 2] < 60  # dark red
    assert (first[0, 1] >= 240).all()  # weight 0: white
    assert "step 7" in view.title.value


def test_projection_view_scatters_one_point_per_unit_with_class_names():
    rng = np.random.default_rng(1)
    history = _history_of([rng.normal(size=(10, 30)).astype(np.float32) for _ in range(3)])
    names = [f"class {i}" for i in range(10)]
    view = ProjectionView("w", ViewOptions(class_names=names))
    view.update(history, 1)
    assert len(view.scatter.x) == len(view.scatter.y) == 10
    np.testing.assert_allclose(np.stack([view.scatter.x, view.scatter.y], 1), history.projection("w", 1), atol=1e-6)
    assert list(view.scatter.names) == names and view.scatter.display_names
    limit = view.scatter.scales["x"].max
    assert limit >= np.abs(history.projection_series("w")[1][:2]).max()
    view.update(history, None)
    assert "step 2" in view.figure.title
    assert "projection" in ProjectionView.applies(_bias_history(), "b", ViewOptions())


def _bias_history() -> History:
    history = History()
    history.declare("weight", ["b"], [(5,)])
    history.record_picture("b", 0, "values", np.ones(5, np.float32))
    return history


def test_attributions_view_draws_input_and_maps_side_by_side():
    _, watcher, _ = watched_model(steps=1, attributions=True)
    view = AttributionsView(ATTRIBUTIONS_ENTRY, ViewOptions())
    view.update(watcher.history, None)
    pixels = decode_png(view.image.value)
    columns = 2 + len(watcher.history.attribution_record()["alphas"])
    assert view.grid == (3, columns)
    assert pixels.shape == (3 * 5 + 1, columns * 5 + 1, 3)
    tile = pixels[1:5, 1:5]
    assert (tile[..., 0] == tile[..., 1]).all()  # the input in grey
    ig = pixels[1:5, 6:10].astype(int)
    assert np.abs(ig[..., 0] - ig[..., 2]).max() > 50  # the map in red and blue
    assert "completeness delta" in view.title.value and "step 1" in view.title.value


def test_dashboard_lists_the_attention_and_attribution_entries():
    _, watcher, _ = watched_model(steps=1, attributions=True)
    dashboard = Dashboard(watcher, max_fps=1e9)
    entries = list(dashboard.dropdown.options)
    assert entries[-2:] == [ATTENTION_PREFIX + "layer.self_attn", ATTRIBUTIONS_ENTRY]
    assert dashboard.select(ATTENTION_PREFIX + "layer.self_attn")  # built and drawn when shown
    dashboard.flush()
    attention = dashboard.shown.pictures
    assert [type(v) for v in attention] == [AttentionView] and attention[0].image.value
    assert [type(v) for v in dashboard.panel(ATTRIBUTIONS_ENTRY).pictures] == [AttributionsView]
    assert ProjectionView in [type(v) for v in dashboard.panel("head.weight").pictures]
    dashboard.close()
