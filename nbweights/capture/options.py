"""Checks of watch()'s options: a wrong value fails at watch() with what was given and expected."""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ..health import Thresholds


def check_int(value: Any, argument: str, minimum: int) -> int:
    """``value`` as an int (numpy integers too) at least ``minimum``, or TypeError/ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{argument}= must be an int >= {minimum}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{argument}= must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_flag(value: Any, argument: str) -> bool:
    """``value`` if it is a bool (numpy's too): a string such as "no" would read as True."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{argument}= must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def check_thresholds(value: Any) -> Thresholds:
    """``value`` if it is a :class:`~nbweights.health.Thresholds`; None gives the defaults."""
    if value is None:
        return Thresholds()
    if not isinstance(value, Thresholds):
        raise TypeError(f"thresholds= must be an nbweights.Thresholds (e.g. Thresholds(patience=5)) "
                        f"or None, got {type(value).__name__} {value!r}")
    return value
