"""Capture: the hooks that decide when to snapshot a model, and what they read.

Nothing under ``capture/`` imports a widget library, ``views`` or ``ui``: a script under
torchrun watches a model with torch and numpy alone (``tests/test_layout.py`` pins it).
"""
from typing import Any

from torch import nn

from .arguments import Optimizers
from .watcher import NonFiniteError, Watcher, check_model

__all__ = ["NonFiniteError", "Watcher", "check_model", "watch"]


def watch(model: nn.Module, optimizer: Optimizers = None, **options: Any) -> Watcher:
    """Attach nbweights to a model (and its optimizer) and return the :class:`Watcher`.

    Options: ``params=`` (names, globs or module types; default every trainable parameter),
    ``every=`` (an int, or "auto" to keep capture cost near ``budget=`` of training time),
    ``bins=``, ``sample_size=``, ``max_bytes=`` (history memory bound), ``pictures=``.
    """
    return Watcher(model, optimizer, **options)

