"""Watching real models: what is recorded, when, and that training is left exactly as it was."""
import gc
import weakref

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

import nbweights as nbw
from training import train


def sgd(model, lr=0.1):
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)


def test_records_every_step_with_an_optimizer(mlp):
    opt = sgd(mlp)
    w = nbw.watch(mlp, opt, every=1)
    train(mlp, opt, 5)
    assert w.history.names == ["0.weight", "0.bias", "2.weight", "2.bias"]
    np.testing.assert_array_equal(w.history.steps("0.weight"), [0, 1, 2, 3, 4, 5])
    np.testing.assert_array_equal(w.history.steps("0.weight", of="grad"), [1, 2, 3, 4, 5])
    stats = w.history.stats("2.weight")
    assert stats["max"][-1] == pytest.approx(mlp[2].weight.max().item())
    assert stats["norm"][-1] == pytest.approx(mlp[2].weight.norm().item(), rel=1e-5)
    assert np.isnan(stats["update_ratio"][0]) and np.all(stats["update_ratio"][1:] > 0)
    grad = w.history.stats("2.weight", of="grad")
    assert grad["norm"][-1] == pytest.approx(mlp[2].weight.grad.norm().item(), rel=1e-5)
    edges, counts = w.history.histogram("0.weight", step=3)
    assert counts.sum() == 64 and len(edges) == 65
    w.close()


def test_update_ratio_matches_the_real_update(mlp):
    opt = torch.optim.SGD(mlp.parameters(), lr=0.5)
    w = nbw.watch(mlp, opt, every=1)
    before = mlp[2].weight.detach().clone()
    train(mlp, opt, 1)
    expected = (mlp[2].weight.detach() - before).norm() / mlp[2].weight.detach().norm()
    assert w.history.stats("2.weight")["update_ratio"][-1] == pytest.approx(expected.item(), rel=1e-4)


def test_every_n_captures_multiples_of_n(mlp):
    opt = sgd(mlp)
    w = nbw.watch(mlp, opt, every=3)
    train(mlp, opt, 10)
    np.testing.assert_array_equal(w.history.steps("0.bias"), [0, 3, 6, 9])


def test_without_optimizer_captures_at_training_forwards(mlp):
    w = nbw.watch(mlp, every=1)
    opt = sgd(mlp)
    train(mlp, opt, 4)
    mlp.eval()
    mlp(torch.randn(2, 4))  # evaluation forwards are not steps
    np.testing.assert_array_equal(w.history.steps("0.weight"), [0, 1, 2, 3])
    # step 3 holds the weights after the third update and the gradient of that update
    grads = w.history.stats("2.bias", of="grad")
    assert np.all(np.isfinite(grads["norm"])) and len(grads["norm"]) == 3


def test_values_of_small_tensors_are_kept_for_trajectories():
    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    w = nbw.watch(model, opt, every=1)
    train(model, opt, 3, inputs=(4, 2))
    picture = w.history.picture("weight", step=2)
    assert picture.kind == "values" and picture.step == 2 and picture.array.shape == (1, 2)
    latest = w.history.picture("weight")
    np.testing.assert_array_equal(latest.array, model.weight.detach().numpy())


def test_pictures_of_matrices_and_filters_are_bounded():
    model = nn.Sequential(nn.Conv2d(3, 100, 5), nn.Flatten(), nn.Linear(10, 1000), nn.Linear(1000, 600))
    w = nbw.watch(model)
    conv = w.history.picture("0.weight")
    assert conv.kind == "filters" and conv.array.shape == (64, 3, 5, 5)
    full = w.history.picture("2.weight")
    assert full.kind == "matrix" and full.array.shape == (1000, 10)
    big = w.history.picture("3.weight")  # 600 x 1000: blocks of 5 x 8 on a 120 x 125 grid
    assert big.kind == "matrix" and big.array.shape == (120, 125)
    block = model[3].weight.detach()[5:10, 16:24].mean()
    assert float(big.array[1, 2]) == pytest.approx(block.item(), abs=1e-3)  # float16 storage


def test_params_selects_by_name_glob_and_type():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2, 2))
    assert nbw.watch(model, params="3.weight").history.names == ["3.weight"]
    assert nbw.watch(model, params=["0.*"]).history.names == ["0.weight", "0.bias"]
    assert nbw.watch(model, params=nn.BatchNorm2d).history.names == ["1.weight", "1.bias"]
    with pytest.raises(ValueError, match="matches no parameter"):
        nbw.watch(model, params="nope.*")
    with pytest.raises(TypeError, match="params="):
        nbw.watch(model, params=[3])


@pytest.mark.parametrize("bad, message", [
    (None, "got NoneType"),
    ("model", "got str"),
    ([nn.Linear(1, 1)], "list of modules"),
])
def test_bad_model_gets_a_clear_type_error(bad, message):
    with pytest.raises(TypeError, match=message) as info:
        nbw.watch(bad)
    assert "expected a torch.nn.Module" in str(info.value)


def test_bad_options_get_clear_errors(mlp):
    with pytest.raises(TypeError, match="torch.optim.Optimizer"):
        nbw.watch(mlp, "sgd")
    with pytest.raises(ValueError, match="every="):
        nbw.watch(mlp, every=0)
    with pytest.raises(ValueError, match="every="):
        nbw.watch(mlp, every="often")


def test_model_without_parameters_and_frozen_and_tied_parameters():
    empty = nbw.watch(nn.ReLU())
    assert empty.history.names == []
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 10))
    model[1].weight = model[0].weight  # tied (10 x 4 both ways)
    model[1].bias.requires_grad_(False)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    w = nbw.watch(model, opt, every=1)
    assert w.history.names == ["0.weight"]  # tied once, frozen bias left out
    generator = torch.Generator().manual_seed(0)
    for _ in range(2):
        opt.zero_grad()
        model(torch.randint(0, 10, (5,), generator=generator)).pow(2).mean().backward()
        opt.step()
    assert len(w.history.steps("0.weight")) == 3
    frozen = nbw.watch(model, opt, params=["1.bias", "0.weight"], every=1)
    opt.zero_grad()
    model(torch.tensor([1, 2])).sum().backward()
    opt.step()
    assert np.isnan(frozen.history.stats("1.bias", of="grad")["norm"][-1])  # no gradient, said so
    assert np.isfinite(frozen.history.stats("0.weight", of="grad")["norm"][-1])


def _models():
    torch.manual_seed(0)
    cnn = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    lstm = nn.LSTM(4, 8, batch_first=True)
    transformer = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, dropout=0.1, batch_first=True), 2)
    return {
        "cnn": (cnn, (4, 3, 8, 8)),
        "lstm": (lstm, (2, 5, 4)),
        "transformer": (transformer, (2, 5, 8)),
    }


class FirstOutput(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        out = self.inner(x)
        return out[0] if isinstance(out, tuple) else out


def _train_copy(name, watched, steps=4):
    torch.manual_seed(123)
    model, shape = _models()[name]
    model = FirstOutput(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    watcher = nbw.watch(model, opt, every=1) if watched else None
    torch.manual_seed(7)  # dropout draws from the global RNG: it must see the same stream
    for _ in range(steps):
        opt.zero_grad()
        model(torch.randn(*shape)).pow(2).mean().backward()
        opt.step()
    return model, watcher


@pytest.mark.parametrize("name", ["cnn", "lstm", "transformer"])
def test_no_observer_effect_weights_bit_identical(name):
    plain, _ = _train_copy(name, watched=False)
    observed, watcher = _train_copy(name, watched=True)
    for (n, a), (_, b) in zip(plain.state_dict().items(), observed.state_dict().items()):
        assert torch.equal(a, b), n  # buffers too (BatchNorm running stats)
    assert len(watcher.history.steps(watcher.history.names[0])) == 5


def test_resnet18_is_watched_whole_and_untouched():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    w = nbw.watch(model, opt, every=1)
    assert len(w.history.names) == 62 and w.history.names[0] == "conv1.weight"
    train(model, opt, 1, inputs=(2, 3, 32, 32))
    stats = w.history.stats("layer1.0.conv1.weight")
    assert stats["count"][-1] == 64 * 64 * 9
    assert w.history.picture("conv1.weight").array.shape == (64, 3, 7, 7)


def test_close_removes_every_hook_and_is_idempotent(mlp):
    opt = sgd(mlp)
    w = nbw.watch(mlp, opt, every=1)
    w.close()
    w.close()
    assert not opt._optimizer_step_pre_hooks and not opt._optimizer_step_post_hooks
    train(mlp, opt, 2)
    assert len(w.history.steps("0.weight")) == 1  # nothing after close
    with nbw.watch(mlp, every=1) as w2:
        assert mlp._forward_pre_hooks
        assert any(p._post_accumulate_grad_hooks for p in mlp.parameters())
    assert not mlp._forward_pre_hooks
    assert not any(getattr(p, "_post_accumulate_grad_hooks", None) for p in mlp.parameters())
    assert w2.closed


def test_interrupted_loop_leaves_nothing_after_close(mlp):
    opt = sgd(mlp)
    w = nbw.watch(mlp, opt, every=1)
    with pytest.raises(KeyboardInterrupt):
        for step in range(10):
            train(mlp, opt, 1)
            if step == 3:
                raise KeyboardInterrupt
    w.close()
    assert not opt._optimizer_step_post_hooks and not mlp._forward_pre_hooks
    assert list(w.history.steps("0.weight")) == [0, 1, 2, 3, 4]


def test_watcher_does_not_keep_model_or_optimizer_alive():
    model = nn.Linear(3, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    w = nbw.watch(model, opt)
    model_ref, opt_ref = weakref.ref(model), weakref.ref(opt)
    del model, opt
    gc.collect()
    assert model_ref() is None and opt_ref() is None
    assert w.model is None
    w.snapshot()  # a capture after the model is gone is a no-op, not a crash
    assert len(w.history.steps("weight")) == 1


def test_log_records_metrics_at_the_current_step(mlp):
    opt = sgd(mlp)
    w = nbw.watch(mlp, opt, every=1)
    for loss in (3.0, 2.0, 1.0):
        train(mlp, opt, 1)
        w.log(loss=loss)
    steps, values = w.history.metric("loss")
    np.testing.assert_array_equal(steps, [1, 2, 3])
    np.testing.assert_array_equal(values, [3.0, 2.0, 1.0])
    with pytest.raises(TypeError, match="log\\(\\) takes numbers"):
        w.log(loss="high")


def test_nan_weights_are_counted_and_located(mlp):
    opt = torch.optim.SGD(mlp.parameters(), lr=1e6)
    w = nbw.watch(mlp, opt, every=1)
    train(mlp, opt, 6, loss_scale=1e6)
    nonfinite = w.history.stats("0.weight")["nonfinite"]
    assert nonfinite[0] == 0 and nonfinite[-1] > 0
    edges, counts = w.history.histogram("0.weight")
    assert np.all(np.isfinite(edges)) and np.all(np.isfinite(counts))


def test_history_memory_stays_bounded_and_covers_the_whole_run(mlp):
    opt = sgd(mlp, lr=0.01)
    w = nbw.watch(mlp, opt, every=1, max_bytes=60_000)
    train(mlp, opt, 400)
    steps = w.history.steps("0.weight")
    assert w.history.nbytes <= 60_000
    assert w.history.nbytes == sum(t.nbytes for t in w.history._timelines())  # the running total is true
    assert steps[0] == 0 and steps[-1] == 400 and len(steps) < 401
    assert w.history.picture_steps("2.bias")[0] == 0
