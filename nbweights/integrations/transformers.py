"""Hugging Face: ``Trainer(..., callbacks=[WatchCallback()])`` watches the model being trained.

>>> from nbweights.integrations.transformers import WatchCallback
>>> callback = WatchCallback(model, every="auto")       # options of nbweights.watch
>>> callback.watcher                                    # a cell's last line: the dashboard
>>> Trainer(model, args, train_dataset=data, callbacks=[callback]).train()   # a later cell

At ``on_train_begin`` the Watcher is attached to the Trainer's optimizer (the torch optimizer
inside accelerate's wrapper), so a step is an optimizer step, as ``state.global_step`` counts
under gradient accumulation; a step that a mixed-precision scaler skips is not one. What the
Trainer logs (``on_log``: loss, learning rate, gradient norm, evaluation metrics) is logged into
the Watcher; ``on_train_end`` removes its hooks. A second ``train()`` continues the history.
The Trainer has no callback event for an exception: after a failed ``train()`` the hooks stay
until the next ``train()`` re-attaches them or ``callback.watcher.close()``.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ._watching import Watching

try:
    from transformers import TrainerCallback
except ImportError:
    raise ImportError("nbweights.integrations.transformers needs transformers and accelerate: "
                      "pip install nbweights[transformers]") from None

#: Entries of the Trainer's logs that count time, not training: not logged as metrics.
NOT_METRICS = ("epoch",)


def torch_optimizer(optimizer: Any) -> torch.optim.Optimizer | None:
    """The torch optimizer inside accelerate's ``AcceleratedOptimizer`` (whose own ``step`` runs
    no step hooks), or None."""
    while isinstance(getattr(optimizer, "optimizer", None), torch.optim.Optimizer):
        optimizer = optimizer.optimizer
    return optimizer if isinstance(optimizer, torch.optim.Optimizer) else None


class WatchCallback(Watching, TrainerCallback):
    """A ``transformers.TrainerCallback`` that watches the trained model with ``nbweights.watch``.

    ``model`` (optional) is watched at once, so that ``callback.watcher`` exists before
    ``train()``; ``watch_options`` are those of ``nbweights.watch``. In distributed training only
    the main process watches.
    """

    def __init__(self, model: nn.Module | None = None, **watch_options: Any):
        super().__init__(model, **watch_options)
        self._waiting_for_optimizer = False

    def on_train_begin(self, args: Any, state: Any, control: Any, model: nn.Module | None = None,
                       optimizer: Any = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or model is None:
            return
        optimizer = torch_optimizer(optimizer)
        # DeepSpeed and FSDP make the optimizer later: attach at the first step then.
        self._waiting_for_optimizer = optimizer is None
        if optimizer is not None:
            self.start(model, [optimizer])

    def on_step_begin(self, args: Any, state: Any, control: Any, model: nn.Module | None = None,
                      optimizer: Any = None, **kwargs: Any) -> None:
        if self._waiting_for_optimizer and torch_optimizer(optimizer) is not None and model is not None:
            self._waiting_for_optimizer = False
            self.start(model, [torch_optimizer(optimizer)])

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if logs:
            self.log_new({k: v for k, v in logs.items() if k not in NOT_METRICS}, only_changed=False)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._waiting_for_optimizer = False
        self.stop()
