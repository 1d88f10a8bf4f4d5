"""Bounded copies of a tensor for the picture views: its values, a downsampled matrix, some filters.

Each capture keeps at most a fixed number of elements per tensor, whatever the layer's size,
so that history memory and the bytes a view sends stay bounded.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class PictureLimits:
    """How much of each tensor a capture keeps for the picture views.

    - ``values``: tensors with at most this many elements are kept whole (trajectories need it);
    - ``matrix``: 2-D tensors up to this many elements are kept whole, larger ones as block means
      on a grid of at most ``matrix_side`` x ``matrix_side`` (rows = outputs, columns = inputs);
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
        grid = (min(rows, limits.matrix_side), min(cols, limits.matrix_side))
        return "matrix", F.adaptive_avg_pool2d(data.float()[None, None], grid)[0, 0]
    if data.numel() <= limits.values:
        return "values", data.to(torch.float32, copy=True)
    if data.dim() == 4:
        return "filters", data[: limits.filters, : limits.filter_channels].to(torch.float32, copy=True)
    return None
