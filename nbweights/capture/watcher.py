"""Hooks that decide when to take a snapshot of a model, and the Watcher that owns them.

A snapshot is taken after ``optimizer.step()`` (optimizer step hooks), or without an optimizer at
a training-mode forward; on a step not captured, the hooks do one integer comparison.
"""
from __future__ import annotations

import os
import threading
import weakref
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn

from . import distributed, earlier
from .activations import DEFAULT_ACTIVATION_TYPES, ActivationHooks
from .arguments import (NonFiniteError, Optimizers, _check_optimizers, check_model, reattach,  # noqa: F401
                        stop_if_nonfinite)
from .containment import orphan, record_failure, remove_orphans, weakly
from .live import LiveParameters
from .options import check_flag, check_int, check_thresholds
from ..history import DEFAULT_MAX_BYTES, History
from ..history.observed import Displayed
from .pacing import DEFAULT_BUDGET, Every, Pacer
from .pictures import PictureLimits
from ..health import Signal, Thresholds, find_signals
from .probe import Probe, make_probe
from .selection import Selector, select_modules, select_parameters

class Watcher(Displayed):
    """Watches one model's parameters while it trains; ``close()`` removes every hook it added.

    Holds only weak references to the model, its parameters and the optimizer, and its hooks
    hold it weakly too: a notebook that keeps the dashboard does not keep a deleted model in
    memory, and a watcher nobody holds stops recording. Use as a context manager or call
    :meth:`close`; both are safe to repeat. Whatever capture raises stays out of training: it
    is logged once and kept in :attr:`failures`.
    """

    def __init__(self, model: nn.Module, optimizer: Optimizers = None, *,
                 params: Selector = None, every: Every = "auto", budget: float = DEFAULT_BUDGET,
                 bins: int = 64, sample_size: int | None = 4096, max_bytes: int = DEFAULT_MAX_BYTES,
                 pictures: PictureLimits | None = None, activations: Selector | bool = False,
                 stop_on_nonfinite: bool = False, thresholds: Thresholds | None = None,
                 run_dir: str | None = None, replace_earlier: bool = True):
        model = check_model(model, "watch")
        optimizers = _check_optimizers(optimizer)
        bins = check_int(bins, "bins", 2)
        sample_size = None if sample_size is None else check_int(sample_size, "sample_size", 1)
        self.stop_on_nonfinite = check_flag(stop_on_nonfinite, "stop_on_nonfinite")
        self.thresholds = check_thresholds(thresholds)
        check_flag(replace_earlier, "replace_earlier")
        self.history = History(max_bytes=max_bytes, bins=bins)
        self.pacer = Pacer(every, budget)
        self.step = 0
        #: What capture could not record, by name (a parameter's qualified name, "<module>
        #: (output)", "probe", "capture"): a message saying what failed, and at which step.
        self.failures: dict[str, str] = {}
        self._model = weakref.ref(model)
        self._optimizer: weakref.ref | None = None  # the first optimizer: whether steps are optimizer steps
        self._optimizers: list[weakref.ref] = []
        self._stepped: set[int] = set()  # ids of the optimizers that stepped since the last step
        self._handles: list[Any] = []
        self._init_observers()
        self._forwards = 0
        #: Held while the history is written; readers on other threads (the dashboard's redraw
        #: thread) hold it to read a history that no record is changing under them.
        self.lock = threading.RLock()
        remove_orphans()

        named = select_parameters(distributed.unwrap(model), params)
        names = [n for n, _ in named]
        self.history.declare("weight", names, [tuple(p.shape) for _, p in named])
        self.history.declare("grad", names, [tuple(p.shape) for _, p in named])
        limits = pictures or PictureLimits()
        self._live = LiveParameters(names, lambda some, rows: distributed.groups(some, bins, sample_size, limits, rows),
                                    bins, self.failures, fixed=distributed.world() is not None)
        self._live.start(distributed.unwrap(model), named)
        self._activations: ActivationHooks | None = None
        if activations is not False and activations is not None:
            modules = select_modules(model, activations, DEFAULT_ACTIVATION_TYPES)
            self._activations = ActivationHooks(modules, bins, sample_size or 4096, weakly(self, "_activations_due"),
                                                weakly(self, "_activation_failed"))
            self.history.declare("activation", self._activations.names, [() for _ in modules])
        self._probe: Probe | None = None
        self._probe_handles: list[Any] = []  # the probe's hooks, for close() and the collector
        distributed.attach(self, run_dir)  # under torchrun: agreed pacing; rank 0 writes run_dir
        if replace_earlier:
            earlier.replace_earlier(self, [model, *optimizers])
        collected = weakref.finalize(self, orphan, self._handles, self._live.grad_handles, self._probe_handles,
                                     self._activations.handles if self._activations is not None else [])
        collected.atexit = False  # at interpreter exit nothing needs removing, or saying
        self._attach(model, optimizers)
        self._capture(0)

    # ----- hooks (each holds the watcher weakly and keeps capture's errors to itself) -------
    def _attach(self, model: nn.Module, optimizers: list[torch.optim.Optimizer]) -> None:
        # With several optimizers (a GAN's generator and discriminator), a step is complete once
        # each has stepped: every parameter is then read as its own optimizer left it.
        self._optimizer = weakref.ref(optimizers[0]) if optimizers else None
        self._optimizers = [weakref.ref(o) for o in optimizers]
        self._stepped.clear()
        for optimizer in optimizers:
            self._handles.append(optimizer.register_step_pre_hook(weakly(self, "_before_optimizer_step")))
            self._handles.append(optimizer.register_step_post_hook(weakly(self, "_after_optimizer_step")))
        self._live.set_gradient_hook(None if optimizers else weakly(self, "_gradient_ready"))
        if not optimizers:
            self._forwards = self.step  # the next training forward sees the weights of this step
            self._handles.append(model.register_forward_pre_hook(weakly(self, "_before_forward")))

    def _before_optimizer_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if self._stepped or self.step + 1 < self.pacer.next_step:
            return  # once per step, before the first optimizer's update
        try:
            model = self.model
            if model is None or not self._live.sync_before_update(distributed.unwrap(model), self.step + 1):
                return
            # What the watched optimizers update; a parameter none of them steps gets no ratio.
            stepped = {id(p) for ref in self._optimizers if ref() is not None
                       for group in ref().param_groups for p in group["params"]}
        except Exception as error:
            record_failure(self.failures, "capture", error, self.step + 1, "reading the model")
            return
        with self.pacer.preparing():
            self._live.for_each(self.step + 1, "reading the weights before the step",
                                lambda group: group.remember_before_step(stepped))

    def _after_optimizer_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self._stepped.add(id(optimizer))
        if len(self._stepped) < len(self._optimizers):
            return
        self._stepped.clear()
        self.step += 1
        if self.step >= self.pacer.next_step:
            self._capture(self.step)
        if self.stop_on_nonfinite:
            stop_if_nonfinite(self, self.step)

    def _activations_due(self) -> bool:
        """Whether the forward running now belongs to a step that will be captured."""
        if self._optimizer is not None:
            return self.step + 1 >= self.pacer.next_step
        return self._forwards >= self.pacer.next_step

    def _activation_failed(self, module: str, error: Exception) -> None:
        record_failure(self.failures, f"{module} (output)", error, self.step, "summarising the output")

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
            stop_if_nonfinite(self, self.step)
        if self._forwards >= self.pacer.next_step:
            self._live.for_each(self._forwards, "counting gradients", lambda group: group.arm_gradients())

    def _gradient_ready(self, group: Any, param: torch.Tensor) -> None:
        if group.armed:  # summarised for the coming capture: its cost, not training time
            with self.pacer.preparing():
                self._live.for_each(self._forwards, "summarising gradients", lambda g: g.gradient_ready(param), [group])

    # ----- capture ------------------------------------------------------------------------
    def _capture(self, step: int) -> None:
        # The listeners' work (the dashboard's redraw) counts as capture cost, so that
        # automatic pacing keeps everything nbweights does within its budget.
        started = self.pacer.start()
        try:
            with self.lock:
                self._record(step)
            self._listeners.notify(step)
        except Exception as error:  # never into the user's step: say it once, train on
            record_failure(self.failures, "capture", error, step, "capturing")
        finally:
            self.pacer.done(step, started)

    def _record(self, step: int) -> None:
        model = self.model
        summaries = None if model is None else self._live.capture(distributed.unwrap(model), step)
        if summaries is None:  # garbage collected, or nothing left to record
            return
        activations = self._collect_activations(step) if self._activations is not None and step > 0 else None
        # Everything is computed before the first write, so a failure above records nothing
        # half; the writes follow in the order readers expect (weights, then gradients).
        weights, grads, pictures = summaries
        self.history.record("weight", step, weights)
        if step > 0:
            self.history.record("grad", step, grads)
        names = self.history.names
        for row, kind, data in pictures:
            self.history.record_picture(names[row], step, kind, data)
        if activations is not None:
            self.history.record("activation", step, activations[0], extra=activations[1])
        if self._probe is not None:
            self._run_probe(model, step)

    def _collect_activations(self, step: int) -> tuple[Any, Any] | None:
        try:
            return self._activations.collect()
        except Exception as error:
            record_failure(self.failures, "activations", error, step, "collecting the outputs")
            return None

    def _run_probe(self, model: nn.Module, step: int) -> None:
        """Record the probe at ``step``; one that fails (the model changed under it) is removed."""
        try:
            with self._activations.paused() if self._activations is not None else nullcontext():
                self._probe.record(model, self.history, step)
        except Exception as error:
            self._remove_probe()
            record_failure(self.failures, "probe", error, step, "running the probe (now removed)")

    def _remove_probe(self) -> None:
        self._probe = None
        for handle in self._probe_handles:
            handle.remove()
        self._probe_handles.clear()

    # ----- user API -----------------------------------------------------------------------
    def log(self, **metrics: float) -> None:
        """Record metrics (``w.log(loss=loss.item(), accuracy=acc)``) at the current step.

        Without an optimizer, that is the step of the iteration whose forward ran last.
        """
        step = self._forwards if self._optimizer is None and self._forwards else self.step
        with self.lock:
            self.history.log(step, **metrics)
        self._listeners.notify(step)

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
        try:  # run once here: bad input is said at the call, and no probe is set
            with self.lock, self._activations.paused() if self._activations is not None else nullcontext():
                new.record(model, self.history, self.step)
        except BaseException as error:
            new.remove()
            if not isinstance(error, Exception):
                raise  # an interrupt: the user's, as it was
            raise ValueError(f"probe(): the probe failed on this batch of shape {tuple(inputs.shape)} "
                             f"({type(error).__name__}: {error}); no probe was set") from error
        self._remove_probe()  # the earlier one, if any
        self._probe = new
        self._probe_handles.extend(new.handles)
        self.failures.pop("probe", None)
        self._listeners.notify(self.step)

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
        """Watch the same model again, stepped by ``optimizer`` (one, a list, or None), the
        history and step count going on: for a framework that makes new optimizers for each
        run (``trainer.fit`` twice). ValueError if the model's watched parameters are gone."""
        reattach(self, optimizer)

    def close(self, release: bool = False) -> None:
        """Remove every hook this watcher added. The history stays readable and the dashboard
        stays shown; ``release=True`` closes the dashboard too (its redraw thread, after-cell
        callback and every widget: its output goes blank), as re-running ``watch()`` does to the
        earlier watcher. Safe to repeat."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._live.remove_hooks()
        self._remove_probe()
        if self._activations is not None:
            self._activations.remove()
        remove_orphans()
        if release and self._dashboard is not None:
            dashboard, self._dashboard = self._dashboard, None
            dashboard.close()

    def __enter__(self) -> "Watcher":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        snapshots = len(self.history.steps(self.history.names[0])) if self.history.names else 0
        return f"<nbweights.Watcher {'watching' if self._handles else 'closed'} {len(self.history.names)} " \
               f"parameters, step {self.step}, {snapshots} snapshots>"

