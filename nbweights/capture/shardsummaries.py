"""What one rank contributes to the merged summary of sharded tensors: pure tensor functions.

The merge (see :mod:`.distributed`) runs in two rounds. :func:`local_moments` gives each tensor's
finite min and max of the block held here (for one all-reduce MAX) and its NaN/Inf count, sum and
sum of squares; :func:`local_counts` bins the block's sample over the agreed ranges with the same
arithmetic as :func:`nbweights.summaries.summarize` (so every element falls in the same bin as in
one process) into the rows that one all-reduce SUM adds up; :func:`merged` reads the sums back
into a :class:`~nbweights.summaries.Summary`. Nothing here talks to other processes.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from ..summaries import FIELDS, Summary, _quantized_range

#: Per tensor, the SUM rows hold these columns, then the histogram counts.
SUMMED = ("present", "nonfinite", "sum", "sumsq", "sampled", "sample_zeros", "sample_sq", "delta_sq")


def quota(held: np.ndarray, rank: int, sample_size: int | None) -> int | None:
    """How many elements ``rank`` samples of a tensor whose ranks hold ``held`` elements each
    (None: all it holds). Shares proportional to the blocks, rounded to add up to ``sample_size``,
    so that the sample stays uniform over the whole tensor."""
    total = int(held.sum())
    if sample_size is None or total <= sample_size:
        return None
    before = int(held[:rank].sum())
    return (sample_size * (before + int(held[rank]))) // total - (sample_size * before) // total


def take_samples(flats: Sequence[torch.Tensor | None], indices: Sequence[torch.Tensor | None],
                 copy: bool = False) -> list[torch.Tensor | None]:
    """Each flat block's sampled elements (all of them where its index is None), as float32.

    ``copy``: never a view of the tensor (a sample kept across the optimizer's in-place step).
    """
    samples: list[torch.Tensor | None] = []
    for flat, index in zip(flats, indices):
        if flat is None:
            samples.append(None)
        else:
            if index is None:
                samples.append(flat.to(torch.float32, copy=copy))
            else:
                samples.append(flat.index_select(0, index.to(flat.device)).float())
    return samples


def empty_moments(count: int) -> torch.Tensor:
    """The moments of blocks that hold nothing: min +inf, max -inf, the rest 0."""
    moments = torch.zeros(count, 5)
    moments[:, 0], moments[:, 1] = math.inf, -math.inf
    return moments


def local_moments(flats: Sequence[torch.Tensor | None]) -> torch.Tensor:
    """[T, 5] on the CPU: finite min, finite max, NaN/Inf count, sum and sum of squares of the
    finite elements of each flat block (None or empty: :func:`empty_moments`). One host read;
    only blocks holding NaN/Inf are read again, to leave those out."""
    moments = empty_moments(len(flats))
    fast = []
    for i, flat in enumerate(flats):
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
    rows = [i for i, _ in fast]
    stacked = torch.stack([row for _, row in fast]).cpu()
    moments[rows] = stacked
    for position in np.flatnonzero(~torch.isfinite(stacked).all(1).numpy()):
        flat = flats[rows[position]].float()
        finite = flat[torch.isfinite(flat)]
        row = moments[rows[position]]
        row[2] = flat.numel() - finite.numel()
        if finite.numel():
            row[0], row[1], row[3], row[4] = finite.min(), finite.max(), finite.sum(), torch.dot(finite, finite)
        else:
            row[0], row[1], row[3], row[4] = math.inf, -math.inf, 0.0, 0.0
    return moments


def agreed_ranges(low: torch.Tensor, high: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
    """Histogram ranges from the global min and max, as one process quantises them (only widening)."""
    ranges = torch.maximum(previous, _quantized_range(torch.maximum(low.abs(), high.abs())))
    return torch.where(torch.isfinite(ranges), ranges, previous)


def local_counts(present: Sequence[bool], samples: Sequence[torch.Tensor | None], ranges: torch.Tensor,
                 moments: torch.Tensor, bins: int, before: Sequence[torch.Tensor | None] | None = None
                 ) -> torch.Tensor:
    """This rank's SUM rows [T, len(SUMMED) + bins] (float64: counts stay exact past 2**24).

    ``before``: the samples taken before the optimizer step, for the update's size.
    """
    count = len(samples)
    kept = [(i, s) for i, s in enumerate(samples) if s is not None and len(s)]
    device = kept[0][1].device if kept else torch.device("cpu")
    out = torch.zeros(count, len(SUMMED) + bins, dtype=torch.float64, device=device)
    out[:, 0] = torch.tensor([float(p) for p in present], dtype=torch.float64)
    out[:, 1:4] = moments[:, 2:5].double()
    if not kept:
        return out
    rows = torch.cat([torch.full((len(s),), i, dtype=torch.long, device=device) for i, s in kept])
    sample = torch.cat([s for _, s in kept])
    # summaries.summarize's arithmetic, element by element. The range is gathered per element, as
    # there: dividing by one scalar would multiply by its reciprocal, and round differently.
    finite = torch.isfinite(sample)
    ranges = ranges.to(device)
    row_range = torch.where(ranges > 0, ranges.clamp_min(1e-30), torch.ones_like(ranges))[rows]
    bin_index = ((sample / row_range + 1) * (bins / 2)).floor().clamp(0, bins - 1)
    flat_bin = torch.where(finite, rows * bins + bin_index.nan_to_num(0).long(),
                           torch.full_like(rows, count * bins))
    # Integer counts: exact however many elements (float32 would stop counting at 2**24).
    if device.type == "cpu":
        counts = torch.bincount(flat_bin, minlength=count * bins + 1)
    else:  # bincount reads its input's max on the host: a sync per call on CUDA
        counts = torch.zeros(count * bins + 1, dtype=torch.long, device=device).scatter_add_(
            0, flat_bin, torch.ones_like(flat_bin))
    counts = counts[: count * bins].view(count, bins)
    out[:, len(SUMMED):] = counts.double()
    out[:, 4] = counts.sum(1).double()  # each finite sampled element is in exactly one bin
    zero_rows = rows[sample == 0]
    out[:, 5] = torch.zeros(count, dtype=torch.long, device=device).index_add_(
        0, zero_rows, torch.ones_like(zero_rows)).double()
    clean = torch.where(finite, sample, torch.zeros_like(sample))
    out[:, 6] = torch.zeros(count, device=device).index_add_(0, rows, clean * clean).double()
    if before is not None and all(before[i] is not None and len(before[i]) == len(s) for i, s in kept):
        change = torch.where(finite, sample - torch.cat([before[i] for i, _ in kept]), torch.zeros_like(sample))
        out[:, 7] = torch.zeros(count, device=device).index_add_(0, rows, change * change).double()
    return out


def merged(numels: Sequence[int], low: torch.Tensor, high: torch.Tensor, ranges: torch.Tensor,
           summed: np.ndarray, measured_update: bool) -> Summary:
    """The :class:`Summary` of whole tensors from the reduced extremes and SUM rows."""
    bins = summed.shape[1] - len(SUMMED)
    fields = np.zeros((len(numels), len(FIELDS)))
    fields[:, FIELDS.index("count")] = numels
    for column, name in enumerate(SUMMED[1:], start=1):
        fields[:, FIELDS.index(name)] = summed[:, column]
    if not measured_update:
        fields[:, FIELDS.index("delta_sq")] = np.nan
    finite_seen = (low <= high).numpy()  # some rank held a finite element
    fields[:, FIELDS.index("min")] = np.where(finite_seen, low.numpy(), np.nan)
    fields[:, FIELDS.index("max")] = np.where(finite_seen, high.numpy(), np.nan)
    present = summed[:, 0] > 0
    fields[~present] = np.nan  # no rank had this gradient
    counts = np.where(present[:, None], summed[:, len(SUMMED):], 0).astype(np.float32)
    return Summary(fields, counts.reshape(len(numels), bins), ranges.numpy().astype(np.float32))
