"""Batched summaries: many tensors summarised by a fixed number of operations, with the same
results as one tensor at a time (values checked against numpy and torch per tensor)."""
import math

import numpy as np
import pytest
import torch
from torch import nn

import nbweights as nbw
from nbweights.summaries import FIELDS, SummaryPlan, derived_stats, finish, histogram_edges, summarize, take_sample


def run(plan, tensors, bins=8, ranges=None, before=None):
    previous = torch.zeros(len(tensors)) if ranges is None else ranges
    packed = summarize(plan, tensors, previous, bins, before)
    return finish(plan, tensors, packed, packed.cpu().numpy(), bins, before)


def mixed_tensors(count):
    """Small tensors of varied sizes, an empty one, one with NaN/Inf and one larger than the sample."""
    generator = torch.Generator().manual_seed(0)
    tensors = [torch.randn(1 + (7 * i) % 50, generator=generator) * (i + 1) for i in range(count)]
    tensors[3] = torch.zeros(0)
    tensors[5] = torch.tensor([1.0, float("nan"), -2.0, float("inf"), 0.0])
    tensors[-1] = torch.randn(5000, generator=generator)
    return tensors


@pytest.mark.parametrize("count", [8, 40])  # a slice per run, and one segmented reduction
def test_each_tensor_of_a_batch_gets_its_own_exact_summary(count):
    tensors = mixed_tensors(count)
    plan = SummaryPlan([t.numel() for t in tensors], 1000, torch.device("cpu"))
    summary, _ = run(plan, tensors, bins=8)
    stats = derived_stats(summary.fields)
    for i, tensor in enumerate(tensors):
        finite = tensor[torch.isfinite(tensor)].double()
        assert summary.column("count")[i] == tensor.numel()
        assert stats["nonfinite"][i] == tensor.numel() - finite.numel(), i
        if finite.numel() == 0:
            assert summary.counts[i].sum() == 0
            continue
        assert stats["min"][i] == finite.min().item() and stats["max"][i] == finite.max().item(), i
        assert stats["mean"][i] == pytest.approx(finite.mean().item(), rel=1e-5, abs=1e-6), i
        assert stats["norm"][i] == pytest.approx(finite.norm().item(), rel=1e-5), i
        if tensor.numel() <= 1000:  # held whole: the histogram counts every finite element
            expected, _ = np.histogram(finite.numpy(), bins=histogram_edges(summary.ranges[i], 8))
            np.testing.assert_array_equal(summary.counts[i], expected)
            assert summary.column("sampled")[i] == finite.numel()
        else:
            assert summary.counts[i].sum() == 1000
    assert stats["zero_fraction"][5] == pytest.approx(1 / 3)  # of the finite elements sampled


def test_weights_and_gradients_in_one_plan_match_two_plans():
    tensors = mixed_tensors(12)
    grads = [t * 0.01 + 1 for t in tensors]
    plan = SummaryPlan([t.numel() for t in tensors], 1000, torch.device("cpu"), seed=3)
    joint = SummaryPlan.joined(plan, plan)
    before = take_sample(plan, [t - 0.5 for t in tensors])
    together, _ = run(joint, tensors + grads, before=before)
    weights, _ = run(plan, tensors, before=before)
    alone, _ = run(plan, grads)
    np.testing.assert_allclose(together.fields[:12], weights.fields, rtol=1e-6, equal_nan=True)
    np.testing.assert_allclose(together.fields[12:], alone.fields, rtol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(together.counts, np.concatenate([weights.counts, alone.counts]))
    ratio = derived_stats(together.fields)["update_ratio"]
    assert ratio[0] == pytest.approx(0.5 / np.sqrt(np.mean(tensors[0].numpy() ** 2)), rel=1e-5)
    assert np.isnan(ratio[12:]).all()  # gradients measure no update


def test_sample_is_a_copy_so_the_before_sample_does_not_follow_the_step():
    weight = torch.ones(3)
    plan = SummaryPlan([3], None, torch.device("cpu"))
    before = take_sample(plan, [weight])
    weight.add_(1.0)
    assert before.tolist() == [1.0, 1.0, 1.0]
    summary, _ = run(plan, [weight], before=before)
    assert derived_stats(summary.fields)["update_ratio"][0] == pytest.approx(0.5)


def torch_operations(action):
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        action()
    return sum(1 for e in profile.events()
               if e.name.startswith("aten::") and (e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::")))


def test_operations_per_summary_do_not_grow_with_the_number_of_small_tensors():
    counts = {}
    for count in (20, 400):
        tensors = [torch.randn(16) for _ in range(count)]
        plan = SummaryPlan([16] * count, 4096, torch.device("cpu"))
        previous = torch.zeros(count)
        summarize(plan, tensors, previous, 64)
        counts[count] = torch_operations(lambda: summarize(plan, tensors, previous, 64))
    assert counts[400] == counts[20] and counts[20] < 60


def test_parameters_of_two_dtypes_are_grouped_apart_and_both_summarised():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    model[1].to(torch.bfloat16)
    w = nbw.watch(model, every=1)
    assert len(w._live.groups) == 2
    for name, param in model.named_parameters():
        norm = w.history.stats(name)["norm"][-1]
        assert norm == pytest.approx(param.detach().float().norm().item(), rel=1e-3), name
    assert FIELDS[0] == "count"
