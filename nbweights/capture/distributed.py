"""Watching a model trained by several processes (torchrun: DDP, FSDP2) with exact summaries.

Each watched tensor has a *layout*: which part of it this rank holds. A plain parameter (DDP,
replicated on every rank) is summarised by rank 0 alone; the others hold an empty part of it.
An FSDP2 parameter is a DTensor: each rank summarises its local shard. Shard summaries are
merged with two collectives per capture, never by gathering a tensor:

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
import weakref
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from .groups import Captured, empty_summary
from .pacing import Pacer
from .pictures import PictureLimits, picture_of
from .shardpictures import assemble, picture_plan
from ..summaries import FIELDS, Summary, _quantized_range, sample_indices

log = logging.getLogger("nbweights")

#: Per tensor, the SUM buffer holds these columns, then the histogram counts.
_SUMMED = ("present", "nonfinite", "sum", "sumsq", "sampled", "sample_zeros", "sample_sq", "delta_sq")


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


def _dtensor_class() -> type | None:
    try:
        from torch.distributed.tensor import DTensor
        return DTensor
    except ImportError:  # torch built without distributed tensors
        return None


@dataclass(frozen=True)
class Layout:
    """The part of one tensor this rank holds: global ``offset`` and ``shape`` of its block.

    ``contributes`` is False where another rank summarises this block (a replica).
    """

    contributes: bool
    offset: tuple[int, ...]
    shape: tuple[int, ...]


def layout_of(tensor: torch.Tensor, rank: int) -> Layout:
    """Which block of ``tensor`` this rank holds and whether it is the one to summarise."""
    dtensor = _dtensor_class()
    shape = tuple(tensor.shape)
    if dtensor is None or not isinstance(tensor, dtensor):
        return Layout(rank == 0, (0,) * len(shape), shape)
    from torch.distributed.tensor import Replicate, Shard
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset
    mesh, placements = tensor.device_mesh, tensor.placements
    coordinate = mesh.get_coordinate()
    if coordinate is None or not all(isinstance(p, (Replicate, Shard)) for p in placements):
        return Layout(False, (0,) * len(shape), (0,) * len(shape))  # not here, or Partial: see docs
    # Of the ranks holding the same block (a Replicate mesh dimension), the first summarises it.
    first = all(c == 0 for c, p in zip(coordinate, placements) if isinstance(p, Replicate))
    local_shape, offset = compute_local_shape_and_global_offset(shape, mesh, placements)
    return Layout(first, tuple(offset), tuple(local_shape))


def local_part(tensor: torch.Tensor | None) -> torch.Tensor | None:
    """The elements of ``tensor`` held by this process (a DTensor's local shard), never gathered."""
    if tensor is None:
        return None
    dtensor = _dtensor_class()
    return tensor.to_local() if dtensor is not None and isinstance(tensor, dtensor) else tensor


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
        self.layouts = [layout_of(p, self.rank) for _, p in named]
        self.device = _buffer_device()
        held = torch.tensor([math.prod(l.shape) if l.contributes else 0 for l in self.layouts],
                            dtype=torch.int64, device=self.device)
        every_rank = [torch.zeros_like(held) for _ in range(self.world_size)]
        dist.all_gather(every_rank, held)  # once, at watch(): who holds how much of each tensor
        held_by = torch.stack(every_rank).cpu().numpy()
        self.quotas = [_quota(held_by[:, i], self.rank, sample_size) for i in range(len(named))]
        self._indices = [None if quota is None else sample_indices(int(held_by[self.rank, i]), quota, i * 7919 + self.rank)
                         for i, quota in enumerate(self.quotas)]
        #: Tensors that rank 0 holds whole draw their pictures locally; the rest are assembled.
        self.whole_on_rank0 = [bool(held_by[0, i] == self.numels[i]) for i in range(len(named))]
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

    def remember_before_step(self) -> None:
        params = self.tensors()
        if params is not None:
            self._before = self._samples([local_part(p).detach() for p in params])

    def watch_gradients(self) -> list[Any]:
        return []  # gradients are read at the capture: pass the optimizer to watch() under torchrun

    def arm_gradients(self) -> None:
        pass

    def capture(self, with_grads: bool) -> Captured | None:
        """Merged summaries of weights (and gradients), and rank 0's pictures; None if collected."""
        params = self.tensors()
        if params is None:  # every rank's model goes together: no rank enters the collectives
            return None
        self.bytes_moved = 0
        weights = [self._held(p, i) for i, p in enumerate(params)]
        grads = [self._held(p.grad, i) for i, p in enumerate(params)] if with_grads else []
        sets = [(weights, self._weight_ranges, self._before)] + ([(grads, self._grad_ranges, None)] if with_grads else [])
        self._before = None
        moments = [self._guarded(_local_moments, _empty_moments(len(params)), tensors) for tensors, _, _ in sets]
        packed = torch.cat([torch.stack([-m[:, 0], m[:, 1]], 1).reshape(-1) for m in moments])
        extremes = self._all_reduce(packed.to(self.device), "max").cpu().view(len(sets), len(params), 2)
        summaries = []
        for index, (tensors, previous, before) in enumerate(sets):
            low, high = -extremes[index, :, 0], extremes[index, :, 1]
            ranges = torch.maximum(previous, _quantized_range(torch.maximum(low.abs(), high.abs())))
            ranges = torch.where(torch.isfinite(ranges), ranges, previous)
            previous.copy_(ranges)
            empty = torch.zeros(len(params), len(_SUMMED) + self.bins, dtype=torch.float64)
            local = self._guarded(self._local_counts, empty, tensors, ranges, moments[index], before)
            summaries.append((low, high, ranges, local))
        summed = torch.cat([local.reshape(-1) for *_, local in summaries]).to(self.device)
        summed = self._all_reduce(summed, "sum").cpu().view(len(sets), len(params), -1).numpy()
        merged = [self._merged(low, high, ranges, summed[i], before is not None)
                  for i, ((low, high, ranges, _), (_, _, before)) in enumerate(zip(summaries, sets))]
        pictures = self._pictures(params)
        return merged[0], merged[1] if with_grads else None, pictures

    # ----- one capture's parts ------------------------------------------------------------
    def _held(self, tensor: torch.Tensor | None, row: int) -> torch.Tensor | None:
        """This rank's flat block of a weight or gradient; None where another rank summarises it."""
        if tensor is None or not self.layouts[row].contributes:
            return None
        return local_part(tensor).detach().reshape(-1)

    def _samples(self, flats: Sequence[torch.Tensor | None]) -> list[torch.Tensor | None]:
        samples = []
        for flat, index in zip(flats, self._indices):
            if flat is None:
                samples.append(None)
            else:
                flat = flat.reshape(-1)
                samples.append((flat if index is None else flat.index_select(0, index.to(flat.device))).float())
        return samples

    def _local_counts(self, tensors: list, ranges: torch.Tensor, moments: torch.Tensor,
                      before: list | None) -> torch.Tensor:
        """This rank's share of the SUM buffer: [T, len(_SUMMED) + bins], float64."""
        count, bins = len(self.layouts), self.bins
        samples = self._samples(tensors)
        kept = [(i, s) for i, s in enumerate(samples) if s is not None and len(s)]
        device = kept[0][1].device if kept else torch.device("cpu")
        out = torch.zeros(count, len(_SUMMED) + bins, dtype=torch.float64, device=device)
        out[:, 0] = torch.tensor([float(t is not None) for t in tensors], dtype=torch.float64)
        out[:, 1:4] = moments[:, 2:5].double()
        if not kept:
            return out
        rows = torch.cat([torch.full((len(s),), i, dtype=torch.long, device=device) for i, s in kept])
        sample = torch.cat([s for _, s in kept])
        # The same arithmetic as summaries.summarize, element by element: equal bins, equal counts.
        finite = torch.isfinite(sample)
        ranges = ranges.to(device)
        row_range = torch.where(ranges > 0, ranges.clamp_min(1e-30), torch.ones_like(ranges))[rows]
        bin_index = ((sample / row_range + 1) * (bins / 2)).floor().clamp(0, bins - 1)
        flat_bin = torch.where(finite, rows * bins + bin_index.nan_to_num(0).long(),
                               torch.full_like(rows, count * bins))
        counts = torch.zeros(count * bins + 1, dtype=torch.float64, device=device).scatter_add_(
            0, flat_bin, torch.ones_like(sample, dtype=torch.float64))
        out[:, len(_SUMMED):] = counts[: count * bins].view(count, bins)
        clean = torch.where(finite, sample, torch.zeros_like(sample))
        for column, values in ((4, finite.double()), (5, (sample == 0).double()), (6, (clean * clean).double())):
            out[:, column].index_add_(0, rows, values)
        if before is not None and all(before[i] is not None for i, _ in kept):
            old = torch.cat([before[i] for i, _ in kept])
            change = torch.where(finite, sample - old, torch.zeros_like(sample))
            out[:, 7].index_add_(0, rows, (change * change).double())
        return out

    def _merged(self, low: torch.Tensor, high: torch.Tensor, ranges: torch.Tensor, summed: np.ndarray,
                measured_update: bool) -> Summary:
        summary = empty_summary(len(self.layouts), self.bins)
        present = summed[:, 0] > 0
        fields = summary.fields
        fields[:, FIELDS.index("count")] = self.numels
        for column, name in enumerate(_SUMMED[1:], start=1):
            fields[:, FIELDS.index(name)] = summed[:, column]
        if not measured_update:
            fields[:, FIELDS.index("delta_sq")] = np.nan
        finite_seen = (low <= high).numpy()  # some rank saw a finite element
        fields[:, FIELDS.index("min")] = np.where(finite_seen, low.numpy(), np.nan)
        fields[:, FIELDS.index("max")] = np.where(finite_seen, high.numpy(), np.nan)
        fields[~present] = np.nan  # no rank had this gradient
        summary.counts[:] = np.where(present[:, None], summed[:, len(_SUMMED):], 0).astype(np.float32)
        summary.ranges[:] = ranges.numpy()
        return summary

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


def _quota(held: np.ndarray, rank: int, sample_size: int | None) -> int | None:
    """How many elements this rank samples of one tensor (None: all it holds).

    Shares of ``sample_size`` proportional to each rank's block, rounded so they add up to it.
    """
    total = int(held.sum())
    if sample_size is None or total <= sample_size:
        return None
    before = int(held[:rank].sum())
    return (sample_size * (before + int(held[rank]))) // total - (sample_size * before) // total


def _empty_moments(count: int) -> torch.Tensor:
    moments = torch.zeros(count, 5)
    moments[:, 0], moments[:, 1] = math.inf, -math.inf
    return moments


def _local_moments(tensors: Sequence[torch.Tensor | None]) -> torch.Tensor:
    """[T, 5] finite min, finite max, NaN/Inf count, sum and sum of squares of finite elements of
    each tensor's block held here (min +inf, max -inf where none)."""
    moments = _empty_moments(len(tensors))
    fast = []
    for i, flat in enumerate(tensors):
        if flat is None or flat.numel() == 0:
            continue
        low, high = torch.aminmax(flat)
        if flat.dtype == torch.float32:
            fast.append((i, torch.stack([low, high, low.new_zeros(()), flat.sum(), torch.dot(flat, flat)])))
        else:
            norm = torch.linalg.vector_norm(flat, dtype=torch.float32)
            fast.append((i, torch.stack([low.float(), high.float(), norm.new_zeros(()),
                                         flat.sum(dtype=torch.float32), norm * norm])))
    if not fast:
        return moments
    stacked = torch.stack([row.cpu() for _, row in fast])
    rows = [i for i, _ in fast]
    moments[rows] = stacked
    for position in np.flatnonzero(~torch.isfinite(stacked).all(1).numpy()):  # NaN/Inf: read again
        flat = tensors[rows[position]].float()
        finite = flat[torch.isfinite(flat)]
        row = moments[rows[position]]
        row[2] = flat.numel() - finite.numel()
        if finite.numel():
            row[0], row[1], row[3], row[4] = finite.min(), finite.max(), finite.sum(), torch.dot(finite, finite)
        else:
            row[0], row[1], row[3], row[4] = math.inf, -math.inf, 0.0, 0.0
    return moments


def make_groups(named: Sequence[tuple[str, nn.Parameter]], bins: int, sample_size: int | None,
                limits: PictureLimits) -> list[DistributedGroup]:
    """The one group of a rank under torch.distributed (see :class:`DistributedGroup`)."""
    return [DistributedGroup(named, bins, sample_size, limits)] if named else []
