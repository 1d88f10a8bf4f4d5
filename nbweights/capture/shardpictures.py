"""Pictures of sharded tensors from bounded pieces: each rank fills its part, rank 0 sums them.

A picture (see :mod:`.pictures`) is a bounded function of the whole tensor: every element
(small tensors), the first filters and channels (convolutions), or block means (large
matrices). Each of these splits over blocks of the tensor: a rank writes the elements of its
block that the picture holds, or adds its rows' share of each block mean, into a zero buffer of
the picture's size; the sum of all ranks' buffers (one reduce to rank 0) is the picture.
So no rank ever receives more than a picture's bounded size, whatever the tensor's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from .pictures import PictureLimits


@dataclass(frozen=True)
class PicturePlan:
    """What a picture of a tensor of ``shape`` holds: its ``kind``, size, and how it is made.

    ``how`` is "copy" (the picture is the leading ``out_shape`` block of the tensor) or "means"
    (block means of a matrix, blocks of ``block`` rows x columns).
    """

    kind: str
    out_shape: tuple[int, ...]
    how: str
    block: tuple[int, int] = (1, 1)


def picture_plan(shape: tuple[int, ...], limits: PictureLimits, floating: bool = True) -> PicturePlan | None:
    """The plan of the picture :func:`~.pictures.picture_of` takes of a whole tensor of ``shape``."""
    numel = math.prod(shape)
    if not floating or numel == 0:
        return None
    if len(shape) == 2 and limits.values < numel:
        if numel <= limits.matrix:
            return PicturePlan("matrix", tuple(shape), "copy")
        rows, cols = shape
        block = (-(-rows // limits.matrix_side), -(-cols // limits.matrix_side))
        return PicturePlan("matrix", (rows // block[0], cols // block[1]), "means", block)
    if numel <= limits.values:
        return PicturePlan("values", tuple(shape), "copy")
    if len(shape) == 4:
        return PicturePlan("filters", (min(shape[0], limits.filters), min(shape[1], limits.filter_channels))
                           + tuple(shape[2:]), "copy")
    return None


def assemble(plan: PicturePlan, local: torch.Tensor, layout: Any) -> torch.Tensor:
    """This rank's share of a picture: zeros, but for the part its block (``layout``) holds."""
    out = torch.zeros(plan.out_shape, dtype=torch.float32, device=local.device)
    if not layout.contributes or local.numel() == 0:
        return out
    if plan.how == "copy":
        target, source = [], []
        for start, length, size in zip(layout.offset, layout.shape, plan.out_shape):
            stop = min(start + length, size)
            if stop <= start:
                return out  # this block lies outside the picture
            target.append(slice(start, stop))
            source.append(slice(0, stop - start))
        out[tuple(target)] = local[tuple(source)].float()
        return out
    (grid_rows, grid_cols), (block_rows, block_cols) = plan.out_shape, plan.block
    rows = torch.arange(layout.offset[0], layout.offset[0] + layout.shape[0], device=local.device)
    cols = torch.arange(layout.offset[1], layout.offset[1] + layout.shape[1], device=local.device)
    keep_rows, keep_cols = rows < grid_rows * block_rows, cols < grid_cols * block_cols
    part = local[keep_rows][:, keep_cols].float()
    by_rows = torch.zeros(grid_rows, part.shape[1], device=local.device).index_add_(
        0, rows[keep_rows] // block_rows, part)
    sums = out.index_add_(1, cols[keep_cols] // block_cols, by_rows)
    return sums / (block_rows * block_cols)
