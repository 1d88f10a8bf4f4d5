"""Bounded copies of a tensor for the picture views: its values, a downsampled matrix, some filters.

Each capture keeps at most a fixed number of elements per tensor, whatever the layer's size,
so that history memory and the bytes a view sends stay bounded.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PictureLimits:
    """How much of each tensor a capture keeps for the picture views.

    - ``values``: tensors with at most this many elements are kept whole (trajectories need it);
    - ``matrix``: 2-D tensors up to this many elements are kept whole, larger ones as block means
      on a grid of at most ``matrix_side`` x ``matrix_side`` (rows = outputs, columns = inputs;
      see :func:`block_means`);
    - ``filters`` x ``filter_channels``: of a 4-D convolution weight the first filters and input
      channels at full kernel size.
    """

    values: int = 4096
    matrix: int = 32768
    matrix_side: int = 128
    filters: int = 64
    filter_channels: int = 8


def picture_of(tensor: torch.Tensor, limits: PictureLimits) -> tuple[str, torch.Tensor] | None:
    """``(kind, bounded float32 copy)`` of a tensor for the views, or None when no view needs one.

    Kinds: ``"values"`` (every element, tensor's shape), ``"matrix"`` (2-D block means),
    ``"filters"`` (4-D: first filters and channels).
    """
    data = tensor.detach()
    if not data.is_floating_point():
        return None
    if data.dim() == 2 and limits.values < data.numel():
        rows, cols = data.shape
        if data.numel() <= limits.matrix:
            return "matrix", data.to(torch.float32, copy=True)
        return "matrix", block_means(data, limits.matrix_side)
    if data.numel() <= limits.values:
        return "values", data.to(torch.float32, copy=True)
    if data.dim() == 4:
        return "filters", data[: limits.filters, : limits.filter_channels].to(torch.float32, copy=True)
    return None


def block_means(matrix: torch.Tensor, side: int) -> torch.Tensor:
    """Means of equal blocks tiling ``matrix`` on a grid of at most ``side`` x ``side``.

    Blocks are ``ceil(rows / side)`` x ``ceil(cols / side)``; the last rows and columns that do
    not fill a whole block (fewer than a block's height or width) are left out. Two sums along
    one axis each cost about a third of ``adaptive_avg_pool2d`` here.
    """
    rows, cols = matrix.shape
    block_rows, block_cols = -(-rows // side), -(-cols // side)
    grid_rows, grid_cols = rows // block_rows, cols // block_cols
    cropped = matrix[: grid_rows * block_rows, : grid_cols * block_cols].float()
    sums = cropped.reshape(grid_rows, block_rows, grid_cols * block_cols).sum(1)
    sums = sums.reshape(grid_rows, grid_cols, block_cols).sum(2)
    return sums / (block_rows * block_cols)
