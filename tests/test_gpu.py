"""GPU paths: summaries stay on the device, one transfer per snapshot, no observer effect.

Skipped where no CUDA device is present (CI); run on a GPU machine with
``python -m pytest tests/test_gpu.py``.
"""
import os
import warnings

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

import nbweights as nbw

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def count_syncs(action):
    """Number of host synchronisations PyTorch reports while ``action`` runs."""
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            action()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def test_resnet18_snapshot_is_one_transfer_and_matches_the_cpu():
    torch.manual_seed(0)
    model = torchvision.models.resnet18().cuda()
    w = nbw.watch(model, every=10**6)
    assert count_syncs(w.snapshot) == 1
    for name, param in model.named_parameters():
        stats = w.history.stats(name)
        assert stats["norm"][-1] == pytest.approx(param.detach().double().norm().item(), rel=1e-4)
        assert stats["max"][-1] == param.detach().max().item()


def _train(watched, device="cuda", steps=5):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(0.2),
                          nn.Flatten(), nn.Linear(8 * 14 * 14, 10)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    w = nbw.watch(model, opt, every=1, activations=True) if watched else None
    if w is not None:
        w.probe(torch.ones(2, 3, 16, 16, device=device))
    torch.manual_seed(1)
    for _ in range(steps):
        opt.zero_grad()
        model(torch.randn(32, 3, 16, 16, device=device)).pow(2).mean().backward()
        opt.step()
    return model, w


def test_no_observer_effect_on_the_gpu():
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    try:
        plain, _ = _train(False)
        again, _ = _train(False)
        observed, w = _train(True)
    finally:
        torch.use_deterministic_algorithms(False)
    same_without = all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), again.state_dict().values()))
    assert same_without, "training itself is not deterministic here"
    for (name, a), b in zip(plain.state_dict().items(), observed.state_dict().values()):
        assert torch.equal(a, b), name
    assert len(w.history.steps("5.weight")) == 6
    assert np.all(np.isfinite(w.history.stats("2", of="activation")["mean"]))
    assert w.history.feature_maps("0").array.shape == (8, 14, 14)
