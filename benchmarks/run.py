"""Side-by-side benchmarks of nbweights, printed as one table of ratios (issue #7).

    python benchmarks/run.py                  # full run: MLP, CNN, ResNet-18, ViT-B/16 (minutes)
    python benchmarks/run.py --quick          # tiny models, few repeats (< 30 s): checks it all runs
    python benchmarks/run.py --only capture --only history

Sections (``--only`` takes these names):

- ``capture``: one snapshot (``Watcher.snapshot()``: weights, gradients, pictures, history) against
  the read floor, one reduction per parameter and one host sync.
- ``fixed``: the fixed cost of a snapshot: 1, 10, 100 and 1,000 small tensors (weights + gradients)
  against the same floor, with the torch operations one snapshot runs (``torch.profiler``).
- ``every1``: what ``every=1`` adds to a training step (weights, gradients, update ratio), MLP
  784-256-10 and ResNet-18, against one reduction per weight and gradient tensor.
- ``loggers``: the same snapshot through ``torch.histc``, ``np.histogram``, TensorBoard's
  ``add_histogram`` and ``wandb.watch(log="all", log_freq=1)`` (skipped when not installed;
  ``pip install tensorboard wandb``).
- ``training``: time per training step with ``every="auto"``, ``every=1`` and the dashboard shown
  (headless), against the same training without nbweights; runs alternate (ABAB), medians kept.
- ``bytes``: bytes the dashboard sends to the browser per redraw, per view, small and large layer.
- ``history``: history memory after 100 000 captures of a ResNet-18, and the steps still covered.
- ``browser``: a pointer to the browser tests, which measure frames per second.

Every measured pair runs in the same process, interleaved, so that the noise of a shared machine
falls on both sides. Ratios are ``nbweights / baseline``; the target column says what we aim for.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import nbweights as nbw  # noqa: E402
from nbweights.capture.groups import empty_summary  # noqa: E402
from nbweights.history import History  # noqa: E402
from nbweights.capture.pictures import PictureLimits, picture_of  # noqa: E402

SECTIONS = ("capture", "fixed", "every1", "loggers", "training", "bytes", "history", "browser")
BINS = 64


# ----- the table ------------------------------------------------------------------------------
@dataclass
class Row:
    section: str
    case: str
    measured: str
    baseline: str
    ratio: float
    target: str = ""

    @property
    def met(self) -> str:
        if not self.target.startswith("<="):
            return ""
        if self.target.endswith(" ms"):  # an absolute target: on the measured time itself
            return "yes" if float(self.measured.split()[0]) <= float(self.target[2:-3]) else "NO"
        return "yes" if self.ratio <= float(self.target[2:].strip().rstrip("x")) else "NO"


class Table:
    """Rows and skip lines, printed as they come (a long run shows progress) and again at the end."""

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.notes: list[str] = []

    def add(self, section: str, case: str, measured: str, baseline: str, ratio: float,
            target: str = "") -> None:
        row = Row(section, case, measured, baseline, ratio, target)
        self.rows.append(row)
        print(f"  {section}: {case}: {measured} vs {baseline} = {ratio:.3g}x", flush=True)

    def skip(self, section: str, case: str, reason: str) -> None:
        self.notes.append(f"skip     {section:<9} {case}: {reason}")
        print(f"  {section}: skip {case}: {reason}", flush=True)

    def note(self, section: str, text: str) -> None:
        self.notes.append(f"note     {section:<9} {text}")
        print(f"  {section}: {text}", flush=True)

    def render(self) -> str:
        head = ("section", "case", "nbweights", "baseline", "ratio", "target", "met")
        cells = [head] + [(r.section, r.case, r.measured, r.baseline, f"{r.ratio:.3g}x", r.target, r.met)
                          for r in self.rows]
        widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(cell, widths)).rstrip() for cell in cells]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines + self.notes)


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (f"machine: {os.cpu_count()} CPUs ({model}), torch {torch.__version__} with "
            f"{torch.get_num_threads()} threads, Python {platform.python_version()}")


# ----- timing -----------------------------------------------------------------------------------
def interleaved(cases: dict[str, Callable[[], object]], repeats: int, warmup: int = 2
                ) -> dict[str, float]:
    """Median seconds of each case, run in turn (ABAB, then BABA) so noise hits all alike."""
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    order = list(cases)
    for r in range(repeats):
        for name in (order if r % 2 == 0 else order[::-1]):
            started = time.perf_counter()
            cases[name]()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


# ----- models -----------------------------------------------------------------------------------
def mlp(quick: bool) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    width = 64 if quick else 1024
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, width), nn.ReLU(), nn.Linear(width, width),
                          nn.ReLU(), nn.Linear(width, 10))
    return model, torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))


def cnn(quick: bool) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """The PyTorch MNIST example's network (about 1.2 M parameters; smaller in --quick)."""
    channels, hidden = (8, 16) if quick else (32, 128)
    model = nn.Sequential(
        nn.Conv2d(1, channels, 3), nn.ReLU(), nn.Conv2d(channels, 2 * channels, 3), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2 * channels * 12 * 12, hidden), nn.ReLU(),
        nn.Linear(hidden, 10))
    return model, torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,))


def resnet18(quick: bool) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    import torchvision
    return torchvision.models.resnet18(), torch.randn(8, 3, 64, 64), torch.randint(0, 1000, (8,))


def vit_b_16(quick: bool) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    import torchvision
    return torchvision.models.vit_b_16(), torch.randn(1, 3, 224, 224), torch.randint(0, 1000, (1,))


def linear_classifier(quick: bool) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """Notebook 2: softmax regression 784 -> 10 on data of Fashion-MNIST's size (random here)."""
    count = 6000 if quick else 60000
    return nn.Linear(784, 10), torch.randn(count, 784), torch.randint(0, 10, (count,))


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, inputs: torch.Tensor,
               targets: torch.Tensor) -> None:
    optimizer.zero_grad()
    nn.functional.cross_entropy(model(inputs), targets).backward()
    optimizer.step()


def params_of(model: nn.Module) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.requires_grad]


def read_floor(params: list[torch.Tensor]) -> Callable[[], object]:
    """One reduction per parameter tensor and one host sync: what any snapshot must at least pay."""
    return lambda: torch.stack([p.detach().sum() for p in params]).cpu()


#: Where models and batches live (``--device``); the CPU unless asked otherwise.
DEVICE = torch.device("cpu")


def synchronize() -> None:
    """Wait for the device's queued work, so that wall-clock time covers it."""
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def trained_watcher(make, quick: bool):
    """A model that took two optimizer steps (so gradients exist) and a Watcher that never
    captures on its own (``every`` huge): snapshots below are the only captures."""
    torch.manual_seed(0)
    model, inputs, targets = make(quick)
    model, inputs, targets = model.to(DEVICE), inputs.to(DEVICE), targets.to(DEVICE)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    watcher = nbw.watch(model, optimizer, every=10**9, bins=BINS)
    for _ in range(2):
        train_step(model, optimizer, inputs, targets)
    return model, optimizer, inputs, targets, watcher


def capture_models(quick: bool):
    if quick:
        return [("MLP", mlp), ("CNN", cnn)]
    return [("MLP", mlp), ("CNN", cnn), ("ResNet-18", resnet18), ("ViT-B/16", vit_b_16)]


# ----- section 1: capture vs read floor ------------------------------------------------------
def bench_capture(table: Table, quick: bool) -> None:
    """A snapshot of the weights against one read of them; then weights and gradients against
    one read of both (what a capture in training reads)."""
    repeats = 5 if quick else 21
    for label, make in capture_models(quick):
        model, optimizer, inputs, targets, watcher = trained_watcher(make, quick)
        params = params_of(model)
        repeat = repeats if label != "ViT-B/16" else max(5, repeats // 3)
        numel = sum(p.numel() for p in params)
        case = f"{label} ({numel / 1e6:.2f} M params, {len(params)} tensors)"
        grads = [p.grad for p in params]
        model.zero_grad(set_to_none=True)
        times = interleaved({"floor": read_floor(params), "snapshot": watcher.snapshot}, repeats=repeat)
        table.add("capture", f"{case} weights snapshot()", ms(times["snapshot"]), f"floor {ms(times['floor'])}",
                  times["snapshot"] / times["floor"], "<= 5x" if label == "ResNet-18" else "")
        for param, grad in zip(params, grads):
            param.grad = grad
        times = interleaved({"floor": read_floor(params + grads), "snapshot": watcher.snapshot}, repeats=repeat)
        table.add("capture", f"{label} weights+grads snapshot()", ms(times["snapshot"]),
                  f"floor {ms(times['floor'])}", times["snapshot"] / times["floor"])
        watcher.close()
        del model, watcher, grads, params
        gc.collect()


# ----- section 1b: the fixed cost of a snapshot -------------------------------------------------
def aten_ops(action: Callable[[], object]) -> int:
    """Top-level torch operations ``action`` runs, counted by the PyTorch profiler."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        action()
    return sum(1 for event in profile.events()
               if event.name.startswith("aten::") and (event.cpu_parent is None
                                                        or not event.cpu_parent.name.startswith("aten::")))


def bench_fixed(table: Table, quick: bool) -> None:
    """Snapshots of many small tensors: the cost that does not grow with the data."""
    for count in (1, 10, 100) if quick else (1, 10, 100, 1000):
        torch.manual_seed(0)
        model = nn.ParameterList([nn.Parameter(torch.randn(16, device=DEVICE)) for _ in range(count)])
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
        watcher = nbw.watch(model, optimizer, every=10**9, bins=BINS)
        params = params_of(model)
        for param in params:
            param.grad = torch.randn_like(param)
        optimizer.step()  # step 1: snapshots from now on read weights and gradients
        grads = [p.grad for p in params]
        repeats = 5 if quick else (31 if count <= 100 else 11)
        times = interleaved({"floor": read_floor(params + grads), "snapshot": watcher.snapshot}, repeats=repeats)
        table.add("fixed", f"{count} tensors of 16 elements, weights+grads snapshot()", ms(times["snapshot"]),
                  f"floor {ms(times['floor'])}", times["snapshot"] / times["floor"],
                  "<= 0.3 ms" if count <= 10 else "")
        table.note("fixed", f"{count} tensors: {aten_ops(watcher.snapshot)} torch operations per snapshot "
                   f"(torch.profiler), {aten_ops(read_floor(params + grads))} in the floor")
        watcher.close()


# ----- section 1c: what every=1 adds to a training step --------------------------------------
def mlp_784_256_10(quick: bool) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    return model, torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))


def bench_every1(table: Table, quick: bool) -> None:
    """Training steps with ``every=1`` against the same steps of an identical bare model,
    interleaved; the difference is compared with one reduction per weight and gradient tensor
    (the floor of any snapshot)."""
    models = [("MLP 784-256-10", mlp_784_256_10)] + ([] if quick else [("ResNet-18", resnet18)])
    for label, make in models:
        pairs = []
        for _ in range(2):  # the same initial weights on both sides
            torch.manual_seed(0)
            model, inputs, targets = make(quick)
            model, inputs, targets = model.to(DEVICE), inputs.to(DEVICE), targets.to(DEVICE)
            pairs.append((model, torch.optim.SGD(model.parameters(), lr=1e-3)))
        (bare_model, bare_optimizer), (model, optimizer) = pairs
        watcher = nbw.watch(model, optimizer, every=1, bins=BINS)
        train_step(model, optimizer, inputs, targets)
        params = params_of(model)
        floor = read_floor(params + [p.grad for p in params])
        block = 10 if quick else (20 if label.startswith("MLP") else 3)

        def steps(model: nn.Module, optimizer: torch.optim.Optimizer) -> Callable[[], None]:
            def run() -> None:
                for _ in range(block):
                    train_step(model, optimizer, inputs, targets)
                synchronize()
            return run

        times = interleaved({"floor": floor, "bare": steps(bare_model, bare_optimizer),
                             "every=1": steps(model, optimizer)}, repeats=5 if quick else 15)
        watcher.close()
        added = (times["every=1"] - times["bare"]) / block
        table.add("every1", f"{label} every=1 added per step ({ms(times['bare'] / block)} step)", ms(added),
                  f"floor {ms(times['floor'])}", max(added, 1e-9) / times["floor"],
                  "<= 4x" if label == "ResNet-18" else "")
        del pairs, bare_model, model, watcher
        gc.collect()


# ----- section 2: other loggers ----------------------------------------------------------------
def bench_loggers(table: Table, quick: bool) -> None:
    label, make = ("CNN", cnn) if quick else ("ResNet-18", resnet18)
    repeats = 3 if quick else 9
    model, optimizer, inputs, targets, watcher = trained_watcher(make, quick)
    params = params_of(model)
    tensors = params + [p.grad for p in params if p.grad is not None]
    floor = read_floor(params)

    def histc() -> object:
        return torch.stack([torch.histc(t.detach(), BINS) for t in tensors]).cpu()

    def numpy_histogram() -> object:
        return [np.histogram(t.detach().cpu().numpy(), BINS) for t in tensors]

    cases: dict[str, Callable[[], object]] = {"floor": floor, "snapshot": watcher.snapshot,
                                              "histc": histc, "np.histogram": numpy_histogram}
    writer = None
    try:
        from torch.utils.tensorboard import SummaryWriter
        logdir = tempfile.mkdtemp(prefix="nbw-bench-tb-")
        writer = SummaryWriter(logdir)
        names = [n for n, p in model.named_parameters() if p.requires_grad]
        step = [0]

        def tensorboard() -> None:
            step[0] += 1
            for name, p in zip(names, params):
                writer.add_histogram(name, p.detach(), step[0], bins=BINS)
                if p.grad is not None:
                    writer.add_histogram(name + ".grad", p.grad, step[0], bins=BINS)
            writer.flush()
        cases["tensorboard"] = tensorboard
    except Exception as error:  # ImportError, or tensorboard present but broken
        table.skip("loggers", "TensorBoard add_histogram", f"{type(error).__name__}: {error}")
    times = interleaved(cases, repeats)
    base = f"floor {ms(times['floor'])}"
    table.add("loggers", f"{label} nbweights snapshot() (weights+grads)", ms(times["snapshot"]), base,
              times["snapshot"] / times["floor"])
    table.add("loggers", f"{label} torch.histc per weight+grad", ms(times["histc"]), base,
              times["histc"] / times["floor"])
    table.add("loggers", f"{label} np.histogram per weight+grad", ms(times["np.histogram"]), base,
              times["np.histogram"] / times["floor"])
    if writer is not None:
        table.add("loggers", f"{label} TensorBoard add_histogram weights+grads", ms(times["tensorboard"]),
                  base, times["tensorboard"] / times["floor"])
        writer.close()
    watcher.close()
    bench_wandb(table, quick, label, make, times["floor"])


def bench_wandb(table: Table, quick: bool, label: str, make, floor_seconds: float) -> None:
    if quick:
        table.skip("loggers", "wandb.watch(log='all', log_freq=1)", "not in --quick (its start-up takes seconds)")
        return
    try:
        os.environ.setdefault("WANDB_SILENT", "true")
        os.environ["WANDB_MODE"] = "offline"
        import wandb
    except Exception as error:
        table.skip("loggers", "wandb.watch(log='all', log_freq=1)", f"{type(error).__name__}: {error}")
        return
    torch.manual_seed(0)
    model, inputs, targets = make(quick)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    bare_model, _, _ = make(quick)
    bare_model.load_state_dict(model.state_dict())
    bare_optimizer = torch.optim.SGD(bare_model.parameters(), lr=1e-3)
    run = wandb.init(mode="offline", dir=tempfile.mkdtemp(prefix="nbw-bench-wandb-"),
                     project="nbweights-bench", settings=wandb.Settings(silent=True))
    try:
        wandb.watch(model, log="all", log_freq=1)

        def watched() -> None:
            train_step(model, optimizer, inputs, targets)
            wandb.log({"step": 1.0})

        times = interleaved({"bare": lambda: train_step(bare_model, bare_optimizer, inputs, targets),
                             "wandb": watched}, repeats=4 if quick else 9)
    finally:
        run.finish()
    added = times["wandb"] - times["bare"]
    table.add("loggers", f"{label} wandb.watch(log='all', log_freq=1) added per step "
              f"({ms(times['bare'])} step)", ms(added), f"floor {ms(floor_seconds)}",
              max(added, 1e-9) / floor_seconds)


# ----- section 3: training overhead ------------------------------------------------------------
class RecordingComm:
    """Stands in for a kernel comm (as ipywidgets' own tests do): keeps the size of each message."""

    kernel = "present"  # ipywidgets sends only through a comm that has a kernel
    sizes: list[tuple["RecordingComm", int]] = []
    recording = False

    def __init__(self, *args, **kwargs) -> None:
        self.comm_id = f"bench-{id(self):x}"

    def open(self, *args, **kwargs) -> None:
        pass

    def on_msg(self, *args, **kwargs) -> None:
        pass

    def close(self, *args, **kwargs) -> None:
        pass

    def send(self, data=None, metadata=None, buffers=None, **kwargs) -> None:
        size = len(json.dumps(data, default=str).encode())
        size += sum(memoryview(b).nbytes for b in buffers or ())
        if RecordingComm.recording:
            RecordingComm.sizes.append((self, size))


@contextlib.contextmanager
def headless_widgets():
    """Widgets built inside talk to a :class:`RecordingComm` instead of a kernel."""
    import comm
    original = comm.create_comm
    comm.create_comm = lambda **kwargs: RecordingComm(**kwargs)
    try:
        yield
    finally:
        comm.create_comm = original


def dashboard_problem() -> str | None:
    """Why the dashboard cannot be benchmarked, or None when it can."""
    try:
        import nbweights.ui.dashboard  # noqa: F401
    except Exception as error:
        return f"nbweights.ui.dashboard not importable yet ({type(error).__name__}: {error})"
    return None


@contextlib.contextmanager
def watched_copies(copies: dict, configs: dict):
    """Watch each copy of a model as its setting says: ``(options, dashboard)``, options None for
    the bare copy; dashboard False, True (headless: it redraws inside the capture) or "thread"
    (redraws on its own thread, as in a kernel). Yields the watchers; closes everything after."""
    watchers, dashboards = {}, []
    try:
        for name, (options, dashboard) in configs.items():
            if options is None:
                continue
            watchers[name] = nbw.watch(*copies[name], **options)
            if dashboard == "thread":
                from nbweights.ui.dashboard import Dashboard
                dashboards.append(Dashboard(watchers[name], threaded=True))
            elif dashboard:
                watchers[name].dashboard  # built and listening
        yield watchers
    finally:
        for closing in [*dashboards, *watchers.values()]:
            closing.close()


def bench_training(table: Table, quick: bool) -> None:
    """Training steps of identical copies of a model, one bare and one per setting, in blocks
    taken in turn (the order rotating each round); each round gives a watched block's time over
    the bare block's of that round, and the median of those ratios is reported. Blocks of the
    same round see the same machine, so slow moments fall on both sides of each ratio."""
    rounds = 3 if quick else 15
    window = 0.1 if quick else 0.6
    models = [("MLP", mlp), ("CNN", cnn)] + ([] if quick else [("ResNet-18", resnet18)])
    no_dashboard = dashboard_problem()
    if no_dashboard:
        table.skip("training", "overhead with the dashboard displayed", no_dashboard)
    configs: dict[str, tuple[dict | None, bool | str]] = {
        "bare": (None, False), "auto": ({}, False), "every=1": ({"every": 1}, False)}
    if not no_dashboard:
        # Headless, the dashboard redraws inside the capture (pacing counts it); in a kernel it
        # redraws on its own thread, which shares the GIL with training: both are measured.
        configs["auto+dashboard"] = ({}, True)
        configs["auto+dashboard thread"] = ({}, "thread")
    for label, make in models:
        copies = {}
        for name in configs:
            torch.manual_seed(0)
            model, inputs, targets = make(quick)
            model, inputs, targets = model.to(DEVICE), inputs.to(DEVICE), targets.to(DEVICE)
            copies[name] = (model, torch.optim.SGD(model.parameters(), lr=1e-3))
        with headless_widgets(), watched_copies(copies, configs) as watchers:
            step_seconds = _block(*copies["bare"], inputs, targets, 3)
            steps = max(8 if quick else 20, int(window / step_seconds))
            for name in configs:  # every="auto" settles to its pace
                _block(*copies[name], inputs, targets, max(5, steps // 2))
            times: dict[str, list[float]] = {name: [] for name in configs}
            for r in range(rounds):
                names = list(configs)
                for name in names[r % len(names):] + names[:r % len(names)]:
                    if name in watchers:
                        watchers[name].pacer.resume()  # the other copies' blocks are not its steps
                    times[name].append(_block(*copies[name], inputs, targets, steps))
        bare = statistics.median(times["bare"])
        for name in watchers:
            ratio = statistics.median(t / b for t, b in zip(times[name], times["bare"]))
            target = "<= 1.03x" if name.startswith("auto") else ""
            table.add("training", f"{label} step, {name if name.startswith('every') else 'every=' + name} "
                      f"({rounds} rounds of {steps} steps)", ms(statistics.median(times[name])),
                      f"bare {ms(bare)}", ratio, target)
    bench_linear_epoch(table, quick, no_dashboard)


def _block(model: nn.Module, optimizer: torch.optim.Optimizer, inputs: torch.Tensor, targets: torch.Tensor,
           steps: int) -> float:
    """Seconds per training step over ``steps`` steps."""
    synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        train_step(model, optimizer, inputs, targets)
    synchronize()
    return (time.perf_counter() - started) / steps


def bench_linear_epoch(table: Table, quick: bool, no_dashboard: str | None) -> None:
    """Notebook 2's epochs: one cell watches (and shows the dashboard), the next trains epochs,
    logging the loss at every step. Identical copies, one bare, one per setting, watched once
    and trained an epoch each in turn; medians over the epochs after each copy's first (the
    first also carries pacing's warm-up, when captures come every step)."""
    configs: dict[str, tuple[dict | None, bool | str]] = {"bare": (None, False), "auto": ({}, False)}
    if not no_dashboard:
        configs["auto+dashboard"] = ({}, True)
        configs["auto+dashboard thread"] = ({}, "thread")  # as in a kernel
    torch.manual_seed(0)
    model, images, labels = linear_classifier(quick)  # one data set (188 MB) for all copies
    copies = {}
    for name in configs:
        copy = deepcopy(model)
        copies[name] = (copy, torch.optim.SGD(copy.parameters(), lr=0.1))
    batch = 100

    def epoch(name: str, watcher) -> float:
        model, optimizer = copies[name]
        if watcher is not None:
            watcher.pacer.resume()  # the other copies' epochs are not its steps
        started = time.perf_counter()
        for first in range(0, len(images), batch):
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(images[first:first + batch]), labels[first:first + batch])
            loss.backward()
            optimizer.step()
            if watcher is not None:
                watcher.log(loss=loss.item())
        return time.perf_counter() - started

    times: dict[str, list[float]] = {name: [] for name in configs}
    with headless_widgets(), watched_copies(copies, configs) as watchers:
        for r in range(3 if quick else 8):
            for name in (list(configs) if r % 2 == 0 else list(configs)[::-1]):
                times[name].append(epoch(name, watchers.get(name)))
    bare = statistics.median(times["bare"][1:])
    for name in watchers:
        value = statistics.median(times[name][1:])
        table.add("training", f"linear 784->10 epoch ({len(images)} images, batch 100), every={name}, "
                  f"epochs 2-{len(times[name])} (first {ms(times[name][0])})", ms(value), f"bare {ms(bare)}",
                  value / bare, "<= 1.1x" if name.startswith("auto+dashboard") or no_dashboard else "")


# ----- section 4: bytes per redraw -------------------------------------------------------------
def widget_tree(root) -> list:
    """Every widget reachable from ``root`` through traits that hold widgets."""
    import ipywidgets
    seen, stack, found = set(), [root], []
    while stack:
        widget = stack.pop()
        if id(widget) in seen or not isinstance(widget, ipywidgets.Widget):
            continue
        seen.add(id(widget))
        found.append(widget)
        for name in widget.keys:
            value = getattr(widget, name, None)
            stack.extend(value if isinstance(value, (list, tuple)) else [value])
    return found


def views_of(board) -> list[tuple[str, object]]:
    """``(view name, view)`` of every view the dashboard holds (panels, metrics, layer table)."""
    found = []
    for panel in getattr(board, "panels", []):
        for view in [*getattr(panel, "curves", []), *getattr(panel, "pictures", [])]:
            found.append((f"{panel.name}:{type(view).__name__}", view))
    for attribute in ("metrics", "table"):
        view = getattr(board, attribute, None)
        if view is not None and hasattr(view, "widget"):
            found.append((f":{type(view).__name__}", view))
    return found


def bench_bytes(table: Table, quick: bool) -> None:
    """Bytes of the comm messages of one ``Dashboard.redraw()`` after a capture, by view."""
    problem = dashboard_problem()
    if problem:
        table.skip("bytes", "bytes per redraw per view", problem)
        return
    with headless_widgets():
        model, _, _, _, watcher = trained_watcher(cnn if quick else resnet18, quick)
        board = watcher.dashboard
        board.max_fps = 1e-9  # captures below do not redraw on their own: redraw() is called
        owner: dict[int, str] = {}
        for view_name, view in views_of(board):
            for widget in widget_tree(view.widget):
                owner[id(getattr(widget, "comm", None))] = view_name
        sizes = {name: p.numel() for name, p in model.named_parameters() if p.requires_grad}
        names = list(sizes)
        small, large = min(names, key=sizes.get), max(names, key=sizes.get)
        for kind, layer in (("small", small), ("large", large)):
            board.dropdown.index = names.index(layer)  # what selecting it in the browser does
            totals, per_view = [], {}
            for _ in range(3 if quick else 8):  # several redraws: the round-robin parts vary
                watcher.snapshot()
                RecordingComm.sizes.clear()
                RecordingComm.recording = True
                board.redraw()
                RecordingComm.recording = False
                totals.append(sum(size for _, size in RecordingComm.sizes))
                for comm, size in RecordingComm.sizes:
                    view_name = owner.get(id(comm), "controls")
                    view_name = view_name.split(":", 1)[1] if view_name.startswith(f"{layer}:") or \
                        view_name.startswith(":") else ("other panels" if view_name != "controls" else view_name)
                    per_view.setdefault(view_name, []).append(size)
            redraws = len(totals)
            for view_name, view_sizes in sorted(per_view.items()):
                per_redraw = sum(view_sizes) / redraws
                table.add("bytes", f"{kind} layer {layer} ({sizes[layer]} el.): {view_name}",
                          f"{per_redraw / 1024:.1f} KB", "64 KB", max(per_redraw, 1) / 65536)
            table.add("bytes", f"{kind} layer {layer}: whole redraw, largest of {redraws}",
                      f"{max(totals) / 1024:.1f} KB", "64 KB", max(max(totals), 1) / 65536, "<= 1x")
        board.close()
        watcher.close()


# ----- section 5: history memory ---------------------------------------------------------------
def bench_history(table: Table, quick: bool) -> None:
    import torchvision
    steps = 600 if quick else 100_000
    max_bytes = 4 * 2**20 if quick else History().max_bytes
    model = torchvision.models.resnet18()
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    history = History(max_bytes=max_bytes, bins=BINS)
    history.declare("weight", [n for n, _ in named], [tuple(p.shape) for _, p in named])
    history.declare("grad", [n for n, _ in named], [tuple(p.shape) for _, p in named])
    # What a capture with default settings records: two summaries and one picture per tensor.
    rng = np.random.default_rng(0)
    summary = empty_summary(len(named), BINS)
    summary.fields[:] = rng.random(summary.fields.shape)
    summary.counts[:] = rng.integers(0, 100, summary.counts.shape)
    pictures = []
    for name, param in named:
        found = picture_of(param, PictureLimits())
        if found is not None:
            pictures.append((name, found[0], found[1].numpy()))
    peak, started = 0, time.perf_counter()
    for step in range(1, steps + 1):
        history.record("weight", step, summary)
        history.record("grad", step, summary)
        for name, kind, data in pictures:
            history.record_picture(name, step, kind, data)
        peak = max(peak, history.nbytes)
    # History keeps a running total; check it against what its stores really hold.
    stored = sum(t.nbytes for t in history._timelines())
    if stored != history.nbytes:
        table.note("history", f"History.nbytes says {history.nbytes} bytes, its stores hold {stored}")
    held = history.nbytes
    covered = history.steps(named[0][0])
    pictured = history.picture_steps(named[0][0])
    table.add("history", f"ResNet-18 {steps} captures (bound {max_bytes / 2**20:.0f} MB): "
              f"summaries cover steps {covered[0]}..{covered[-1]} in {len(covered)} rows, "
              f"pictures {pictured[0]}..{pictured[-1]} in {len(pictured)}",
              f"{held / 2**20:.1f} MB", f"bound {max_bytes / 2**20:.0f} MB", held / max_bytes, "<= 1x")
    if covered[0] != 1 or covered[-1] != steps:
        table.note("history", f"NOT covered: first step {covered[0]}, last {covered[-1]}")
    table.note("history", f"peak {peak / 2**20:.1f} MB; {(time.perf_counter() - started) / steps * 1e6:.0f} us "
               f"to record one step")


def bench_browser(table: Table, quick: bool) -> None:
    table.note("browser", "frames per second of the live plots are measured by the browser tests "
               "(tests/browser/, another engineer), not here")


# ----- main -------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="tiny models and few repeats (under 30 s): checks the script, not speed")
    parser.add_argument("--only", action="append", choices=SECTIONS, metavar="SECTION",
                        help=f"run only this section (repeatable): {', '.join(SECTIONS)}")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1: on a shared 2-core machine a second "
                             "thread waits on a busy core, which turns noise into 10x outliers; "
                             "both sides of every ratio run with the same setting)")
    parser.add_argument("--device", default="cpu",
                        help="device of the models in the capture, loggers and training sections (e.g. cuda)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    global DEVICE
    DEVICE = torch.device(args.device)
    warnings.filterwarnings("ignore")
    logging.getLogger("nbweights").setLevel(logging.ERROR)
    table = Table()
    started = time.perf_counter()
    print(machine(), flush=True)
    benches = {"capture": bench_capture, "fixed": bench_fixed, "every1": bench_every1,
               "loggers": bench_loggers, "training": bench_training,
               "bytes": bench_bytes, "history": bench_history, "browser": bench_browser}
    for section in args.only or SECTIONS:
        print(f"[{section}]", flush=True)
        with torch.no_grad() if section == "history" else contextlib.nullcontext():
            benches[section](table, args.quick)
    print()
    print(f"nbweights benchmarks{' (--quick: tiny models, not for reading speed)' if args.quick else ''}; "
          f"{time.perf_counter() - started:.0f} s")
    print(machine())
    print(table.render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
