"""Capture: the hooks that decide when to snapshot a model, and what they read.

Nothing under ``capture/`` imports a widget library, ``views`` or ``ui``: a script under
torchrun watches a model with torch and numpy alone (``tests/test_layout.py`` pins it).
"""
from .watcher import NonFiniteError, Watcher, check_model, watch

__all__ = ["NonFiniteError", "Watcher", "check_model", "watch"]
