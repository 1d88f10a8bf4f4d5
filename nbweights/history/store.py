"""The bounded record of a training run: summaries per step, pictures, and logged metrics.

The history knows nothing of hooks or widgets. Capture writes to it; views and users read it.
Its memory stays under ``max_bytes``: past that, the largest store is thinned (every other
step dropped, first and last kept), so a run stays covered from its first step to its latest.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from ..summaries import FIELDS, Summary, derived_stats, histogram_edges
from .lessons import LessonRecords
from .timeline import Timeline

#: What a parameter's summaries describe: its values, its gradient, or a module's output.
GROUPS = ("weight", "grad", "activation")
DEFAULT_MAX_BYTES = 256 * 2**20


@dataclass(frozen=True)
class Picture:
    """A bounded copy of a tensor at one step: ``kind`` is "values", "matrix" or "filters"."""

    kind: str
    step: int
    array: np.ndarray


class History(LessonRecords):
    """Summaries of named tensors over steps, with a memory bound.

    >>> history.stats("fc.weight")["std"]      # one value per recorded step
    >>> edges, counts = history.histogram("fc.weight", step=100)
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, bins: int = 64):
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self.bins = int(bins)
        self._names: dict[str, list[str]] = {group: [] for group in GROUPS}
        self._rows: dict[str, dict[str, int]] = {group: {} for group in GROUPS}
        self._shapes: dict[str, dict[str, tuple[int, ...]]] = {group: {} for group in GROUPS}
        self._summaries: dict[str, Timeline] = {group: Timeline() for group in GROUPS}
        self._pictures: dict[str, tuple[str, Timeline]] = {}
        self._metrics: dict[str, Timeline] = {}
        self._feature_maps: dict[str, Timeline] = {}
        self._init_lessons()
        self._nbytes = 0
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
        """Bytes held by everything recorded."""
        return self._nbytes

    # ----- reading ----------------------------------------------------------------------
    def steps(self, name: str, of: str = "weight") -> np.ndarray:
        """Steps at which ``name`` was recorded (in group ``of``), oldest first."""
        self._check_name(name, of)
        return self._summaries[of].steps.copy()

    def stats(self, name: str, of: str = "weight") -> dict[str, np.ndarray]:
        """One value per recorded step of min, max, mean, std, norm, zero_fraction, nonfinite,
        update_ratio (NaN where not measured), and count; activations add dead_fraction and
        saturated_fraction."""
        row = self._check_name(name, of)
        timeline = self._summaries[of]
        if not len(timeline):
            return {key: np.zeros(0) for key in derived_stats(np.zeros((0, len(FIELDS))))}
        fields = timeline.column("fields")[:, row, :]
        stats = derived_stats(fields)
        stats["count"] = fields[:, FIELDS.index("count")].copy()
        if "extra" in timeline.column_names:
            units, dead, saturated = np.moveaxis(timeline.column("extra")[:, row, :], -1, 0)
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
        row = self._check_name(name, of)
        timeline = self._summaries[of]
        index = timeline.index_at(step)
        fields = timeline.column("fields")[index, row]
        counts = timeline.column("counts")[index, row].astype(np.float64)
        finite = fields[FIELDS.index("count")] - fields[FIELDS.index("nonfinite")]
        sampled = fields[FIELDS.index("sampled")]
        if sampled > 0:
            counts = counts * (finite / sampled)
        return histogram_edges(timeline.column("ranges")[index, row], self.bins), counts

    def histograms(self, name: str, of: str = "weight") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(steps, ranges, counts)`` of every recorded step at once, counts [T, bins] scaled as
        in :meth:`histogram`, step t's bins spanning ``[-ranges[t], ranges[t]]``.

        Read-only accessor for views that need the whole series (one call instead of T).
        """
        row = self._check_name(name, of)
        timeline = self._summaries[of]
        if not len(timeline):
            return np.zeros(0, np.int64), np.zeros(0), np.zeros((0, self.bins))
        fields = timeline.column("fields")[:, row]
        counts = timeline.column("counts")[:, row].astype(np.float64)
        finite = fields[:, FIELDS.index("count")] - fields[:, FIELDS.index("nonfinite")]
        sampled = fields[:, FIELDS.index("sampled")]
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(sampled > 0, finite / sampled, 1.0)
        return timeline.steps.copy(), timeline.column("ranges")[:, row].astype(np.float64), counts * scale[:, None]

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
        self._names[group] = names
        self._rows[group] = {name: i for i, name in enumerate(names)}
        self._shapes[group] = dict(zip(names, shapes))

    def record(self, group: str, step: int, summary: Summary, extra: np.ndarray | None = None) -> None:
        """Add one step's summaries of every tensor of a group (activations add ``extra`` rows
        of units, dead units and saturated fraction)."""
        if len(summary.fields) != len(self._names[group]):
            raise ValueError(f"{len(summary.fields)} summaries for {len(self._names[group])} names")
        columns = {"fields": summary.fields, "counts": summary.counts, "ranges": summary.ranges}
        if extra is not None:
            columns["extra"] = extra
        self._append(self._summaries[group], step, **columns)

    def record_feature_maps(self, module: str, step: int, maps: np.ndarray) -> None:
        """Keep a probe input's feature maps [channels, height, width] of one module at a step."""
        with np.errstate(over="ignore"):
            maps = maps.astype(np.float16)
        self._append(self._feature_maps.setdefault(module, Timeline()), step, data=maps)

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
        if name not in self._pictures:
            self._pictures[name] = (kind, Timeline())
        if kind == "values":  # the timeline copies it into its column
            stored = array if array.dtype == np.float32 else array.astype(np.float32)
        else:
            with np.errstate(over="ignore"):  # beyond float16's 65504 a picture shows +-inf: fine
                stored = array.astype(np.float16)
        self._append(self._pictures[name][1], step, data=stored)

    def log(self, step: int, **values: float) -> None:
        """Record metrics (loss, accuracy...) at a step."""
        for name, value in values.items():
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise TypeError(f"log() takes numbers, got {name}={value!r}") from None
            self._append(self._metrics.setdefault(name, Timeline()), step, value=np.float64(number))

    # ----- internals ----------------------------------------------------------------------
    def _timelines(self) -> list[Timeline]:
        return [*self._summaries.values(), *(t for _, t in self._pictures.values()), *self._metrics.values(),
                *self._feature_maps.values(), *self._lesson_timelines()]

    def _append(self, timeline: Timeline, step: int, **row: np.ndarray) -> None:
        """Append a row and keep memory under the bound (a running total: no scan per row)."""
        before = timeline.nbytes
        timeline.append(step, **row)
        self._nbytes += timeline.nbytes - before
        self.version += 1
        for observer in self.observers:
            observer(timeline, step, row)
        while self._nbytes > self.max_bytes:
            largest = max(self._timelines(), key=lambda t: t.nbytes)
            if len(largest) <= 2:
                break
            before = largest.nbytes
            largest.thin()
            self._nbytes += largest.nbytes - before

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
        timelines: list[tuple[dict, Timeline]] = []
        for group in GROUPS:
            timelines.append(({"store": "summaries", "group": group}, self._summaries[group]))
        for name, (kind, timeline) in self._pictures.items():
            timelines.append(({"store": "picture", "name": name, "kind": kind}, timeline))
        for name, timeline in self._metrics.items():
            timelines.append(({"store": "metric", "name": name}, timeline))
        for name, timeline in self._feature_maps.items():
            timelines.append(({"store": "feature_maps", "name": name}, timeline))
        for name, timeline in self._attention.items():
            timelines.append(({"store": "attention", "name": name}, timeline))
        if len(self._attributions):
            timelines.append(({"store": "attributions"}, self._attributions))
        meta = {
            "bins": self.bins,
            "max_bytes": self.max_bytes,
            "groups": {g: {"names": self._names[g], "shapes": [list(self._shapes[g][n]) for n in self._names[g]]}
                       for g in GROUPS},
            "timelines": [],
        }
        arrays: dict[str, np.ndarray] = {}
        for i, (description, timeline) in enumerate(timelines):
            meta["timelines"].append({**description, "columns": timeline.column_names})
            arrays[f"t{i}/steps"] = timeline.steps.copy()
            for column in timeline.column_names:
                arrays[f"t{i}/{column}"] = timeline.column(column).copy()
        return meta, arrays

    @classmethod
    def restore(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "History":
        """The history that :meth:`export` described; raises ValueError if the parts disagree."""
        history = cls(max_bytes=int(meta["max_bytes"]), bins=int(meta["bins"]))
        for group, declared in meta["groups"].items():
            history.declare(group, declared["names"], declared["shapes"])
        for i, description in enumerate(meta["timelines"]):
            columns = {c: arrays[f"t{i}/{c}"] for c in description["columns"]}
            timeline = Timeline.from_columns(arrays[f"t{i}/steps"], columns)
            store = description["store"]
            if store == "summaries":
                group = history._check_group(description["group"])
                names = len(history._names[group])
                if len(timeline) and (columns["fields"].shape[1:] != (names, len(FIELDS))
                                      or columns["counts"].shape[1:] != (names, history.bins)):
                    raise ValueError(f"summaries of {group!r} do not match its {names} names")
                history._summaries[group] = timeline
            elif store == "picture":
                history._check_name(description["name"], "weight")
                history._pictures[description["name"]] = (description["kind"], timeline)
            elif store == "metric":
                history._metrics[description["name"]] = timeline
            elif store == "feature_maps":
                history._feature_maps[description["name"]] = timeline
            elif store == "attention":
                history._attention[description["name"]] = timeline
            elif store == "attributions":
                history._attributions = timeline
            else:
                raise ValueError(f"unknown store {store!r}")
        history._nbytes = sum(t.nbytes for t in history._timelines())
        return history
