"""Kernel memory of the dashboard itself, beside the history it draws from, for models of 10 to
1,000 tensors (issue #15's target: <= 50 MB beyond the history, whatever the model).

Measured headless (widgets talk to no kernel) with ``tracemalloc``, which sees Python objects and
numpy arrays (everything the dashboard allocates; the history's numpy arrays too, counted apart
by ``History.nbytes``): memory held after building the dashboard, a full redraw and opening
``--entries`` entries, minus what was held before; and the widget models it created.

    python benchmarks/dashboard_memory.py [--quick] [--entries 12]
"""
from __future__ import annotations

import argparse
import gc
import sys
import tracemalloc
import warnings
from pathlib import Path

import ipywidgets
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import headless_widgets  # noqa: E402

import nbweights as nbw  # noqa: E402
from nbweights.ui.dashboard import Dashboard  # noqa: E402

MB = 1 << 20


def stack_of(blocks: int) -> nn.Module:
    """blocks x 5 Linear(16, 16): 10 tensors per block, named like a transformer's layers."""
    return nn.ModuleDict({"layers": nn.ModuleList(
        nn.Sequential(*[nn.Linear(16, 16) for _ in range(5)]) for _ in range(blocks))})


def gpt_like(width: int = 64) -> nn.Module:
    """150 tensors: 12 pre-norm encoder layers, embeddings, a head (as the browser test's)."""
    layer = nn.TransformerEncoderLayer(width, 4, 2 * width, batch_first=True, norm_first=True)
    return nn.ModuleDict({"tokens": nn.Embedding(100, width),
                          "blocks": nn.TransformerEncoder(layer, 12, enable_nested_tensor=False),
                          "head": nn.Linear(width, 100)})


def resnet18() -> nn.Module:
    import torchvision
    return torchvision.models.resnet18(num_classes=10)


def open_widgets() -> int:
    """Widget models alive in this process (ipywidgets 8 deprecates the registry, not its use)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return len(ipywidgets.Widget.widgets)


def train(model: nn.Module, steps: int) -> nbw.Watcher:
    """A watcher after ``steps`` SGD steps of a loss over every parameter (no data needed)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    watcher = nbw.watch(model, optimizer, every=1)
    for _ in range(steps):
        optimizer.zero_grad()
        sum(p.float().square().mean() for p in model.parameters()).backward()
        optimizer.step()
    return watcher


def dashboard_memory(model: nn.Module, steps: int, entries: int) -> dict:
    watcher = train(model, steps)
    gc.collect()
    before_widgets = open_widgets()
    tracemalloc.start()
    held_before = tracemalloc.get_traced_memory()[0]
    dashboard = Dashboard(watcher, max_fps=1e9, threaded=False)
    names = dashboard.history.names
    for name in names[:: max(1, len(names) // entries)][:entries]:
        dashboard.select(name)
        dashboard.flush()
    gc.collect()
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    row = {"tensors": len(names), "dashboard_mb": (held - held_before) / MB, "peak_mb": (peak - held_before) / MB,
           "history_mb": watcher.history.nbytes / MB, "widgets": open_widgets() - before_widgets}
    dashboard.close()
    watcher.close()
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small models and few steps: checks it runs")
    parser.add_argument("--entries", type=int, default=12, help="entries opened in turn (the panel cache)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    models = [("10 tensors", lambda: stack_of(1)), ("1,000 tensors", lambda: stack_of(100))]
    if not args.quick:
        models[1:1] = [("ResNet-18", resnet18), ("GPT-like", gpt_like)]
    steps = 3 if args.quick else 30
    print(f"{'model':<16} {'tensors':>7} {'dashboard MB':>13} {'peak MB':>8} {'history MB':>11} {'widgets':>8}")
    with headless_widgets():
        for label, make in models:
            row = dashboard_memory(make(), steps, args.entries)
            print(f"{label:<16} {row['tensors']:>7} {row['dashboard_mb']:>13.1f} {row['peak_mb']:>8.1f} "
                  f"{row['history_mb']:>11.1f} {row['widgets']:>8}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
