"""The Hugging Face callback with the real transformers Trainer (and accelerate) on the CPU: a
2-layer BERT of hidden size 32 built from a config (no download), a few steps each."""
from __future__ import annotations

import importlib
import sys

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")
from nbweights.integrations.transformers import WatchCallback  # noqa: E402

SEQUENCE = 12


class Sentences(torch.utils.data.Dataset):
    """Random token sequences labelled by whether token 7 occurs in them."""

    def __init__(self, count: int = 32, seed: int = 0):
        generator = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(0, 64, (count, SEQUENCE), generator=generator)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        ids = self.ids[i]
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": int((ids == 7).any())}


def tiny_bert() -> torch.nn.Module:
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=SEQUENCE, num_labels=2)
    return transformers.BertForSequenceClassification(config)


def train(model, tmp_path, callbacks=(), steps: int = 4, **arguments) -> transformers.Trainer:
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=steps, learning_rate=1e-3,
        logging_steps=1, report_to="none", save_strategy="no", use_cpu=True, disable_tqdm=True,
        dataloader_num_workers=0, seed=0, **arguments)
    trainer = transformers.Trainer(model=model, args=args, train_dataset=Sentences(), callbacks=list(callbacks))
    trainer.train()
    return trainer


def losses_logged_by(trainer) -> tuple[list[int], list[float]]:
    entries = [e for e in trainer.state.log_history if "loss" in e]
    return [e["step"] for e in entries], [e["loss"] for e in entries]


@pytest.mark.slow  # each Trainer run takes seconds (tens on a busy 2-core machine)
def test_captures_each_optimizer_step_under_accumulation_and_logs_the_trainer_logs(tmp_path):
    model, callback = tiny_bert(), WatchCallback(every=1)
    trainer = train(model, tmp_path, [callback], gradient_accumulation_steps=2)
    watcher = callback.watcher
    name = "classifier.weight"
    assert trainer.state.global_step == 4 == watcher.step
    assert watcher.history.steps(name).tolist() == [0, 1, 2, 3, 4]
    assert watcher.history.steps(name, of="grad").tolist() == [1, 2, 3, 4]
    steps, values = watcher.history.metric("loss")
    logged_steps, logged_losses = losses_logged_by(trainer)
    assert steps.tolist() == logged_steps == [1, 2, 3, 4]
    np.testing.assert_allclose(values, logged_losses, rtol=1e-6)
    assert "learning_rate" in watcher.history.metric_names and "epoch" not in watcher.history.metric_names
    assert watcher.history.stats(name)["norm"][-1] == pytest.approx(float(model.classifier.weight.detach().norm()), rel=1e-5)
    assert watcher.closed and not trainer.optimizer.optimizer._optimizer_step_post_hooks


@pytest.mark.slow
def test_training_with_the_callback_is_bit_identical(tmp_path):
    bare = tiny_bert()
    train(bare, tmp_path / "bare")
    watched = tiny_bert()
    train(watched, tmp_path / "watched", [WatchCallback(every=1)])
    assert all(torch.equal(a, b) for a, b in zip(bare.parameters(), watched.parameters()))


@pytest.mark.slow
def test_bf16_mixed_precision_on_the_cpu_is_watched(tmp_path):
    model, callback = tiny_bert(), WatchCallback(every=1)
    train(model, tmp_path, [callback], bf16=True)
    watcher = callback.watcher
    assert watcher.history.steps("classifier.weight", of="grad").tolist() == [1, 2, 3, 4]
    for name in watcher.history.names:
        grads = watcher.history.stats(name, of="grad")
        assert np.all(grads["nonfinite"] == 0), name
    # autocast computes in bf16 while the weights stay float32, as recorded
    assert model.classifier.weight.dtype == torch.float32
    assert watcher.history.stats("classifier.weight")["norm"][-1] == pytest.approx(
        float(model.classifier.weight.detach().norm()), rel=1e-5)


@pytest.mark.slow
def test_a_second_trainer_continues_the_history_of_the_same_watcher(tmp_path):
    model = tiny_bert()
    callback = WatchCallback(model, every=2)
    watcher = callback.watcher
    assert watcher.history.steps("classifier.weight").tolist() == [0]  # shown before train()
    train(model, tmp_path / "one", [callback])
    train(model, tmp_path / "two", [callback])
    assert callback.watcher is watcher
    assert watcher.history.steps("classifier.weight").tolist() == [0, 2, 4, 6, 8]
    assert watcher.history.metric("loss")[0].tolist() == list(range(1, 9))


def test_without_transformers_the_import_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    monkeypatch.delitem(sys.modules, "nbweights.integrations.transformers")
    with pytest.raises(ImportError, match=r"pip install nbweights\[transformers\]"):
        importlib.import_module("nbweights.integrations.transformers")
