"""Hooks that decide when to take a snapshot of a model, and the Watcher that owns them.

A snapshot is taken after ``optimizer.step()`` (optimizer step hooks), or without an optimizer at
a training-mode forward; on a step not captured, the hooks do one integer comparison.
"""
from __future__ import annotations

import logging
import os
import threading
import weakref
from contextlib import nullcontext
from typing import Any, Callable, ClassVar

import torch
from torch import nn

from . import distributed
from .activations import DEFAULT_ACTIVATION_TYPES, ActivationHooks
from .arguments import (NonFiniteError, Optimizers, _check_optimizers, check_model, reattach,  # noqa: F401
                        stop_if_nonfinite)
from .groups import empty_summary
from ..history import DEFAULT_MAX_BYTES, History
from .pacing import DEFAULT_BUDGET, Every, Pacer
from .pictures import PictureLimits
from ..health import Signal, Thresholds, find_signals
from .probe import Probe, make_probe
from .selection import Selector, select_modules, select_parameters

log = logging.getLogger("nbweights")


class Watcher:
    """Watches one model's parameters while it trains; ``close()`` removes every hook it added.

    Holds only weak references to the model, its parameters and the optimizer, so a notebook
    that keeps the dashboard does not keep a deleted model in memory. Use as a context manager
    or call :meth:`close`; both are safe to repeat.
    """

    def __init__(self, model: nn.Module, optimizer: Optimizers = None, *,
                 params: Selector = None, every: Every = "auto", budget: float = DEFAULT_BUDGET,
                 bins: int = 64, sample_size: int | None = 4096, max_bytes: int = DEFAULT_MAX_BYTES,
                 pictures: PictureLimits | None = None, activations: Selector | bool = False,
                 stop_on_nonfinite: bool = False, thresholds: Thresholds | None = None,
                 run_dir: str | None = None):
        model = check_model(model, "watch")
        optimizers = _check_optimizers(optimizer)
        if not isinstance(bins, int) or bins < 2:
            raise ValueError(f"bins= must be an int >= 2, got {bins!r}")
        if sample_size is not None and (not isinstance(sample_size, int) or sample_size < 1):
            raise ValueError(f"sample_size= must be a positive int or None, got {sample_size!r}")
        self.history = History(max_bytes=max_bytes, bins=bins)
        self.pacer = Pacer(every, budget)
        self.step = 0
        self._model = weakref.ref(model)
        self._optimizer: weakref.ref | None = None  # the first optimizer: whether steps are optimizer steps
        self._optimizer_count = 0
        self._stepped: set[int] = set()  # ids of the optimizers that stepped since the last step
        self._handles: list[Any] = []
        self._listeners: list[Callable[[int], None]] = []
        self._failed_listeners: set[int] = set()
        self._dashboard = None
        self._forwards = 0
        #: Held while the history is written; readers on other threads (the dashboard's redraw
        #: thread) hold it to read a history that no record is changing under them.
        self.lock = threading.RLock()

        named = select_parameters(distributed.unwrap(model), params)
        self.history.declare("weight", [n for n, _ in named], [tuple(p.shape) for _, p in named])
        self.history.declare("grad", [n for n, _ in named], [tuple(p.shape) for _, p in named])
        self._groups = distributed.groups(named, bins, sample_size, pictures or PictureLimits())
        self._one_group = len(self._groups) == 1 and list(self._groups[0].rows) == list(range(len(named)))
        self.stop_on_nonfinite = bool(stop_on_nonfinite)
        self.thresholds = thresholds or Thresholds()
        self._activations: ActivationHooks | None = None
        if activations is not False and activations is not None:
            modules = select_modules(model, activations, DEFAULT_ACTIVATION_TYPES)
            self._activations = ActivationHooks(modules, bins, sample_size or 4096, self._activations_due)
            self.history.declare("activation", self._activations.names, [() for _ in modules])
        self._probe: Probe | None = None
        self._probe_failed = False
        distributed.attach(self, run_dir)  # under torchrun: agreed pacing; rank 0 writes run_dir
        self._attach(model, optimizers)
        self._capture(0)

    # ----- hooks --------------------------------------------------------------------------
    def _attach(self, model: nn.Module, optimizers: list[torch.optim.Optimizer]) -> None:
        # With several optimizers (a GAN's generator and discriminator), a step is complete once
        # each has stepped: every parameter is then read as its own optimizer left it.
        self._optimizer = weakref.ref(optimizers[0]) if optimizers else None
        self._optimizer_count = len(optimizers)
        self._stepped.clear()
        for optimizer in optimizers:
            self._handles.append(optimizer.register_step_pre_hook(self._before_optimizer_step))
            self._handles.append(optimizer.register_step_post_hook(self._after_optimizer_step))
        if not optimizers:
            self._forwards = self.step  # the next training forward sees the weights of this step
            self._handles.append(model.register_forward_pre_hook(self._before_forward))
            for group in self._groups:
                self._handles.extend(group.watch_gradients())

    def _before_optimizer_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if not self._stepped and self.step + 1 >= self.pacer.next_step:
            for group in self._groups:
                group.remember_before_step()

    def _after_optimizer_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self._stepped.add(id(optimizer))
        if len(self._stepped) < self._optimizer_count:
            return
        self._stepped.clear()
        self.step += 1
        if self.step >= self.pacer.next_step:
            self._capture(self.step)
        if self.stop_on_nonfinite:
            self._stop_if_nonfinite(self.step)

    def _activations_due(self) -> bool:
        """Whether the forward running now belongs to a step that will be captured."""
        if self._optimizer is not None:
            return self.step + 1 >= self.pacer.next_step
        return self._forwards >= self.pacer.next_step

    def _before_forward(self, module: nn.Module, args: Any) -> None:
        # Without an optimizer, the f-th training forward sees the weights after f - 1 updates
        # (step f - 1); the gradients of its backward pass belong to update f.
        if not module.training:
            return
        self._forwards += 1
        self.step = self._forwards - 1
        if self.step >= self.pacer.next_step:
            self._capture(self.step)
        if self.stop_on_nonfinite and self.step >= 1:
            self._stop_if_nonfinite(self.step)
        if self._forwards >= self.pacer.next_step:
            for group in self._groups:
                group.arm_gradients()

    # ----- capture ------------------------------------------------------------------------
    def _capture(self, step: int) -> None:
        # The listeners' work (the dashboard's redraw) counts as capture cost, so that
        # automatic pacing keeps everything nbweights does within its budget.
        started = self.pacer.start()
        try:
            with self.lock:
                self._record(step)
            self._notify(step)
        finally:
            self.pacer.done(step, started)

    def _record(self, step: int) -> None:
        count, bins = len(self.history.names), self.history.bins
        pictures = []
        if self._one_group:  # one device and dtype: its rows are all, in order
            captured = self._groups[0].capture(with_grads=step > 0)
            if captured is None:  # the model was garbage collected
                return
            weights, grads, pictures = captured
            self._write(step, weights, grads if grads is not None else empty_summary(count, bins), pictures)
            return
        weights, grads = empty_summary(count, bins), empty_summary(count, bins)
        for group in self._groups:
            captured = group.capture(with_grads=step > 0)
            if captured is None:  # the model was garbage collected
                return
            group_weights, group_grads, group_pictures = captured
            weights.fields[group.rows], weights.counts[group.rows] = group_weights.fields, group_weights.counts
            weights.ranges[group.rows] = group_weights.ranges
            if group_grads is not None:
                grads.fields[group.rows], grads.counts[group.rows] = group_grads.fields, group_grads.counts
                grads.ranges[group.rows] = group_grads.ranges
            pictures += [(group.rows[i], kind, data) for i, kind, data in group_pictures]
        self._write(step, weights, grads, pictures)

    def _write(self, step: int, weights: Any, grads: Any, pictures: list) -> None:
        self.history.record("weight", step, weights)
        if step > 0:
            self.history.record("grad", step, grads)
        names = self.history.names
        for row, kind, data in pictures:
            self.history.record_picture(names[row], step, kind, data)
        if self._activations is not None and step > 0:
            summary, extra = self._activations.collect()
            self.history.record("activation", step, summary, extra=extra)
        if self._probe is not None:
            try:
                self._run_probe(step)
            except Exception:  # a failing probe must never break training
                if not self._probe_failed:
                    self._probe_failed = True
                    log.exception("nbweights: the probe failed at step %d (logged once)", step)

    def _run_probe(self, step: int) -> None:
        model = self.model
        if model is None:
            return
        with self._activations.paused() if self._activations is not None else nullcontext():
            self._probe.record(model, self.history, step)

    def _stop_if_nonfinite(self, step: int) -> None:
        stop_if_nonfinite(self, step)

    def _notify(self, step: int) -> None:
        for listener in list(self._listeners):
            try:
                listener(step)
            except Exception:  # a view must never break training
                if id(listener) not in self._failed_listeners:
                    self._failed_listeners.add(id(listener))
                    log.exception("nbweights: a listener failed at step %d (logged once)", step)

    def add_listener(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(step)`` after each capture (the dashboard redraws from it)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[int], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    # ----- user API -----------------------------------------------------------------------
    def log(self, **metrics: float) -> None:
        """Record metrics (``w.log(loss=loss.item(), accuracy=acc)``) at the current step.

        Without an optimizer, that is the step of the iteration whose forward ran last.
        """
        step = self._forwards if self._optimizer is None and self._forwards else self.step
        with self.lock:
            self.history.log(step, **metrics)
        self._notify(step)

    def snapshot(self) -> None:
        """Capture now, whatever the pacing says (e.g. at the end of an epoch)."""
        self._capture(self.step)

    def probe(self, inputs: torch.Tensor, modules: Selector = None, *, target: Any = None,
              attributions: bool = False, attention: bool = True) -> None:
        """Fix a small input batch that each capture runs through the model, without changing its
        state, recording the feature maps of conv layers (or of the ``modules`` named), the
        attention weights of every ``nn.MultiheadAttention`` (``attention=``) and, with
        ``attributions=True``, integrated and interior gradients of the first few samples for
        ``target`` (an int or one class per sample; None: each sample's predicted class)."""
        model = self.model
        if model is None:
            raise RuntimeError("probe(): the watched model no longer exists")
        new = make_probe(model, inputs, modules, target, attributions, attention)
        previous, self._probe = self._probe, new
        self._probe_failed = False
        try:
            with self.lock:
                self._run_probe(self.step)
        except Exception:
            self._probe = previous  # bad input is said here, at the call, not logged at each capture
            raise

    def health(self) -> list[Signal]:
        """Health signals that fired, oldest first: kind, name, step, value and a message."""
        return find_signals(self.history, self.thresholds)

    def save(self, path: str | os.PathLike) -> None:
        """Write the history to ``path`` (a ``.nbw`` file; see :mod:`nbweights.history.fileformat`),
        atomically, reading it under :attr:`lock` so that training on another thread can go on."""
        from ..history.fileformat import save_history
        save_history(self.history, path, lock=self.lock)

    @property
    def model(self) -> nn.Module | None:
        """The watched model, or None once it has been garbage collected."""
        return self._model()

    @property
    def closed(self) -> bool:
        return not self._handles and (self._activations is None or not self._activations.handles)

    def reattach(self, optimizer: Optimizers = None) -> None:
        """Watch the same model again, stepped by ``optimizer`` (one, a list, or None): the
        history and the step count go on from where they were.

        For a training framework that makes new optimizers for each run (``trainer.fit`` called
        twice), so that a dashboard already shown keeps following. ValueError if the model or
        its watched parameters are not the ones this watcher was made for.
        """
        reattach(self, optimizer)

    def close(self) -> None:
        """Remove every hook this watcher added. The history stays readable. Safe to repeat."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        if self._activations is not None:
            self._activations.remove()

    def __enter__(self) -> "Watcher":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # ----- display (wired by the package's face: capture imports no widget library) ------
    #: Builds a watcher's display; ``nbweights/__init__.py`` sets it to the dashboard's maker.
    #: None where only capture is imported (a script under torchrun): then there is no display.
    display_factory: ClassVar[Callable[["Watcher"], Any] | None] = None

    @property
    def dashboard(self) -> Any:
        """The display of this watcher (the ipywidgets dashboard), built on first use."""
        if self._dashboard is None:
            if Watcher.display_factory is None:
                raise RuntimeError("no display is wired: import nbweights (not only nbweights.capture)")
            self._dashboard = Watcher.display_factory(self)
        return self._dashboard

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.dashboard._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        snapshots = len(self.history.steps(self.history.names[0])) if self.history.names else 0
        return f"<nbweights.Watcher {'watching' if self._handles else 'closed'} {len(self.history.names)} " \
               f"parameters, step {self.step}, {snapshots} snapshots>"

