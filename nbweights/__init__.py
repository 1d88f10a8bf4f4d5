"""nbweights: watch a PyTorch model's weights learn, live, in a Jupyter notebook.

>>> import nbweights as nbw
>>> w = nbw.watch(model, optimizer)   # then `w` as a cell's last line shows the dashboard

This module is the package's face: the public calls, and the wiring of capture to the display
(capture itself never imports a widget library; ui is imported when a dashboard is first shown).
"""
from __future__ import annotations

import weakref
from typing import Any, Sequence

from .capture import NonFiniteError, Watcher, check_model
from .health import Signal, Thresholds
from .history import History
from .history.fileformat import load_history as load
from .history.follow import Follower
from .history.tensorboard import export_tensorboard

__all__ = ["watch", "show", "load", "follow", "export_tensorboard", "Watcher", "Follower", "History",
           "NonFiniteError", "Signal", "Thresholds"]
__version__ = "0.1.0"

#: What ``watch()`` was told for the dashboard of each watcher (view options, not capture's).
_display_options: "weakref.WeakKeyDictionary[Watcher, dict]" = weakref.WeakKeyDictionary()


def _make_dashboard(watcher: Watcher) -> Any:
    from .ui.dashboard import Dashboard
    return Dashboard(watcher, **_display_options.get(watcher, {}))


Watcher.display_factory = staticmethod(_make_dashboard)
Follower.display_factory = staticmethod(_make_dashboard)


def watch(model: Any, optimizer: Any = None, *, image_shape: Sequence[int] | None = None,
          class_names: Sequence[str] | None = None, **options: Any) -> Watcher:
    """Attach nbweights to a model (and its optimizer) and return the :class:`Watcher`.

    ``optimizer`` may be a list (a GAN's two): a step is then complete once each has stepped.
    Capture options: ``params=`` (names, globs or module types; default every trainable
    parameter), ``every=`` (an int, or "auto" to keep capture cost near ``budget=`` of training
    time), ``bins=``, ``sample_size=``, ``max_bytes=`` (history memory bound), ``pictures=``,
    ``activations=``, ``stop_on_nonfinite=``, ``thresholds=``, ``run_dir=`` (append every
    snapshot to a folder that :func:`follow` reads; under torchrun, rank 0 writes it),
    ``replace_earlier=`` (default True: close the earlier watcher of this model or optimizer, as
    re-running a cell wants). Display options: ``image_shape=`` and ``class_names=`` (the
    class-images view of a linear layer over pixels). Keep the returned watcher
    (``w = nbw.watch(...)``): one nobody holds stops recording.
    """
    watcher = Watcher(model, optimizer, **options)
    shown = {k: v for k, v in (("image_shape", image_shape), ("class_names", class_names)) if v is not None}
    if shown:
        _display_options[watcher] = shown
    return watcher


def follow(run_dir: Any, *, interval: float = 0.5, thresholds: Thresholds | None = None,
           image_shape: Sequence[int] | None = None, class_names: Sequence[str] | None = None) -> Follower:
    """Follow a run directory written by ``watch(..., run_dir=...)`` (a torchrun job, another
    process or machine): ``.history`` grows as the job writes, ``.health()``, and the same
    dashboard as a Watcher's (the cell's last line), redrawn live; it stays after the job ends."""
    follower = Follower(run_dir, interval=interval, thresholds=thresholds)
    shown = {k: v for k, v in (("image_shape", image_shape), ("class_names", class_names)) if v is not None}
    if shown:
        _display_options[follower] = shown
    return follower


def show(model: Any, **options: Any) -> Any:
    """The dashboard of a model's current weights, with no training: ``nbw.show(model)``."""
    watcher = watch(check_model(model, "show"), replace_earlier=False, **options)
    watcher.close()
    return watcher.dashboard
