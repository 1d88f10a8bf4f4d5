"""The bounded record of a training run: summaries per step, pictures, and logged metrics.

The history knows nothing of hooks or widgets. Capture writes to it; views and users read it.
The arrays it holds (room for future rows included) never take more than ``max_bytes``: when a
store needs room, another gives way by thinning (every other step dropped, first and last kept;
pictures before summaries, see :mod:`.budget`), so a run stays covered from its first step to
its latest. A record interrupted at any point leaves every store as it was or with the new row.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from ..summaries import FIELDS, Summary, derived_stats, histogram_edges
from .lessons import LessonRecords
from .budget import MaxBytes, give_way, parse_max_bytes
from .timeline import Picture, Timeline  # noqa: F401 (Picture: read from here too)

#: What a parameter's summaries describe: its values, its gradient, or a module's output.
GROUPS = ("weight", "grad", "activation")
DEFAULT_MAX_BYTES = 256 * 2**20


class History(LessonRecords):
    """Summaries of named tensors over steps, with a memory bound.

    >>> history.stats("fc.weight")["std"]      # one value per recorded step
    >>> edges, counts = history.histogram("fc.weight", step=100)
    """

    def __init__(self, max_bytes: MaxBytes = DEFAULT_MAX_BYTES, bins: int = 64):
        if isinstance(bins, (bool, np.bool_)) or not isinstance(bins, (int, np.integer)) or bins < 2:
            raise ValueError(f"bins= must be an int >= 2, got {bins!r}")
        #: Bytes the recorded arrays may take at most (an int; strings like "256 MiB" accepted).
        self.max_bytes = parse_max_bytes(max_bytes)
        self.bins = int(bins)
        self._names: dict[str, list[str]] = {group: [] for group in GROUPS}
        self._rows: dict[str, dict[str, int]] = {group: {} for group in GROUPS}
        self._shapes: dict[str, dict[str, tuple[int, ...]]] = {group: {} for group in GROUPS}
        self._summaries: dict[str, Timeline] = {group: Timeline() for group in GROUPS}
        self._pictures: dict[str, tuple[str, Timeline]] = {}
        self._metrics: dict[str, Timeline] = {}
        self._feature_maps: dict[str, Timeline] = {}
        self._init_lessons()
        #: Grows by one at each record; views compare it to know whether to redraw.
        self.version = 0
        #: Called as ``observer(timeline, step, row)`` after each row appended (a run_dir writer).
        self.observers: list = []

    # ----- what is recorded -------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """Watched parameter names, in model order."""
        return list(self._names["weight"])

    def names_of(self, group: str) -> list[str]:
        """Names recorded in a group: "weight", "grad" (parameters) or "activation" (modules)."""
        return list(self._names[self._check_group(group)])

    def shape(self, name: str, of: str = "weight") -> tuple[int, ...]:
        self._check_name(name, of)
        return self._shapes[of][name]

    @property
    def metric_names(self) -> list[str]:
        return list(self._metrics)

    @property
    def latest_step(self) -> int | None:
        steps = [int(t.steps[-1]) for t in self._timelines() if len(t)]
        return max(steps) if steps else None

    @property
    def nbytes(self) -> int:
        """Bytes held by everything recorded (room reserved for future rows included)."""
        return sum(t.nbytes for t in self._timelines())

    # ----- reading ----------------------------------------------------------------------
    def steps(self, name: str, of: str = "weight") -> np.ndarray:
        """Steps at which ``name`` was recorded (in group ``of``), oldest first."""
        self._check_name(name, of)
        return self._summaries[of].steps.copy()

    def stats(self, name: str, of: str = "weight", rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """One value per recorded step of min, max, mean, std, norm, zero_fraction, nonfinite,
        update_ratio (NaN where not measured), and count; activations add dead_fraction and
        saturated_fraction. ``rows``: indices of the recorded steps to read (None: all)."""
        row = self._check_name(name, of)
        timeline = self._summaries[of]
        if not len(timeline):
            return {key: np.zeros(0) for key in derived_stats(np.zeros((0, len(FIELDS))))}
        pick = slice(None) if rows is None else np.asarray(rows, dtype=np.int64)
        fields = timeline.column("fields")[pick, row, :]
        stats = derived_stats(fields)
        stats["count"] = fields[:, FIELDS.index("count")].copy()
        if "extra" in timeline.column_names:
            units, dead, saturated = np.moveaxis(timeline.column("extra")[pick, row, :], -1, 0)
            with np.errstate(divide="ignore", invalid="ignore"):
                stats["dead_fraction"] = dead / units
            stats["saturated_fraction"] = saturated.copy()
        return stats

    def stat_matrix(self, stat: str, of: str = "weight") -> tuple[np.ndarray, np.ndarray]:
        """``(steps, values [steps, tensors])`` of one statistic of :meth:`stats` for every tensor of
        a group at once (the model overview reads a 1,000-tensor model in one pass)."""
        self._check_group(of)
        timeline = self._summaries[of]
        fields = timeline.column("fields") if len(timeline) else np.zeros((0, len(self._names[of]), len(FIELDS)))
        stats = derived_stats(fields)
        if stat not in stats:
            raise KeyError(f"no statistic {stat!r}; known: {', '.join(stats)}")
        return timeline.steps.copy(), np.asarray(stats[stat], dtype=np.float64)

    def histogram(self, name: str, step: int | None = None, of: str = "weight"
                  ) -> tuple[np.ndarray, np.ndarray]:
        """``(edges, counts)`` at the latest recorded step at or before ``step`` (None: latest).

        Counts estimate the tensor's finite elements per bin: exact for tensors no larger than
        the capture's sample, scaled up from the sample for larger ones. NaN/Inf are not in any
        bin; ``stats(name)["nonfinite"]`` counts them.
        """
        self._check_name(name, of)
        _, ranges, counts = self.histograms(name, of, rows=[self._summaries[of].index_at(step)])
        return histogram_edges(ranges[0], self.bins), counts[0]

    def histograms(self, name: str, of: str = "weight", rows: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(steps, ranges, counts)`` of every recorded step at once (or of the ``rows`` given:
        indices of recorded steps), counts [T, bins] scaled as in :meth:`histogram`, step t's bins
        spanning ``[-ranges[t], ranges[t]]``. Read-only accessor for views of the whole series:
        one call instead of T, and a view drawing 160 of 10,000 steps converts 160 rows.
        """
        row = self._check_name(name, of)
        timeline = self._summaries[of]
        if not len(timeline):
            return np.zeros(0, np.int64), np.zeros(0), np.zeros((0, self.bins))
        pick = slice(None) if rows is None else np.asarray(rows, dtype=np.int64)
        fields = timeline.column("fields")[pick, row]
        counts = timeline.column("counts")[pick, row].astype(np.float64)
        finite = fields[:, FIELDS.index("count")] - fields[:, FIELDS.index("nonfinite")]
        sampled = fields[:, FIELDS.index("sampled")]
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(sampled > 0, finite / sampled, 1.0)
        return timeline.steps[pick].copy(), timeline.column("ranges")[pick, row].astype(np.float64), \
            counts * scale[:, None]

    def picture_series(self, name: str) -> tuple[str, np.ndarray, np.ndarray] | None:
        """``(kind, steps, arrays)`` of every kept picture of ``name`` (a read-only view), or None.

        Read-only accessor for views that follow pictures over time (trajectories).
        """
        self._check_name(name, "weight")
        if name not in self._pictures:
            return None
        kind, timeline = self._pictures[name]
        arrays = timeline.column("data")
        arrays.flags.writeable = False
        return kind, timeline.steps.copy(), arrays

    def picture(self, name: str, step: int | None = None) -> Picture | None:
        """The bounded copy of a parameter kept for the picture views, or None if none is kept."""
        self._check_name(name, "weight")
        if name not in self._pictures:
            return None
        kind, timeline = self._pictures[name]
        index = timeline.index_at(step)
        return Picture(kind, int(timeline.steps[index]), timeline.column("data")[index].copy())

    def picture_steps(self, name: str) -> np.ndarray:
        """Steps at which a picture of ``name`` is kept (pictures are thinned first)."""
        return self._pictures[name][1].steps.copy() if name in self._pictures else np.zeros(0, np.int64)

    def metric(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(steps, values)`` of a metric given to :meth:`log`."""
        if name not in self._metrics:
            raise KeyError(f"no metric {name!r}; logged: {self.metric_names}")
        timeline = self._metrics[name]
        return timeline.steps.copy(), timeline.column("value").copy()

    # ----- writing (used by capture) ------------------------------------------------------
    def declare(self, group: str, names: Iterable[str], shapes: Iterable[tuple[int, ...]]) -> None:
        """Name the tensors of a group, in order; a summary row ``i`` belongs to ``names[i]``."""
        self._check_group(group)
        names, shapes = list(names), [tuple(s) for s in shapes]
        if len(self._summaries[group]):
            raise ValueError(f"group {group!r} already holds records")
        summaries = {**{g: len(self._names[g]) for g in GROUPS}, group: len(names)}
        snapshot = sum(8 + count * (8 * len(FIELDS) + 4 * self.bins + 4) for count in summaries.values() if count)
        if 2 * snapshot > self.max_bytes:
            raise ValueError(f"max_bytes={self.max_bytes} cannot hold two snapshots of the summaries of "
                             f"{sum(summaries.values())} tensors ({snapshot} bytes each); give at least "
                             f"{4 * snapshot}")
        self._names[group] = names
        self._rows[group] = {name: i for i, name in enumerate(names)}
        self._shapes[group] = dict(zip(names, shapes))

    def record(self, group: str, step: int, summary: Summary, extra: np.ndarray | None = None) -> None:
        """Add one step's summaries of every tensor of a group (activations add ``extra`` rows
        of units, dead units and saturated fraction)."""
        if len(summary.fields) != len(self._names[group]):
            raise ValueError(f"{len(summary.fields)} summaries for {len(self._names[group])} names")
        # The dtypes a saved file is checked against (schema.py), whatever capture handed over.
        columns = {"fields": np.asarray(summary.fields, np.float64), "counts": np.asarray(summary.counts, np.float32),
                   "ranges": np.asarray(summary.ranges, np.float32)}
        if extra is not None:
            columns["extra"] = np.asarray(extra, np.float64)
        self._append(self._summaries[group], step, **columns)

    def record_feature_maps(self, module: str, step: int, maps: np.ndarray) -> None:
        """Keep a probe input's feature maps [channels, height, width] of one module at a step."""
        with np.errstate(over="ignore"):
            maps = maps.astype(np.float16)
        self._append_kept(self._feature_maps, module, None, step, picture=True, data=maps)

    @property
    def feature_map_names(self) -> list[str]:
        """Modules whose feature maps for the probe input are recorded (see ``Watcher.probe``)."""
        return list(self._feature_maps)

    def feature_maps(self, module: str, step: int | None = None) -> Picture:
        """Feature maps [channels, height, width] of the probe input after ``module``."""
        if module not in self._feature_maps:
            raise KeyError(f"no feature maps of {module!r}; recorded: {self.feature_map_names}")
        timeline = self._feature_maps[module]
        index = timeline.index_at(step)
        return Picture("feature_maps", int(timeline.steps[index]), timeline.column("data")[index].astype(np.float32))

    def record_picture(self, name: str, step: int, kind: str, array: np.ndarray) -> None:
        """Keep a bounded copy of a parameter at a step (see :class:`Picture` for the kinds)."""
        kind, timeline = self._pictures.get(name) or (kind, Timeline())
        stored, dtype = array, np.float32 if kind == "values" else np.float16
        if array.dtype != dtype:  # the append copies the row: a cast first only to another dtype
            with np.errstate(over="ignore"):  # beyond float16's 65504 a picture shows +-inf: fine
                stored = array.astype(dtype)
        self._append_kept(self._pictures, name, (kind, timeline), step, picture=True, data=stored)

    def log(self, step: int, **values: float) -> None:
        """Record metrics (loss, accuracy...) at a step."""
        for name, value in values.items():
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise TypeError(f"log() takes numbers, got {name}={value!r}") from None
            self._append_kept(self._metrics, name, None, step, value=np.float64(number))

    # ----- internals ----------------------------------------------------------------------
    def _timelines(self) -> list[Timeline]:
        return [*self._summaries.values(), *(t for _, t in self._pictures.values()), *self._metrics.values(),
                *self._feature_maps.values(), *self._lesson_timelines()]

    def _append_kept(self, stores: dict, key: str, entry: tuple | None, step: int, picture: bool = False,
                     **row: np.ndarray) -> None:
        """Append a row to the store under ``key`` (``entry``, or a new timeline, if none is yet);
        a new store is registered (the observers look it up) only while it holds a row, even if
        an interrupt lands anywhere here."""
        entry = stores[key] if key in stores else Timeline() if entry is None else entry
        timeline = entry[1] if isinstance(entry, tuple) else entry
        try:
            stores.setdefault(key, entry)
            self._append(timeline, step, picture, **row)
        finally:
            if not len(timeline):
                stores.pop(key, None)

    def _append(self, timeline: Timeline, step: int, picture: bool = False, **row: np.ndarray) -> None:
        """Append a row; a full store first grows within ``max_bytes``, others giving way. When
        nothing else can, the store's oldest row makes way (or, if it has none, the row is not kept)."""
        # A full store is the only time memory changes: no scan of the stores at other rows.
        if len(timeline) < timeline.capacity or self._make_room(timeline, Timeline.row_nbytes_of(**row), picture):
            timeline.append(step, **row)
        elif len(timeline):
            timeline.roll(step, **row)
        else:
            return
        self.version += 1
        for observer in self.observers:
            observer(timeline, step, row)

    def _make_room(self, timeline: Timeline, row_nbytes: int, picture: bool) -> bool:
        room = (self.max_bytes - self.nbytes) // row_nbytes
        while room < 1 and self._give_way(timeline, picture):
            room = (self.max_bytes - self.nbytes) // row_nbytes
        if room < 1:
            return False
        # Doubling while the bound allows keeps appends cheap; near the bound, what is left.
        timeline.reserve(timeline.capacity + min(max(len(timeline), 4), room))
        return True

    def _give_way(self, appending: Timeline, picture: bool) -> bool:
        return give_way(self, appending, picture)

    def _check_group(self, group: str) -> str:
        if group not in GROUPS:
            raise ValueError(f"of= must be one of {GROUPS}, got {group!r}")
        return group

    def _check_name(self, name: str, of: str) -> int:
        rows = self._rows[self._check_group(of)]
        if name not in rows:
            known = ", ".join(list(rows)[:8]) + (", ..." if len(rows) > 8 else "")
            raise KeyError(f"no {of} named {name!r}; recorded: {known or 'none'}")
        return rows[name]

    # ----- saving (the file format itself lives in fileformat.py) ------------------------
    def export(self) -> tuple[dict, dict[str, np.ndarray]]:
        """JSON-ready description and named arrays that together hold the whole history."""
        from .schema import export
        return export(self)

    @classmethod
    def restore(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "History":
        """The history that :meth:`export` described; ValueError naming what is wrong if the
        description or any array is not what a sound history holds (see :mod:`.schema`)."""
        from .schema import restore
        return restore(cls, meta, arrays)
