"""This checkout's capture against an earlier commit's, side by side in one process (issue #14).

    python benchmarks/compare.py 5cede98          # snapshot and step hooks, small models, 1 thread
    python benchmarks/compare.py 5cede98 --resnet # ResNet-18 too, against its read floor

The earlier package is extracted by ``git archive`` into a temporary folder and imported under
another name, so both run on the same models in the same process, interleaved (ABBA), medians
kept: the noise of a shared machine falls on both sides. Torch operations are counted by
``torch.profiler`` (they do not depend on the load). "hooks" is one captured optimizer step's
work without the update itself: the pre-step read of the weights, then the capture.
"""
from __future__ import annotations

import argparse
import importlib
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import nbweights as current  # noqa: E402
from run import aten_ops  # noqa: E402


def earlier(commit: str, folder: Path):
    """The nbweights package of ``commit``, imported as ``nbweights_<commit>``."""
    archive = folder / "old.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), commit, "nbweights"], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    name = f"nbweights_{commit}"
    (folder / "nbweights").rename(folder / name)
    sys.path.insert(0, str(folder))
    return importlib.import_module(name)


class Tiny(nn.Module):
    """Ten parameters of 16 elements (the fixed cost, nothing else)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts = nn.ParameterList([nn.Parameter(torch.randn(16)) for _ in range(10)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(p.sum() for p in self.parts) * x.sum()


def models(resnet: bool) -> dict[str, Callable]:
    found = {
        "10 tensors of 16": lambda: (Tiny(), torch.randn(4), None),
        "Linear 784->10": lambda: (nn.Linear(784, 10), torch.randn(64, 784), torch.randint(0, 10, (64,))),
        "MLP 784-256-10": lambda: (nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10)),
                                   torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))),
    }
    if resnet:
        import torchvision
        found["ResNet-18"] = lambda: (torchvision.models.resnet18(), torch.randn(8, 3, 64, 64),
                                      torch.randint(0, 1000, (8,)))
    return found


def watched(package, make: Callable):
    """A model trained two steps under ``package.watch`` (never capturing on its own), and
    what one captured step's hooks run; the model is kept alive by the returned tuple."""
    torch.manual_seed(0)
    model, inputs, targets = make()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    watcher = package.watch(model, optimizer, every=10**9, bins=64)
    for _ in range(2):
        optimizer.zero_grad()
        out = model(inputs)
        (nn.functional.cross_entropy(out, targets) if targets is not None else out).backward()
        optimizer.step()

    def hooks() -> None:
        watcher.pacer.next_step = 0
        watcher._before_optimizer_step(optimizer, (), {})
        watcher._after_optimizer_step(optimizer, (), {})
    return watcher, hooks, model


def medians(cases: dict[str, Callable[[], object]], repeats: int, inner: int) -> dict[str, float]:
    for fn in cases.values():
        for _ in range(3):
            fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    order = list(cases)
    for r in range(repeats):
        for name in order if r % 2 == 0 else order[::-1]:
            started = time.perf_counter()
            for _ in range(inner):
                cases[name]()
            times[name].append((time.perf_counter() - started) / inner)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("commit", help="the earlier commit (e.g. 5cede98)")
    parser.add_argument("--resnet", action="store_true", help="ResNet-18 too (about a minute)")
    parser.add_argument("--repeats", type=int, default=101)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        old = earlier(args.commit, Path(folder))
        print(f"old = {args.commit}, new = this checkout; torch {torch.__version__}, 1 thread")
        for label, make in models(args.resnet).items():
            (w_old, h_old, m_old), (w_new, h_new, m_new) = watched(old, make), watched(current, make)
            params = [p for p in m_new.parameters()]
            tensors = params + [p.grad for p in params]
            floor = lambda: torch.stack([t.detach().sum() for t in tensors]).cpu()  # noqa: E731
            big = label == "ResNet-18"
            t = medians({"floor": floor, "old snapshot": w_old.snapshot, "new snapshot": w_new.snapshot,
                         "old hooks": h_old, "new hooks": h_new}, 21 if big else args.repeats, 1 if big else 5)
            print(f"{label}: torch ops snapshot {aten_ops(w_old.snapshot)} -> {aten_ops(w_new.snapshot)}, hooks "
                  f"{aten_ops(h_old)} -> {aten_ops(h_new)}; snapshot {t['old snapshot'] * 1e3:.3f} -> "
                  f"{t['new snapshot'] * 1e3:.3f} ms ({t['new snapshot'] / t['old snapshot']:.2f}x), hooks "
                  f"{t['old hooks'] * 1e3:.3f} -> {t['new hooks'] * 1e3:.3f} ms "
                  f"({t['new hooks'] / t['old hooks']:.2f}x); floor {t['floor'] * 1e3:.3f} ms, hooks/floor "
                  f"{t['old hooks'] / t['floor']:.2f}x -> {t['new hooks'] / t['floor']:.2f}x")
            for watcher in (w_old, w_new):
                watcher.close()


if __name__ == "__main__":
    main()
