"""Hooks that decide when to take a snapshot of a model, and the Watcher that owns them.

With an optimizer, a snapshot is taken after ``optimizer.step()`` (PyTorch's optimizer step
hooks); without one, at the start of a training-mode forward of the model. On a step that is
not captured, the hooks do one integer comparison. Nothing here imports a widget library, so a
Watcher runs the same in a script, a notebook or under torchrun.
"""
from __future__ import annotations

import logging
import threading
import weakref
from contextlib import nullcontext
from typing import Any, Callable, ClassVar

import torch
from torch import nn

from .activations import DEFAULT_ACTIVATION_TYPES, ActivationHooks
from .containment import orphan, record_failure, remove_orphans, weakly
from .groups import ParameterGroup, empty_summary
from .live import LiveParameters
from .options import check_flag, check_int, check_thresholds
from ..history import DEFAULT_MAX_BYTES, History
from .pacing import DEFAULT_BUDGET, Every, Pacer
from .pictures import PictureLimits
from ..health import Signal, Thresholds, find_signals
from .probe import Probe
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


#: The live watcher of each model and optimizer: re-running ``w = nbw.watch(model, opt)``
#: closes the one the earlier run left (weak both ways: it keeps neither alive).
_watcher_of: "weakref.WeakKeyDictionary[Any, weakref.ref[Watcher]]" = weakref.WeakKeyDictionary()


class Watcher:
    """Watches one model's parameters while it trains; ``close()`` removes every hook it added.

    Holds only weak references to the model, its parameters and the optimizer, and its hooks
    hold it weakly too: a notebook that keeps the dashboard does not keep a deleted model in
    memory, and a watcher nobody holds stops recording. Use as a context manager or call
    :meth:`close`; both are safe to repeat. Whatever capture raises stays out of training: it
    is logged once and kept in :attr:`failures`.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer | None = None, *,
                 params: Selector = None, every: Every = "auto", budget: float = DEFAULT_BUDGET,
                 bins: int = 64, sample_size: int | None = 4096, max_bytes: int = DEFAULT_MAX_BYTES,
                 pictures: PictureLimits | None = None, activations: Selector | bool = False,
                 stop_on_nonfinite: bool = False, thresholds: Thresholds | None = None,
                 replace_earlier: bool = True):
        model = check_model(model, "watch")
        optimizer = _check_optimizer(optimizer)
        bins = check_int(bins, "bins", 2)
        sample_size = None if sample_size is None else check_int(sample_size, "sample_size", 1)
        self.stop_on_nonfinite = check_flag(stop_on_nonfinite, "stop_on_nonfinite")
        self.thresholds = check_thresholds(thresholds)
        self.history = History(max_bytes=max_bytes, bins=bins)
        self.pacer = Pacer(every, budget)
        self.step = 0
        #: What capture could not record, by name (a parameter's qualified name, "<module>
        #: (output)", "probe", "capture"): a message saying what failed, and at which step.
        self.failures: dict[str, str] = {}
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
        remove_orphans()

        named = select_parameters(model, params)
        self._names = [n for n, _ in named]
        self.history.declare("weight", self._names, [tuple(p.shape) for _, p in named])
        self.history.declare("grad", self._names, [tuple(p.shape) for _, p in named])
        self._live = LiveParameters(self._names, bins, sample_size, pictures or PictureLimits(), self.failures,
                                    None if optimizer is not None else weakly(self, "_gradient_ready"))
        self._activations: ActivationHooks | None = None
        if activations is not False and activations is not None:
            modules = select_modules(model, activations, DEFAULT_ACTIVATION_TYPES)
            self._activations = ActivationHooks(modules, bins, sample_size or 4096, weakly(self, "_activations_due"),
                                                weakly(self, "_activation_failed"))
            self.history.declare("activation", self._activations.names, [() for _ in modules])
        self._probe: Probe | None = None
        self._probe_handles: list[Any] = []  # the probe's, kept here for close() and the collector
        if replace_earlier:
            self._replace_earlier(model, optimizer)
        collected = weakref.finalize(self, orphan, self._handles, self._live.grad_handles, self._probe_handles,
                                     self._activations.handles if self._activations is not None else [])
        collected.atexit = False  # at interpreter exit nothing needs removing, or saying
        self._attach(model, optimizer)
        self._capture(0)

    def _replace_earlier(self, model: nn.Module, optimizer: torch.optim.Optimizer | None) -> None:
        targets = [t for t in (model, optimizer) if t is not None]
        earlier = {ref() for ref in (_watcher_of.get(t) for t in targets) if ref is not None}
        for watcher in earlier - {None}:
            if not watcher.closed:
                watcher.close(release=True)
                log.warning("nbweights: closed the earlier watcher of this model or optimizer "
                            "(watch() was run again; one watcher records at a time)")
        for target in targets:
            _watcher_of[target] = weakref.ref(self)

    # ----- hooks (each holds the watcher weakly and keeps capture's errors to itself) -------
    def _attach(self, model: nn.Module, optimizer: torch.optim.Optimizer | None) -> None:
        if optimizer is not None:
            self._handles.append(optimizer.register_step_pre_hook(weakly(self, "_before_optimizer_step")))
            self._handles.append(optimizer.register_step_post_hook(weakly(self, "_after_optimizer_step")))
        else:
            self._handles.append(model.register_forward_pre_hook(weakly(self, "_before_forward")))

    def _before_optimizer_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if self.step + 1 >= self.pacer.next_step:
            try:
                model = self.model
                if model is None or not self._live.sync(model, self.step + 1):
                    return
                stepped = {id(p) for group in optimizer.param_groups for p in group["params"]}
            except Exception as error:
                record_failure(self.failures, "capture", error, self.step + 1, "reading the model")
                return
            self._live.for_each(self.step + 1, "reading the weights before the step",
                                 lambda group: group.remember_before_step(stepped))

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
            self._stop_if_nonfinite(self.step)
        if self._forwards >= self.pacer.next_step:
            self._live.for_each(self._forwards, "counting gradients", ParameterGroup.arm_gradients)

    def _gradient_ready(self, group: ParameterGroup, param: torch.Tensor) -> None:
        self._live.for_each(self._forwards, "summarising gradients", lambda g: g.gradient_ready(param), [group])

    # ----- capture ------------------------------------------------------------------------
    def _capture(self, step: int) -> None:
        # The listeners' work (the dashboard's redraw) counts as capture cost, so that
        # automatic pacing keeps everything nbweights does within its budget.
        started = self.pacer.start()
        try:
            with self.lock:
                self._record(step)
            self._notify(step)
        except Exception as error:  # never into the user's step: say it once, train on
            record_failure(self.failures, "capture", error, step, "capturing")
        finally:
            self.pacer.done(step, started)

    def _record(self, step: int) -> None:
        model = self.model
        if model is None or not self._live.sync(model, step):
            return
        count, bins = len(self._names), self.history.bins
        weights, grads = empty_summary(count, bins), empty_summary(count, bins)
        pictures = []

        def summarise(group: ParameterGroup) -> None:
            captured = group.capture(with_grads=step > 0)
            if captured is None:
                return
            group_weights, group_grads, group_pictures = captured
            weights.fields[group.rows], weights.counts[group.rows] = group_weights.fields, group_weights.counts
            weights.ranges[group.rows] = group_weights.ranges
            if group_grads is not None:
                grads.fields[group.rows], grads.counts[group.rows] = group_grads.fields, group_grads.counts
                grads.ranges[group.rows] = group_grads.ranges
            pictures.extend((self._names[group.rows[i]], kind, data) for i, kind, data in group_pictures)

        self._live.for_each(step, "summarising", summarise)
        if self._live.regrouping and self._live.sync(model, step):  # without what failed: the rest, now
            self._live.for_each(step, "summarising", summarise)
        activations = self._collect_activations(step) if self._activations is not None and step > 0 else None
        maps = self._probe_maps(model, step)
        # Everything is computed before the first write, so a failure above records nothing
        # half; the writes follow in the order readers expect (weights, then gradients).
        self.history.record("weight", step, weights)
        if step > 0:
            self.history.record("grad", step, grads)
        for name, kind, data in pictures:
            self.history.record_picture(name, step, kind, data)
        if activations is not None:
            self.history.record("activation", step, activations[0], extra=activations[1])
        for name, array in maps.items():
            self.history.record_feature_maps(name, step, array)

    def _collect_activations(self, step: int) -> tuple[Any, Any] | None:
        try:
            return self._activations.collect()
        except Exception as error:
            record_failure(self.failures, "activations", error, step, "collecting the outputs")
            return None

    def _probe_maps(self, model: nn.Module, step: int) -> dict[str, Any]:
        if self._probe is None:
            return {}
        try:
            return self._run_probe(model, self._probe)
        except Exception as error:  # the model changed under the probe: stop probing
            self._remove_probe()
            record_failure(self.failures, "probe", error, step, "running the probe (now removed)")
            return {}

    def _run_probe(self, model: nn.Module, probe: Probe) -> dict:
        with self._activations.paused() if self._activations is not None else nullcontext():
            return probe.run(model)

    def _remove_probe(self) -> None:
        self._probe = None
        for handle in self._probe_handles:
            handle.remove()
        self._probe_handles.clear()

    def _stop_if_nonfinite(self, step: int) -> None:
        """Raise NonFiniteError naming the first parameter whose weight or gradient has NaN/Inf."""
        try:
            found = self._live.first_nonfinite()
            if found is not None and step not in set(self.history.steps(self._names[0]).tolist()):
                self._capture(step)  # keep the step where it went wrong in the history
        except Exception as error:
            record_failure(self.failures, "stop_on_nonfinite", error, step, "looking for NaN/Inf")
            return
        if found is not None:
            raise NonFiniteError(f"NaN/Inf in the {found[1]} of {found[0]} at step {step} "
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
        named) are recorded at each capture, without changing the model's state.

        The batch is run once here: if the model cannot take it, ValueError, and no probe is set.
        """
        model = self.model
        if model is None:
            raise RuntimeError("probe(): the watched model no longer exists")
        if not isinstance(inputs, torch.Tensor):
            raise TypeError(f"probe() expected a tensor batch, got {type(inputs).__name__}")
        chosen = select_modules(model, True if modules is None else modules,
                                (nn.Conv1d, nn.Conv2d, nn.Conv3d) if modules is None else ())
        probe = Probe(inputs.detach().clone(), chosen)
        try:
            maps = self._run_probe(model, probe)
        except Exception as error:
            for handle in probe.handles:
                handle.remove()
            raise ValueError(f"probe(): the model cannot run on this batch of shape {tuple(inputs.shape)} "
                             f"({type(error).__name__}: {error}); no probe was set") from error
        self._remove_probe()  # the earlier one, if any
        self._probe = probe
        self._probe_handles.extend(probe.handles)
        with self.lock:
            for name, array in maps.items():
                self.history.record_feature_maps(name, self.step, array)
        self._notify(self.step)

    def health(self) -> list[Signal]:
        """Health signals that fired, oldest first: kind, name, step, value and a message."""
        return find_signals(self.history, self.thresholds)

    def save(self, path: str) -> None:
        """Write the history to ``path`` (a ``.nbw`` file; see :mod:`nbweights.history.fileformat`)."""
        from ..history.fileformat import save_history
        save_history(self.history, path)

    @property
    def model(self) -> nn.Module | None:
        """The watched model, or None once it has been garbage collected."""
        return self._model()

    @property
    def closed(self) -> bool:
        return not self._handles and (self._activations is None or not self._activations.handles)

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

