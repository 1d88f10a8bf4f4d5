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
