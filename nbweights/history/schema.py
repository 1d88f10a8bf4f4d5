"""What a sound saved history holds: the layout of its description and of every array in it.

The loader checks a file's ``meta.json`` against :func:`check_meta` and each array's header
against :func:`check_header` before reading any array's data, and :func:`restore` checks the
values, so that an altered file either raises ValueError naming what is wrong or gives a history
whose every read and view works. Nothing here reads files; adding a store is one entry in
:func:`_columns_of` and one branch in :func:`restore`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..summaries import FIELDS
from .budget import parse_max_bytes
from .lessons import ATTRIBUTION_COLUMNS
from .store import GROUPS
from .timeline import Timeline

FORMAT = "nbweights-history"
VERSION = 1
#: Picture kinds (see ``capture/pictures.py``), and the dtype each is kept in.
PICTURE_DTYPES = {"values": np.dtype(np.float32), "matrix": np.dtype(np.float16), "filters": np.dtype(np.float16)}
#: Columns of an activation summary's ``extra`` rows: units, dead units, saturated fraction.
EXTRA_COLUMNS = 3
MAX_BINS = 2**16
MAX_NAME_LENGTH = 1000
MAX_DIMS = 32
MAX_DIM = 2**40
#: Steps are non-negative and below 2**53, so that a float (a slider, a plot axis) holds them exactly.
MAX_STEP = 2**53
#: Fields that count elements: each is NaN (nothing seen) or a finite number >= 0.
COUNT_FIELDS = [FIELDS.index(name) for name in ("count", "nonfinite", "sampled", "sample_zeros")]
Bounds = tuple[tuple[int, int], ...]  # per dimension after the row one: (smallest, largest)


#: The stores a file may hold.
STORES = ("summaries", "picture", "metric", "feature_maps", "attention", "attributions")


@dataclass(frozen=True)
class ArraySpec:
    """What one array must be: its dtype, and the bounds of each dimension after the rows."""

    timeline: int
    dtype: np.dtype
    row_bounds: Bounds


@dataclass(frozen=True)
class Layout:
    """A checked ``meta.json``: every array the file must hold, and what each must be."""

    meta: dict
    arrays: dict[str, ArraySpec]
    min_rows: list[int]  # per timeline: 1 where an empty store would break its reads
    max_rows: list[int | None]  # per timeline: 0 where a store without columns may hold no row


def _fail(where: str, expected: str, got: Any) -> None:
    shown = repr(got)
    raise ValueError(f"meta.json: {where} must be {expected}, got {shown[:80] + '...' if len(shown) > 80 else shown}")


def _check_dict(value: Any, where: str, keys: set[str]) -> dict:
    if not isinstance(value, dict) or set(value) != keys:
        _fail(where, f"an object with keys {sorted(keys)}", value if not isinstance(value, dict) else sorted(value))
    return value


def _check_int(value: Any, where: str, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        _fail(where, f"an integer in [{low}, {high}]", value)
    return value


def _check_names(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(n, str) and 0 < len(n) <= MAX_NAME_LENGTH for n in value):
        _fail(where, f"a list of names (strings of 1 to {MAX_NAME_LENGTH} characters)", value)
    if len(set(value)) != len(value):
        _fail(where, "a list of distinct names", value)
    return value


def _check_shape(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) > MAX_DIMS or \
            not all(type(d) is int and 0 <= d <= MAX_DIM for d in value):
        _fail(where, f"a tensor shape (a list of at most {MAX_DIMS} integers >= 0)", value)
    if math.prod(value) > MAX_DIM:
        _fail(where, f"a shape of at most {MAX_DIM} elements", value)
    return tuple(value)


def check_meta(meta: Any) -> Layout:
    """The layout a ``meta.json`` describes; ValueError naming the first thing that is wrong."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError("not an nbweights history (meta.json names another format)")
    if meta.get("version") != VERSION:
        raise ValueError(f"history format version {meta.get('version')!r} is not {VERSION}")
    _check_dict(meta, "the top level", {"format", "version", "bins", "max_bytes", "groups", "timelines", "arrays"})
    bins = _check_int(meta["bins"], "bins", 2, MAX_BINS)
    if type(meta["max_bytes"]) is not int:
        _fail("max_bytes", "an integer", meta["max_bytes"])
    parse_max_bytes(meta["max_bytes"])
    groups = _check_dict(meta["groups"], "groups", set(GROUPS))
    declared: dict[str, tuple[list[str], list[tuple[int, ...]]]] = {}
    for group in GROUPS:
        entry = _check_dict(groups[group], f"groups.{group}", {"names", "shapes"})
        names = _check_names(entry["names"], f"groups.{group}.names")
        if not isinstance(entry["shapes"], list) or len(entry["shapes"]) != len(names):
            _fail(f"groups.{group}.shapes", f"a list of {len(names)} shapes (one per name)", entry["shapes"])
        declared[group] = names, [_check_shape(s, f"groups.{group}.shapes[{i}]") for i, s in enumerate(entry["shapes"])]
    if declared["grad"] != declared["weight"]:
        raise ValueError("meta.json: the gradients' names and shapes must be the weights'")
    weights = dict(zip(*declared["weight"]))

    timelines = meta["timelines"]
    if not isinstance(timelines, list):
        _fail("timelines", "a list", timelines)
    arrays: dict[str, ArraySpec] = {}
    min_rows: list[int] = []
    max_rows: list[int | None] = []
    seen: set[tuple[str, str]] = set()
    for i, description in enumerate(timelines):
        where = f"timelines[{i}]"
        if not isinstance(description, dict) or description.get("store") not in STORES:
            _fail(f"{where}.store", " or ".join(f'"{s}"' for s in STORES),
                  description.get("store") if isinstance(description, dict) else description)
        store = description["store"]
        key = {"summaries": "group", "attributions": "store"}.get(store, "name")
        keys = {"store", key, "columns"} | ({"kind"} if store == "picture" else set()) | \
            ({"ndims"} if store == "attributions" else set())
        _check_dict(description, where, keys)
        if store == "summaries":
            if description["group"] not in GROUPS:
                _fail(f"{where}.group", f"one of {list(GROUPS)}", description["group"])
        elif store == "attributions":
            ndims = description["ndims"]
            if not isinstance(ndims, dict) or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 5
                                                      for v in ndims.values()):
                _fail(f"{where}.ndims", "a dict of column -> dimensions (0 to 5)", ndims)
        else:
            _check_names([description["name"]], f"{where}.name")
        if (store, description[key]) in seen:
            raise ValueError(f"meta.json: {where} repeats the {store} of {description[key]!r}")
        seen.add((store, description[key]))
        expected = _columns_of(description, where, bins, declared, weights)
        columns = description["columns"]
        optional = {"extra"} if store == "summaries" and description["group"] == "activation" else set()
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns) or \
                len(set(columns)) != len(columns) or not (
                set(expected) - optional <= set(columns) <= set(expected) or (store == "summaries" and columns == [])):
            _fail(f"{where}.columns", f"{sorted(expected)}" + (" (or none, when empty)" if store == "summaries" else ""),
                  columns)
        arrays[f"t{i}/steps"] = ArraySpec(i, np.dtype(np.int64), ())
        for column in columns:
            dtype, bounds = expected[column]
            arrays[f"t{i}/{column}"] = ArraySpec(i, np.dtype(dtype), bounds)
        # An empty store of pictures, metrics or feature maps breaks its reads; summaries may be
        # empty (no gradient yet), and a store without columns holds no rows.
        min_rows.append(0 if store == "summaries" else 1)
        max_rows.append(0 if not columns else None)
    if {d["group"] for d in timelines if d["store"] == "summaries"} != set(GROUPS) or \
            sum(d["store"] == "summaries" for d in timelines) != len(GROUPS):
        raise ValueError(f"meta.json: timelines must hold the summaries of each of {list(GROUPS)} once")
    if meta["arrays"] != sorted(arrays):
        _fail("arrays", f"the sorted list of the {len(arrays)} arrays the timelines name", meta["arrays"])
    return Layout(meta, arrays, min_rows, max_rows)


def _columns_of(description: dict, where: str, bins: int, declared: dict, weights: dict) -> dict[str, tuple]:
    """The columns a store holds: name -> (dtype, bounds of each dimension after the rows)."""
    store = description["store"]
    if store == "summaries":
        n = len(declared[description["group"]][0])
        columns = {"fields": (np.float64, ((n, n), (len(FIELDS), len(FIELDS)))),
                   "counts": (np.float32, ((n, n), (bins, bins))), "ranges": (np.float32, ((n, n),))}
        if description["group"] == "activation":  # units, dead units, saturated fraction
            columns["extra"] = (np.float64, ((n, n), (EXTRA_COLUMNS, EXTRA_COLUMNS)))
        return columns
    if store == "metric":
        return {"value": (np.float64, ())}
    if store in ("feature_maps", "attention"):  # [channels, height, width]; [heads, queries, keys]
        return {"data": (np.float16, ((1, MAX_DIM),) * 3)}
    if store == "attributions":
        ndims = description["ndims"]
        return {c: (np.int64 if c == "targets" else np.float32, ((0, MAX_DIM),) * ndims.get(c, 0))
                for c in ATTRIBUTION_COLUMNS if c in ndims}
    name, kind = description["name"], description["kind"]
    if name not in weights:
        _fail(f"{where}.name", "the name of a weight", name)
    shape = weights[name]
    if kind == "values":
        bounds: Bounds = tuple((d, d) for d in shape)
    elif kind == "matrix" and len(shape) == 2:  # whole, or block means on a smaller grid
        bounds = tuple((1, d) for d in shape)
    elif kind == "filters" and len(shape) == 4:  # the first filters and input channels
        bounds = ((1, shape[0]), (1, shape[1]), (shape[2], shape[2]), (shape[3], shape[3]))
    else:
        _fail(f"{where}.kind", f"one of {list(PICTURE_DTYPES)} that fits a weight of shape {list(shape)}", kind)
    return {"data": (PICTURE_DTYPES[kind], bounds)}


def check_header(layout: Layout, name: str, dtype: np.dtype, shape: tuple[int, ...], rows: dict[int, int]) -> None:
    """ValueError unless array ``name`` may have this dtype and shape; ``rows`` holds the row
    count of each timeline met so far (its columns must all agree)."""
    spec = layout.arrays[name]
    if dtype != spec.dtype:
        raise ValueError(f"{name}: dtype must be {spec.dtype}, got {dtype}")
    bounds = spec.row_bounds
    if len(shape) != 1 + len(bounds) or not all(low <= d <= high for d, (low, high) in zip(shape[1:], bounds)):
        wanted = ", ".join(str(low) if low == high else f"{low}..{high}" for low, high in bounds)
        raise ValueError(f"{name}: shape must be [rows{', ' if bounds else ''}{wanted}], got {list(shape)}")
    timeline = spec.timeline
    least, most = layout.min_rows[timeline], layout.max_rows[timeline]
    if shape[0] < least or (most is not None and shape[0] > most):
        raise ValueError(f"{name}: {shape[0]} rows, expected " + (f"at least {least}" if most is None else f"{most}"))
    if rows.setdefault(timeline, shape[0]) != shape[0]:
        raise ValueError(f"{name}: {shape[0]} rows where the other columns of its timeline have {rows[timeline]}")


def _check_values(name: str, array: np.ndarray, description: dict, column: str) -> None:
    """ValueError where values are ones no recording writes and a read would trip on."""
    if column == "steps":
        if len(array) and (array.min() < 0 or array.max() >= MAX_STEP):
            raise ValueError(f"{name}: steps must lie in [0, 2**53)")
        if len(array) > 1 and np.any(np.diff(array) < 0):
            raise ValueError(f"{name}: steps must not decrease")
    elif description["store"] == "summaries" and column == "counts":  # ranges may be inf: a diverged run
        if not np.all(np.isfinite(array)) or np.any(array < 0):
            raise ValueError(f"{name}: histogram counts must be finite and >= 0")
    elif description["store"] == "summaries" and column == "fields":
        counted = array[..., COUNT_FIELDS]
        if np.any(~np.isnan(counted) & ~((counted >= 0) & np.isfinite(counted))):
            raise ValueError(f"{name}: element counts must be NaN (nothing seen) or finite and >= 0")


def restore(cls: type, meta: Any, arrays: dict[str, np.ndarray], copy: bool = True):
    """The history ``cls`` (History) that ``meta`` (or its checked :class:`Layout`) and
    ``arrays`` describe, checked throughout."""
    layout = meta if isinstance(meta, Layout) else check_meta(meta)
    meta = layout.meta
    if not isinstance(arrays, dict) or set(arrays) != set(layout.arrays):
        missing = sorted(set(layout.arrays) - set(arrays or ()))[:3]
        extra = sorted(set(arrays or ()) - set(layout.arrays))[:3]
        raise ValueError(f"arrays do not match meta.json (missing {missing}, unexpected {extra})")
    rows: dict[int, int] = {}
    for name, spec in layout.arrays.items():
        array = arrays[name]
        if not isinstance(array, np.ndarray):
            raise ValueError(f"{name}: expected a numpy array, got {type(array).__name__}")
        check_header(layout, name, array.dtype, array.shape, rows)
    history = cls(max_bytes=meta["max_bytes"], bins=meta["bins"])
    for group in GROUPS:
        history.declare(group, meta["groups"][group]["names"], meta["groups"][group]["shapes"])
    for i, description in enumerate(meta["timelines"]):
        steps = arrays[f"t{i}/steps"]
        columns = {c: arrays[f"t{i}/{c}"] for c in description["columns"]}
        for column, values in (("steps", steps), *columns.items()):
            _check_values(f"t{i}/{column}", values, description, column)
        timeline = Timeline.from_columns(steps, columns, copy=copy)
        store = description["store"]
        if store == "summaries":
            history._summaries[description["group"]] = timeline
        elif store == "picture":
            history._pictures[description["name"]] = (description["kind"], timeline)
        elif store == "metric":
            history._metrics[description["name"]] = timeline
        elif store == "attention":
            history._attention[description["name"]] = timeline
        elif store == "attributions":
            history._attributions = timeline
        else:
            history._feature_maps[description["name"]] = timeline
    return history


def export(history: Any) -> tuple[dict, dict[str, np.ndarray]]:
    """The description (meta.json) and named arrays that together hold ``history`` (:func:`restore`'s
    counterpart)."""
    # list(...) of a dict is one step for other threads; each timeline is read at one instant.
    timelines: list[tuple[dict, Timeline]] = []
    for group in GROUPS:
        timelines.append(({"store": "summaries", "group": group}, history._summaries[group]))
    for name, (kind, timeline) in list(history._pictures.items()):
        timelines.append(({"store": "picture", "name": name, "kind": kind}, timeline))
    for name, timeline in list(history._metrics.items()):
        timelines.append(({"store": "metric", "name": name}, timeline))
    for name, timeline in list(history._feature_maps.items()):
        timelines.append(({"store": "feature_maps", "name": name}, timeline))
    for name, timeline in history._attention.items():
        timelines.append(({"store": "attention", "name": name}, timeline))
    if len(history._attributions):  # its columns' dimensions vary with the probe input: say them
        ndims = {c: int(history._attributions.column(c).ndim - 1) for c in history._attributions.column_names}
        timelines.append(({"store": "attributions", "ndims": ndims}, history._attributions))
    meta = {
        "bins": history.bins,
        "max_bytes": history.max_bytes,
        "groups": {g: {"names": history._names[g], "shapes": [list(history._shapes[g][n]) for n in history._names[g]]}
                   for g in GROUPS},
        "timelines": [],
    }
    arrays: dict[str, np.ndarray] = {}
    for i, (description, timeline) in enumerate(timelines):
        steps, columns = timeline.snapshot()
        meta["timelines"].append({**description, "columns": list(columns)})
        arrays[f"t{i}/steps"] = steps
        for column, values in columns.items():
            arrays[f"t{i}/{column}"] = values
    return meta, arrays
