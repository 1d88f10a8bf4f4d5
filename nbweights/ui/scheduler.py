"""What one redraw draws, and when: a pure scheduler, tested with a fake clock like the Pacer.

Every redraw draws the shown entry's curves (cheap, and what a person watches move). The other
parts of the dashboard (the shown entry's pictures, the metrics, the table, the health list, the
model overview, the status line) share a time budget: ``budget`` seconds per redraw on average,
kept in a bucket of at most two redraws' worth. Parts are offered oldest-drawn first; a part is
drawn while the bucket is positive and the redraw's bytes are under ``byte_budget``, and paid for
after, so a part dearer than one redraw's share still comes, on fewer redraws. Whatever the cost,
a part not drawn for ``stale_after`` seconds is drawn at the next redraw (one such part per
redraw), so that everything on screen is at most a few seconds old while a model of any size
trains. Parts may also have a period: the status line and the table need not redraw more often.
"""
from __future__ import annotations

import time
from typing import Callable, Iterator, Mapping

#: Seconds after which a part is drawn whatever the budget says.
STALE_AFTER = 2.0


class RedrawScheduler:
    """Says which parts a redraw draws. ``periods`` maps each part's name to the least seconds
    between two of its draws (0: whenever there is budget)."""

    def __init__(self, periods: Mapping[str, float], budget: float, byte_budget: int,
                 stale_after: float = STALE_AFTER, clock: Callable[[], float] = time.perf_counter):
        if budget <= 0 or byte_budget <= 0 or stale_after <= 0:
            raise ValueError(f"budget=, byte_budget= and stale_after= must be positive, got "
                             f"{budget!r}, {byte_budget!r}, {stale_after!r}")
        self.periods = dict(periods)
        self.budget, self.byte_budget, self.stale_after = float(budget), int(byte_budget), float(stale_after)
        self._clock = clock
        self._tokens = 0.0
        self.last_drawn = {name: float("-inf") for name in self.periods}

    def parts(self, sent: int = 0, full: bool = False) -> Iterator[str]:
        """The parts to draw now, in order; report each with :meth:`drawn` before asking the next.

        ``sent``: bytes this redraw already sent (the shown entry's curves). ``full``: every part
        that is due, whatever it costs (after a cell ends, or on request).
        """
        self._tokens = min(self._tokens + self.budget, 2 * self.budget)
        self._sent = sent
        now = self._clock()
        due = [name for name in self.periods if full or now - self.last_drawn[name] >= self.periods[name]]
        due.sort(key=lambda name: self.last_drawn[name])
        stale_taken = False
        for name in due:
            affordable = self._tokens > 0 and self._sent <= self.byte_budget
            stale = now - self.last_drawn[name] >= self.stale_after
            if full or affordable or (stale and not stale_taken):
                stale_taken = stale_taken or (stale and not affordable)
                yield name

    def drawn(self, name: str, seconds: float, sent: int) -> None:
        """Report that part ``name`` was drawn, in ``seconds``, sending ``sent`` bytes."""
        self._tokens -= seconds
        self._sent += sent
        self.last_drawn[name] = self._clock()

    def expire(self, name: str) -> None:
        """Draw ``name`` at the next redraw as if it were stale (e.g. a new entry was chosen)."""
        if name in self.last_drawn:
            self.last_drawn[name] = float("-inf")
