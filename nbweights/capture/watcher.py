"""Hooks that decide when to take a snapshot of a model, and the Watcher that owns them.

With an optimizer, a snapshot is taken after ``optimizer.step()`` (PyTorch's optimizer step
hooks); without one, at the start of a training-mode forward of the model. On a step that is
not captured, the hooks do one integer comparison. Nothing here imports a widget library, so a
Watcher runs the same in a script, a notebook or under torchrun.
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

from .activations import DEFAULT_ACTIVATION_TYPES, ActivationHooks
from .groups import ParameterGroup, empty_summary
from ..history import DEFAULT_MAX_BYTES, History
from .pacing import DEFAULT_BUDGET, Every, Pacer
from .pictures import PictureLimits
from ..health import Signal, Thresholds, find_signals
from .probe import run_probe
from .selection import Selector, select_modules, select_parameters

log = logging.getLogger("nbweights")


class NonFiniteError(FloatingPointError):
    """Raised from the optimizer step when ``stop_on_nonfinite=True`` and NaN/Inf appeared."""


def check_model(model: Any, call: str) -> nn.Module:
    """The model, or TypeError saying what ``call`` got instead of an nn.Module."""
    if not isinstance(model, nn.Module):
        what = "a list of modules (wrap them in nn.Sequential or nn.ModuleList)" \
            if isinstance(model, (list, tuple)) else type(model).__name__
        raise TypeError(f"{call}() expected a torch.nn.Module, got {what}")
    return model


def _check_optimizer(optimizer: Any) -> torch.optim.Optimizer | None:
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"watch() expected a torch.optim.Optimizer or None as optimizer, "
                        f"got {type(optimizer).__name__}")
    return optimizer


class Watcher:
    """Watches one model's parameters while it trains; ``close()`` removes every hook it added.

    Holds only weak references to the model, its parameters and the optimizer, so a notebook
    that keeps the dashboard does not keep a deleted model in memory. Use as a context manager
    or call :meth:`close`; both are safe to repeat.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer | None = None, *,
                 params: Selector = None, every: Every = "auto", budget: float = DEFAULT_BUDGET,
                 bins: int = 64, sample_size: int | None = 4096, max_bytes: int = DEFAULT_MAX_BYTES,
                 pictures: PictureLimits | None = None, activations: Selector | bool = False,
                 stop_on_nonfinite: bool = False, thresholds: Thresholds | None = None):
        model = check_model(model, "watch")
        optimizer = _check_optimizer(optimizer)
        if not isinstance(bins, int) or bins < 2:
            raise ValueError(f"bins= must be an int >= 2, got {bins!r}")
        if sample_size is not None and (not isinstance(sample_size, int) or sample_size < 1):
            raise ValueError(f"sample_size= must be a positive int or None, got {sample_size!r}")
        self.history = History(max_bytes=max_bytes, bins=bins)
        self.pacer = Pacer(every, budget)
        self.step = 0
        self._model = weakref.ref(model)
        self._optimizer = weakref.ref(optimizer) if optimizer is not None else None
        self._handles: list[Any] = []
        self._listeners: list[Callable[[int], None]] = []
        self._failed_listeners: set[int] = set()
        self._dashboard = None
        self._forwards = 0
        #: Held while the history is written; readers on other threads (the dashboard's redraw
        #: thread) hold it to read a history that no record is changing under them.
        self.lock = threading.RLock()

        named = select_parameters(model, params)
        self.history.declare("weight", [n for n, _ in named], [tuple(p.shape) for _, p in named])
        self.history.declare("grad", [n for n, _ in named], [tuple(p.shape) for _, p in named])
        self._groups = ParameterGroup.split(named, bins, sample_size, pictures or PictureLimits())
        self.stop_on_nonfinite = bool(stop_on_nonfinite)
        self.thresholds = thresholds or Thresholds()
        self._activations: ActivationHooks | None = None
        if activations is not False and activations is not None:
            modules = select_modules(model, activations, DEFAULT_ACTIVATION_TYPES)
            self._activations = ActivationHooks(modules, bins, sample_size or 4096, self._activations_due)
            self.history.declare("activation", self._activations.names, [() for _ in modules])
        self._probe: tuple[torch.Tensor, list[tuple[str, nn.Module]]] | None = None
        self._attach(model, optimizer)
        self._capture(0)

    # ----- hooks --------------------------------------------------------------------------
    def _attach(self, model: nn.Module, optimizer: torch.optim.Optimizer | None) -> None:
        if optimizer is not None:
            self._handles.append(optimizer.register_step_pre_hook(self._before_optimizer_step))
            self._handles.append(optimizer.register_step_post_hook(self._after_optimizer_step))
        else:
            self._handles.append(model.register_forward_pre_hook(self._before_forward))
            for group in self._groups:
                self._handles.extend(group.watch_gradients())

    def _before_optimizer_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if self.step + 1 >= self.pacer.next_step:
            for group in self._groups:
                group.remember_before_step()

    def _after_optimizer_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
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
        weights, grads = empty_summary(count, bins), empty_summary(count, bins)
        pictures = []
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
        self.history.record("weight", step, weights)
        if step > 0:
            self.history.record("grad", step, grads)
        names = self.history.names
        for row, kind, data in pictures:
            self.history.record_picture(names[row], step, kind, data)
        if self._activations is not None and step > 0:
            self._record_activations(step)
        if self._probe is not None:
            self._run_probe(step)

    def _record_activations(self, step: int) -> None:
        summary, extra = self._activations.collect()
        self.history.record("activation", step, summary, extra=extra)

    def _run_probe(self, step: int) -> None:
        model = self.model
        if model is None:
            return
        inputs, modules = self._probe
        with self._activations.paused() if self._activations is not None else nullcontext():
            maps = run_probe(model, inputs, modules)
        for name, array in maps.items():
            self.history.record_feature_maps(name, step, array)

    def _stop_if_nonfinite(self, step: int) -> None:
        """Raise NonFiniteError naming the first parameter whose weight or gradient has NaN/Inf."""
        for group in self._groups:
            params = group.tensors()
            if params is None:
                continue
            sums = [p.detach().sum() for p in params] + [p.grad.sum() for p in params if p.grad is not None]
            if bool(torch.isfinite(torch.stack(sums)).all()):
                continue
            if step not in set(self.history.steps(self.history.names[0]).tolist()):
                self._capture(step)  # keep the step where it went wrong in the history
            for row, p in zip(group.rows, params):
                for what, tensor in (("weight", p), ("gradient", p.grad)):
                    if tensor is not None and not bool(torch.isfinite(tensor).all()):
                        raise NonFiniteError(
                            f"NaN/Inf in the {what} of {self.history.names[row]} at step {step} "
                            f"(stop_on_nonfinite=True); the history up to this step is kept")

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

    def probe(self, inputs: torch.Tensor, modules: Selector = None) -> None:
        """Fix a small input batch whose feature maps (of conv layers by default, or the modules
        named) are recorded at each capture, without changing the model's state."""
        model = self.model
        if model is None:
            raise RuntimeError("probe(): the watched model no longer exists")
        if not isinstance(inputs, torch.Tensor):
            raise TypeError(f"probe() expected a tensor batch, got {type(inputs).__name__}")
        chosen = select_modules(model, True if modules is None else modules,
                                (nn.Conv1d, nn.Conv2d, nn.Conv3d) if modules is None else ())
        self._probe = (inputs.detach().clone(), chosen)
        self._run_probe(self.step)

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
        state = "closed" if not self._handles else "watching"
        return (f"<nbweights.Watcher {state} {len(self.history.names)} parameters, "
                f"step {self.step}, {len(self.history.steps(self.history.names[0])) if self.history.names else 0} snapshots>")


def watch(model: nn.Module, optimizer: torch.optim.Optimizer | None = None, **options: Any) -> Watcher:
    """Attach nbweights to a model (and its optimizer) and return the :class:`Watcher`.

    Options: ``params=`` (names, globs or module types; default every trainable parameter),
    ``every=`` (an int, or "auto" to keep capture cost near ``budget=`` of training time),
    ``bins=``, ``sample_size=``, ``max_bytes=`` (history memory bound), ``pictures=``.
    """
    return Watcher(model, optimizer, **options)

