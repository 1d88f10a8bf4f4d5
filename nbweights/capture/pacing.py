"""When to capture: every N-th step, or as often as a time budget allows.

With ``every="auto"`` the pacer measures, at each capture, how long training took since the
last one and how long the capture itself took, and spaces captures so that capturing costs
about ``budget`` (2 % by default) of training time. A 0.3 ms step and a 3 s step both get
frequent snapshots; the check on a step that is not captured is one integer comparison.

One slow capture (the first one's warm-up, a garbage collection, a busy machine) must not
stall the live picture: the capture cost is the mean of the last few captures without the
slowest, and the interval at most grows eightfold from one capture to the next.
"""
from __future__ import annotations

import math
import numbers
import time
from collections import deque
from contextlib import contextmanager
from typing import Callable, Iterator, Union

Every = Union[int, str]
#: Fraction of training time that automatic pacing lets captures take.
DEFAULT_BUDGET = 0.02
#: Never wait longer than this many steps between automatic captures.
MAX_INTERVAL = 10_000
#: Captures whose durations make the cost estimate (the slowest of them left out).
RECENT_CAPTURES = 8
#: The interval between automatic captures grows at most this many times per capture.
MAX_GROWTH = 8


def check_every(every: Every) -> Every:
    """Validate ``every=``: a positive int (numpy integers too) or "auto"."""
    if isinstance(every, str) and every == "auto":
        return every
    if isinstance(every, bool) or not isinstance(every, numbers.Integral) or every < 1:
        raise ValueError(f'every= must be a positive int or "auto", got {every!r}')
    return int(every)


def check_budget(budget: float) -> float:
    """Validate ``budget=``: a fraction of training time in (0, 1], such as 0.02 for 2 %."""
    if isinstance(budget, bool) or not isinstance(budget, numbers.Real):
        raise TypeError(f"budget= must be a fraction in (0, 1] such as 0.02 for 2 %, "
                        f"got {type(budget).__name__} {budget!r}")
    if not 0 < budget <= 1:
        raise ValueError(f"budget= must be a fraction in (0, 1] such as 0.02 for 2 %, got {budget!r}")
    return float(budget)


class Pacer:
    """Says which steps to capture; ``next_step`` is the next one."""

    def __init__(self, every: Every = "auto", budget: float = DEFAULT_BUDGET,
                 clock: Callable[[], float] = time.perf_counter):
        self.every = check_every(every)
        self.budget = check_budget(budget)
        self.next_step = 1 if self.every == "auto" else self.every
        self._clock = clock
        self._last_step = 0
        self._last_end = clock()
        self._step_seconds: float | None = None
        self._capture_seconds: float | None = None
        self._recent: deque[float] = deque(maxlen=RECENT_CAPTURES)
        self._interval = 1
        self._prepared = 0.0

    def start(self) -> float:
        """Call when a capture begins; returns the start time to hand to :meth:`done`."""
        return self._clock()

    @contextmanager
    def preparing(self) -> Iterator[None]:
        """Times the block as work for the coming capture (see :meth:`prepared`)."""
        started = self._clock()
        try:
            yield
        finally:
            self.prepared(self._clock() - started)

    def prepared(self, seconds: float) -> None:
        """Work done for the coming capture before it starts (the weights read before the
        update, for the update ratio): capture cost, not training time."""
        self._prepared += max(seconds, 0.0)

    def done(self, step: int, started: float) -> None:
        """Call when the capture of ``step`` ended: measures it and schedules the next one."""
        end, prepared, self._prepared = self._clock(), self._prepared, 0.0
        if self._last_step >= 1:  # the time since watch() includes the user's own set-up
            per_step = max(started - self._last_end - prepared, 0.0) / max(step - self._last_step, 1)
            self._step_seconds = _smooth(self._step_seconds, per_step)
            self._recent.append(end - started + prepared)
            self._capture_seconds = _typical(self._recent)
        if self.every != "auto":
            self.next_step = step + self.every
        elif self._step_seconds is None:
            self.next_step = step + 1
        else:
            wanted = self._capture_seconds / (self.budget * max(self._step_seconds, 1e-9))
            self._interval = min(max(1, math.ceil(wanted)), MAX_INTERVAL, MAX_GROWTH * self._interval)
            self.next_step = step + self._interval
        self._last_step = step
        self._last_end = end

    def resume(self) -> None:
        """Training starts again after a pause (a second ``fit``): the pause is not step time."""
        self._last_end = self._clock()

    @property
    def capture_seconds(self) -> float | None:
        """Typical wall time of one capture, as pacing counts it (None before two captures)."""
        return self._capture_seconds

    @property
    def step_seconds(self) -> float | None:
        """Smoothed wall time of one training step between captures (None before two captures)."""
        return self._step_seconds

    @property
    def overhead(self) -> float | None:
        """Estimated fraction of training time spent capturing (None before two captures)."""
        if self._step_seconds is None or self._capture_seconds is None:
            return None
        interval = max(self.next_step - self._last_step, 1)
        return self._capture_seconds / (self._capture_seconds + interval * self._step_seconds)


def _typical(durations: deque[float]) -> float:
    """Mean of the durations without the largest (one outlier moves it little)."""
    if len(durations) < 2:
        return durations[0]
    return (sum(durations) - max(durations)) / (len(durations) - 1)


def _smooth(previous: float | None, value: float, weight: float = 0.3) -> float:
    return value if previous is None else (1 - weight) * previous + weight * value
