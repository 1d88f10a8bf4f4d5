"""The Lightning callback with the real pytorch_lightning Trainer on the CPU, a few steps each."""
from __future__ import annotations

import importlib
import sys
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

pl = pytest.importorskip("pytorch_lightning")
from nbweights.integrations.lightning import WatchCallback  # noqa: E402

BATCHES = 8


class Regression(pl.LightningModule):
    """A linear regression that remembers the loss of every training batch it saw."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
        self.losses: list[float] = []
        self.fail_at_batch: int | None = None

    def training_step(self, batch, batch_idx):
        if batch_idx == self.fail_at_batch:
            raise RuntimeError("boom")
        x, y = batch
        loss = nn.functional.mse_loss(self.net(x), y)
        self.losses.append(loss.item())
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


class TwoOptimizers(Regression):
    """Manual optimization with one optimizer per layer, stepped one after the other."""

    def __init__(self):
        super().__init__()
        self.automatic_optimization = False

    def training_step(self, batch, batch_idx):
        x, y = batch
        for optimizer in self.optimizers():
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(self.net(x), y)
            self.manual_backward(loss)
            optimizer.step()
        self.log("train_loss", loss)

    def configure_optimizers(self):
        return [torch.optim.SGD(self.net[0].parameters(), lr=0.05),
                torch.optim.SGD(self.net[2].parameters(), lr=0.05)]


def loader(seed: int = 0) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(BATCHES * 4, 4, generator=generator)
    return DataLoader(TensorDataset(x, x.sum(dim=1, keepdim=True)), batch_size=4)


def fit(model: pl.LightningModule, callbacks=(), epochs: int = 1, validate: bool = False, **trainer_options):
    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0, limit_val_batches=2 if validate else 0,
                         callbacks=list(callbacks), **trainer_options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice on num_workers and logging intervals
        trainer.fit(model, loader(), loader(1) if validate else None)
    return trainer


def seeded(cls=Regression) -> pl.LightningModule:
    torch.manual_seed(0)
    return cls()


def test_captures_every_optimizer_step_under_gradient_accumulation_and_logs_its_loss():
    model, callback = seeded(), WatchCallback(every=1)
    trainer = fit(model, [callback], accumulate_grad_batches=2)
    watcher = callback.watcher
    assert trainer.global_step == BATCHES // 2 == watcher.step
    assert watcher.history.steps("net.0.weight").tolist() == [0, 1, 2, 3, 4]
    assert watcher.history.steps("net.0.weight", of="grad").tolist() == [1, 2, 3, 4]
    steps, values = watcher.history.metric("train_loss_step")
    # One point per optimizer step: the loss of the batch that completed it (batches 1, 3, 5, 7).
    assert steps.tolist() == [1, 2, 3, 4]
    np.testing.assert_allclose(values, model.losses[1::2], rtol=1e-6)
    epoch_steps, epoch_loss = watcher.history.metric("train_loss_epoch")
    assert epoch_steps.tolist() == [4] and epoch_loss[0] == pytest.approx(np.mean(model.losses), rel=1e-5)
    last = watcher.history.stats("net.2.weight")["norm"][-1]
    assert last == pytest.approx(float(model.net[2].weight.detach().norm()), rel=1e-5)
    assert watcher.closed
    assert not any(o._optimizer_step_post_hooks for o in trainer.optimizers)


def test_fit_with_the_callback_trains_bit_identically():
    bare = seeded()
    fit(bare)
    watched = seeded()
    fit(watched, [WatchCallback(every=1, activations=True)])
    assert all(torch.equal(a, b) for a, b in zip(bare.parameters(), watched.parameters()))


def test_each_optimizer_steps_its_own_layer_and_a_step_counts_both():
    model, callback = seeded(TwoOptimizers), WatchCallback(every=1)
    fit(model, [callback])
    watcher = callback.watcher
    assert watcher.step == BATCHES
    assert watcher.history.steps("net.0.weight").tolist() == list(range(BATCHES + 1))
    for name, param in model.named_parameters():
        stats = watcher.history.stats(name)
        assert stats["norm"][-1] == pytest.approx(float(param.detach().norm()), rel=1e-5), name
        assert np.all(stats["update_ratio"][1:] > 0), name  # read after its optimizer stepped


def test_a_second_fit_continues_the_same_watcher_and_history():
    model, callback = seeded(), WatchCallback(model=None, every=1)
    first = fit(model, [callback])
    watcher = callback.watcher
    second = fit(model, [callback])  # a new Trainer makes new optimizers
    assert callback.watcher is watcher
    assert watcher.history.steps("net.0.weight").tolist() == list(range(2 * BATCHES + 1))
    steps, _ = watcher.history.metric("train_loss_step")
    assert steps.tolist() == list(range(1, 2 * BATCHES + 1))
    assert not first.optimizers[0]._optimizer_step_post_hooks
    assert not second.optimizers[0]._optimizer_step_post_hooks and watcher.closed


def test_the_watcher_exists_before_fit_when_given_the_model():
    model = seeded()
    callback = WatchCallback(model, every=2)
    watcher = callback.watcher
    assert watcher is not None and watcher.history.steps("net.0.weight").tolist() == [0]
    assert callback.watch(model) is watcher
    fit(model, [callback])
    assert callback.watcher is watcher
    assert watcher.history.steps("net.0.weight").tolist() == [0, 2, 4, 6, 8]
    assert not model._forward_pre_hooks  # the ahead-of-fit forward hook went at fit start


def test_validation_metrics_are_logged_once_per_validation():
    model, callback = seeded(), WatchCallback(every=1)
    fit(model, [callback], epochs=2, validate=True)
    steps, values = callback.watcher.history.metric("val_loss")
    assert steps.tolist() == [BATCHES, 2 * BATCHES] and len(set(values.tolist())) == 2


def test_an_exception_in_training_closes_the_watcher_and_keeps_its_history():
    model, callback = seeded(), WatchCallback(every=1)
    model.fail_at_batch = 3
    with pytest.raises(RuntimeError, match="boom"):
        fit(model, [callback])
    assert callback.watcher.closed
    assert callback.watcher.history.steps("net.0.weight").tolist() == [0, 1, 2, 3]


def test_options_watch_does_not_take_fail_when_the_callback_is_made():
    with pytest.raises(TypeError, match="every_n"):
        WatchCallback(every_n=3)
    with pytest.raises(TypeError, match="optimizer comes from the trainer"):
        WatchCallback(optimizer=None)


def test_without_lightning_the_import_error_names_the_extra(monkeypatch):
    for name in ("pytorch_lightning", "lightning", "lightning.pytorch"):
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "nbweights.integrations.lightning")
    with pytest.raises(ImportError, match=r"pip install nbweights\[lightning\]"):
        importlib.import_module("nbweights.integrations.lightning")
