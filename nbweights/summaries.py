"""Pure tensor functions: many tensors in, one small stacked summary out, on the tensors' device.

A snapshot of a whole model costs about four reads of its parameters: per tensor one
``aminmax``, one ``sum`` and one ``dot`` over every element, plus a gather of a fixed random
sample of at most ``sample_size`` elements. Everything that needs per-element work beyond that
(histogram, zero fraction, update size) is computed on the sample, all tensors at once, and the
results of all tensors cross to the host in one transfer.

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
_DEVICE_FIELDS = ("min", "max", "sum", "sumsq", "range", "sampled", "sample_zeros", "sample_sq", "delta_sq")
_COLUMN = {name: i for i, name in enumerate(_DEVICE_FIELDS)}


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


def sample_indices(numel: int, sample_size: int | None, seed: int) -> torch.Tensor | None:
    """Sorted random element indices of a tensor, or None to use every element.

    Drawn from a private generator so that attaching nbweights never touches the global RNG, and
    without listing all ``numel`` indices: a 10^8-element tensor costs what its sample costs.
    """
    if sample_size is None or numel <= sample_size:
        return None
    generator = torch.Generator().manual_seed(seed)
    if numel <= 4 * sample_size:  # small enough to shuffle every index
        return torch.randperm(numel, generator=generator)[:sample_size].sort().values
    # Distinct values of uniform draws, topped up until there are enough, then a uniformly chosen
    # sample_size of them: every subset of that size is equally likely, as with randperm.
    chosen = torch.zeros(0, dtype=torch.long)
    while len(chosen) < sample_size:
        more = torch.randint(numel, (sample_size - len(chosen) + 16,), generator=generator)
        chosen = torch.unique(torch.cat([chosen, more]))
    keep = torch.randperm(len(chosen), generator=generator)[:sample_size]
    return chosen[keep].sort().values


def readable(tensor: torch.Tensor) -> torch.Tensor:
    """What is summarised of a tensor: its stored values if sparse, its magnitude ``|z|`` if
    complex, the tensor itself otherwise (any real dtype: reductions upcast to float32)."""
    if tensor.is_sparse:
        tensor = tensor.coalesce().values()
    if tensor.is_complex():
        tensor = tensor.abs()
    return tensor


class SummaryPlan:
    """What to read from one group of tensors on one device: sample indices and row ids.

    Built once per watched group; :func:`take_sample` and :func:`summarize` use it at each capture.
    """

    def __init__(self, numels: Sequence[int], sample_size: int | None, device: torch.device,
                 seed: int = 0):
        self.numels = list(numels)
        self.device = device
        self.indices = [None if idx is None else idx.to(device)
                        for idx in (sample_indices(n, sample_size, seed + i) for i, n in enumerate(self.numels))]
        #: Tensors no larger than the sample are in it whole: their exact moments come from
        #: batched reductions over the sample. The others get their own exact reductions.
        self.whole = [i for i, (n, idx) in enumerate(zip(self.numels, self.indices)) if idx is None and n > 0]
        self.large = [i for i in range(len(self.numels)) if i not in set(self.whole)]
        #: The sample holds one run per tensor, the whole tensors first.
        self.order = self.whole + self.large
        lengths = [self.numels[i] if self.indices[i] is None else len(self.indices[i]) for i in self.order]
        self.whole_elements = sum(lengths[: len(self.whole)])
        self.rows = torch.repeat_interleave(torch.tensor(self.order, dtype=torch.long),
                                            torch.tensor(lengths, dtype=torch.long)).to(device)
        self._lengths = torch.tensor(lengths, dtype=torch.long, device=device)
        self._whole_lengths = self._lengths[: len(self.whole)]
        self.order_index = torch.tensor(self.order, dtype=torch.long, device=device)
        self.whole_index = torch.tensor(self.whole, dtype=torch.long, device=device)
        self.large_index = torch.tensor(self.large, dtype=torch.long, device=device)
        # segment_reduce checks its lengths on the host: a sync per call on CUDA, so CPU only.
        self._segment = hasattr(torch, "segment_reduce") and torch.device(device).type == "cpu"

    def per_row(self, values: torch.Tensor, how: str = "sum", whole_only: bool = False) -> torch.Tensor:
        """``how`` ("sum", "min" or "max") of ``values`` (one per sample element) over each
        tensor's run, in tensor order. With ``whole_only``, ``values`` covers only the whole
        tensors' runs and the result holds one value per tensor of :attr:`whole`."""
        lengths = self._whole_lengths if whole_only else self._lengths
        if self._segment:
            try:  # reduces contiguous runs: about half the time of index_add_ on CPU
                reduced = torch.segment_reduce(values, how, lengths=lengths)
                if whole_only:
                    return reduced
                return torch.empty_like(reduced).index_copy_(0, self.order_index, reduced)
            except (RuntimeError, NotImplementedError):
                self._segment = False  # not on this device: scatter from now on
        rows = self.rows[: len(values)]
        out = torch.zeros(len(self.numels), dtype=values.dtype, device=values.device)
        if how == "sum":
            out.index_add_(0, rows, values)
        else:
            out.scatter_reduce_(0, rows, values, "amin" if how == "min" else "amax", include_self=False)
        return out.index_select(0, self.whole_index) if whole_only else out


def take_sample(plan: SummaryPlan, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """The sampled elements of every tensor, concatenated, as float32 on the tensors' device."""
    parts = []
    for i in plan.order:
        tensor, idx = tensors[i], plan.indices[i]
        flat = tensor.detach().reshape(-1)
        # index_select: about half the time of flat[idx] (advanced indexing) for a 1-D gather;
        # a complex tensor's sample is gathered before taking |z|, so no copy of all of it.
        picked = flat if idx is None else flat.index_select(0, idx)
        parts.append((picked.abs() if picked.is_complex() else picked).float())
    if not parts:
        return torch.zeros(0, device=plan.device)
    return torch.cat(parts)


def _quantized_range(max_abs: torch.Tensor) -> torch.Tensor:
    """Smallest 2**(k/4) at or above ``max_abs`` (0 where max_abs is 0): edges that rarely move."""
    exponent = torch.ceil(4 * torch.log2(max_abs.clamp_min(1e-30))) / 4
    return torch.where(max_abs > 0, torch.exp2(exponent), torch.zeros_like(max_abs))


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


def summarize(plan: SummaryPlan, tensors: Sequence[torch.Tensor], previous_ranges: torch.Tensor,
              bins: int, before_sample: torch.Tensor | None = None) -> torch.Tensor:
    """Stack every tensor's summary into one float32 tensor [T, 9 + bins] on the tensors' device.

    ``previous_ranges`` [T] keeps histogram edges stable: a range only ever widens. Pass the
    sample taken before an optimizer step as ``before_sample`` to measure the update's size.
    Nothing here synchronises with the host; rows with NaN/Inf are repaired by :func:`finish`.
    """
    count = len(tensors)
    sample = take_sample(plan, tensors)
    per_row = plan.per_row
    low, high, total, total_sq = (torch.zeros(count, device=sample.device) for _ in range(4))
    if plan.whole:  # exact moments of the tensors held whole (NaN/Inf propagate: finish() sees them)
        prefix = sample[: plan.whole_elements]
        for moment, value in ((low, per_row(prefix, "min", True)), (high, per_row(prefix, "max", True)),
                              (total, per_row(prefix, "sum", True)), (total_sq, per_row(prefix * prefix, "sum", True))):
            moment.index_copy_(0, plan.whole_index, value)
    if plan.large:
        reductions = [_reductions(tensors[i].detach().reshape(-1)) for i in plan.large]
        for moment, column in zip((low, high, total, total_sq), zip(*reductions)):
            moment.index_copy_(0, plan.large_index, torch.stack(column).float())
    ranges = torch.maximum(previous_ranges, _quantized_range(torch.maximum(low.abs(), high.abs())))
    ranges = torch.where(torch.isfinite(ranges), ranges, previous_ranges)

    finite = torch.isfinite(sample)
    row_range = torch.where(ranges > 0, ranges.clamp_min(1e-30), torch.ones_like(ranges))[plan.rows]
    bin_index = ((sample / row_range + 1) * (bins / 2)).floor().clamp(0, bins - 1)
    flat_bin = torch.where(finite, plan.rows * bins + bin_index.nan_to_num(0).long(),
                           torch.full_like(plan.rows, count * bins))
    # scatter_add_, not bincount: bincount reads its input's max on the host (a sync on CUDA)
    # and has no deterministic CUDA kernel.
    counts = torch.zeros(count * bins + 1, device=sample.device).scatter_add_(0, flat_bin, torch.ones_like(sample))
    counts = counts[: count * bins].view(count, bins)

    clean = torch.where(finite, sample, torch.zeros_like(sample))
    sampled = per_row(finite.float())
    zeros = per_row((sample == 0).float())
    sample_sq = per_row(clean * clean)
    if before_sample is not None and before_sample.shape == sample.shape:
        change = torch.where(finite, sample - before_sample, torch.zeros_like(sample))
        delta_sq = per_row(change * change)
    else:
        delta_sq = torch.full((count,), float("nan"), device=sample.device)
    stats = torch.stack([low, high, total, total_sq, ranges, sampled, zeros, sample_sq, delta_sq], dim=1)
    return torch.cat([stats, counts], dim=1)


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
    fields[:, FIELDS.index("count")] = plan.numels
    for name in ("min", "max", "sum", "sumsq", "sampled", "sample_zeros", "sample_sq", "delta_sq"):
        fields[:, FIELDS.index(name)] = packed[:, _COLUMN[name]]
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
    ranges_device = packed_device[:, _COLUMN["range"]]
    broken = np.flatnonzero(~np.isfinite(packed[:, :4]).all(axis=1))
    if len(broken):
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
