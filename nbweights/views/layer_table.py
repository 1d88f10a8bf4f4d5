"""Layer table: one row per parameter with its statistics, unhealthy rows marked."""
from __future__ import annotations

import html

import ipywidgets as widgets
import numpy as np

from ..health import Thresholds
from . import View, ViewOptions, set_html

COLUMNS = ("parameter", "shape", "mean", "std", "norm", "zeros", "update ratio", "grad norm",
           "non-finite", "health")


def _at(values: np.ndarray, steps: np.ndarray, step: int | None, earlier: bool = False) -> tuple[float, int | None]:
    """``(value, its step)`` recorded at the latest step at or before ``step`` ((NaN, None) if none).

    ``earlier``: the latest such step where the value was measured (not NaN). Weights and
    gradients are recorded at different steps (gradients from step 1), and a step may lack a
    measure: ``w.snapshot()`` between optimizer steps records no update ratio, a capture whose
    gradient hooks were not armed records no gradient. Such steps show the last value measured.
    """
    last = len(steps) if step is None else int(np.searchsorted(steps, step, side="right"))
    measured = np.flatnonzero(~np.isnan(values[:last])) if earlier else np.arange(last)
    if not measured.size:
        return float("nan"), None
    return float(values[measured[-1]]), int(steps[measured[-1]])


def health(row: dict, step: int, thresholds: Thresholds) -> list[str]:
    """What is wrong with one parameter at one step, in words (empty: healthy).

    The thresholds are :class:`nbweights.health.Thresholds` (the watcher's), applied to this
    step alone: NaN/Inf in the weight or its gradient; an update ratio |change|/|weights| above
    ``exploding_update`` (0.1) or below ``vanishing_update`` (1e-5), for weights of two or more
    dimensions (a bias's ratio says little); at least ``sparse_fraction`` (0.9) of the weights
    exactly zero after step 0; a gradient exactly zero after step 0.
    """
    problems = []
    if row["nonfinite"] > 0 or row["grad nonfinite"] > 0:
        problems.append("NaN/Inf")
    ratio = row["update_ratio"] if len(row["shape"]) >= 2 else float("nan")
    if np.isfinite(ratio) and ratio > thresholds.exploding_update:
        problems.append(f"update ratio > {thresholds.exploding_update:g}")
    if np.isfinite(ratio) and ratio < thresholds.vanishing_update:
        problems.append(f"update ratio < {thresholds.vanishing_update:g}")
    if step > 0 and row["zero_fraction"] >= thresholds.sparse_fraction:
        problems.append(f"{row['zero_fraction']:.0%} zeros")
    if step > 0 and row["grad norm"] == 0:
        problems.append("zero gradient")
    return problems


def _number(value: float) -> str:
    return "–" if not np.isfinite(value) else f"{value:.3g}"


class LayerTableView(View):
    """An HTML table (cheap to send once a second, and selectable text to copy)."""

    css_class = "nbw-layer-table"

    def __init__(self, options: ViewOptions):
        self.thresholds = options.thresholds or Thresholds()
        self.table = widgets.HTML("")
        super().__init__(self.table)

    def rows(self, history, step: int | None) -> list[dict]:
        rows = []
        for name in history.names:
            stats, steps = history.stats(name), history.steps(name)
            grads, grad_steps = history.stats(name, of="grad"), history.steps(name, of="grad")
            row, measured_at = {}, {}
            for key in ("mean", "std", "norm", "zero_fraction", "nonfinite"):
                row[key], measured_at[key] = _at(stats[key], steps, step)
            row["update_ratio"], measured_at["update_ratio"] = _at(stats["update_ratio"], steps, step, earlier=True)
            for key, stat in (("grad norm", "norm"), ("grad nonfinite", "nonfinite")):
                row[key], measured_at[key] = _at(grads[stat], grad_steps, step, earlier=True)
            last = len(steps) if step is None else int(np.searchsorted(steps, step, side="right"))
            snapshot = int(steps[last - 1]) if last > 0 else None  # the weights' step shown
            rows.append({"name": name, "shape": history.shape(name), **row, "measured at": measured_at,
                         "snapshot": snapshot})
        return rows

    def draw(self, history, step: int | None) -> int:
        at = history.latest_step if step is None else step
        lines = ['<table class="nbw-table"><thead><tr>' + "".join(f"<th>{c}</th>" for c in COLUMNS) + "</tr></thead><tbody>"]
        for row in self.rows(history, step):
            problems = health(row, at or 0, self.thresholds)
            nonfinite = row["nonfinite"] + (row["grad nonfinite"] if np.isfinite(row["grad nonfinite"]) else 0)
            cells = [f"<td>{html.escape(row['name'])}</td>",
                     f"<td>{'×'.join(map(str, row['shape'])) or 'scalar'}</td>",
                     *(self._cell(row, k) for k in ("mean", "std", "norm", "zero_fraction", "update_ratio",
                                                    "grad norm")),
                     f"<td>{_number(nonfinite)}</td>", f"<td>{html.escape(', '.join(problems)) or 'ok'}</td>"]
            marker = ' class="nbw-unhealthy"' if problems else ""
            lines.append(f"<tr{marker}>" + "".join(cells) + "</tr>")
        lines.append("</tbody></table>")
        return set_html(self.table, "".join(lines))

    @staticmethod
    def _cell(row: dict, key: str) -> str:
        """A number's cell; one measured before the snapshot shown says when (greyed, tooltip)."""
        measured = row["measured at"][key]
        if measured is not None and row["snapshot"] is not None and measured < row["snapshot"]:
            return f'<td class="nbw-earlier" title="measured at step {measured}">{_number(row[key])}</td>'
        return f"<td>{_number(row[key])}</td>"
