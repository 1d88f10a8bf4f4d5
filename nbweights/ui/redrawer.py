"""A daemon thread that redraws the dashboard, so that the training thread only says "dirty".

Kernel-to-browser messages may be sent from any thread (ipykernel's IOPub thread takes them from
a per-thread pipe), so the redraws, their numpy work, PNG encoding and message serialisation run
here, off the optimizer step. The thread waits on an event, redraws at most ``max_fps`` times a
second, swallows and logs (once) anything a redraw raises, and stops on :meth:`stop` or when the
dashboard it serves is garbage collected.

>>> thread = RedrawThread(dashboard._draw_from_thread, max_fps=12)
>>> thread.request()      # from the watcher's listener: cheap, never blocks
>>> thread.stop()
"""
from __future__ import annotations

import logging
import threading
import time
import weakref
from typing import Callable

log = logging.getLogger("nbweights")

#: Seconds the thread sleeps between checks that its dashboard still exists.
IDLE_WAKE = 5.0


class RedrawThread:
    """Calls ``draw()`` after :meth:`request`, at most ``max_fps`` times a second."""

    def __init__(self, draw: Callable[[], None], max_fps: float):
        # A weak reference to a bound method: the thread must not keep its dashboard alive.
        self._draw = weakref.WeakMethod(draw) if hasattr(draw, "__self__") else (lambda: draw)
        self.max_fps = float(max_fps)
        self._wanted = threading.Event()
        self._stopped = threading.Event()
        self._logged = False
        self.redraws = 0
        self.thread = threading.Thread(target=self._run, name="nbweights-redraw", daemon=True)
        self.thread.start()

    def request(self) -> None:
        """Ask for a redraw soon (the latest state is drawn; requests in between merge)."""
        self._wanted.set()

    def stop(self) -> None:
        """Stop the thread after the redraw in progress, if any. Safe to repeat."""
        self._stopped.set()
        self._wanted.set()

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def _run(self) -> None:
        last = float("-inf")
        while not self._stopped.is_set():
            if not self._wanted.wait(IDLE_WAKE):
                if self._draw() is None:
                    return
                continue
            wait = last + 1.0 / self.max_fps - time.perf_counter()
            if wait > 0:  # too soon: sleep (at most IDLE_WAKE), then look again
                if self._stopped.wait(min(wait, IDLE_WAKE)):
                    return
                continue
            self._wanted.clear()
            draw = self._draw()
            if draw is None or self._stopped.is_set():
                return
            last = time.perf_counter()
            try:
                draw()
                self.redraws += 1
            except Exception:  # nothing may escape a daemon thread; say it once
                if not self._logged:
                    self._logged = True
                    log.exception("nbweights: dashboard redraw failed (logged once)")
            del draw
