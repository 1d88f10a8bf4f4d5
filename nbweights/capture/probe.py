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


class Probe:
    """A fixed input batch and the modules whose feature maps it shows.

    Its forward hooks are registered once, here, and do nothing outside :meth:`run`: a capture
    adds and removes no hook, so an interrupt in the middle of one leaves none behind.
    """

    def __init__(self, inputs: torch.Tensor, modules: list[tuple[str, nn.Module]], channels: int = MAX_CHANNELS):
        self.inputs = inputs
        self.channels = channels
        self.handles: list[Any] = []
        self._captured: dict[str, torch.Tensor] | None = None
        for name, module in modules:
            self.handles.append(module.register_forward_hook(self._keep(name)))

    def _keep(self, name: str):
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if self._captured is not None:
                maps = _feature_maps(output, self.channels)
                if maps is not None:
                    self._captured[name] = maps
        return hook

    def run(self, model: nn.Module) -> dict[str, np.ndarray]:
        """Feature maps ``{module name: [channels, h, w]}`` of the first example of the batch."""
        captured = self._captured = {}
        training = {module: module.training for module in model.modules()}
        devices = [self.inputs.device.index or 0] if self.inputs.device.type == "cuda" else []
        try:
            with torch.no_grad(), torch.random.fork_rng(devices=devices):
                model.eval()
                model(self.inputs)
        finally:
            self._captured = None
            for module, flag in training.items():
                module.training = flag
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
