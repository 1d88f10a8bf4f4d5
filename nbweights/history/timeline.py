"""A bounded, columnar store of rows recorded at increasing steps.

When a store grows past what it may hold, :meth:`Timeline.thin` drops every other row except the
first and the last, so a long run stays covered from its first step to its latest, older
stretches more sparsely than the recent one.
"""
from __future__ import annotations

import numpy as np


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
    def nbytes(self) -> int:
        """Bytes held by recorded rows (capacity not counted, as it is at most twice this)."""
        return self._row_nbytes * self._length

    def append(self, step: int, **row: np.ndarray) -> None:
        """Record one row; steps must not decrease and columns keep their first shape."""
        length = self._length
        if length and step < self._steps[length - 1]:
            raise ValueError(f"step {step} comes before the last recorded step {self._steps[length - 1]}")
        if not self._columns:
            self._columns = {name: np.empty((4,) + np.shape(value), dtype=np.asarray(value).dtype)
                             for name, value in row.items()}
            self._steps = np.empty(4, dtype=np.int64)
            self._row_nbytes = 8 + sum(c[0].nbytes for c in self._columns.values())
        elif row.keys() != self._columns.keys():
            raise ValueError(f"row has columns {sorted(row)}, expected {sorted(self._columns)}")
        if length == len(self._steps):
            self._grow()
        self._steps[length] = step
        for name, value in row.items():
            self._columns[name][length] = value
        self._length = length + 1

    def _grow(self) -> None:
        capacity = max(4, 2 * len(self._steps))
        self._steps = np.resize(self._steps, capacity)
        for name, column in self._columns.items():
            grown = np.empty((capacity,) + column.shape[1:], dtype=column.dtype)
            grown[: self._length] = column[: self._length]
            self._columns[name] = grown

    def thin(self) -> None:
        """Drop every other row, keeping the first and the last."""
        keep = np.zeros(self._length, dtype=bool)
        keep[::2] = True
        keep[-1:] = True
        kept = int(keep.sum())
        self._steps[:kept] = self._steps[: self._length][keep]
        for column in self._columns.values():
            column[:kept] = column[: self._length][keep]
        self._length = kept
        self._shrink()

    def _shrink(self) -> None:
        capacity = max(4, 2 * self._length)
        if capacity < len(self._steps):
            self._steps = self._steps[:capacity].copy()
            self._columns = {name: c[:capacity].copy() for name, c in self._columns.items()}

    def index_at(self, step: int | None) -> int:
        """Row of the latest recorded step at or before ``step`` (the latest row for None)."""
        if self._length == 0:
            raise LookupError("nothing recorded yet")
        if step is None:
            return self._length - 1
        row = rows_through(self.steps, step) - 1
        if row < 0:
            raise LookupError(f"nothing recorded at or before step {step}; first is {self.steps[0]}")
        return row

    @classmethod
    def from_columns(cls, steps: np.ndarray, columns: dict[str, np.ndarray]) -> "Timeline":
        """A timeline holding the given rows (used when loading a saved history)."""
        timeline = cls()
        steps = np.asarray(steps, dtype=np.int64)
        if steps.ndim != 1 or any(len(c) != len(steps) for c in columns.values()):
            raise ValueError("every column needs one row per step")
        if len(steps) > 1 and np.any(np.diff(steps) < 0):
            raise ValueError("steps must not decrease")
        timeline._steps = steps.copy()
        timeline._columns = {name: np.array(c) for name, c in columns.items()}
        timeline._length = len(steps)
        timeline._row_nbytes = 8 + sum(int(np.prod(c.shape[1:])) * c.itemsize for c in timeline._columns.values())
        return timeline
