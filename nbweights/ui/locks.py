"""Locks held together, for the redraws that run off the redraw thread."""
from __future__ import annotations

from typing import Any


class HeldTogether:
    """Locks taken in order and released in reverse: what a view's own redraw must hold (the
    dashboard's, so that two threads never write one widget at once, and the history's, so that
    the training thread does not append while the view reads)."""

    def __init__(self, *locks: Any):
        self.locks = locks

    def __enter__(self) -> "HeldTogether":
        for lock in self.locks:
            lock.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        for lock in reversed(self.locks):
            lock.__exit__(*exc)
