"""A tiny model trained under torchrun (gloo, CPU) with DDP or FSDP2, watched into a run directory.

Run: ``python -m torch.distributed.run --standalone --nproc_per_node=2 train.py --mode fsdp
--run-dir DIR``. With ``--reference FILE``, rank 0 also saves one-process summaries of the
gathered weights and gradients at every captured step (the test's reference: only here is a
tensor gathered). ``--kill-at N`` makes rank ``--kill-rank`` (0, the writer, by default) SIGKILL
itself after step N.
"""
from __future__ import annotations

import argparse
import os
import signal
import time

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

import nbweights as nbw
from nbweights.capture.pictures import PictureLimits, picture_of
from nbweights.summaries import SummaryPlan, finish, summarize


def build_model() -> nn.Sequential:
    """Shapes that test the merge: a conv with kept filters, a matrix drawn as block means whose
    161 rows split 81/80 across a block, uneven small layers, and a 1-row weight (an empty shard)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 200, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                         nn.Linear(800, 161), nn.ReLU(), nn.Linear(161, 5), nn.Tanh(), nn.Linear(5, 1))


def full(tensor: torch.Tensor) -> torch.Tensor:
    """The whole tensor (a DTensor is gathered: the reference's job, never nbweights')."""
    return tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor


class Reference:
    """One-process summaries of the whole tensors at each captured step, as ParameterGroup makes them."""

    def __init__(self, numels: list[int], bins: int):
        self.plan = SummaryPlan(numels, None, torch.device("cpu"))
        self.bins = bins
        self.ranges = {"weight": torch.zeros(len(numels)), "grad": torch.zeros(len(numels))}
        self.rows: dict[str, list] = {"weight": [], "grad": []}
        self.steps: dict[str, list] = {"weight": [], "grad": []}
        self.pictures: dict[str, np.ndarray] = {}

    def add(self, group: str, step: int, tensors: list[torch.Tensor]) -> None:
        packed = summarize(self.plan, tensors, self.ranges[group], self.bins)
        summary, self.ranges[group] = finish(self.plan, tensors, packed, packed.numpy(), self.bins)
        self.rows[group].append(summary)
        self.steps[group].append(step)

    def save(self, path: str, names: list[str]) -> None:
        arrays = {}
        for group, rows in self.rows.items():
            arrays[f"{group}/steps"] = np.array(self.steps[group])
            for part in ("fields", "counts", "ranges"):
                arrays[f"{group}/{part}"] = np.stack([getattr(s, part) for s in rows])
        for name, array in self.pictures.items():
            arrays[f"picture/{name}"] = array
        np.savez(path, names=np.array(names), **arrays)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("ddp", "fsdp"), required=True)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--every", default="2")
    parser.add_argument("--sample-size", default="none")
    parser.add_argument("--reference")
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--kill-at", type=int)
    parser.add_argument("--kill-rank", type=int, default=0)
    args = parser.parse_args()

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    model = build_model()
    if args.mode == "ddp":
        from torch.nn.parallel import DistributedDataParallel
        trained = DistributedDataParallel(model)
    else:
        from torch.distributed.fsdp import fully_shard
        for layer in model:
            if any(True for _ in layer.parameters()):
                fully_shard(layer)
        trained = fully_shard(model)
    optimizer = torch.optim.SGD(trained.parameters(), lr=0.05, momentum=0.9)
    every = "auto" if args.every == "auto" else int(args.every)
    sample_size = None if args.sample_size == "none" else int(args.sample_size)
    watcher = nbw.watch(trained, optimizer, every=every, sample_size=sample_size, run_dir=args.run_dir)

    params = [p for p in model.parameters()]
    reference = Reference([p.numel() for p in params], watcher.history.bins) if args.reference else None

    def add_reference(step: int) -> None:
        if reference is None or step not in set(watcher.history.steps(watcher.history.names[0]).tolist()):
            return
        weights = [full(p.detach()) for p in params]  # every rank takes part in the gathers
        grads = [full(p.grad) for p in params] if step > 0 else None
        if rank == 0:
            reference.add("weight", step, weights)
            if grads is not None:
                reference.add("grad", step, grads)
            limits = PictureLimits()
            for name, weight in zip(watcher.history.names, weights):
                found = picture_of(weight, limits)
                if found is not None:
                    reference.pictures[name] = found[1].numpy()

    add_reference(0)
    generator = torch.Generator().manual_seed(100 + rank)  # each rank its own batches
    for step in range(1, args.steps + 1):
        inputs = torch.randn(8, 3, 6, 6, generator=generator)
        loss = trained(inputs).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()  # nbweights captures here, on the steps all ranks agreed on
        watcher.log(loss=loss.item())
        add_reference(step)
        if args.kill_at is not None and rank == args.kill_rank and step == args.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        if args.sleep:
            time.sleep(args.sleep)
    steps = watcher.history.steps(watcher.history.names[0])
    np.save(os.path.join(args.run_dir, f"steps-rank{rank}.npy"), steps)
    watcher.close()
    if reference is not None and rank == 0:
        reference.save(args.reference, watcher.history.names)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
