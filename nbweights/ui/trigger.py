"""When the dashboard redraws: after each capture (throttled, or on its own thread), after a
cell ends (IPython's ``post_run_cell``), and when a control asks.

Inside a Jupyter kernel redraws run on a daemon thread (:mod:`nbweights.ui.redrawer`): the
watcher's listener, on the training thread, only says "dirty". Outside one (scripts, tests) they
run on the training thread, at most ``max_fps`` times a second; what a throttled capture left is
drawn by the next redraw, or when the cell ends.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from .redrawer import RedrawThread

log = logging.getLogger("nbweights")

#: A kernel that recorded nothing for this long is idle: a control's handler may redraw itself.
IDLE_SECONDS = 0.5


def ipython() -> Any:
    """The running IPython shell, or None."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def in_kernel() -> bool:
    """Whether this runs inside a Jupyter kernel (not a terminal IPython, not a script)."""
    shell = ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class RedrawTrigger:
    """Calls ``redraw(settle)`` when due; ``settle=True`` after a cell ends (draw everything)."""

    def __init__(self, redraw: Callable[[bool], None], max_fps: float, threaded: bool,
                 before_settle: Callable[[], None] = lambda: None):
        self._redraw, self._before_settle = redraw, before_settle
        self.max_fps = max_fps
        self.thread = RedrawThread(self._from_thread, max_fps) if threaded else None
        #: Something recorded waits to be drawn.
        self.pending = False
        self._unsettled = self._settle = self.closed = False
        self._last_record = self._last_end = float("-inf")
        self._shell = ipython()
        if self._shell is not None:
            self._shell.events.register("post_run_cell", self.after_cell)

    def set_max_fps(self, value: float) -> None:
        self.max_fps = value
        if self.thread is not None:
            self.thread.max_fps = value

    def recorded(self, step: int) -> None:
        """Watcher listener, on the training thread: mark dirty (threaded), or redraw at most
        ``max_fps`` times a second."""
        self._last_record = time.perf_counter()
        self._unsettled = True
        if self.thread is not None:
            self.pending = True
            self.thread.request()
        elif self._last_record - self._last_end < 1.0 / self.max_fps:
            self.pending = True  # drawn by the next redraw, or after the cell ends
        else:
            self._safe(settle=False)

    def after_cell(self, *_: Any) -> None:
        """IPython's post_run_cell: the run is over, draw what was left for later."""
        if self.closed or not (self.pending or self._unsettled):
            return
        self._unsettled = False
        self._before_settle()
        if self.thread is not None:
            self._settle = True
            self.thread.request()
        else:
            self._safe(settle=True)

    def request(self) -> None:
        """Redraw soon: on the redraw thread; else now, unless this is a subshell thread while
        training runs on the main thread (then the next capture's redraw draws it)."""
        if self.closed:
            return
        if self.thread is not None:
            self.thread.request()
        elif threading.current_thread() is threading.main_thread() or \
                time.perf_counter() - self._last_record > IDLE_SECONDS:
            self._safe(settle=False)
        else:
            self.pending = True

    def drawn(self) -> None:
        """Called as a redraw starts: what was pending is being drawn."""
        self.pending = False

    def settled(self) -> None:
        """Called by a flush: nothing is left for the cell's end."""
        self.pending = self._unsettled = False

    def close(self) -> None:
        """Stop the thread and leave IPython's events (idempotent)."""
        self.closed = True
        if self.thread is not None:
            self.thread.stop()
        if self._shell is not None:
            try:
                self._shell.events.unregister("post_run_cell", self.after_cell)
            except ValueError:
                pass

    def _from_thread(self) -> None:
        settle, self._settle = self._settle, False
        self._redraw(settle)

    def _safe(self, settle: bool) -> None:
        try:
            self._redraw(settle)
        except Exception:
            log.exception("nbweights: dashboard redraw failed")
        self._last_end = time.perf_counter()
