"""Integrated and interior gradients of the probe batch: which input pixels a prediction rests on.

Integrated gradients (Sundararajan et al., 2017) come from Captum's ``IntegratedGradients``, the
field's implementation, with a zero baseline; interior gradients are the plain gradients of the
same class score at scaled inputs ``alpha * x``. Both take gradients with respect to the input
only (``torch.autograd.grad``), so the parameters' ``.grad`` are never written. Captum is an
optional dependency, imported when attributions are first asked for.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

#: Probe samples attributed at most, and the steps of the integral (Riemann sums), per capture.
MAX_SAMPLES = 4
N_STEPS = 32
#: Scales of the input at which interior gradients are taken.
ALPHAS = (0.02, 0.1, 0.3, 1.0)
INSTALL = "pip install nbweights[attributions]"


@dataclass(frozen=True)
class Attributions:
    """One capture's attributions of the probe samples, as numpy arrays on the CPU."""

    inputs: np.ndarray      # [samples, *input shape]
    maps: np.ndarray        # integrated gradients, the inputs' shape
    delta: np.ndarray       # [samples] Captum's convergence delta: sum(maps) - (F(x) - F(0))
    targets: np.ndarray     # [samples] the class attributed
    alphas: np.ndarray      # [alphas]
    interior: np.ndarray    # [alphas, samples, *input shape] gradients at alpha * x


def integrated_gradients_class() -> Any:
    """Captum's ``IntegratedGradients``, or ImportError saying how to install it."""
    try:
        from captum.attr import IntegratedGradients
    except ImportError as error:
        raise ImportError(f"attributions=True needs Captum: {INSTALL} (or pip install captum)") from error
    return IntegratedGradients


def check_inputs(inputs: torch.Tensor, target: Any) -> torch.Tensor | None:
    """The targets as a tensor of class indices (None: the predicted class); raises on bad input."""
    if not inputs.is_floating_point():
        raise ValueError(f"attributions=True needs floating-point inputs (gradients with respect to the "
                         f"input), got {inputs.dtype}; token ids have none")
    if target is None:
        return None
    samples = min(len(inputs), MAX_SAMPLES)
    if isinstance(target, int) and not isinstance(target, bool):
        return torch.full((samples,), target, dtype=torch.long)
    if isinstance(target, torch.Tensor) and target.dim() == 1 and not target.is_floating_point() \
            and len(target) >= samples:
        return target[:samples].detach().long().cpu()
    raise TypeError(f"probe() expected target= None, an int class or a 1-D integer tensor with one class per "
                    f"probe sample (>= {samples}), got {type(target).__name__}"
                    f"{tuple(target.shape) if isinstance(target, torch.Tensor) else ''}")


def attribute(model: nn.Module, inputs: torch.Tensor, target: torch.Tensor | None,
              n_steps: int = N_STEPS, alphas: tuple[float, ...] = ALPHAS) -> Attributions:
    """Integrated gradients (zero baseline) and interior gradients of the first
    :data:`MAX_SAMPLES` inputs, for ``target`` or each sample's predicted class.

    The caller puts the model in eval mode and forks the random state (see ``run_probe``).
    """
    samples = inputs[:MAX_SAMPLES].detach()
    with torch.no_grad():
        logits = model(samples)
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        got = f"shape {tuple(logits.shape)}" if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"attributions=True needs a model whose output is a [batch, classes] tensor, got {got}")
    targets = logits.argmax(dim=1) if target is None else target.to(logits.device)
    with torch.enable_grad():
        explainer = integrated_gradients_class()(model)
        maps, delta = explainer.attribute(samples, baselines=torch.zeros_like(samples), target=targets,
                                          n_steps=n_steps, internal_batch_size=n_steps * len(samples),
                                          return_convergence_delta=True)
        scaled = torch.stack([alpha * samples for alpha in alphas]).flatten(0, 1).requires_grad_(True)
        scores = model(scaled).gather(1, targets.repeat(len(alphas)).unsqueeze(1)).sum()
        interior, = torch.autograd.grad(scores, scaled)
    interior = interior.reshape(len(alphas), *samples.shape)
    flat = torch.cat([samples.reshape(-1).float(), maps.detach().reshape(-1).float(),
                      delta.detach().reshape(-1).float(), targets.reshape(-1).float(),
                      interior.reshape(-1).float()]).cpu().numpy()  # one transfer
    sizes = [samples.numel(), samples.numel(), len(samples), len(samples), interior.numel()]
    parts = np.split(flat, np.cumsum(sizes)[:-1])
    return Attributions(parts[0].reshape(samples.shape), parts[1].reshape(samples.shape), parts[2],
                        parts[3].astype(np.int64), np.asarray(alphas, np.float32), parts[4].reshape(interior.shape))
