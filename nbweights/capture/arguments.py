"""What ``watch()`` accepts (a model, optimizers), and the one error capture raises on purpose."""
from __future__ import annotations

from typing import Any, Sequence, Union

import torch
from torch import nn

from .containment import record_failure

#: What ``watch()`` takes as optimizer: one, several (each steps its own parameters), or None.
Optimizers = Union[torch.optim.Optimizer, Sequence[torch.optim.Optimizer], None]


class NonFiniteError(FloatingPointError):
    """Raised from the optimizer step when ``stop_on_nonfinite=True`` and NaN/Inf appeared."""


def check_model(model: Any, call: str) -> nn.Module:
    """The model, or TypeError saying what ``call`` got instead of an nn.Module."""
    if not isinstance(model, nn.Module):
        what = "a list of modules (wrap them in nn.Sequential or nn.ModuleList)" \
            if isinstance(model, (list, tuple)) else type(model).__name__
        raise TypeError(f"{call}() expected a torch.nn.Module, got {what}")
    return model


def _check_optimizers(optimizer: Any) -> list[torch.optim.Optimizer]:
    """The optimizers given (one, a list of them, or None), or TypeError naming what was given."""
    given = list(optimizer) if isinstance(optimizer, (list, tuple)) else [] if optimizer is None else [optimizer]
    for each in given:
        if not isinstance(each, torch.optim.Optimizer):
            raise TypeError(f"watch() expected a torch.optim.Optimizer, a list of them or None as "
                            f"optimizer, got {type(each).__name__}")
    return given


def stop_if_nonfinite(watcher: Any, step: int) -> None:
    """Raise NonFiniteError naming the first parameter whose weight or gradient has NaN/Inf.

    Only that error leaves: a failure of the search itself is recorded and training goes on.
    """
    try:
        found = watcher._live.first_nonfinite()
        if found is not None and step not in set(watcher.history.steps(watcher.history.names[0]).tolist()):
            watcher._capture(step)  # keep the step where it went wrong in the history
    except Exception as error:
        record_failure(watcher.failures, "stop_on_nonfinite", error, step, "looking for NaN/Inf")
        return
    if found is not None:
        raise NonFiniteError(f"NaN/Inf in the {found[1]} of {found[0]} at step {step} "
                             f"(stop_on_nonfinite=True); the history up to this step is kept")


def reattach(watcher: Any, optimizer: Any) -> None:
    """:meth:`Watcher.reattach`: the same model's hooks again, on new optimizers."""
    optimizers = _check_optimizers(optimizer)
    model = watcher.model
    current = {id(p) for p in model.parameters()} if model is not None else set()
    watched = [group.tensors() for group in watcher._live.groups]
    if model is None or any(params is None or any(id(p) not in current for p in params)
                            for params in watched):
        raise ValueError("reattach(): the watched model or its parameters are gone or were "
                         "replaced since watch(); watch the model anew")
    run = getattr(watcher, "run", None)  # the run folder's writer goes on: only hooks are replaced
    for handle in watcher._handles:
        if handle is not run:
            handle.remove()
    watcher._handles[:] = [run] if run is not None and run in watcher._handles else []
    if watcher._activations is not None:
        watcher._activations.attach()
    watcher._attach(model, optimizers)
    watcher.pacer.resume()
