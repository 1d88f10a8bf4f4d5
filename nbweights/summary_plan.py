"""What to read from one group of tensors, prepared once: the sample, its layout and indices.

A :class:`SummaryPlan` is built when a group is watched; at each capture,
:func:`nbweights.summaries.summarize` uses its prepared index tensors, so that the number of
torch operations per capture does not grow with the number of small tensors.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


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


def end_to_end(tensors: list[torch.Tensor]) -> torch.Tensor:
    """The tensors' elements laid end to end (a view for one tensor). One ``cat`` when all are 1-D
    (biases, a ParameterList of vectors): a third of the time of flattening each first."""
    if len(tensors) > 1 and all(t.dim() == 1 for t in tensors):
        return torch.cat(tensors)
    return torch._C._nn.flatten_dense_tensors(tensors)


#: Up to this many tensors, per-tensor reductions come from one slice each (a few
#: microseconds); beyond it, from one segmented reduction over all of them.
_FEW_RUNS = 16
#: Runs this short on average get their min and max from one scatter over all elements (about
#: 10 ns an element); longer ones from a reduction per run (about 4 us a run).
_SHORT_RUN = 256


class SummaryPlan:
    """What to read from one group of tensors on one device, prepared once: sample indices,
    the layout of the concatenated sample and the index tensors that map it to rows.

    Built once per watched group; :func:`take_sample` and :func:`summarize` use it at each
    capture, so that a capture runs a fixed, small number of batched operations whatever the
    number of small tensors. :meth:`joined` lays two plans end to end (weights, then gradients)
    so that one :func:`summarize` covers both.
    """

    def __init__(self, numels: Sequence[int], sample_size: int | None, device: torch.device,
                 seed: int = 0):
        self.numels = list(numels)
        self.device = torch.device(device)
        self.indices = [None if idx is None else idx.to(device)
                        for idx in (sample_indices(n, sample_size, seed + i) for i, n in enumerate(self.numels))]
        whole = [i for i, (n, idx) in enumerate(zip(self.numels, self.indices)) if idx is None and n > 0]
        self._prepare(whole + [i for i in range(len(self.numels)) if i not in set(whole)])

    @classmethod
    def joined(cls, first: "SummaryPlan", second: "SummaryPlan") -> "SummaryPlan":
        """One plan for ``first``'s tensors followed by ``second``'s; ``first``'s sample is the
        start of its sample (so a before-sample of ``first`` measures the update here too)."""
        plan = cls.__new__(cls)
        plan.numels, plan.device = first.numels + second.numels, first.device
        plan.indices = first.indices + second.indices
        plan._prepare(first.order + [len(first.numels) + i for i in second.order])
        return plan

    def _prepare(self, order: list[int]) -> None:
        device, numels = self.device, self.numels
        #: Tensors no larger than the sample are in it whole: their exact moments come from
        #: reductions over the sample. The others ("large") get their own exact reductions.
        self.whole = [i for i in order if self.indices[i] is None and numels[i] > 0]
        self.large = [i for i in order if i not in set(self.whole)]
        self.read = [i for i in self.large if numels[i] > 0]  # large and not empty
        #: The sample holds one run per tensor in this order (whole tensors first in a plain plan).
        self.order = order
        lengths = [numels[i] if self.indices[i] is None else len(self.indices[i]) for i in order]
        self.run_lengths = lengths
        self.sample_length = sum(lengths)
        self.numel_array = np.asarray(numels, dtype=np.float64)  # the count column of a summary
        starts = np.concatenate([[0], np.cumsum(lengths)]).astype(int).tolist()
        self._spans = list(zip(starts[:-1], starts[1:]))
        self.whole_elements = sum(n for i, n in zip(order, lengths) if i in set(self.whole))
        #: Consecutive whole tensors are flattened by one call; each large one is gathered.
        self._pieces: list[list[int] | int] = []
        for i in order:
            if i in set(self.whole):
                if self._pieces and isinstance(self._pieces[-1], list):
                    self._pieces[-1].append(i)
                else:
                    self._pieces.append([i])
            elif numels[i] > 0:
                self._pieces.append(i)
        #: Row (tensor position) of each sample element.
        self.rows = torch.repeat_interleave(torch.tensor(order, dtype=torch.long),
                                            torch.tensor(lengths, dtype=torch.long)).to(device)
        self._lengths = torch.tensor(lengths, dtype=torch.long, device=device)
        self.order_index = torch.tensor(order, dtype=torch.long, device=device)
        self.whole_index = torch.tensor(self.whole, dtype=torch.long, device=device)
        self.large_index = torch.tensor(self.large, dtype=torch.long, device=device)
        #: Positions among the runs of the large tensors, and of the read ones among the large.
        self._large_runs = torch.tensor([order.index(i) for i in self.large], dtype=torch.long, device=device)
        self._read_in_large = torch.tensor([self.large.index(i) for i in self.read], dtype=torch.long,
                                           device=device)
        #: From the order of the runs back to tensor order (None: they are in order).
        self.to_tensor_order = None if order == list(range(len(order))) else \
            torch.tensor(np.argsort(order), dtype=torch.long, device=device)
        self._run_numels = torch.tensor([numels[i] for i in order], dtype=torch.float32, device=device)
        self._nonempty_runs = [r for r, n in enumerate(lengths) if n > 0]
        self._whole_runs = [i in set(self.whole) for i in order]
        self._nonempty_index = torch.tensor(self._nonempty_runs, dtype=torch.long, device=device)
        # segment_reduce checks its lengths on the host: a sync per call on CUDA, so CPU only.
        self._segment = hasattr(torch, "segment_reduce") and self.device.type == "cpu"
        self._by_bins: dict[int, torch.Tensor] = {}
        self._no_update = torch.full((len(order), 1), float("nan"), device=device)
        self._no_before: dict[int, torch.Tensor] = {}
        # Scalars as 0-d tensors made once: a Python number is wrapped in a new tensor at each call.
        self._one = torch.ones((), device=device)
        self._zero = torch.zeros((), device=device)
        self._nan = torch.full((), float("nan"), device=device)
        self._half_bins: dict[int, torch.Tensor] = {}
        self._expanded_lengths: dict[int, torch.Tensor] = {}
        #: How each run's min and max are read: one scatter over every element ("scatter"),
        #: one ``aminmax`` per run ("slices") or two multi-tensor calls ("foreach").
        if self.sample_length <= _SHORT_RUN * len(order) or not hasattr(torch, "_foreach_max"):
            self._min_max = "scatter"
            self._run_of_element = torch.repeat_interleave(torch.arange(len(order)),
                                                           torch.tensor(lengths, dtype=torch.long)).to(device)
        else:
            self._min_max = "slices" if len(order) <= _FEW_RUNS else "foreach"

    def first_bins(self, bins: int) -> torch.Tensor:
        """Index of the first histogram bin of each sample element's row, in a flat [T * bins]."""
        if bins not in self._by_bins:
            self._by_bins[bins] = self.rows * bins
        return self._by_bins[bins]

    def half_bins(self, bins: int) -> torch.Tensor:
        """``bins / 2`` as a 0-d float32 tensor (what a sample over its range is scaled by)."""
        if bins not in self._half_bins:
            self._half_bins[bins] = torch.full((), bins / 2, device=self.device)
        return self._half_bins[bins]

    def unmeasured(self, covered: int) -> tuple[torch.Tensor, torch.Tensor]:
        """For a before-sample of the first ``covered`` sample elements: zeros for the change of
        the elements after them, and which runs it covers ([runs, 1] bool)."""
        if covered not in self._no_before:
            tail = torch.zeros(self.sample_length - covered, device=self.device)
            runs = torch.tensor([[b <= covered] for _, b in self._spans], device=self.device)
            self._no_before[covered] = (tail, runs)
        return self._no_before[covered]

    def run_sums(self, columns: torch.Tensor) -> torch.Tensor:
        """Sums of ``columns`` [k, sample elements] over each run: [runs, k], in run order."""
        if len(self._spans) <= _FEW_RUNS:  # a view per run (one call) beats a segmented reduction here
            return torch.stack([run.sum(1) for run in columns.split_with_sizes(self.run_lengths, 1)])
        if self._segment:
            try:  # reduces contiguous runs: about half the time of index_add_ on CPU
                lengths = self._expanded_lengths.get(len(columns))
                if lengths is None:
                    lengths = self._expanded_lengths[len(columns)] = self._lengths.expand(len(columns), -1)
                return torch.segment_reduce(columns, "sum", lengths=lengths, axis=1).T
            except (RuntimeError, NotImplementedError):
                self._segment = False  # not on this device: scatter from now on
        out = torch.zeros(len(columns), len(self.numels), dtype=columns.dtype, device=columns.device)
        out.index_add_(1, self.rows, columns)
        return out.T.index_select(0, self.order_index)

    def run_min_max(self, sample: torch.Tensor) -> torch.Tensor:
        """``[min, max]`` of each run of the sample: [runs, 2], in run order (0 for empty runs;
        possibly 0 for the runs of large tensors, whose exact min and max are read apart)."""
        if self._min_max == "scatter":  # an empty run keeps its 0
            found = torch.zeros(2, len(self._spans), device=sample.device)
            found[0].scatter_reduce_(0, self._run_of_element, sample, "amin", include_self=False)
            found[1].scatter_reduce_(0, self._run_of_element, sample, "amax", include_self=False)
            return found.T
        runs = sample.split_with_sizes(self.run_lengths)
        nonempty = self._nonempty_runs
        if self._min_max == "slices":  # one aminmax per whole tensor's run, 0 for the others
            zeros = (self._zero, self._zero)
            return torch.stack([value for r, whole in enumerate(self._whole_runs)
                                for value in (torch.aminmax(runs[r]) if whole else zeros)]).view(-1, 2)
        else:  # two multi-tensor calls over views of the runs, whatever their number
            negated = sample.neg().split_with_sizes(self.run_lengths)
            found = torch.stack(torch._foreach_max([negated[r] for r in nonempty])
                                + torch._foreach_max([runs[r] for r in nonempty])).view(2, -1)
            found[0].neg_()
            found = found.T
        if len(nonempty) == len(self._spans):
            return found
        return torch.zeros(len(self._spans), 2, device=sample.device).index_copy_(0, self._nonempty_index, found)
