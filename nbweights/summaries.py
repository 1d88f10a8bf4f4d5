"""Pure tensor functions: many tensors in, one small stacked summary out, on the tensors' device.

A snapshot's cost is a fixed number of batched operations (about 40 torch calls, whatever the
number of small tensors: the small tensors are laid end to end by one call, their runs reduced
by one segmented reduction or multi-tensor kernel, their histograms by one scatter) plus, per
tensor larger than the sample, one ``aminmax`` and one ``sum`` and a share of one multi-tensor
sum of squares. Everything that needs per-element work beyond that (histogram, zero fraction,
update size) is computed on a fixed random sample of at most ``sample_size`` elements per tensor,
and the results of all tensors cross to the host in one transfer. Weights and gradients can be
summarised by one call (:meth:`SummaryPlan.joined`).

Any floating dtype is summarised (float16, bfloat16, float64: reduced in float32, float64 sums
in float64); a complex tensor by its magnitude ``|z|``; a sparse tensor (a sparse gradient) by
its stored values, its implicit zeros added by :func:`add_implicit_zeros`.

Summaries are mergeable: counts, sums, sums of squares, min and max of shards add up to the
summary of the whole tensor (see :func:`merge`), provided the shards share histogram ranges.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .summary_plan import SummaryPlan, end_to_end, sample_indices

__all__ = ["FIELDS", "Summary", "SummaryPlan", "add_implicit_zeros", "derived_stats", "finish",
           "histogram_edges", "merge", "readable", "sample_indices", "summarize", "take_sample", "unpack"]

#: Columns of :attr:`Summary.fields`, one row per tensor.
FIELDS = (
    "count",         # elements in the tensor
    "nonfinite",     # NaN and +-Inf elements (exact)
    "min",           # smallest finite element
    "max",           # largest finite element
    "sum",           # sum of finite elements
    "sumsq",         # sum of squares of finite elements
    "sampled",       # finite elements in the histogram sample
    "sample_zeros",  # exact zeros in the sample
    "sample_sq",     # sum of squares of the sample (denominator of the update ratio)
    "delta_sq",      # sum of squared changes of the sample since the pre-step read; NaN if none
)
_DEVICE_FIELDS = ("min", "max", "sum", "sumsq", "sample_sq", "sampled", "sample_zeros", "delta_sq", "range")
_COLUMN = {name: i for i, name in enumerate(_DEVICE_FIELDS)}
#: Where :func:`unpack` copies the measured columns: from ``_SOURCE`` into ``FIELDS`` at ``_TARGET``.
_TARGET = [FIELDS.index(name) for name in FIELDS[2:]]
_SOURCE = np.array([_COLUMN[name] for name in FIELDS[2:]])


@dataclass
class Summary:
    """Summaries of several tensors: ``fields`` [T, len(FIELDS)], ``counts`` [T, bins], ``ranges`` [T].

    Tensor ``i``'s histogram covers ``[-ranges[i], ranges[i]]`` in ``bins`` equal bins and counts
    the elements of its sample (all elements when the tensor is no larger than the sample).
    """

    fields: np.ndarray
    counts: np.ndarray
    ranges: np.ndarray

    def column(self, name: str) -> np.ndarray:
        return self.fields[:, FIELDS.index(name)]


def merge(a: Summary, b: Summary) -> Summary:
    """The summary of the union of two shards' elements (shards must share histogram ranges)."""
    if not np.array_equal(a.ranges, b.ranges):
        raise ValueError("merge() needs shards summarised over the same histogram ranges")
    fields = a.fields + b.fields
    for name, pick in (("min", np.fmin), ("max", np.fmax)):
        i = FIELDS.index(name)
        fields[:, i] = pick(a.fields[:, i], b.fields[:, i])
    return Summary(fields, a.counts + b.counts, a.ranges.copy())


def derived_stats(fields: np.ndarray) -> dict[str, np.ndarray]:
    """Readable statistics from summary fields [..., len(FIELDS)]: mean, std, norm, update ratio..."""
    f = {name: fields[..., i] for i, name in enumerate(FIELDS)}
    finite = f["count"] - f["nonfinite"]
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = f["sum"] / finite
        variance = np.maximum(f["sumsq"] / finite - mean * mean, 0.0)
        return {
            "min": f["min"],
            "max": f["max"],
            "mean": mean,
            "std": np.sqrt(variance),
            "norm": np.sqrt(f["sumsq"]),
            "zero_fraction": f["sample_zeros"] / f["sampled"],
            "nonfinite": f["nonfinite"],
            "update_ratio": np.sqrt(f["delta_sq"] / f["sample_sq"]),
        }


def histogram_edges(value_range: float, bins: int) -> np.ndarray:
    """Bin edges of a histogram over ``[-value_range, value_range]`` (``[-1, 1]`` before any value)."""
    value_range = float(value_range) if value_range > 0 else 1.0
    return np.linspace(-value_range, value_range, bins + 1)


def readable(tensor: torch.Tensor) -> torch.Tensor:
    """What is summarised of a tensor: its stored values if sparse, its magnitude ``|z|`` if
    complex, the tensor itself otherwise (any real dtype: reductions upcast to float32)."""
    if tensor.is_sparse:
        tensor = tensor.coalesce().values()
    if tensor.is_complex():
        tensor = tensor.abs()
    return tensor


def _flat(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().reshape(-1)


# Autograd is off by decorator, not by a ``with`` block here: an interrupt landing on a ``with``
# line as the block ends skips its exit, which would leave autograd off for the user's training.
@torch.no_grad()
def take_sample(plan: SummaryPlan, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """The sampled elements of every tensor, concatenated in :attr:`SummaryPlan.order`, as
    float32 on the tensors' device (a complex group's as ``|z|``)."""
    if not plan._pieces:
        return torch.zeros(0, device=plan.device)
    # One C++ call lays consecutive whole tensors end to end: no Python op per tensor;
    # index_select: about half the time of flat[idx] (advanced indexing) for a 1-D gather.
    parts = [end_to_end([tensors[i] for i in piece]) if isinstance(piece, list)
             else _flat(tensors[piece]).index_select(0, plan.indices[piece]) for piece in plan._pieces]
    # A copy, always (one whole tensor flattens to a view): a before-sample must not follow
    # the weights through the optimizer step.
    sample = torch.cat(parts) if len(parts) > 1 or plan._pieces == [plan.whole[:1]] else parts[0]
    if sample.is_complex():  # a group holds one dtype: the sample is gathered before |z|
        sample = sample.abs()
    return sample if sample.dtype == torch.float32 else sample.float()


def _quantized_range(max_abs: torch.Tensor) -> torch.Tensor:
    """Smallest 2**(k/4) at or above ``max_abs`` (0 where max_abs is 0, or NaN/Inf): edges that
    rarely move. (log2(0) = -inf, and exp2(-inf) = 0.)"""
    return torch.log2(max_abs).mul_(4).ceil_().div_(4).exp2_().nan_to_num_(0.0, 0.0, 0.0)


def _reductions(flat: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """min, max, sum and sum of squares of one flat real tensor (complex: of ``|z|``)."""
    if flat.numel() == 0:
        zero = torch.zeros((), device=flat.device)
        return zero, zero, zero, zero
    if flat.is_complex():
        flat = flat.abs()
    low, high = torch.aminmax(flat)
    if flat.dtype in (torch.float32, torch.float64):  # float64 sums stay float64 until stacked
        return low, high, flat.sum(), torch.dot(flat, flat)
    norm = torch.linalg.vector_norm(flat, dtype=torch.float32)
    return low.float(), high.float(), flat.sum(dtype=torch.float32), norm * norm


#: Elements of a float32 tensor that fit in a core's L2 cache with room to spare (256 KiB).
_CACHED = 2**16


def _large_moments(plan: SummaryPlan, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """[len(plan.read), 4]: exact min, max, sum and sum of squares of each large tensor."""
    flats = [_flat(tensors[i]) for i in plan.read]
    if not flats:
        return torch.zeros(0, 4, device=plan.device)
    if all(f.dtype == torch.float32 for f in flats) and hasattr(torch, "_foreach_powsum"):
        # aminmax costs one read here. A tensor larger than a cache gets its squares summed right
        # after its other reductions, while still cached (ResNet-18: 15% less time, same values);
        # the squares of the smaller ones come from one multi-tensor call.
        small = [f for f in flats if f.numel() <= _CACHED]
        shared = iter(torch._foreach_powsum(small, 2) if small else ())
        return torch.stack([value for f in flats for value in (
            *torch.aminmax(f), f.sum(), next(shared) if f.numel() <= _CACHED else torch._foreach_powsum([f], 2)[0])
        ]).view(-1, 4)
    return torch.stack([torch.stack([v.float() for v in _reductions(f)]) for f in flats])


def summarize(plan: SummaryPlan, tensors: Sequence[torch.Tensor], previous_ranges: torch.Tensor,
              bins: int, before_sample: torch.Tensor | None = None, sample: torch.Tensor | None = None
              ) -> torch.Tensor:
    """Stack every tensor's summary into one float32 tensor [T, 9 + bins] on the tensors' device.

    ``previous_ranges`` [T] keeps histogram edges stable: a range only ever widens. Pass the
    sample taken before an optimizer step as ``before_sample`` to measure the update's size; it
    may cover only the first runs of the sample (the weights of a plan of weights then
    gradients): the other rows get NaN. ``sample``: :func:`take_sample` of these tensors, if the
    caller took it already (to read part of it too). Nothing here synchronises with the host; rows with
    NaN/Inf are repaired by :func:`finish`.

    The cost is a fixed number of batched operations over the concatenated sample (about 40,
    whatever the number of small tensors) plus three reductions per tensor larger than the sample.
    """
    count = len(tensors)
    if count == 0:
        return torch.zeros(0, len(_DEVICE_FIELDS) + bins, device=plan.device)
    return _summarize(plan, tensors, previous_ranges, bins, before_sample, sample)


@torch.no_grad()  # not a with block: see take_sample
def _summarize(plan: SummaryPlan, tensors: Sequence[torch.Tensor], previous_ranges: torch.Tensor,
               bins: int, before_sample: torch.Tensor | None, sample: torch.Tensor | None) -> torch.Tensor:
    count = len(tensors)
    sample = take_sample(plan, tensors) if sample is None else sample
    clean = sample.nan_to_num(0.0, 0.0, 0.0)
    finite = sample == clean  # False exactly where NaN or +-Inf
    # The sum is of the raw sample: a NaN/Inf in a whole tensor shows as a non-finite sum,
    # which tells finish() to read that tensor again. Each run is reduced apart: no spill.
    columns = [sample, clean * clean, finite, sample == plan._zero]
    measured = before_sample is not None and 0 < len(before_sample) <= plan.sample_length
    if measured:
        covered = len(before_sample)
        if covered == plan.sample_length:
            change = torch.where(finite, sample - before_sample, plan._zero)
        else:  # a plan of weights then gradients: the gradients measure no update
            change = torch.cat([torch.where(finite[:covered], sample[:covered] - before_sample, plan._zero),
                                plan.unmeasured(covered)[0]])
        columns.append(change * change)
    stacked = torch.stack(columns)
    # Per run: sum, sum of squares, finite elements, zeros[, squared change] of its sample.
    sums = plan.run_sums(stacked)
    # Rows (runs) hold min, max, sum, sumsq, sample_sq, sampled, sample_zeros, delta_sq: the
    # first four are exact for whole tensors; large ones get their own reductions below.
    if not measured:
        parts = [sums[:, 1:], plan._no_update]
    elif covered == plan.sample_length:
        parts = [sums[:, 1:]]
    else:
        parts = [sums[:, 1:4], torch.where(plan.unmeasured(covered)[1], sums[:, 4:5], plan._nan)]
    per_run = torch.cat([plan.run_min_max(sample), sums[:, :2], *parts], 1)
    if plan.large:
        large = _large_moments(plan, tensors)
        if len(plan.read) < len(plan.large):  # empty tensors: zeros
            large = torch.zeros(len(plan.large), 4, device=sample.device).index_copy_(0, plan._read_in_large, large)
        per_run[:, :4].index_copy_(0, plan._large_runs, large)
    if plan.to_tensor_order is not None:  # rows in tensor order from here on
        per_run = per_run.index_select(0, plan.to_tensor_order)
    ranges = torch.maximum(previous_ranges, _quantized_range(per_run[:, :2].abs().amax(1)))

    row_range = torch.where(ranges > plan._zero, ranges, plan._one).index_select(0, plan.rows)
    flat_bin = torch.addcdiv(plan._one, clean, row_range)  # sample / range + 1
    flat_bin = flat_bin.mul_(plan.half_bins(bins)).floor_().clamp_(0, bins - 1).long().add_(plan.first_bins(bins))
    # scatter_add_, not bincount: bincount reads its input's max on the host (a sync on CUDA)
    # and has no deterministic CUDA kernel. NaN/Inf elements add 0 (their weight is "finite").
    counts = torch.zeros(count, bins, device=sample.device)
    counts.view(-1).scatter_add_(0, flat_bin, stacked[2])
    return torch.cat([per_run, ranges[:, None], counts], 1)


def _exact_finite_row(tensor: torch.Tensor) -> tuple[float, float, float, float, float]:
    """nonfinite count and finite min, max, sum, sum of squares of one tensor (slow path)."""
    flat = tensor.detach().reshape(-1)
    flat = (flat.abs() if flat.is_complex() else flat).float()
    finite_mask = torch.isfinite(flat)
    finite = flat[finite_mask]
    nonfinite = float(flat.numel() - finite.numel())
    if finite.numel() == 0:
        return nonfinite, math.nan, math.nan, 0.0, 0.0
    return (nonfinite, float(finite.min()), float(finite.max()), float(finite.sum()),
            float(torch.dot(finite, finite)))


def unpack(plan: SummaryPlan, packed: np.ndarray) -> Summary:
    """The :class:`Summary` held by the host copy of :func:`summarize`'s result, as measured
    (the NaN/Inf count left at 0: see :func:`finish`)."""
    fields = np.zeros((len(packed), len(FIELDS)), dtype=np.float64)
    fields[:, FIELDS.index("count")] = plan.numel_array
    fields[:, _TARGET] = packed.take(_SOURCE, 1)
    return Summary(fields, packed[:, len(_DEVICE_FIELDS):].astype(np.float32),
                   packed[:, _COLUMN["range"]].astype(np.float32))


def finish(plan: SummaryPlan, tensors: Sequence[torch.Tensor], packed_device: torch.Tensor,
           packed: np.ndarray, bins: int, before_sample: torch.Tensor | None = None
           ) -> tuple[Summary, torch.Tensor]:
    """Turn :func:`summarize`'s result and its host copy into a :class:`Summary` and new ranges.

    Rows whose sums are not finite hold NaN/Inf elements: only for those is the tensor read
    again, exactly, so that NaN/Inf are counted and never spoil min, max or the histogram.
    Returns the summary and the device tensor of ranges to pass to the next :func:`summarize`.
    """
    summary = unpack(plan, packed)
    fields, counts, ranges = summary.fields, summary.counts, summary.ranges
    ranges_device = packed_device.select(1, _COLUMN["range"])
    if not np.isfinite(packed[:, :4]).all():
        broken = np.flatnonzero(~np.isfinite(packed[:, :4]).all(axis=1))
        for row in broken:
            nonfinite, low, high, total, total_sq = _exact_finite_row(tensors[row])
            fields[row, 1:6] = nonfinite, low, high, total, total_sq
            max_abs = max(abs(low), abs(high)) if math.isfinite(low) else 0.0
            ranges[row] = max(float(ranges[row]), float(_quantized_range(torch.tensor(max_abs))))
        # Those rows' histograms were binned over a stale range: bin them again over the new one.
        ranges_device = torch.from_numpy(ranges.copy()).to(packed_device.device)
        again = summarize(plan, tensors, ranges_device, bins, before_sample).cpu().numpy()
        counts[broken] = again[broken, len(_DEVICE_FIELDS):]
    return Summary(fields, counts, ranges), ranges_device


def add_implicit_zeros(summary: Summary, row: int, dense_numel: int, bins: int) -> None:
    """Count, in place, the zeros a sparse tensor leaves implicit in the summary of its stored
    values (row ``row``), so that it describes the dense tensor of ``dense_numel`` elements.

    Sums and sums of squares are unchanged; min and max take in 0; the sample grows by the
    zeros' share, so that the histogram and the zero fraction scale to the dense tensor.
    """
    fields = summary.fields[row]
    stored = fields[FIELDS.index("count")]
    implicit = dense_numel - stored
    if implicit <= 0:
        return
    share = fields[FIELDS.index("sampled")] / stored if stored > 0 else 1.0
    fields[FIELDS.index("count")] = dense_numel
    for name, pick in (("min", np.fmin), ("max", np.fmax)):
        fields[FIELDS.index(name)] = pick(fields[FIELDS.index(name)], 0.0) if stored > 0 else 0.0
    for name in ("sampled", "sample_zeros"):
        fields[FIELDS.index(name)] += implicit * share
    zero_bin = min(max(int(math.floor(bins / 2)), 0), bins - 1)  # where summarize() bins a 0
    summary.counts[row, zero_bin] += implicit * share
