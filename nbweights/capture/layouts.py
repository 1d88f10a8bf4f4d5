"""Which part of each watched tensor this rank holds, and whether it is the rank to summarise it.

A plain parameter (DDP) is a replica: every rank holds all of it, and one rank, chosen by
:func:`spread`, summarises it. An FSDP2 parameter is a DTensor: each rank holds a block (its
local shard) at a global offset; of ranks holding the same block (a ``Replicate`` mesh
dimension, as in HSDP) the first summarises it. Nothing here talks to other processes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch


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


def is_sharded(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` is a DTensor (its ranks hold blocks), not a plain replica."""
    dtensor = _dtensor_class()
    return dtensor is not None and isinstance(tensor, dtensor)


def spread(numels: Sequence[int], world_size: int) -> list[int]:
    """Which rank summarises each replicated tensor: largest first, to the least loaded rank,
    so that the ranks share the work (the same answer on every rank)."""
    load, owners = [0] * world_size, [0] * len(numels)
    for i in sorted(range(len(numels)), key=lambda i: (-numels[i], i)):
        owners[i] = min(range(world_size), key=lambda r: (load[r], r))
        load[owners[i]] += numels[i]
    return owners


def layout_of(tensor: torch.Tensor, rank: int, owner: int = 0) -> Layout:
    """Which block of ``tensor`` this rank holds and whether it is the one to summarise it
    (``owner``: the rank that summarises a plain, replicated tensor)."""
    shape = tuple(tensor.shape)
    if not is_sharded(tensor):
        return Layout(rank == owner, (0,) * len(shape), shape)
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
