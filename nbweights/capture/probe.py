"""Run a fixed input batch through the model to see what chosen layers output, changing nothing.

The probe runs in evaluation mode (BatchNorm uses its running statistics and updates none,
dropout is off), without autograd, inside a forked random-number state, and every module's
training flag is restored afterwards, so training goes on exactly as without it. The same rules hold for the attention maps
(:mod:`.attention`) and attributions (:mod:`.attributions`) recorded with it.
"""
from __future__ import annotations

from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .attention import fast_path_off, kept_map
from .attributions import attribute

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


def _set_training(modules: list[nn.Module], flags: list[bool]) -> None:
    """Give each module its training flag back."""
    for module, flag in zip(modules, flags):
        module.training = flag


@contextmanager
def unchanged(model: nn.Module, inputs: torch.Tensor) -> Iterator[None]:
    """Evaluation mode and a forked random state while inside; every module's training flag
    restored on leaving, so that what runs inside leaves training as it was."""
    modules = list(model.modules())
    flags = [module.training for module in modules]
    devices = [inputs.device.index or 0] if inputs.device.type == "cuda" else []
    with ExitStack() as restore:
        # The flags go back by one call registered before any changes, made as the block ends
        # however it ends: no line of ours runs in between for an interrupt to land on.
        restore.callback(_set_training, modules, flags)
        with torch.random.fork_rng(devices=devices):
            model.eval()
            yield


@torch.no_grad()  # a decorator, not a with block: see summaries.take_sample
def _forward_without_grad(model: nn.Module, inputs: torch.Tensor) -> Any:
    return model(inputs)


def _to_numpy(tensors: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """The tensors as numpy arrays, moved to the CPU in one transfer."""
    if not tensors:
        return {}
    names = list(tensors)
    flat = torch.cat([tensors[n].reshape(-1) for n in names]).cpu().numpy()
    result, offset = {}, 0
    for name in names:
        shape = tuple(tensors[name].shape)
        size = int(np.prod(shape))
        result[name] = flat[offset:offset + size].reshape(shape)
        offset += size
    return result


@dataclass
class Probe:
    """What ``Watcher.probe`` fixed: the inputs, the modules whose feature maps and attention
    maps are kept, and whether (and for which class) attributions are computed.

    Its forward hooks are registered once, by :meth:`install`, and keep something only while
    :meth:`record` runs: a capture adds and removes no hook, so an interrupt in the middle of
    one leaves none behind. :meth:`remove` takes them away.
    """

    inputs: torch.Tensor
    modules: list[tuple[str, nn.Module]]
    attention: list[tuple[str, nn.Module]] = field(default_factory=list)
    attributions: bool = False
    target: torch.Tensor | None = None
    handles: list[Any] = field(default_factory=list)
    _maps: dict[str, torch.Tensor] | None = None
    _weights: dict[str, torch.Tensor] | None = None

    def install(self) -> "Probe":
        try:
            for name, module in self.modules:
                self.handles.append(module.register_forward_hook(self._keep_maps(name)))
            for name, module in self.attention:
                self.handles.append(module.register_forward_pre_hook(self._keep_attention(name), with_kwargs=True))
        except BaseException:
            self.remove()
            raise
        return self

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()

    def _keep_maps(self, name: str) -> Any:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if self._maps is not None:
                maps = _feature_maps(output, MAX_CHANNELS)
                if maps is not None:
                    self._maps[name] = maps
        return hook

    def _keep_attention(self, name: str) -> Any:
        def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
            if self._weights is not None:
                self._weights[name] = kept_map(module, args, kwargs)
        return hook

    def run(self, model: nn.Module) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Feature maps ``{module name: [channels, h, w]}`` of the first example of the inputs,
        and the attention weights ``{module name: [heads, queries, keys]}`` of its first sequence."""
        maps, weights = self._maps, self._weights = {}, {}
        try:
            with unchanged(model, self.inputs), fast_path_off() if self.attention else nullcontext():
                _forward_without_grad(model, self.inputs)
        finally:
            self._maps = self._weights = None
        return _to_numpy(maps), _to_numpy(weights)

    def record(self, model: nn.Module, history: Any, step: int) -> None:
        """Run the probe on ``model`` and write what it saw into ``history`` at ``step``."""
        maps, weights = self.run(model)
        for name, array in maps.items():
            history.record_feature_maps(name, step, array)
        for name, array in weights.items():
            history.record_attention(name, step, array)
        if self.attributions:
            with unchanged(model, self.inputs):
                found = attribute(model, self.inputs, self.target)
            history.record_attributions(step, inputs=found.inputs, maps=found.maps, delta=found.delta,
                                        targets=found.targets, alphas=found.alphas, interior=found.interior)


def make_probe(model: nn.Module, inputs: Any, modules: Any, target: Any, attributions: bool, attention: bool) -> Probe:
    """The Probe that ``Watcher.probe`` asked for, every argument checked (clear errors at the call)."""
    from .attention import attention_modules
    from .attributions import check_inputs, integrated_gradients_class
    from .selection import select_modules
    if not isinstance(inputs, torch.Tensor):
        raise TypeError(f"probe() expected a tensor batch, got {type(inputs).__name__}")
    if not isinstance(attributions, bool) or not isinstance(attention, bool):
        raise TypeError(f"probe() expected attributions= and attention= True or False, got "
                        f"{attributions!r} and {attention!r}")
    targets = None
    if attributions:
        integrated_gradients_class()  # ImportError naming the extra, now rather than at a capture
        targets = check_inputs(inputs, target)
    elif target is not None:
        raise ValueError("probe(): target= is the class attributed; it needs attributions=True")
    chosen = select_modules(model, True if modules is None else modules,
                            (nn.Conv1d, nn.Conv2d, nn.Conv3d) if modules is None else ())
    return Probe(inputs.detach().clone(), chosen, attention_modules(model) if attention else [], attributions,
                 targets).install()
