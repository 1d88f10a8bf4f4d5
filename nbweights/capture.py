"""Hooks that decide when to take a snapshot of a model, and the Watcher that owns them.

With an optimizer, a snapshot is taken after ``optimizer.step()`` (PyTorch's optimizer step
hooks); without one, at the start of a training-mode forward of the model. On a step that is
not captured, the hooks do one integer comparison. Nothing here imports a widget library, so a
Watcher runs the same in a script, a notebook or under torchrun.
"""
from __future__ import annotations

import logging
import weakref
from typing import Any, Callable

import torch
from torch import nn

from .groups import ParameterGroup, empty_summary
from .history import DEFAULT_MAX_BYTES, History
from .pacing import DEFAULT_BUDGET, Every, Pacer
from .pictures import PictureLimits
from .selection import Selector, select_parameters

log = logging.getLogger("nbweights")


class NonFiniteError(FloatingPointError):
    """Raised from the optimizer step when ``stop_on_nonfinite=True`` and NaN/Inf appeared."""


def _check_model(model: Any, call: str) -> nn.Module:
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
                 pictures: PictureLimits | None = None):
        model = _check_model(model, "watch")
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

        named = select_parameters(model, params)
        self.history.declare("weight", [n for n, _ in named], [tuple(p.shape) for _, p in named])
        self.history.declare("grad", [n for n, _ in named], [tuple(p.shape) for _, p in named])
        self._groups = ParameterGroup.split(named, bins, sample_size, pictures or PictureLimits())
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

    def _before_forward(self, module: nn.Module, args: Any) -> None:
        # Without an optimizer, the f-th training forward sees the weights after f - 1 updates
        # (step f - 1); the gradients of its backward pass belong to update f.
        if not module.training:
            return
        self._forwards += 1
        self.step = self._forwards - 1
        if self.step >= self.pacer.next_step:
            self._capture(self.step)
        if self._forwards >= self.pacer.next_step:
            for group in self._groups:
                group.arm_gradients()

    # ----- capture ------------------------------------------------------------------------
    def _capture(self, step: int) -> None:
        started = self.pacer.start()
        try:
            self._record(step)
        finally:
            self.pacer.done(step, started)
        self._notify(step)

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
        self.history.log(step, **metrics)
        self._notify(step)

    def snapshot(self) -> None:
        """Capture now, whatever the pacing says (e.g. at the end of an epoch)."""
        self._capture(self.step)

    def save(self, path: str) -> None:
        """Write the history to ``path`` (a ``.nbw`` file; see :mod:`nbweights.fileformat`)."""
        from .fileformat import save_history
        save_history(self.history, path)

    @property
    def model(self) -> nn.Module | None:
        """The watched model, or None once it has been garbage collected."""
        return self._model()

    @property
    def closed(self) -> bool:
        return not self._handles

    def close(self) -> None:
        """Remove every hook this watcher added. The history stays readable. Safe to repeat."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def __enter__(self) -> "Watcher":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # ----- display (widgets are imported only here, on demand) ----------------------------
    @property
    def dashboard(self) -> Any:
        """The ipywidgets dashboard of this watcher (built on first use)."""
        if self._dashboard is None:
            from .dashboard import Dashboard
            self._dashboard = Dashboard(self)
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

