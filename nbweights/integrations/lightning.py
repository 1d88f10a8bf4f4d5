"""PyTorch Lightning: ``Trainer(callbacks=[WatchCallback()])`` watches the LightningModule.

>>> from nbweights.integrations.lightning import WatchCallback
>>> callback = WatchCallback(model, every="auto")   # options of nbweights.watch
>>> callback.watcher                                # a cell's last line: the dashboard
>>> pl.Trainer(max_epochs=3, callbacks=[callback]).fit(model, loader)   # a later cell

At ``on_fit_start`` the Watcher is attached to the optimizer(s) Lightning made (each optimizer
step is a step, counted once every optimizer has stepped under manual optimization); the
metrics the module logs with ``self.log`` are logged into it after each optimizer step, each
validation and each epoch, once per new value; at ``on_fit_end`` or on an exception its hooks
are removed. A second ``fit`` of the same model continues the same history.
"""
from __future__ import annotations

from typing import Any

from torch import nn

from ._watching import Watching

try:
    import pytorch_lightning as pl
except ImportError:
    try:
        import lightning.pytorch as pl
    except ImportError:
        raise ImportError("nbweights.integrations.lightning needs PyTorch Lightning: "
                          "pip install nbweights[lightning]") from None


class WatchCallback(Watching, pl.Callback):
    """A Lightning callback that watches the module being fit with ``nbweights.watch``.

    ``model`` (optional) is watched at once, so that ``callback.watcher`` exists before ``fit``;
    ``watch_options`` are those of ``nbweights.watch`` (``every=``, ``params=``, ``activations=``...).
    Under DDP only the global-zero process watches.
    """

    def __init__(self, model: nn.Module | None = None, **watch_options: Any):
        super().__init__(model, **watch_options)

    def on_fit_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if trainer.is_global_zero:
            self.start(pl_module, trainer.optimizers)

    def on_train_batch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule",
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        self.log_new(trainer.callback_metrics, only_after_a_step=True)

    def on_validation_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if not trainer.sanity_checking:
            self.log_new(trainer.callback_metrics)

    def on_train_epoch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self.log_new(trainer.callback_metrics)

    def on_fit_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self.log_new(trainer.callback_metrics)  # the last epoch's aggregates come after its end hook
        self.stop()

    def on_exception(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule",
                     exception: BaseException) -> None:
        self.stop()
