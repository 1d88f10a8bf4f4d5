"""The local halves of the distributed merge, in one process: blocks of tensors summarised apart
and added up give the one-process summary of the whole tensors (counts exactly)."""
from __future__ import annotations

import numpy as np
import torch

from nbweights.capture.layouts import spread
from nbweights.capture.shardsummaries import agreed_ranges, local_counts, local_moments, merged, take_samples
from nbweights.summaries import FIELDS, SummaryPlan, finish, summarize

BINS = 64


def whole_summary(tensors):
    plan = SummaryPlan([t.numel() for t in tensors], None, torch.device("cpu"))
    packed = summarize(plan, tensors, torch.zeros(len(tensors)), BINS)
    return finish(plan, tensors, packed, packed.numpy(), BINS)[0]


def merged_from_blocks(tensors, cuts):
    """Summarise each tensor's flat elements cut at ``cuts[i]`` as two ranks would, then merge."""
    blocks = [[t.reshape(-1)[:cut] for t, cut in zip(tensors, cuts)],
              [t.reshape(-1)[cut:] for t, cut in zip(tensors, cuts)]]
    moments = [local_moments(block) for block in blocks]
    low = torch.minimum(moments[0][:, 0], moments[1][:, 0])  # what the all-reduce MAX of -min gives
    high = torch.maximum(moments[0][:, 1], moments[1][:, 1])
    ranges = agreed_ranges(low, high, torch.zeros(len(tensors)))
    summed = sum(local_counts([True] * len(tensors), take_samples(block, [None] * len(tensors)), ranges, m, BINS)
                 for block, m in zip(blocks, moments))
    return merged([t.numel() for t in tensors], low, high, ranges, summed.numpy(), False)


def test_blocks_add_up_to_the_summary_of_the_whole_tensor():
    torch.manual_seed(0)
    tensors = [torch.randn(161, 80) * 0.05, torch.randn(7) * 3, torch.zeros(5),
               torch.tensor([1.0, float("nan"), -2.0, float("inf"), 0.5]), torch.randn(1, 5)]
    cuts = [81 * 80, 4, 3, 2, 5]  # uneven; the last one's second block is empty (a 1-row weight)
    expected, got = whole_summary(tensors), merged_from_blocks(tensors, cuts)
    np.testing.assert_array_equal(got.counts, expected.counts)
    np.testing.assert_array_equal(got.ranges, expected.ranges)
    for name in ("count", "nonfinite", "min", "max", "sampled", "sample_zeros"):
        np.testing.assert_array_equal(got.column(name), expected.column(name), err_msg=name)
    np.testing.assert_allclose(got.column("sum"), expected.column("sum"), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got.column("sumsq"), expected.column("sumsq"), rtol=1e-5)
    assert got.column("nonfinite")[3] == 2 and got.column("min")[3] == -2.0  # NaN/Inf left out
    assert np.isnan(got.fields[:, FIELDS.index("delta_sq")]).all()  # no update measured


def test_the_update_size_compares_with_a_copy_taken_before_the_step():
    weight = torch.ones(10)
    before = take_samples([weight], [None], copy=True)
    with torch.no_grad():
        weight.add_(torch.arange(10.0))  # an optimizer's in-place step
    now = take_samples([weight], [None])
    moments = local_moments([weight])
    counts = local_counts([True], now, torch.tensor([16.0]), moments, BINS, before)
    assert counts[0, 7] == float((torch.arange(10.0) ** 2).sum())  # delta_sq: 285, not 0


def test_replicated_tensors_are_shared_out_by_size():
    owners = spread([100, 10, 90, 5, 1], 2)
    # Largest first to the least loaded: 100 -> 0; 90 -> 1; 10 -> 1 (100 each); 5 -> 0 (the tie's
    # first); 1 -> 1. Loads 105 and 101.
    assert owners == [0, 1, 1, 0, 1]
    assert spread([3, 3], 1) == [0, 0]
