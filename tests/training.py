"""A deterministic training loop shared by the unit tests."""
from __future__ import annotations

import torch
from torch import nn


def train(model: nn.Module, optimizer: torch.optim.Optimizer | None, steps: int, seed: int = 0,
          inputs: tuple[int, ...] = (8, 4), loss_scale: float = 1.0) -> None:
    """A plain loop: fixed random batches, mean squared output as loss."""
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(*inputs, generator=generator)
        if optimizer is not None:
            optimizer.zero_grad()
        loss = model(x).float().pow(2).mean() * loss_scale
        loss.backward()
        if optimizer is not None:
            optimizer.step()
