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
    # The rows and columns of this block that fall in whole blocks of the grid (a prefix of each:
    # the grid leaves out only trailing rows and columns), sliced, not copied.
    (row0, col0), (rows, cols) = layout.offset, layout.shape
    rows_in = min(rows, max(grid_rows * block_rows - row0, 0))
    cols_in = min(cols, max(grid_cols * block_cols - col0, 0))
    if rows_in == 0 or cols_in == 0:
        return out
    part = local[:rows_in, :cols_in].float()
    device = local.device
    block_of_row = torch.arange(row0, row0 + rows_in, device=device) // block_rows
    block_of_col = torch.arange(col0, col0 + cols_in, device=device) // block_cols
    by_rows = torch.zeros(grid_rows, cols_in, device=device).index_add_(0, block_of_row, part)
    return out.index_add_(1, block_of_col, by_rows) / (block_rows * block_cols)
