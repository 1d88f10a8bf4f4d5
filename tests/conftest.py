"""Shared fixtures: small models (the training loop is in training.py: a conftest module cannot be
imported by name, as tests/browser has one too)."""
from __future__ import annotations

import pytest
import torch
from torch import nn


@pytest.fixture
def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))


def pytest_configure(config):
    # Registered here too (tests/browser's conftest has it): whichever runs first, once.
    if not any(line.startswith("slow:") for line in config.getini("markers")):
        config.addinivalue_line("markers", "slow: takes more than a few seconds (deselect with -m 'not slow')")
