"""Summaries of tensors whose statistics are known by hand."""
import math

import numpy as np
import pytest
import torch

from nbweights.summaries import (FIELDS, SummaryPlan, derived_stats, finish, histogram_edges, merge,
                                 summarize)


def run(tensors, bins=8, sample_size=None, ranges=None, before=None):
    plan = SummaryPlan([t.numel() for t in tensors], sample_size, torch.device("cpu"))
    previous = torch.zeros(len(tensors)) if ranges is None else ranges
    packed = summarize(plan, tensors, previous, bins, before)
    return finish(plan, tensors, packed, packed.cpu().numpy(), bins, before)


def test_stats_and_histogram_of_a_known_tensor():
    x = torch.tensor([-1.0, 0.0, 0.0, 0.5, 1.0, 3.0])
    summary, ranges = run([x], bins=8)
    stats = derived_stats(summary.fields)
    assert stats["min"][0] == -1.0 and stats["max"][0] == 3.0
    assert stats["mean"][0] == pytest.approx(3.5 / 6)
    assert stats["norm"][0] == pytest.approx(math.sqrt(1 + 0.25 + 1 + 9))
    assert stats["zero_fraction"][0] == pytest.approx(2 / 6)
    assert stats["nonfinite"][0] == 0
    # max |x| = 3 -> range rounds up to the next 2**(k/4): 2**1.75 = 3.36
    assert ranges[0].item() == pytest.approx(2 ** 1.75)
    edges = histogram_edges(summary.ranges[0], 8)
    expected, _ = np.histogram(x.numpy(), bins=edges)
    np.testing.assert_array_equal(summary.counts[0], expected)


def test_nan_and_inf_are_counted_and_do_not_spoil_stats_or_histogram():
    x = torch.tensor([1.0, float("nan"), -2.0, float("inf"), 0.5, float("-inf")])
    summary, _ = run([x, torch.ones(3)], bins=4)
    stats = derived_stats(summary.fields)
    assert stats["nonfinite"][0] == 3
    assert stats["min"][0] == -2.0 and stats["max"][0] == 1.0
    assert stats["mean"][0] == pytest.approx(-0.5 / 3)
    assert summary.counts[0].sum() == 3  # only the finite values are binned
    assert stats["nonfinite"][1] == 0 and stats["mean"][1] == 1.0


def test_all_nan_tensor_gives_nan_min_and_no_bins():
    summary, _ = run([torch.full((5,), float("nan"))])
    stats = derived_stats(summary.fields)
    assert stats["nonfinite"][0] == 5 and math.isnan(stats["min"][0])
    assert summary.counts[0].sum() == 0


def test_ranges_only_widen_so_edges_stay_comparable():
    x = torch.tensor([0.9, -0.2])
    _, first = run([x])
    _, second = run([x * 0.1], ranges=first)
    assert second[0] == first[0] == 1.0
    _, third = run([x * 10], ranges=second)
    assert third[0].item() == pytest.approx(2 ** (math.ceil(4 * math.log2(9)) / 4))


def test_sampled_histogram_counts_sample_and_stats_stay_exact():
    torch.manual_seed(0)
    x = torch.randn(100_000)
    summary, _ = run([x], bins=16, sample_size=1000)
    assert summary.counts[0].sum() == 1000
    stats = derived_stats(summary.fields)
    assert stats["max"][0] == x.max().item()  # exact, not from the sample
    assert stats["mean"][0] == pytest.approx(x.mean().item(), abs=1e-5)


def test_update_ratio_measures_the_change_since_before():
    x = torch.ones(10)
    before = x.clone()
    after = x + 0.1
    summary, _ = run([after], before=before)
    assert derived_stats(summary.fields)["update_ratio"][0] == pytest.approx(0.1 / 1.1)
    summary, _ = run([after])
    assert math.isnan(derived_stats(summary.fields)["update_ratio"][0])


def test_shards_merge_to_the_summary_of_the_whole_tensor():
    torch.manual_seed(1)
    whole = torch.randn(1000)
    ranges = torch.tensor([4.0])
    full, _ = run([whole], ranges=ranges)
    left, _ = run([whole[:300]], ranges=ranges)
    right, _ = run([whole[300:]], ranges=ranges)
    merged = merge(left, right)
    np.testing.assert_array_equal(merged.counts, full.counts)
    for name in ("count", "nonfinite", "min", "max", "sampled"):
        assert merged.column(name)[0] == full.column(name)[0], name
    np.testing.assert_allclose(merged.column("sum"), full.column("sum"), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(merged.column("sumsq"), full.column("sumsq"), rtol=1e-5)


def test_merge_refuses_different_edges():
    a, _ = run([torch.ones(2)], ranges=torch.tensor([1.0]))
    b, _ = run([torch.ones(2)], ranges=torch.tensor([2.0]))
    with pytest.raises(ValueError, match="same histogram ranges"):
        merge(a, b)


def test_half_precision_tensors_are_summarised_in_float32():
    x = torch.tensor([1.0, -3.0, 2.0], dtype=torch.bfloat16)
    summary, _ = run([x])
    assert derived_stats(summary.fields)["norm"][0] == pytest.approx(math.sqrt(14))
    assert len(FIELDS) == summary.fields.shape[1]
