"""What the training callbacks cost: a fit with ``WatchCallback`` against the same bare fit.

    python benchmarks/integrations.py            # Lightning and Hugging Face, 5 pairs each (minutes)
    python benchmarks/integrations.py --quick    # tiny runs, one pair, no warm-up: checks that it runs

For each framework, runs with and without the callback alternate (bare, watched, bare, ...) in
this one process, so that the noise of a shared machine falls on both sides, and the medians are
compared. Each run builds the same seeded model and trains it from scratch; the callback uses the
default ``every="auto"``. A framework that is not installed prints a skip line with the reason.
Output ends with a table: ``section case watched vs bare = ratio``.
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def interleaved(bare: Callable[[], float], watched: Callable[[], float], pairs: int,
                warmup: bool = True) -> tuple[float, float]:
    """Median seconds of each, measured in alternation (after one warm-up of each)."""
    if warmup:
        bare(), watched()
    times: dict[str, list[float]] = {"bare": [], "watched": []}
    for _ in range(pairs):
        times["bare"].append(bare())
        times["watched"].append(watched())
    return statistics.median(times["bare"]), statistics.median(times["watched"])


def lightning_case(quick: bool) -> tuple[str, Callable[[bool], float]]:
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader, TensorDataset

    from nbweights.integrations.lightning import WatchCallback

    batches, width = (20, 64) if quick else (300, 512)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batches * 32, 784, generator=generator)
    data = DataLoader(TensorDataset(x, torch.randint(0, 10, (len(x),), generator=generator)), batch_size=32)

    class Classifier(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(784, width), nn.ReLU(), nn.Linear(width, 10))

        def training_step(self, batch, batch_idx):
            loss = nn.functional.cross_entropy(self.net(batch[0]), batch[1])
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05)

    def fit(watched: bool) -> float:
        torch.manual_seed(0)
        model = Classifier()
        trainer = pl.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False,
                             callbacks=[WatchCallback()] if watched else [])
        started = time.perf_counter()
        trainer.fit(model, data)
        return time.perf_counter() - started

    return f"fit, MLP 784-{width}-10, {batches} batches", fit


def transformers_case(quick: bool) -> tuple[str, Callable[[bool], float]]:
    import transformers

    from nbweights.integrations.transformers import WatchCallback

    steps, hidden = (6, 32) if quick else (60, 128)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 1000, (steps * 8, 32), generator=generator)
    data = [{"input_ids": row, "attention_mask": torch.ones_like(row), "labels": int(row[0] % 2)} for row in ids]
    config = transformers.BertConfig(vocab_size=1000, hidden_size=hidden, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=4 * hidden, max_position_embeddings=32, num_labels=2)
    output = tempfile.mkdtemp(prefix="nbweights-bench-hf-")

    def train(watched: bool) -> float:
        torch.manual_seed(0)
        model = transformers.BertForSequenceClassification(config)
        args = transformers.TrainingArguments(output_dir=output, per_device_train_batch_size=8, max_steps=steps,
                                              logging_steps=10, report_to="none", save_strategy="no", use_cpu=True,
                                              disable_tqdm=True, dataloader_num_workers=0)
        trainer = transformers.Trainer(model=model, args=args, train_dataset=data,
                                       callbacks=[WatchCallback()] if watched else [])
        started = time.perf_counter()
        trainer.train()
        return time.perf_counter() - started

    return f"train, BERT 2 layers hidden {hidden}, {steps} steps", train


CASES = {"lightning": lightning_case, "transformers": transformers_case}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny runs, one pair, no warm-up (checks that it runs)")
    parser.add_argument("--pairs", type=int, default=None, help="alternating pairs per case (default 5, quick 1)")
    parser.add_argument("--only", action="append", choices=sorted(CASES), help="run only these sections")
    args = parser.parse_args(argv)
    pairs = args.pairs if args.pairs is not None else (1 if args.quick else 5)
    if pairs < 1:
        parser.error(f"--pairs must be at least 1, got {pairs}")
    warnings.simplefilter("ignore")  # the frameworks' advice on workers and logging intervals
    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "transformers"):
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    rows = []
    for section in args.only or list(CASES):
        try:
            case, run = CASES[section](args.quick)
        except ImportError as error:
            rows.append(f"skip {section:<13} not installed: {error}")
            print(rows[-1], flush=True)
            continue
        bare, watched = interleaved(lambda: run(False), lambda: run(True), pairs, warmup=not args.quick)
        rows.append(f"{section:<13} {case:<44} {watched:8.3f} s vs {bare:8.3f} s bare = {watched / bare:.3f}x")
        print(rows[-1], flush=True)
    print(f"\nintegrations benchmark{' (--quick: tiny runs, not for reading speed)' if args.quick else ''}; "
          f"medians of {pairs} alternating pairs, torch {torch.__version__}, {os.cpu_count()} CPUs")
    print("section       case" + " " * 41 + "watched vs bare = ratio")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
