"""What the training callbacks share: one Watcher that follows a model across runs, and metrics
logged into it once per new value.

A framework's callback calls :meth:`Watching.start` when a run begins (with the optimizers the
framework made for it), :meth:`Watching.log_new` with the metrics it reports, and
:meth:`Watching.stop` when the run ends or fails. A second run of the same model re-attaches the
same Watcher to the new optimizers, so its history and step count continue and a dashboard
shown before keeps following.
"""
from __future__ import annotations

import inspect
import logging
import math
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

import nbweights as nbw

log = logging.getLogger("nbweights")
#: Options of ``nbw.watch`` that are the dashboard's, not the Watcher's.
DISPLAY_OPTIONS = ("image_shape", "class_names")


def check_watch_options(options: Mapping[str, Any], caller: str) -> None:
    """TypeError now (not at the start of training) for an option ``nbw.watch`` does not take."""
    if "optimizer" in options:
        raise TypeError(f"{caller}() takes watch() options; the optimizer comes from the trainer")
    capture = {k: v for k, v in options.items() if k not in DISPLAY_OPTIONS}
    try:
        inspect.signature(nbw.Watcher.__init__).bind(None, None, **capture)
    except TypeError as error:
        raise TypeError(f"{caller}() got an option nbweights.watch() does not take: {error}") from None


def numbers(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The entries of ``metrics`` that are one number (a float, an int or a one-element tensor)."""
    found = {}
    for name, value in metrics.items():
        if isinstance(value, torch.Tensor):
            if value.numel() != 1 or value.dtype.is_complex:
                continue
            value = value.detach().float().item()
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
            continue
        found[str(name)] = float(value)
    return found


class Watching:
    """A Watcher made from ``watch_options`` and kept across runs; ``watcher`` is None until then."""

    def __init__(self, model: nn.Module | None = None, **watch_options: Any):
        check_watch_options(watch_options, type(self).__name__)
        super().__init__()
        self.watch_options = dict(watch_options)
        #: The Watcher (``callback.watcher`` as a cell's last line shows the dashboard); None
        #: before the first run unless a model was given or :meth:`watch` was called.
        self.watcher: nbw.Watcher | None = None
        self._last_values: dict[str, float] = {}
        self._last_step = 0
        if model is not None:
            self.watch(model)

    def watch(self, model: nn.Module) -> nbw.Watcher:
        """Watch ``model`` now, ahead of training, and return the Watcher (to show its dashboard
        in a cell before the one that trains); the run then attaches its optimizers to it."""
        if self.watcher is not None and self.watcher.model is model:
            return self.watcher
        if self.watcher is not None:
            self.watcher.close()
        self.watcher = nbw.watch(model, **self.watch_options)
        self._last_values.clear()
        return self.watcher

    def start(self, model: nn.Module, optimizers: Sequence[torch.optim.Optimizer]) -> None:
        """A run begins: re-attach the Watcher of this model to the run's optimizers, or watch anew.

        Bad watch options raise (training has not started); any other failure is logged and
        training goes on unwatched.
        """
        optimizers = list(optimizers) or None
        try:
            if self.watcher is not None and self.watcher.model is model:
                try:
                    self.watcher.reattach(optimizers)
                    self._last_step = self.watcher.step
                    return
                except ValueError as error:
                    log.warning("nbweights: %s; the history starts again", error)
                self.watcher.close()
            self.watcher = nbw.watch(model, optimizers, **self.watch_options)
            self._last_values.clear()
            self._last_step = self.watcher.step
        except (TypeError, ValueError):
            raise
        except Exception:
            log.exception("nbweights: could not watch the model; training goes on without it")
            self.watcher = None

    def log_new(self, metrics: Mapping[str, Any], only_after_a_step: bool = False,
                only_changed: bool = True) -> None:
        """Log the numbers among ``metrics`` whose value changed since they were last logged
        (a validation loss is logged once per validation, not at every later step); all of them
        with ``only_changed=False`` (a framework that reports each value once).

        ``only_after_a_step``: log nothing unless an optimizer step happened since the last
        call of this kind (under gradient accumulation, one point per optimizer step).
        """
        watcher = self.watcher
        if watcher is None:
            return
        try:
            if only_after_a_step:
                if watcher.step == self._last_step:
                    return
                self._last_step = watcher.step
            new = {name: value for name, value in numbers(metrics).items()
                   if not (only_changed and _same(self._last_values.get(name), value))}
            if new:
                self._last_values.update(new)
                watcher.log(**new)
        except Exception:  # logging a metric must never break training
            log.exception("nbweights: could not log metrics")

    def stop(self) -> None:
        """The run ended or failed: remove every hook; the history stays readable."""
        if self.watcher is not None:
            self.watcher.close()


def _same(previous: float | None, value: float) -> bool:
    return previous is not None and (previous == value or (math.isnan(previous) and math.isnan(value)))
