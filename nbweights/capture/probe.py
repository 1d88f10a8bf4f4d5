"""Run a fixed input batch through the model to see what chosen layers output, changing nothing.

The probe runs in evaluation mode (BatchNorm uses its running statistics and updates none,
dropout is off), without autograd, inside a forked random-number state, and every module's
training flag is restored afterwards, so training goes on exactly as without it.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: Feature maps kept per module: channels of the first probe example, at most this side.
MAX_CHANNELS = 16
MAX_SIDE = 32


def _feature_maps(output: Any, channels: int) -> torch.Tensor | None:
    tensor = output[0] if isinstance(output, (tuple, list)) else output
    if not isinstance(tensor, torch.Tensor) or tensor.dim() != 4:
        return None
    maps = tensor[0, :channels].float()
    if max(maps.shape[-2:]) > MAX_SIDE:
        maps = F.adaptive_avg_pool2d(maps, (min(maps.shape[-2], MAX_SIDE), min(maps.shape[-1], MAX_SIDE)))
    return maps


def run_probe(model: nn.Module, inputs: torch.Tensor, modules: list[tuple[str, nn.Module]],
              channels: int = MAX_CHANNELS) -> dict[str, np.ndarray]:
    """Feature maps ``{module name: [channels, h, w]}`` of the first example of ``inputs``."""
    captured: dict[str, torch.Tensor] = {}

    def keep(name: str):
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            maps = _feature_maps(output, channels)
            if maps is not None:
                captured[name] = maps
        return hook

    handles = [module.register_forward_hook(keep(name)) for name, module in modules]
    training = {module: module.training for module in model.modules()}
    devices = [inputs.device.index or 0] if inputs.device.type == "cuda" else []
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=devices):
            model.eval()
            model(inputs)
    finally:
        for module, flag in training.items():
            module.training = flag
        for handle in handles:
            handle.remove()
    if not captured:
        return {}
    names = list(captured)
    flat = torch.cat([captured[n].reshape(-1) for n in names]).cpu().numpy()  # one transfer
    result, offset = {}, 0
    for name in names:
        shape = tuple(captured[name].shape)
        size = int(np.prod(shape))
        result[name] = flat[offset:offset + size].reshape(shape)
        offset += size
    return result
