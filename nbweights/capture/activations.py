"""Forward hooks that summarise chosen modules' outputs on captured steps.

On a step that is not captured a hook does one comparison. On a captured step it summarises the
output on its device (histogram, moments, zeros, dead units, saturation) without keeping the
output alive; the small result waits for the step's single transfer to the host.
"""
from __future__ import annotations

import weakref
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from .groups import empty_summary
from ..summaries import _COLUMN, FIELDS, Summary, SummaryPlan, summarize, unpack

#: Modules whose outputs ``activations=True`` summarises.
DEFAULT_ACTIVATION_TYPES: tuple[type, ...] = (
    nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d,
    nn.ReLU, nn.LeakyReLU, nn.ReLU6, nn.ELU, nn.GELU, nn.SiLU, nn.Mish, nn.Softplus,
    nn.Tanh, nn.Sigmoid, nn.Hardtanh, nn.Hardsigmoid, nn.Hardswish,
)
#: Outputs whose magnitude passes this (tanh scale) count as saturated.
SATURATION = 0.99
#: Names of the columns of :attr:`ActivationHooks.extra` rows.
EXTRA_FIELDS = ("units", "dead_units", "saturated_fraction")


def _first_tensor(output: Any) -> torch.Tensor | None:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    return None


def unit_dims(module: nn.Module, output: torch.Tensor) -> tuple[int, ...]:
    """Dimensions to reduce over to get one value per unit: all but channels (conv, 4-D+) or
    all but the last (linear layers, sequences)."""
    channel = 1 if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) or output.dim() >= 4 else output.dim() - 1
    return tuple(d for d in range(output.dim()) if d != channel)


def saturation_scale(module: nn.Module) -> tuple[float, float] | None:
    """``(scale, shift)`` mapping the module's output onto tanh's [-1, 1], or None if it cannot saturate."""
    if isinstance(module, (nn.Tanh, nn.Hardtanh)):
        return 1.0, 0.0
    if isinstance(module, (nn.Sigmoid, nn.Hardsigmoid)):
        return 2.0, -1.0
    return None


class ActivationHooks:
    """Forward hooks on chosen modules; ``due()`` says whether the current forward is captured.

    A hook that fails calls ``failed(name, error)`` and does nothing more (training goes on).
    """

    def __init__(self, modules: list[tuple[str, nn.Module]], bins: int, sample_size: int,
                 due: Callable[[], bool], failed: Callable[[str, Exception], None]):
        self.names = [name for name, _ in modules]
        self.bins = bins
        self._sample_size = sample_size
        self._due = due
        self._failed = failed
        self._broken: set[str] = set()
        self._ranges: dict[str, torch.Tensor] = {}
        self._plans: dict[tuple[str, int], SummaryPlan] = {}
        self._pending: dict[str, tuple[torch.Tensor, torch.Tensor, SummaryPlan]] = {}
        self._paused = False
        self._modules = [(name, weakref.ref(module)) for name, module in modules]
        self.handles: list[Any] = []
        self.attach()

    def attach(self) -> None:
        """Register the forward hooks (again, after :meth:`remove`); modules since deleted are skipped."""
        self.remove()
        for name, ref in self._modules:
            module = ref()
            if module is not None:
                self.handles.append(module.register_forward_hook(self._hook(name, module)))

    def _hook(self, name: str, module: nn.Module) -> Callable[..., None]:
        def record(module: nn.Module, args: Any, output: Any) -> None:
            if self._paused or not module.training or name in self._broken or not self._due():
                return
            try:
                tensor = _first_tensor(output)
                if tensor is not None and tensor.is_floating_point() and tensor.numel():
                    self._pending[name] = self._summarize(name, module, tensor.detach())
            except Exception as error:  # never into the user's forward
                self._broken.add(name)
                self._pending.pop(name, None)
                self._failed(name, error)
        return record

    def _summarize(self, name: str, module: nn.Module, output: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor, SummaryPlan]:
        key = (name, output.numel())
        if key not in self._plans:
            if len(self._plans) > 4 * len(self.names):  # batch sizes vary: keep the cache small
                self._plans.clear()
            self._plans[key] = SummaryPlan([output.numel()], self._sample_size, output.device, seed=len(self._plans))
        plan = self._plans[key]
        ranges = self._ranges.get(name)
        if ranges is None or ranges.device != output.device:
            ranges = self._ranges[name] = torch.zeros(1, device=output.device)
        packed = summarize(plan, [output], ranges, self.bins)
        units_alive = (output != 0).any(dim=unit_dims(module, output)) if output.dim() > 1 else output != 0
        scale = saturation_scale(module)
        if scale is None:
            saturated = torch.full((), float("nan"), device=output.device)
        else:
            sample = output.reshape(-1)[plan.indices[0]] if plan.indices[0] is not None else output.reshape(-1)
            saturated = ((sample.float() * scale[0] + scale[1]).abs() >= SATURATION).float().mean()
        extra = torch.stack([torch.tensor(float(units_alive.numel()), device=output.device),
                             (~units_alive).sum().float(), saturated.float()])
        return packed, extra, plan

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Record nothing inside (the probe's forward is no training step)."""
        self._paused = True
        try:
            yield
        finally:
            self._paused = False

    def collect(self) -> tuple[Summary, np.ndarray]:
        """Summaries of the outputs recorded since the last collect, one row per module (NaN
        where a module did not run), and rows of :data:`EXTRA_FIELDS`. One host transfer."""
        pending = [(name, *self._pending[name]) for name in self.names if name in self._pending]
        self._pending.clear()
        summary = empty_summary(len(self.names), self.bins)
        extra = np.full((len(self.names), len(EXTRA_FIELDS)), np.nan)
        if not pending:
            return summary, extra
        parts = [t.reshape(-1) for _, packed, more, _ in pending for t in (packed, more)]
        same_device = len({t.device for t in parts}) == 1
        host = (torch.cat(parts).cpu() if same_device else torch.cat([t.cpu() for t in parts])).numpy()
        offset = 0
        for name, packed, more, plan in pending:
            row, size = self.names.index(name), packed.numel()
            one, self._ranges[name] = finish_without_tensor(plan, packed, host[offset:offset + size].reshape(1, -1))
            summary.fields[row], summary.counts[row], summary.ranges[row] = one.fields[0], one.counts[0], one.ranges[0]
            extra[row] = host[offset + size:offset + size + more.numel()]
            offset += size + more.numel()
        return summary, extra

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()


def finish_without_tensor(plan: SummaryPlan, packed: torch.Tensor, host: np.ndarray
                          ) -> tuple[Summary, torch.Tensor]:
    """Like :func:`~nbweights.summaries.finish` for an output that is gone: it cannot be read
    again, so NaN/Inf are estimated from the sample (at least 1) and min/max stay NaN."""
    summary = unpack(plan, host)
    if not np.isfinite(host[0, :4]).all():
        # Count what the sample saw: sampled finite elements vs sample size.
        sample_size = len(plan.rows)
        summary.fields[0, FIELDS.index("nonfinite")] = max(
            1.0, (sample_size - host[0, _COLUMN["sampled"]]) * plan.numels[0] / max(sample_size, 1))
    return summary, packed[:, _COLUMN["range"]]
