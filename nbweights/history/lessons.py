"""The history's records for the lessons beyond summaries: attention maps and attributions of the
probe input, and weight projections read from the kept pictures.

:class:`LessonRecords` is a part of :class:`~nbweights.history.store.History` (its base class),
kept in its own module so that each stays short; it uses the history's ``_append`` (the memory
bound) and ``picture_series``.
"""
from __future__ import annotations

import numpy as np

from .projection import METHODS, AlignedProjections, embed, units_of
from .timeline import Timeline

#: Columns of one attributions record (see ``nbweights.capture.attributions.Attributions``).
ATTRIBUTION_COLUMNS = ("inputs", "maps", "delta", "targets", "alphas", "interior")


class LessonRecords:
    """Attention maps per module, attributions of the probe batch, and weight projections."""

    def _init_lessons(self) -> None:
        self._attention: dict[str, Timeline] = {}
        self._attributions = Timeline()
        self._projections: dict[str, AlignedProjections] = {}

    def _lesson_timelines(self) -> list[Timeline]:
        return [*self._attention.values(), self._attributions]

    # ----- attention ----------------------------------------------------------------------
    def record_attention(self, module: str, step: int, maps: np.ndarray) -> None:
        """Keep a module's attention weights [heads, queries, keys] on the probe's first sequence."""
        self._append(self._attention.setdefault(module, Timeline()), step, picture=True, data=maps.astype(np.float16))

    @property
    def attention_names(self) -> list[str]:
        """Attention modules whose maps on the probe input are recorded (see ``Watcher.probe``)."""
        return list(self._attention)

    def attention_steps(self, module: str) -> np.ndarray:
        return self._attention_timeline(module).steps.copy()

    def attention(self, module: str, step: int | None = None) -> np.ndarray:
        """Attention weights [heads, queries, keys] of the probe's first sequence in ``module``
        (its qualified name) at the latest recorded step at or before ``step`` (None: latest)."""
        timeline = self._attention_timeline(module)
        return timeline.column("data")[timeline.index_at(step)].astype(np.float32)

    def _attention_timeline(self, module: str) -> Timeline:
        if module not in self._attention:
            raise KeyError(f"no attention maps of {module!r}; recorded: {self.attention_names or 'none'} "
                           f"(w.probe(x) records those of every nn.MultiheadAttention)")
        return self._attention[module]

    # ----- attributions -------------------------------------------------------------------
    def record_attributions(self, step: int, **columns: np.ndarray) -> None:
        """Keep one capture's attributions: the columns of :data:`ATTRIBUTION_COLUMNS`."""
        if set(columns) != set(ATTRIBUTION_COLUMNS):
            raise ValueError(f"record_attributions() expected columns {ATTRIBUTION_COLUMNS}, got {sorted(columns)}")
        stored = {name: np.asarray(value, np.int64 if name == "targets" else np.float32)
                  for name, value in columns.items()}
        self._append(self._attributions, step, picture=True, **stored)

    @property
    def attribution_steps(self) -> np.ndarray:
        return self._attributions.steps.copy()

    def attributions(self, step: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(inputs, maps, delta)``: the probe samples, their integrated gradients (the inputs'
        shape) and Captum's convergence delta per sample, at the latest step at or before ``step``."""
        row = self.attribution_record(step)
        return row["inputs"], row["maps"], row["delta"]

    def attribution_record(self, step: int | None = None) -> dict[str, np.ndarray | int]:
        """Every column of the attributions at a step, plus ``"step"`` (the step recorded):
        ``targets`` (class attributed), ``alphas`` and ``interior`` [alphas, samples, ...]."""
        if not len(self._attributions):
            raise LookupError("no attributions recorded: call w.probe(x, attributions=True)")
        index = self._attributions.index_at(step)
        row = {name: self._attributions.column(name)[index].copy() for name in ATTRIBUTION_COLUMNS}
        row["step"] = int(self._attributions.steps[index])
        return row

    # ----- projections (read side: from the kept pictures) --------------------------------
    def projectable(self, name: str) -> bool:
        """Whether a weight's kept picture has output units to project (2-D or convolution)."""
        picture = self.picture(name)
        return picture is not None and units_of(picture.kind, picture.array) is not None \
            and len(picture.array) >= 3

    def projection_series(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(steps, coords [steps, units, 2])``: PCA of every kept picture of ``name``, aligned
        step to step (see :mod:`nbweights.history.projection`)."""
        series = self.picture_series(name)
        if series is None or not self.projectable(name):
            raise ValueError(f"projection() needs a 2-D or convolution weight with a kept picture; {name} has "
                             f"shape {tuple(self.shape(name))}")
        kind, steps, arrays = series
        projections = self._projections.setdefault(name, AlignedProjections())
        return steps, projections.series(kind, steps, arrays)

    def projection(self, name: str, step: int | None = None, method: str = "pca") -> np.ndarray:
        """Coordinates [units, 2] of the output units of weight ``name`` at the latest kept step at
        or before ``step``: ``"pca"`` (aligned across steps), ``"tsne"`` or ``"umap"`` (that step
        alone; needs scikit-learn or umap-learn)."""
        if method not in METHODS:
            raise ValueError(f"projection() expected method= one of {METHODS}, got {method!r}")
        steps, coords = self.projection_series(name)
        index = int(np.searchsorted(steps, step, side="right")) - 1 if step is not None else len(steps) - 1
        if index < 0:
            raise LookupError(f"no picture of {name} at or before step {step}; first is {steps[0]}")
        if method == "pca":
            return coords[index].copy()
        kind, _, arrays = self.picture_series(name)
        return embed(units_of(kind, arrays[index]), method)
