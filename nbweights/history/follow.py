"""Following a run directory from a notebook while the job that writes it runs (``nbw.follow``).

A daemon thread polls the directory's log every ``interval`` seconds, appends the new records to
the follower's :class:`History` and tells listeners (the dashboard) the latest step, so the same
dashboard as a Watcher's redraws live. After the job ends, the follower stays readable.

>>> run = nbw.follow("runs/exp1")   # on any machine that can read the folder
>>> run                             # the dashboard, live
>>> run.health()                    # the same health signals as a Watcher's
"""
from __future__ import annotations

import logging
import os
import threading
import weakref
from typing import Any

from .observed import Displayed
from .rundir import RunReader

log = logging.getLogger("nbweights")


class Follower(Displayed):
    """A run directory read as it grows: ``.history``, ``.health()``, listeners (told from the
    polling thread) and a dashboard.

    ``close()`` stops the polling (the history stays); safe to repeat, usable as a context manager.
    """

    def __init__(self, run_dir: str | os.PathLike, *, interval: float = 0.5, thresholds: Any = None):
        if not isinstance(interval, (int, float)) or isinstance(interval, bool) or interval <= 0:
            raise ValueError(f"interval= must be a positive number of seconds, got {interval!r}")
        self._reader = RunReader(run_dir)
        self.path = self._reader.path
        self.history = self._reader.history
        #: Held while records are appended; the dashboard holds it to read a steady history.
        self.lock = threading.RLock()
        if thresholds is None:
            from ..health import Thresholds  # health reads histories: imported only where used
            thresholds = Thresholds()
        self.thresholds = thresholds
        self._init_observers()
        self.refresh()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=_poll, args=(weakref.ref(self), self._stop, float(interval)),
                                        name=f"nbweights-follow {self.path}", daemon=True)
        self._thread.start()

    # ----- reading -------------------------------------------------------------------------
    def refresh(self) -> int:
        """Read what the job wrote since the last read now; returns the number of new rows."""
        with self.lock:
            added = self._reader.poll()
        if added:
            self._listeners.notify(self.history.latest_step)
        return added

    @property
    def step(self) -> int:
        """The latest step read so far (0 before any)."""
        return self.history.latest_step or 0

    @property
    def ended(self) -> bool:
        """Whether the job closed its watcher (it may also have been killed: see ``damaged``)."""
        return self._reader.ended

    @property
    def damaged(self) -> str | None:
        """Why reading stopped before the end of the log (a frame failed its checksum), or None."""
        return self._reader.damaged

    def health(self) -> list:
        """Health signals that fired so far, oldest first (as ``Watcher.health()``)."""
        from ..health import find_signals
        with self.lock:
            return find_signals(self.history, self.thresholds)

    # ----- handle --------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._stop.is_set()

    def close(self) -> None:
        """Stop polling the directory; the history read so far stays. Safe to repeat."""
        self._stop.set()

    def __enter__(self) -> "Follower":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "ended" if self.ended else ("closed" if self.closed else "following")
        names = self.history.names
        snapshots = len(self.history.steps(names[0])) if names else 0
        return f"<nbweights.Follower {state} {os.fspath(self.path)!r}, step {self.step}, {snapshots} snapshots>"


def _poll(ref: "weakref.ref[Follower]", stop: threading.Event, interval: float) -> None:
    """The polling loop: holds the follower only while reading, so a dropped one is collected."""
    failed = False
    while not stop.wait(interval):
        follower = ref()
        if follower is None:
            return
        try:
            follower.refresh()
        except Exception:
            if not failed:
                failed = True
                log.exception("nbweights: reading %s failed (logged once)", follower.path)
        if follower.ended:
            return  # the job closed its watcher: nothing more will come
        del follower
