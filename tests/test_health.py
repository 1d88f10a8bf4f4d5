"""Health signals fire on the network and step that went wrong, and stay quiet on a healthy one."""
import pytest
import torch
from torch import nn

import nbweights as nbw


def batches(n=256, d=10):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=generator)
    return x, (x[:, :2].sum(1) > 0).long()


def train_watched(model, lr, steps=40, **options):
    x, y = batches()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    w = nbw.watch(model, opt, every=1, activations=True, **options)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return w


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 2))


def kinds(signals, name=None):
    return {s.kind for s in signals if name is None or s.name == name}


def test_healthy_network_fires_nothing():
    assert nbw.watch(mlp()).health() == []
    w = train_watched(mlp(), lr=0.1)
    assert w.health() == []


def test_dead_relu_layer_is_named():
    model = mlp()
    with torch.no_grad():
        model[0].bias.fill_(-10.0)  # every ReLU unit outputs 0 for every input
    signals = train_watched(model, lr=0.1).health()
    dead = [s for s in signals if s.kind == "dead"]
    assert [(s.name, s.step) for s in dead] == [("1", 1)]
    assert dead[0].value == 1.0 and "100% of units" in dead[0].message
    assert "stalled" in kinds(signals, "0.weight")  # and its input layer no longer learns


def test_huge_learning_rate_explodes_then_goes_nonfinite():
    signals = train_watched(mlp(), lr=50.0).health()
    first = signals[0]
    assert (first.kind, first.name, first.step) == ("exploding", "0.weight", 1)
    assert first["value"] > 0.1 and "lower the learning rate" in first["message"]
    nonfinite = [s for s in signals if s.kind == "nonfinite"]
    assert nonfinite and all(s.step > 1 for s in nonfinite)


def test_deep_sigmoid_stack_vanishes_at_the_first_layers():
    torch.manual_seed(0)
    layers = []
    for i in range(12):
        layers += [nn.Linear(10 if i == 0 else 32, 32), nn.Sigmoid()]
    model = nn.Sequential(*layers, nn.Linear(32, 2))
    signals = train_watched(model, lr=0.1, steps=10).health()
    vanishing = {s.name for s in signals if s.kind == "vanishing"}
    assert "0.weight" in vanishing and "24.weight" not in vanishing  # first layer, not the last
    first = next(s for s in signals if s.name == "0.weight" and s.kind == "vanishing")
    assert first.step == 1 and first.value < 1e-3


def test_zero_initialised_weights_growing_fast_are_not_exploding():
    model = nn.Linear(10, 2)
    nn.init.zeros_(model.weight)
    signals = train_watched(model, lr=0.1, steps=20).health()
    assert "exploding" not in kinds(signals)  # its update ratio starts at 1.0 and falls as 1/t


def test_thresholds_are_adjustable():
    model = mlp()
    w = train_watched(model, lr=0.1, steps=5, thresholds=nbw.Thresholds(exploding_update=1e-9, exploding_growth=0.0))
    assert "exploding" in kinds(w.health(), "0.weight")


def test_stop_on_nonfinite_raises_at_the_step_and_keeps_history():
    model = mlp()
    x, y = batches()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    w = nbw.watch(model, opt, every=100, stop_on_nonfinite=True)
    for step in range(1, 4):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        if step == 3:
            loss = loss * float("nan")
        loss.backward()
        with pytest.raises(nbw.NonFiniteError, match=r"0\.weight at step 3") if step == 3 else _nothing():
            opt.step()
    assert 3 in w.history.steps("0.weight")  # captured although every=100
    assert w.history.stats("0.weight")["nonfinite"][-1] > 0


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
