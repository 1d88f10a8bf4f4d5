"""A bounded, columnar store of rows recorded at increasing steps.

When a store grows past what it may hold, :meth:`Timeline.thin` drops every other row except the
first and the last, so a long run stays covered from its first step to its latest, older
stretches more sparsely than the recent one.

Every change is built aside and swapped in by one assignment, so an interrupt (a
``KeyboardInterrupt`` in a notebook) at any point leaves the timeline as it was before the change
or after it: steps never decrease and every column keeps one row per step.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Picture:
    """A bounded copy of a tensor at one step: ``kind`` is "values", "matrix" or "filters"."""

    kind: str
    step: int
    array: np.ndarray


def rows_through(steps: np.ndarray, step: int | None) -> int:
    """How many of the increasing ``steps`` are at or before ``step`` (all of them for None)."""
    return len(steps) if step is None else int(np.searchsorted(steps, step, side="right"))


class Timeline:
    """Rows of equally shaped numpy arrays, one row per recorded step, grown by doubling."""

    def __init__(self) -> None:
        self._steps = np.zeros(0, dtype=np.int64)
        self._columns: dict[str, np.ndarray] = {}
        self._length = 0
        self._row_nbytes = 8

    def __len__(self) -> int:
        return self._length

    @property
    def steps(self) -> np.ndarray:
        return self._steps[: self._length]

    def column(self, name: str) -> np.ndarray:
        """The recorded values of one column, oldest first (a view: copy before keeping)."""
        return self._columns[name][: self._length]

    @property
    def column_names(self) -> list[str]:
        return list(self._columns)

    @property
    def capacity(self) -> int:
        """Rows the arrays have room for (recorded ones included)."""
        return len(self._steps)

    @property
    def row_nbytes(self) -> int:
        """Bytes of one row: its step and its value in every column."""
        return self._row_nbytes

    @property
    def nbytes(self) -> int:
        """Bytes the arrays hold, room for future rows included (what the memory bound counts)."""
        return self._row_nbytes * len(self._steps)

    def snapshot(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Copies of the steps and of every column, read at one instant."""
        length, steps, columns = self._length, self._steps, self._columns
        return steps[:length].copy(), {name: c[:length].copy() for name, c in columns.items()}

    @staticmethod
    def row_nbytes_of(**row: np.ndarray) -> int:
        """Bytes one row of these values takes (its step included)."""
        return 8 + sum(np.asarray(value).nbytes for value in row.values())

    def append(self, step: int, **row: np.ndarray) -> None:
        """Record one row; steps must not decrease and columns keep their first shape."""
        length = self._length
        if length and step < self._steps[length - 1]:
            raise ValueError(f"step {step} comes before the last recorded step {self._steps[length - 1]}")
        if not self._columns:  # the first row sets the columns, with the room reserved so far
            capacity = len(self._steps) or 4
            columns = {name: np.empty((capacity,) + np.shape(value), dtype=np.asarray(value).dtype)
                       for name, value in row.items()}
            self._steps, self._columns, self._row_nbytes = (
                np.empty(capacity, dtype=np.int64), columns, 8 + sum(c[0].nbytes for c in columns.values()))
        elif row.keys() != self._columns.keys():
            raise ValueError(f"row has columns {sorted(row)}, expected {sorted(self._columns)}")
        if length == len(self._steps):
            self.reserve(max(4, 2 * length))
        # Rows past the length are not read: an interrupt before the last line leaves no trace.
        self._steps[length] = step
        for name, value in row.items():
            self._columns[name][length] = value
        self._length = length + 1

    def roll(self, step: int, **row: np.ndarray) -> None:
        """Drop the oldest row and append one, in the room there is (when no more is allowed)."""
        if not self._length or row.keys() != self._columns.keys():
            raise ValueError("roll() needs a timeline holding rows of these columns")
        if step < self._steps[self._length - 1]:
            raise ValueError(f"step {step} comes before the last recorded step {self._steps[self._length - 1]}")
        keep = np.ones(self._length, dtype=bool)
        keep[0] = False
        steps, columns = self._resized(len(self._steps), keep)
        length = self._length - 1
        steps[length] = step
        for name, value in row.items():
            columns[name][length] = value
        self._steps, self._columns, self._length = steps, columns, length + 1

    def reserve(self, capacity: int) -> None:
        """Make room for ``capacity`` rows (at least the recorded ones): grows or shrinks the arrays."""
        capacity = max(int(capacity), self._length)
        if capacity == len(self._steps):
            return
        steps, columns = self._resized(capacity, slice(0, self._length))
        self._steps, self._columns = steps, columns

    def thin(self) -> None:
        """Drop every other row, keeping the first and the last; the freed memory is released."""
        keep = np.zeros(self._length, dtype=bool)
        keep[::2] = True
        keep[-1:] = True
        self._keep(keep)

    def keep_latest(self) -> None:
        """Drop every row but the latest (when thinning to the first and last is not enough)."""
        keep = np.zeros(self._length, dtype=bool)
        keep[-1:] = True
        self._keep(keep)

    def _keep(self, keep: np.ndarray) -> None:
        kept = int(keep.sum())
        steps, columns = self._resized(kept, keep)
        self._steps, self._columns, self._length = steps, columns, kept

    def _resized(self, capacity: int, rows: slice | np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """New arrays of ``capacity`` rows starting with the chosen recorded ``rows``."""
        steps = np.empty(capacity, dtype=np.int64)
        kept = self._steps[: self._length][rows]
        steps[: len(kept)] = kept
        columns = {}
        for name, column in self._columns.items():
            grown = np.empty((capacity,) + column.shape[1:], dtype=column.dtype)
            grown[: len(kept)] = column[: self._length][rows]
            columns[name] = grown
        return steps, columns

    def index_at(self, step: int | None) -> int:
        """Row of the latest recorded step at or before ``step`` (the latest row for None)."""
        step = check_step(step)
        if self._length == 0:
            raise LookupError("nothing recorded yet")
        if step is None:
            return self._length - 1
        row = rows_through(self.steps, step) - 1
        if row < 0:
            raise LookupError(f"nothing recorded at or before step {step}; first is {self.steps[0]}")
        return row

    @classmethod
    def from_columns(cls, steps: np.ndarray, columns: dict[str, np.ndarray], copy: bool = True) -> "Timeline":
        """A timeline holding the given rows (used when loading a saved history).

        ValueError unless steps are integers that never decrease and every column has one row
        per step. ``copy=False`` keeps the given arrays (the loader's own, fresh ones).
        """
        steps = np.asarray(steps)
        if steps.ndim != 1 or steps.dtype.kind not in "iu":
            raise ValueError(f"steps must be a 1-D integer array, got {steps.dtype} of shape {steps.shape}")
        if len(steps) > 1 and np.any(np.diff(steps) < 0):
            raise ValueError("steps must not decrease")
        arrays = {}
        for name, column in columns.items():
            if not isinstance(column, np.ndarray) or column.ndim < 1 or len(column) != len(steps):
                raise ValueError(f"column {name!r} needs one row per step ({len(steps)}), "
                                 f"got shape {np.shape(column)}")
            arrays[name] = np.array(column) if copy else np.ascontiguousarray(column)
        timeline = cls()
        timeline._steps = np.array(steps, dtype=np.int64) if copy else np.ascontiguousarray(steps, dtype=np.int64)
        timeline._columns = arrays
        timeline._length = len(steps)
        timeline._row_nbytes = 8 + sum(c[0].nbytes if len(c) else int(np.prod(c.shape[1:])) * c.itemsize
                                       for c in arrays.values())
        return timeline


def check_step(step: object) -> int | None:
    """``step`` as an int (numpy integers accepted), or None; TypeError for anything else."""
    if step is None:
        return None
    if isinstance(step, (bool, np.bool_)) or not isinstance(step, (int, np.integer)):
        raise TypeError(f"step= must be an int or None, got {type(step).__name__} {step!r}")
    return int(step)
