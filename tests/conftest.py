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


#: Test files that run notebooks, browsers, benchmarks or subprocess jobs: all of them "slow".
SLOW_FILES = ("test_notebooks.py", "test_benchmarks.py", "test_distributed.py")


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``slow`` marker (tests of more than a few seconds; CI runs them too)."""
    if not any(line.startswith("slow:") for line in config.getini("markers")):
        config.addinivalue_line("markers", "slow: takes more than a few seconds (browser, notebooks, "
                                           "benchmarks, trainers, torchrun); CI runs them too")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "browser" in item.path.parts or item.path.name in SLOW_FILES:
            item.add_marker(pytest.mark.slow)
