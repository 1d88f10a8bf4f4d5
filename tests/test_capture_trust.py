"""Attaching nbweights never breaks training: any dtype, failures contained, notebook habits
(re-running watch, del w, close), live parameters, and options checked at watch()."""
import gc
import logging
import threading
import weakref

import ipywidgets
import numpy as np
import pytest
import torch
from torch import nn

import nbweights as nbw
from nbweights import summaries
from nbweights.capture import groups as capture_groups
from nbweights.capture.activations import ActivationHooks
from training import train


def sgd(model, lr=0.1):
    return torch.optim.SGD(model.parameters(), lr=lr)


def step(model, optimizer, x, extra=None):
    optimizer.zero_grad()
    loss = model(x).abs().pow(2).float().mean()
    if extra is not None:
        loss = loss + extra()
    loss.backward()
    optimizer.step()


def nbweights_errors(caplog):
    return [r for r in caplog.records if r.name == "nbweights" and r.levelno >= logging.ERROR]


# ----- dtypes -------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_large_parameters_of_any_float_dtype_are_summarised(dtype):
    torch.manual_seed(0)
    model = nn.Linear(100, 100).to(dtype)  # 10,000 weights: past the 4096 sample, exact reductions
    opt = sgd(model)
    w = nbw.watch(model, opt, every=1)
    for _ in range(2):
        step(model, opt, torch.randn(8, 100, dtype=dtype))
    assert w.failures == {}
    np.testing.assert_array_equal(w.history.steps("weight"), [0, 1, 2])
    weight = model.weight.detach().double()
    stats = w.history.stats("weight")
    assert stats["norm"][-1] == pytest.approx(weight.norm().item(), rel=1e-4)
    assert stats["max"][-1] == pytest.approx(weight.max().item(), rel=1e-6)
    assert stats["count"][-1] == 10_000
    grad = w.history.stats("weight", of="grad")
    assert grad["norm"][-1] == pytest.approx(model.weight.grad.double().norm().item(), rel=1e-4)


def test_float64_training_is_unchanged_by_watching():
    def run(watched):
        torch.manual_seed(1)
        model = nn.Sequential(nn.Linear(100, 80), nn.Tanh(), nn.Linear(80, 3)).double()
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        watcher = nbw.watch(model, opt, every=1) if watched else None
        generator = torch.Generator().manual_seed(0)
        for _ in range(4):
            step(model, opt, torch.randn(8, 100, dtype=torch.float64, generator=generator))
        assert watcher is None or len(watcher.history.steps("0.weight")) == 5
        return [p.detach().clone() for p in model.parameters()]
    for plain, watched in zip(run(False), run(True)):
        assert torch.equal(plain, watched)


def test_model_converted_to_double_after_watch_keeps_being_recorded():
    torch.manual_seed(0)
    model = nn.Linear(100, 100)
    opt = sgd(model)
    w = nbw.watch(model, opt, every=1)
    model.double()
    for _ in range(3):
        step(model, opt, torch.randn(4, 100, dtype=torch.float64))
    assert w.failures == {}
    np.testing.assert_array_equal(w.history.steps("weight"), [0, 1, 2, 3])
    assert w.history.stats("weight")["norm"][-1] == pytest.approx(model.weight.detach().norm().item(), rel=1e-5)


@pytest.mark.parametrize("numel", [100, 10_000])  # held whole in the sample / reduced exactly
def test_complex_parameters_are_summarised_by_their_magnitude(numel):
    torch.manual_seed(0)
    model = nn.Module()
    model.z = nn.Parameter(torch.randn(numel, dtype=torch.complex64))
    opt = sgd(model)
    w = nbw.watch(model, opt, every=1)
    opt.zero_grad()
    (model.z.abs() ** 2).sum().backward()
    opt.step()
    magnitude = model.z.detach().abs().double()
    stats = w.history.stats("z")
    assert stats["norm"][-1] == pytest.approx(magnitude.norm().item(), rel=1e-5)
    assert stats["mean"][-1] == pytest.approx(magnitude.mean().item(), rel=1e-5)
    assert stats["min"][-1] == pytest.approx(magnitude.min().item(), rel=1e-5)
    assert stats["max"][-1] == pytest.approx(magnitude.max().item(), rel=1e-5)
    edges, counts = w.history.histogram("z")
    assert edges[0] < 0 < edges[-1] and counts[: len(counts) // 2].sum() == 0  # |z| >= 0
    grad = w.history.stats("z", of="grad")
    assert grad["norm"][-1] == pytest.approx(model.z.grad.abs().double().norm().item(), rel=1e-5)


@pytest.mark.parametrize("with_optimizer", [True, False])
def test_sparse_gradients_are_summarised_with_their_implicit_zeros(with_optimizer):
    torch.manual_seed(0)
    model = nn.Embedding(1000, 8, sparse=True)  # 8,000 elements, 4 rows touched: 32 stored values
    opt = torch.optim.SparseAdam(model.parameters(), lr=0.01)
    w = nbw.watch(model, opt if with_optimizer else None, every=1)
    denses = []
    for _ in range(3):
        opt.zero_grad()
        model(torch.tensor([1, 5, 5, 7, 900])).pow(2).sum().backward()
        denses.append(model.weight.grad.to_dense().double())
        opt.step()
    assert w.failures == {}
    grad = w.history.stats("weight", of="grad")
    dense = denses[w.history.steps("weight", of="grad")[-1] - 1]  # without optimizer: one behind
    assert grad["count"][-1] == 8000
    assert grad["norm"][-1] == pytest.approx(dense.norm().item(), rel=1e-5)
    assert grad["mean"][-1] == pytest.approx(dense.mean().item(), rel=1e-5)
    assert grad["std"][-1] == pytest.approx(dense.std(unbiased=False).item(), rel=1e-4)
    assert grad["min"][-1] == pytest.approx(dense.min().item()) and grad["max"][-1] == pytest.approx(dense.max().item())
    assert grad["zero_fraction"][-1] == pytest.approx((dense == 0).double().mean().item())
    edges, counts = w.history.histogram("weight", of="grad")
    assert counts.sum() == pytest.approx(8000)
    zero_bin = np.searchsorted(edges, 0.0, side="right") - 1
    assert counts[zero_bin] >= 8000 - 32


# ----- containment --------------------------------------------------------------------------
class Odd(nn.Module):
    """A model with one (1, 7) parameter, which the broken summarize below refuses."""

    def __init__(self):
        super().__init__()
        self.first = nn.Linear(4, 7)
        self.odd = nn.Parameter(torch.ones(1, 7))
        self.last = nn.Linear(7, 2)

    def forward(self, x):
        return self.last(self.first(x) * self.odd)


@pytest.fixture
def summarize_refusing_seven(monkeypatch):
    real = capture_groups.summarize

    def broken(plan, tensors, *args, **kwargs):
        if any(t.shape == (1, 7) for t in tensors):
            raise RuntimeError("summary refused")
        return real(plan, tensors, *args, **kwargs)
    monkeypatch.setattr(capture_groups, "summarize", broken)


def trained_weights(with_optimizer, watched, steps=4):
    torch.manual_seed(0)
    model = Odd()
    opt = sgd(model)
    watcher = nbw.watch(model, opt if with_optimizer else None, every=1) if watched else None
    train(model, opt, steps)
    return [p.detach().clone() for p in model.parameters()], watcher


@pytest.mark.parametrize("with_optimizer", [True, False])
def test_a_failing_capture_is_logged_once_named_and_training_goes_on(with_optimizer, summarize_refusing_seven,
                                                                      caplog):
    plain, _ = trained_weights(with_optimizer, watched=False)
    with caplog.at_level(logging.ERROR, logger="nbweights"):
        watched, w = trained_weights(with_optimizer, watched=True)
    for a, b in zip(plain, watched):
        assert torch.equal(a, b)
    assert list(w.failures) == ["odd"] and "summary refused" in w.failures["odd"]
    assert len(nbweights_errors(caplog)) == 1 and "odd" in nbweights_errors(caplog)[0].getMessage()
    steps = w.history.steps("odd")
    assert len(steps) == 4 + (1 if with_optimizer else 0)  # every step still recorded...
    assert np.isnan(w.history.stats("odd")["norm"]).all()  # ... the failing parameter as NaN
    first = w.history.stats("first.weight")["norm"]
    assert np.isfinite(first).all()
    if with_optimizer:  # (without one, the last step recorded is the weights before the last update)
        assert first[-1] == pytest.approx(w.model.first.weight.norm().item(), rel=1e-5)


def test_a_failing_capture_is_named_in_the_dashboard(summarize_refusing_seven):
    _, w = trained_weights(True, watched=True)
    dashboard = w.dashboard
    dashboard.flush()
    assert "capture failed for 1: odd" in dashboard.status.value


def test_a_failing_gradient_hook_stays_out_of_backward(monkeypatch):
    def broken(self, param):
        raise RuntimeError("gradient summary refused")
    monkeypatch.setattr(capture_groups.ParameterGroup, "gradient_ready", broken)
    plain, _ = trained_weights(False, watched=False)
    watched, w = trained_weights(False, watched=True)
    for a, b in zip(plain, watched):
        assert torch.equal(a, b)
    assert set(w.failures) == {"first.weight", "first.bias", "odd", "last.weight", "last.bias"}


def test_a_failing_activation_hook_stays_out_of_forward(monkeypatch):
    real = ActivationHooks._summarize

    def broken(self, name, module, output):
        if name == "first":
            raise RuntimeError("output refused")
        return real(self, name, module, output)
    monkeypatch.setattr(ActivationHooks, "_summarize", broken)
    torch.manual_seed(0)
    model = Odd()
    opt = sgd(model)
    w = nbw.watch(model, opt, every=1, activations=True)
    train(model, opt, 3)
    assert list(w.failures) == ["first (output)"]
    assert np.isfinite(w.history.stats("last", of="activation")["norm"]).all()
    assert np.isnan(w.history.stats("first", of="activation")["norm"]).all()


def test_stop_on_nonfinite_still_raises():
    model = nn.Linear(4, 2)
    opt = sgd(model, lr=1e30)
    w = nbw.watch(model, opt, every=1, stop_on_nonfinite=True)  # noqa: F841 (kept: a watcher nobody holds stops)
    with pytest.raises(nbw.NonFiniteError, match="NaN/Inf"):
        train(model, opt, 5, loss_scale=1e30)


def test_probe_that_cannot_run_raises_and_installs_nothing():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 6 * 6, 1))
    opt = sgd(model)
    w = nbw.watch(model, opt, every=1)
    with pytest.raises(ValueError, match=r"probe\(\).*\(1, 3, 8, 8\).*no probe was set"):
        w.probe(torch.randn(1, 3, 8, 8))
    train(model, opt, 2, inputs=(2, 1, 8, 8))
    assert w.failures == {} and w.history.feature_map_names == []
    np.testing.assert_array_equal(w.history.steps("0.weight"), [0, 1, 2])


def test_probe_broken_later_is_removed_and_said():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 6 * 6, 1))
    opt = sgd(model)
    w = nbw.watch(model, opt, every=1)
    w.probe(torch.randn(1, 1, 8, 8))
    train(model, opt, 1, inputs=(2, 1, 8, 8))
    model[0] = nn.Conv2d(3, 2, 3)  # the probe batch has one channel: no longer fits
    opt.zero_grad()
    model[2](torch.randn(2, 72)).sum().backward()
    opt.step()
    assert "probe" in w.failures and w._probe is None
    np.testing.assert_array_equal(w.history.feature_maps("0").step, 1)


# ----- notebook habits ----------------------------------------------------------------------
def test_rerunning_watch_replaces_the_earlier_watcher(mlp, caplog):
    opt = sgd(mlp)
    with caplog.at_level(logging.WARNING, logger="nbweights"):
        watchers = [nbw.watch(mlp, opt, every=1) for _ in range(5)]
    assert len(opt._optimizer_step_pre_hooks) == 1 and len(opt._optimizer_step_post_hooks) == 1
    assert [w.closed for w in watchers] == [True, True, True, True, False]
    said = [r for r in caplog.records if "closed the earlier watcher" in r.getMessage()]
    assert len(said) == 4
    train(mlp, opt, 3)
    np.testing.assert_array_equal(watchers[0].history.steps("0.weight"), [0])
    np.testing.assert_array_equal(watchers[-1].history.steps("0.weight"), [0, 1, 2, 3])
    other = nbw.watch(nn.Linear(2, 2))  # another model: the last watcher goes on
    assert not watchers[-1].closed and not other.closed


def test_a_deleted_watcher_stops_and_its_hooks_go(mlp):
    opt = sgd(mlp)
    w = nbw.watch(mlp, opt, every=1)
    history, gone = w.history, weakref.ref(w)
    del w
    gc.collect()
    assert gone() is None
    train(mlp, opt, 3)
    np.testing.assert_array_equal(history.steps("0.weight"), [0])  # recording stopped
    assert len(opt._optimizer_step_post_hooks) == 1  # neutered, removed at the next watch()
    nbw.watch(nn.Linear(2, 2)).close()
    assert len(opt._optimizer_step_pre_hooks) == 0 and len(opt._optimizer_step_post_hooks) == 0


def test_a_deleted_watcher_without_optimizer_leaves_no_gradient_hook(mlp):
    w = nbw.watch(mlp, every=1)
    gone = weakref.ref(w)
    del w
    gc.collect()
    assert gone() is None
    train(mlp, sgd(mlp), 2)
    nbw.watch(nn.Linear(2, 2)).close()
    assert len(mlp._forward_pre_hooks) == 0
    assert all(not p._post_accumulate_grad_hooks for p in mlp.parameters())


class FakeShell:
    """What the dashboard asks of IPython: events, and a kernel (so it redraws on a thread)."""

    def __init__(self):
        from IPython.core.events import EventManager, available_events
        self.events = EventManager(self, available_events)
        self.kernel = object()


def test_close_release_stops_the_dashboard_and_closes_every_widget(mlp, monkeypatch):
    from nbweights.ui import trigger as trigger_module
    shell = FakeShell()
    monkeypatch.setattr(trigger_module, "ipython", lambda: shell)
    before = len(ipywidgets.Widget.widgets)
    opt = sgd(mlp)
    w = nbw.watch(mlp, opt, every=1, activations=True)
    dashboard = w.dashboard
    assert dashboard.threaded and len(shell.events.callbacks["post_run_cell"]) == 1
    thread = dashboard.trigger.thread.thread
    train(mlp, opt, 2)
    assert len(ipywidgets.Widget.widgets) > before + 100
    w.close()  # the hooks go; what was drawn stays shown
    assert dashboard.comm is not None and len(ipywidgets.Widget.widgets) > before + 100
    w.close(release=True)
    thread.join(5)
    assert not thread.is_alive() and shell.events.callbacks["post_run_cell"] == []
    assert len(ipywidgets.Widget.widgets) == before
    assert not any(t.name == "nbweights-redraw" and t.is_alive() for t in threading.enumerate())


def test_rerunning_watch_releases_the_earlier_dashboard(mlp):
    before = len(ipywidgets.Widget.widgets)
    opt = sgd(mlp)
    for _ in range(3):
        w = nbw.watch(mlp, opt, every=1)
        w.dashboard
    shown = len(ipywidgets.Widget.widgets) - before
    w.close(release=True)
    assert len(ipywidgets.Widget.widgets) == before and shown > 0
    w2 = nbw.watch(mlp, opt, every=1)
    w2.dashboard
    assert len(ipywidgets.Widget.widgets) - before == shown  # one dashboard's worth, not three
    w2.close(release=True)


def test_a_replaced_parameter_is_recorded_by_name(caplog):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    w = nbw.watch(model, every=1)
    train(model, sgd(model), 2)
    model[0].weight = nn.Parameter(torch.full((3, 4), 0.5))
    with caplog.at_level(logging.WARNING, logger="nbweights"):
        train(model, torch.optim.SGD(model.parameters(), lr=0.0), 3)
    np.testing.assert_array_equal(w.history.steps("0.weight"), [0, 1, 2, 3, 4])
    assert w.history.stats("0.weight")["mean"][-1] == pytest.approx(0.5)
    # step 4 holds the gradient of the 4th update: the second batch of the second train() call
    grads = w.history.stats("0.weight", of="grad")["norm"]
    batches = torch.Generator().manual_seed(0)
    x = [torch.randn(8, 4, generator=batches) for _ in range(2)][-1]
    model.zero_grad()
    model.eval()  # (not a training forward: nothing captured)
    model(x).pow(2).mean().backward()
    assert grads[-1] == pytest.approx(model[0].weight.grad.norm().item(), rel=1e-5)
    said = [r for r in caplog.records if "replaced" in r.getMessage()]
    assert len(said) == 1 and "0.weight" in said[0].getMessage()


def test_replacements_of_one_size_are_each_recorded_though_the_old_one_is_freed():
    # The per-capture layout check compares ids of weak references: a freed parameter's id may
    # be reused by its replacement, a live weak reference's id may not.
    model = nn.Linear(3, 2)
    w = nbw.watch(model, every=1)
    for value in range(1, 6):
        model.weight = nn.Parameter(torch.full((2, 3), float(value)))  # the previous one is freed
        w.snapshot()
        assert w.history.stats("weight")["mean"][-1] == value
    w.close()


def test_a_parameter_that_went_away_is_said_once(caplog):
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    w = nbw.watch(model, every=1)
    train(model, sgd(model), 1)
    with caplog.at_level(logging.ERROR, logger="nbweights"):
        model[1].bias = None
        train(model, sgd(model), 3)
    assert list(w.failures) == ["1.bias"] and "no parameter" in w.failures["1.bias"]
    assert len(nbweights_errors(caplog)) == 1
    assert np.isnan(w.history.stats("1.bias")["norm"][-1]) and np.isfinite(w.history.stats("1.weight")["norm"][-1])


# ----- options, sampling, health --------------------------------------------------------------
@pytest.mark.parametrize("options, error, words", [
    ({"budget": "2%"}, TypeError, "fraction"),
    ({"budget": 2}, ValueError, "fraction"),
    ({"stop_on_nonfinite": "no"}, TypeError, "True or False"),
    ({"thresholds": "strict"}, TypeError, "Thresholds"),
    ({"bins": 2.5}, TypeError, "bins="),
    ({"sample_size": 0}, ValueError, "sample_size="),
])
def test_wrong_options_fail_at_watch(options, error, words):
    with pytest.raises(error, match=words):
        nbw.watch(nn.Linear(2, 2), **options)


def test_numpy_integers_are_accepted(mlp):
    opt = sgd(mlp)
    w = nbw.watch(mlp, opt, every=np.int64(3), bins=np.int32(16), sample_size=np.int64(8))
    train(mlp, opt, 7)
    np.testing.assert_array_equal(w.history.steps("0.weight"), [0, 3, 6])
    assert len(w.history.histogram("0.weight")[1]) == 16 and w.history.stats("0.weight")["count"][0] == 64


def test_sample_of_a_huge_tensor_lists_only_the_sample(monkeypatch):
    real, sizes = torch.randperm, []

    def randperm(n, *args, **kwargs):
        sizes.append(n)
        return real(n, *args, **kwargs)
    monkeypatch.setattr(torch, "randperm", randperm)
    indices = summaries.sample_indices(10**9, 4096, seed=3)
    assert max(sizes) <= 4 * 4096
    assert len(indices) == 4096 and len(torch.unique(indices)) == 4096
    assert torch.all(indices[1:] > indices[:-1]) and 0 <= int(indices[0]) and int(indices[-1]) < 10**9
    assert torch.equal(indices, summaries.sample_indices(10**9, 4096, seed=3))
    assert not torch.equal(indices, summaries.sample_indices(10**9, 4096, seed=4))


def test_sample_of_a_large_tensor_is_uniform():
    numel, size, draws = 41, 10, 4000  # numel > 4 * size: the path that does not shuffle all
    seen = np.zeros(numel)
    for seed in range(draws):
        seen[summaries.sample_indices(numel, size, seed).numpy()] += 1
    # each index is in a sample with probability size / numel; 5 standard deviations
    p = size / numel
    assert np.abs(seen / draws - p).max() < 5 * np.sqrt(p * (1 - p) / draws)


def test_a_gan_half_stepped_by_another_optimizer_is_not_stalled():
    torch.manual_seed(0)
    gan = nn.ModuleDict({"generator": nn.Linear(4, 8), "discriminator": nn.Linear(8, 1)})
    opt_g = torch.optim.Adam(gan["generator"].parameters(), lr=1e-3)
    opt_d = torch.optim.Adam(gan["discriminator"].parameters(), lr=1e-3)
    w = nbw.watch(gan, opt_g, every=1)
    for _ in range(8):
        fake = gan["generator"](torch.randn(16, 4))
        opt_d.zero_grad()
        gan["discriminator"](fake.detach()).mean().backward()
        opt_d.step()
        opt_g.zero_grad()
        (-gan["discriminator"](fake).mean()).backward()
        opt_g.step()
    assert not [s for s in w.health() if s.kind == "stalled"]
    assert np.isnan(w.history.stats("discriminator.weight")["update_ratio"]).all()
    assert (w.history.stats("generator.weight")["update_ratio"][1:] > 0).all()


def test_zero_element_parameters_fire_no_signal():
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    model.empty = nn.Parameter(torch.zeros(0, 4))
    opt = sgd(model)
    w = nbw.watch(model, opt, every=1)
    for _ in range(6):
        step(model, opt, torch.randn(8, 4), extra=lambda: model.empty.sum())
    assert w.history.stats("empty", of="grad")["count"][-1] == 0
    assert [s for s in w.health() if s.name.startswith("empty")] == []


# ----- what the merge with the distributed, perf and lessons work must keep -------------------
def test_a_submodule_replaced_whole_is_recorded_by_name(caplog):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    w = nbw.watch(model, every=1)
    train(model, None, 2)
    model[2] = nn.Linear(16, 3)  # the old module is dropped: its parameters are looked up again
    with torch.no_grad():
        model[2].weight.fill_(0.5)
    train(model, None, 2, seed=1)
    w.snapshot()
    assert w.history.stats("2.weight")["norm"][-1] == pytest.approx(model[2].weight.norm().item(), rel=1e-5)
    assert w.failures == {}


def test_rerunning_watch_with_two_optimizers_leaves_one_set_of_hooks():
    torch.manual_seed(0)
    gen, disc = nn.Linear(3, 3), nn.Linear(3, 1)
    model = nn.ModuleDict({"gen": gen, "disc": disc})
    opt_g, opt_d = sgd(gen), sgd(disc)
    watchers = [nbw.watch(model, [opt_g, opt_d], every=1) for _ in range(3)]
    assert all(w.closed for w in watchers[:-1]) and not watchers[-1].closed
    assert len(opt_g._optimizer_step_post_hooks) == len(opt_d._optimizer_step_post_hooks) == 1


def test_reattach_keeps_writing_the_run_folder(tmp_path):
    from nbweights.history.rundir import RunReader
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    first = sgd(model)
    w = nbw.watch(model, first, every=1, run_dir=tmp_path / "run")
    train(model, first, 2)
    second = sgd(model)
    w.reattach(second)  # a framework's second fit(): new optimizer, same run
    train(model, second, 2, seed=1)
    w.close()
    reader = RunReader(tmp_path / "run")
    reader.poll()
    assert reader.ended and list(reader.history.steps("0.weight")) == [0, 1, 2, 3, 4]


def test_the_probe_adds_no_hook_per_capture_and_close_removes_its_own():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    opt = sgd(model)
    w = nbw.watch(model, opt, every=1)
    w.probe(torch.randn(1, 1, 6, 6))
    hooks = len(model[0]._forward_hooks)
    assert hooks == 1
    train(model, opt, 3, inputs=(4, 1, 6, 6))
    assert len(model[0]._forward_hooks) == hooks and w.history.feature_map_names == ["0"]
    w.probe(torch.randn(2, 1, 6, 6))  # a new probe replaces the earlier one's hook
    assert len(model[0]._forward_hooks) == 1
    w.close()
    assert len(model[0]._forward_hooks) == 0


def test_a_snapshot_right_after_a_replacement_records_the_new_parameter():
    # The capture after an optimizer step reuses the look-up made just before the update; a
    # snapshot() between steps must look again.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    opt = sgd(model)
    w = nbw.watch(model, opt, every=1)
    train(model, opt, 2)
    model[0].weight = nn.Parameter(torch.full((8, 4), 2.0))
    w.snapshot()
    assert w.history.stats("0.weight")["norm"][-1] == pytest.approx(model[0].weight.norm().item())
