"""Per-snapshot cost under torchrun (2 processes, gloo, CPU): DDP and FSDP2 against one process.

    python benchmarks/distributed.py            # an MLP of 4.2 M parameters, 20 snapshots each
    python benchmarks/distributed.py --quick    # a small one, 5 snapshots (checks it all runs)

For each layout it prints the median time of one ``Watcher.snapshot()`` (weights, gradients,
pictures, the merge's collectives and the run directory's frame on rank 0) on each rank, the
ratio to one process snapshotting the same model (also one thread, as torchrun gives each
worker), and the bytes each rank puts into collectives per snapshot, beside the bytes that
gathering every parameter once would move. One invocation measures every row: the one-process
cost is taken before and after the torchrun jobs, and the median of both is the baseline.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import nbweights as nbw  # noqa: E402


def build_model(quick: bool) -> nn.Sequential:
    torch.manual_seed(0)
    width = 128 if quick else 1024
    layers: list[nn.Module] = []
    for _ in range(4):
        layers += [nn.Linear(width, width), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(width, 10))


def train_once(model: nn.Module, optimizer: torch.optim.Optimizer, width: int) -> None:
    """One step, so that gradients exist to be summarised."""
    loss = model(torch.randn(16, width)).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def time_snapshots(watcher: nbw.Watcher, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        watcher.snapshot()
        times.append(time.perf_counter() - started)
    return times


def single_process(quick: bool, repeats: int, sample_size: int | None) -> float:
    torch.set_num_threads(1)
    model = build_model(quick)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with tempfile.TemporaryDirectory() as run_dir:
        watcher = nbw.watch(model, optimizer, every=10**6, sample_size=sample_size, run_dir=run_dir)
        train_once(model, optimizer, model[0].in_features)
        time_snapshots(watcher, 2)  # warm-up
        seconds = statistics.median(time_snapshots(watcher, repeats))
        watcher.close()
    return seconds


def worker(mode: str, quick: bool, repeats: int, sample_size: int | None, out: str) -> None:
    """One torchrun rank: snapshot the wrapped model ``repeats`` times, write its figures."""
    import torch.distributed as dist
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    model = build_model(quick)
    if mode == "ddp":
        from torch.nn.parallel import DistributedDataParallel
        trained = DistributedDataParallel(model)
    else:
        from torch.distributed.fsdp import fully_shard
        for layer in model:
            if isinstance(layer, nn.Linear):
                fully_shard(layer)
        trained = fully_shard(model)
    optimizer = torch.optim.SGD(trained.parameters(), lr=0.01)
    run_dir = tempfile.mkdtemp()
    watcher = nbw.watch(trained, optimizer, every=10**6, sample_size=sample_size, run_dir=run_dir)
    train_once(trained, optimizer, model[0].in_features)
    time_snapshots(watcher, 2)
    times = time_snapshots(watcher, repeats)
    group = watcher._groups[0]
    full_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    with open(f"{out}.{rank}", "w") as file:
        json.dump({"seconds": statistics.median(times), "bytes": group.bytes_moved, "gather_bytes": full_bytes}, file)
    watcher.close()
    dist.destroy_process_group()


def distributed(mode: str, quick: bool, repeats: int, sample_size: int | None) -> list[dict]:
    out = tempfile.mktemp()
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", __file__,
               "--worker", mode, "--repeats", str(repeats), "--out", out,
               "--sample-size", "none" if sample_size is None else str(sample_size)] + (["--quick"] if quick else [])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"torchrun {mode} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    results = []
    for rank in (0, 1):
        with open(f"{out}.{rank}") as file:
            results.append(json.load(file))
        os.remove(f"{out}.{rank}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--worker", choices=("ddp", "fsdp"))
    parser.add_argument("--out")
    parser.add_argument("--sample-size", default=None)
    args = parser.parse_args()
    repeats = args.repeats or (5 if args.quick else 20)
    if args.worker:
        sample_size = None if args.sample_size == "none" else int(args.sample_size)
        worker(args.worker, args.quick, repeats, sample_size, args.out)
        return
    model = build_model(args.quick)
    print(f"model: MLP, {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters in "
          f"{len(list(model.parameters()))} tensors; 2 processes, gloo, {os.cpu_count()} CPUs; "
          f"median of {repeats} snapshots", flush=True)
    head = f"{'layout':<8} {'sample':>7} {'rank':>4} {'per snapshot':>13} {'1 process':>10} {'ratio':>6} " \
           f"{'collective bytes':>17} {'gather would move':>18}"
    lines = [head, "-" * len(head)]
    for sample_size in (4096, None):
        before = single_process(args.quick, repeats, sample_size)
        runs = {mode: distributed(mode, args.quick, repeats, sample_size) for mode in ("ddp", "fsdp")}
        after = single_process(args.quick, repeats, sample_size)
        baseline = statistics.median([before, after])
        label = "all" if sample_size is None else str(sample_size)
        lines.append(f"{'1 proc':<8} {label:>7} {'-':>4} {baseline * 1e3:>10.2f} ms {'':>10} {'':>6}")
        for mode, results in runs.items():
            for rank, result in enumerate(results):
                lines.append(f"{mode:<8} {label:>7} {rank:>4} {result['seconds'] * 1e3:>10.2f} ms "
                             f"{baseline * 1e3:>7.2f} ms {result['seconds'] / baseline:>5.2f}x "
                             f"{result['bytes']:>17,} {result['gather_bytes']:>18,}")
        print("\n".join(lines[-5:]), flush=True)
    print("\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
