"""The history's memory bound: what ``max_bytes=`` may be, and which store gives way when full.

Pure functions over sizes and row counts, apart from the store so that the rule reads in one
place: pictures (and feature maps) are thinned before summaries and metrics, so that under a
tight bound the numbers keep at least as many steps as the pictures.
"""
from __future__ import annotations

import re
from typing import Any, Sequence, Union

import numpy as np

MaxBytes = Union[int, str]
#: Smallest ``max_bytes`` accepted; the history also checks that two snapshots fit (``declare``).
MIN_MAX_BYTES = 4096
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*", re.IGNORECASE)


def parse_max_bytes(value: MaxBytes) -> int:
    """``max_bytes=`` as an int: an int (numpy integers too) or a string like "8MB" or "256 MiB".

    ValueError below :data:`MIN_MAX_BYTES` or for an unknown unit; TypeError for other types.
    """
    if isinstance(value, str):
        match = _SIZE.fullmatch(value)
        unit = match.group(2).lower() if match else None
        if unit not in _UNITS:
            raise ValueError(f'max_bytes= must be a number of bytes, e.g. 268435456, "256MB" or "256 MiB", '
                             f"got {value!r}")
        number = int(float(match.group(1)) * _UNITS[unit])
    elif isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f'max_bytes= must be an int or a string like "256 MiB", got {type(value).__name__} {value!r}')
    else:
        number = int(value)
    if number < MIN_MAX_BYTES:
        raise ValueError(f"max_bytes= must be at least {MIN_MAX_BYTES} bytes, got {value!r}")
    return number


def choose_to_thin(rows: Sequence[int], nbytes: Sequence[int], is_picture: Sequence[bool]) -> int | None:
    """Index of the store to thin next (every other row dropped), or None if none has > 2 rows.

    The largest store gives way, except that a summary or metric store is thinned only once no
    picture store keeps as many rows as it would keep: a picture store with as many goes first (the
    one with the most rows), so that pictures never cover more steps than the summaries.
    """
    candidates = [i for i, count in enumerate(rows) if count > 2]
    if not candidates:
        return None
    largest = max(candidates, key=lambda i: nbytes[i])
    if is_picture[largest]:
        return largest
    kept = (rows[largest] + 1) // 2 + (rows[largest] % 2 == 0)  # see Timeline.thin
    denser = [i for i in candidates if is_picture[i] and rows[i] >= kept]
    return max(denser, key=lambda i: (rows[i], nbytes[i])) if denser else largest


def choose_to_cut(rows: Sequence[int], nbytes: Sequence[int], is_picture: Sequence[bool]) -> int | None:
    """Index of the store to cut to its latest row when none can be thinned, pictures first
    (largest first), or None when every store holds one row at most."""
    candidates = [i for i, count in enumerate(rows) if count > 1]
    if not candidates:
        return None
    return max(candidates, key=lambda i: (is_picture[i], nbytes[i]))


def _thin(timeline: Any) -> None:
    timeline.thin()


def _keep_latest(timeline: Any) -> None:
    timeline.keep_latest()


def give_way(history: Any, appending: Any, picture: bool) -> bool:
    """Free memory: thin a store, else cut one to its latest row (a picture makes way for a
    picture), else drop a picture store for the summaries."""
    pictures = [(t, True) for t in (*(t for _, t in history._pictures.values()), *history._feature_maps.values(),
                                    *history._lesson_timelines())]
    stores = pictures + [(t, False) for t in (*history._summaries.values(), *history._metrics.values())]
    # Thinning follows choose_to_thin's order; a picture cuts only pictures to their latest row.
    for choose, act, pool in ((choose_to_thin, _thin, stores),
                              (choose_to_cut, _keep_latest, pictures if picture else stores)):
        index = choose([len(t) for t, _ in pool], [t.nbytes for t, _ in pool], [p for _, p in pool])
        if index is not None:
            act(pool[index][0])
            return True
    if picture:
        return False  # the picture's own oldest row makes way
    # Every store holds one row and still too much: the largest picture store goes.
    held = [(t.nbytes, store, name) for store, items in (
        (history._pictures, ((n, t) for n, (_, t) in history._pictures.items())), (history._feature_maps, history._feature_maps.items()))
        for name, t in items if t is not appending]
    if not held:
        return False
    _, store, name = max(held, key=lambda item: item[0])
    del store[name]
    return True
