"""Watching a model trained by several processes (torchrun: DDP, FSDP2) with exact summaries.

Each watched tensor has a *layout* (:mod:`.layouts`): which part of it this rank holds. A plain
parameter (DDP, replicated on every rank) is summarised by one rank, the ranks sharing them out
by size; an FSDP2 parameter is a DTensor, and each rank summarises its local shard. The parts
are merged with two collectives per capture, never by gathering a tensor:

1. one all-reduce MAX of ``[-min, max]`` of every tensor: the global range, from which the
   histogram edges are quantised exactly as one process does (``summaries._quantized_range``);
2. one all-reduce SUM (float64) of the counts, sums, sums of squares, NaN/Inf counts and
   histogram counts, binned over those shared edges.

So with ``sample_size=None`` a merged summary equals the one-process summary of the whole tensor
(histogram counts exactly). With sampling, each rank samples its shard in proportion to its
size, so the sample stays uniform over the whole tensor. Pictures of sharded tensors are
assembled on rank 0 from bounded pieces (see :mod:`.shardpictures`). Every rank calls the same
collectives in the same order on every capture; a local failure still takes part in them
(with empty values), so that it cannot deadlock training.
"""
from __future__ import annotations

import logging
import math
import os
import weakref
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from .groups import Captured, ParameterGroup
from .pacing import Pacer
from .layouts import is_sharded, layout_of, local_part, spread
from .pictures import PictureLimits, picture_of
from .shardpictures import assemble, picture_plan
from .shardsummaries import (SUMMED, agreed_ranges, empty_moments, local_counts, local_moments, merged, quota,
                             take_samples)
from ..summaries import sample_indices

log = logging.getLogger("nbweights")


def world() -> tuple[int, int] | None:
    """``(rank, world_size)`` when torch.distributed is initialised with more than one process."""
    import torch.distributed as dist
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    return dist.get_rank(), dist.get_world_size()


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper (its names lack the "module." prefix)."""
    from torch.nn.parallel import DistributedDataParallel
    return model.module if isinstance(model, DistributedDataParallel) else model


class AgreedPacer(Pacer):
    """A :class:`Pacer` whose ``every="auto"`` decisions rank 0 makes and broadcasts.

    Each capture ends with one tiny broadcast of the next capture step, so every rank enters the
    next capture (and its collectives) at the same step. A fixed ``every=`` needs none.
    """

    def done(self, step: int, started: float) -> None:
        super().done(step, started)
        if self.every == "auto":
            import torch.distributed as dist
            agreed = torch.tensor([self.next_step], dtype=torch.int64, device=_buffer_device())
            dist.broadcast(agreed, src=0)
            self.next_step = int(agreed[0])


def _buffer_device() -> torch.device:
    """Where collective buffers live: the current CUDA device for NCCL, else the CPU."""
    import torch.distributed as dist
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


class DistributedGroup:
    """All watched parameters of one rank, summarised exactly across ranks at each capture.

    Has the interface of :class:`~nbweights.capture.groups.ParameterGroup` that the Watcher uses.
    ``bytes_moved`` is what this rank sent into collectives at the last capture.
    """

    def __init__(self, named: Sequence[tuple[str, nn.Parameter]], bins: int, sample_size: int | None,
                 limits: PictureLimits):
        import torch.distributed as dist
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.rows = list(range(len(named)))
        self.bins, self.limits = bins, limits
        self.names = [name for name, _ in named]
        self.shapes = [tuple(p.shape) for _, p in named]
        self.numels = [math.prod(shape) for shape in self.shapes]
        self._refs = [weakref.ref(p) for _, p in named]
        owners = spread([p.numel() for _, p in named], self.world_size)
        self.layouts = [layout_of(p, self.rank, owner) for (_, p), owner in zip(named, owners)]
        self.device = _buffer_device()
        held = torch.tensor([math.prod(l.shape) if l.contributes else 0 for l in self.layouts],
                            dtype=torch.int64, device=self.device)
        every_rank = [torch.zeros_like(held) for _ in range(self.world_size)]
        dist.all_gather(every_rank, held)  # once, at watch(): who holds how much of each tensor
        held_by = torch.stack(every_rank).cpu().numpy()
        self.quotas = [quota(held_by[:, i], self.rank, sample_size) for i in range(len(named))]
        # Each rank's own seed: the shards' samples are drawn independently.
        self._indices = [None if share is None else
                         sample_indices(int(held_by[self.rank, i]), share, i * 7919 + self.rank)
                         for i, share in enumerate(self.quotas)]
        #: Tensors that rank 0 holds whole (replicas, or DTensors it holds all of) draw their
        #: pictures locally; the rest are assembled from pieces.
        self.whole_on_rank0 = [not is_sharded(p) or bool(held_by[0, i] == self.numels[i])
                               for i, (_, p) in enumerate(named)]
        self.picture_plans = [None if self.whole_on_rank0[i] else
                              picture_plan(self.shapes[i], limits, named[i][1].is_floating_point())
                              for i in range(len(named))]
        self._weight_ranges = torch.zeros(len(named))
        self._grad_ranges = torch.zeros(len(named))
        self._before: list[torch.Tensor | None] | None = None
        self.bytes_moved = 0

    # ----- the ParameterGroup interface -----------------------------------------------------
    def tensors(self) -> list[nn.Parameter] | None:
        params = [ref() for ref in self._refs]
        return None if any(p is None for p in params) else params

    def remember_before_step(self, stepped: set[int] | None = None) -> None:
        params = self.tensors()
        if params is not None:
            self._before = take_samples([self._held(p, i) for i, p in enumerate(params)], self._indices, copy=True)

    def watch_gradients(self, hook: Any = None) -> list[Any]:
        return []  # gradients are read at the capture: pass the optimizer to watch() under torchrun

    def arm_gradients(self) -> None:
        pass

    def capture(self, with_grads: bool) -> Captured | None:
        """Merged summaries of weights (and gradients), and rank 0's pictures; None if collected."""
        params = self.tensors()
        if params is None:  # every rank's model goes together: no rank enters the collectives
            return None
        self.bytes_moved = 0
        count = len(params)
        weights = [self._held(p, i) for i, p in enumerate(params)]
        sets = [(weights, self._weight_ranges, self._before)]
        if with_grads:
            sets.append(([self._held(p.grad, i) for i, p in enumerate(params)], self._grad_ranges, None))
        self._before = None
        # Round 1: one MAX of [-min, max] of every weight and gradient: the global extremes.
        moments = [self._guarded(local_moments, empty_moments(count), flats) for flats, _, _ in sets]
        packed = torch.cat([torch.stack([-m[:, 0], m[:, 1]], 1).reshape(-1) for m in moments])
        extremes = self._all_reduce(packed.to(self.device), "max").cpu().view(len(sets), count, 2)
        # Round 2: one SUM of the counts, sums and histograms binned over the agreed ranges.
        shares, agreed = [], []
        for index, (flats, previous, before) in enumerate(sets):
            low, high = -extremes[index, :, 0], extremes[index, :, 1]
            ranges = agreed_ranges(low, high, previous)
            previous.copy_(ranges)
            agreed.append((low, high, ranges))
            empty = torch.zeros(count, len(SUMMED) + self.bins, dtype=torch.float64)
            shares.append(self._guarded(
                lambda: local_counts([f is not None for f in flats], take_samples(flats, self._indices), ranges,
                                     moments[index], self.bins, before), empty).reshape(-1).to(self.device))
        summed = self._all_reduce(torch.cat(shares), "sum").cpu().view(len(sets), count, -1).numpy()
        summaries = [merged(self.numels, low, high, ranges, summed[i], sets[i][2] is not None)
                     for i, (low, high, ranges) in enumerate(agreed)]
        pictures = self._pictures(params)
        return summaries[0], summaries[1] if with_grads else None, pictures

    # ----- one capture's parts ------------------------------------------------------------
    def _held(self, tensor: torch.Tensor | None, row: int) -> torch.Tensor | None:
        """This rank's flat block of a weight or gradient; None where another rank summarises it."""
        if tensor is None or not self.layouts[row].contributes:
            return None
        return local_part(tensor).detach().reshape(-1)

    def _pictures(self, params: list[nn.Parameter]) -> list[tuple[int, str, np.ndarray]]:
        """Rank 0's pictures: its own for tensors it holds whole, pieces reduced for the rest."""
        import torch.distributed as dist
        pictures: list[tuple[int, str, np.ndarray]] = []
        if self.rank == 0:
            for i, p in enumerate(params):
                if self.whole_on_rank0[i]:
                    found = picture_of(local_part(p), self.limits)
                    if found is not None:
                        pictures.append((i, found[0], found[1].cpu().numpy()))
        planned = [(i, plan) for i, plan in enumerate(self.picture_plans) if plan is not None]
        if not planned:
            return pictures
        pieces = self._guarded(lambda: [assemble(plan, local_part(params[i]).detach(), self.layouts[i])
                                        for i, plan in planned],
                               [torch.zeros(plan.out_shape) for _, plan in planned])
        buffer = torch.cat([piece.reshape(-1).float().cpu() for piece in pieces]).to(self.device)
        dist.reduce(buffer, dst=0)
        self.bytes_moved += buffer.numel() * buffer.element_size()
        if self.rank == 0:
            host, offset = buffer.cpu().numpy(), 0
            for i, plan in planned:
                size = math.prod(plan.out_shape)
                pictures.append((i, plan.kind, host[offset:offset + size].reshape(plan.out_shape)))
                offset += size
        return pictures

    def _all_reduce(self, buffer: torch.Tensor, how: str) -> torch.Tensor:
        import torch.distributed as dist
        dist.all_reduce(buffer, op=dist.ReduceOp.MAX if how == "max" else dist.ReduceOp.SUM)
        self.bytes_moved += buffer.numel() * buffer.element_size()
        return buffer

    def _guarded(self, work: Any, empty: Any, *args: Any) -> Any:
        """``work(*args)``, or its ``empty`` share if it fails: the rank still takes part in the
        collectives that follow, so a local failure never deadlocks the others."""
        try:
            return work(*args)
        except Exception:
            log.exception("nbweights: the local part of a distributed capture failed on rank %d", self.rank)
            return empty


def groups(named: Sequence[tuple[str, nn.Parameter]], bins: int, sample_size: int | None,
           limits: PictureLimits, rows: Sequence[int] | None = None) -> list[Any]:
    """The parameter groups of this process: one :class:`DistributedGroup` under torch.distributed
    with several processes (built once, from every watched parameter), else one
    :class:`~.groups.ParameterGroup` per device and dtype; ``rows[i]`` is the row of ``named[i]``."""
    if world() is None:
        return ParameterGroup.split(named, bins, sample_size, limits, rows)
    return [DistributedGroup(named, bins, sample_size, limits)] if named else []


def attach(watcher: Any, run_dir: str | os.PathLike | None) -> None:
    """Wire a new Watcher to torch.distributed and to its run directory.

    Sets ``watcher.distributed`` (``(rank, world_size)`` or None); under torch.distributed,
    refuses options that would let ranks diverge and makes the pacer agree on capture steps.
    Rank 0 (or the single process) appends every record to ``run_dir`` (``watcher.run``), which
    the watcher's ``close()`` closes with its hooks.
    """
    if run_dir is not None and not isinstance(run_dir, (str, os.PathLike)):
        raise TypeError(f"run_dir= expected a path (str or os.PathLike), got {type(run_dir).__name__}")
    watcher.distributed = where = world()
    if where is not None:
        if watcher.stop_on_nonfinite:
            raise ValueError("stop_on_nonfinite=True is not supported under torch.distributed "
                             "(ranks would stop at different steps); read w.health() instead")
        watcher.pacer = AgreedPacer(watcher.pacer.every, watcher.pacer.budget)
    watcher.run = None
    if run_dir is not None and (where is None or where[0] == 0):
        from ..history.rundir import RunWriter
        watcher.run = RunWriter(run_dir, watcher.history, world_size=where[1] if where else 1)
        watcher.add_listener(watcher.run.flush)
        watcher._handles.append(watcher.run)
