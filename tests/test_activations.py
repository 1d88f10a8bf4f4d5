"""Activation summaries and the probe input: recorded on captured steps, changing nothing."""
import numpy as np
import pytest
import torch
from torch import nn

import nbweights as nbw


def cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5),
                         nn.Flatten(), nn.Linear(4 * 8 * 8, 3), nn.Tanh())


def train(model, watched, steps=4, probe=True, **options):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    w = nbw.watch(model, opt, every=1, **options) if watched else None
    if w is not None and probe:
        w.probe(torch.ones(2, 1, 8, 8))
    torch.manual_seed(5)
    for _ in range(steps):
        opt.zero_grad()
        model(torch.randn(16, 1, 8, 8)).pow(2).mean().backward()
        opt.step()
    return w


def test_default_activation_modules_and_their_summaries():
    model = cnn()
    w = train(model, True, activations=True)
    assert w.history.names_of("activation") == ["0", "2", "5", "6"]  # conv, relu, linear, tanh
    relu = w.history.stats("2", of="activation")
    np.testing.assert_array_equal(w.history.steps("2", of="activation"), [1, 2, 3, 4])
    assert np.all(relu["min"] == 0) and np.all(relu["zero_fraction"] > 0.2)  # ReLU zeros
    assert np.all(np.isnan(relu["saturated_fraction"]))  # ReLU cannot saturate
    tanh = w.history.stats("6", of="activation")
    assert np.all((tanh["max"] <= 1) & (tanh["min"] >= -1))
    assert np.all(np.isfinite(tanh["saturated_fraction"]))
    edges, counts = w.history.histogram("2", of="activation")
    assert counts.sum() == pytest.approx(16 * 4 * 8 * 8)


def test_activations_select_by_name_glob_and_type():
    assert nbw.watch(cnn(), activations=["5"]).history.names_of("activation") == ["5"]
    assert nbw.watch(cnn(), activations=nn.ReLU).history.names_of("activation") == ["2"]
    with pytest.raises(ValueError, match="matches no module"):
        nbw.watch(cnn(), activations="missing*")


def test_probe_records_feature_maps_and_changes_no_state():
    plain = cnn()
    train(plain, False)
    observed = cnn()
    w = train(observed, True, activations=True)
    for (name, a), (_, b) in zip(plain.state_dict().items(), observed.state_dict().items()):
        assert torch.equal(a, b), name  # BatchNorm statistics and weights bit-identical
    assert observed.training and all(m.training for m in observed.modules())
    maps = w.history.feature_maps("0")
    assert maps.array.shape == (4, 8, 8) and maps.step == 4
    assert len(w.history.feature_maps("0", step=0).array) == 4


def test_no_activation_tensor_is_kept_alive():
    model = cnn()
    w = train(model, True, activations=True)
    pending = w._activations._pending
    assert pending == {}  # everything was taken by the capture


def test_close_removes_activation_hooks():
    model = cnn()
    w = nbw.watch(model, activations=True)
    assert any(m._forward_hooks for m in model.modules())
    w.close()
    assert not any(m._forward_hooks for m in model.modules())
    assert w.closed
