"""Layer table: one row per parameter with its statistics, unhealthy rows marked."""
from __future__ import annotations

import html

import ipywidgets as widgets
import numpy as np

from ..health import Thresholds
from . import View, ViewOptions, set_html

COLUMNS = ("parameter", "shape", "mean", "std", "norm", "zeros", "update ratio", "grad norm",
           "non-finite", "health")


def _at(values: np.ndarray, steps: np.ndarray, step: int | None) -> float:
    """The value recorded at the latest step at or before ``step`` (NaN if none)."""
    index = len(steps) - 1 if step is None else int(np.searchsorted(steps, step, side="right")) - 1
    return float(values[index]) if 0 <= index < len(values) else float("nan")


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
            row = {key: _at(stats[key], steps, step) for key in
                   ("mean", "std", "norm", "zero_fraction", "update_ratio", "nonfinite")}
            row["grad norm"] = _at(grads["norm"], grad_steps, step)
            row["grad nonfinite"] = _at(grads["nonfinite"], grad_steps, step)
            rows.append({"name": name, "shape": history.shape(name), **row})
        return rows

    def draw(self, history, step: int | None) -> int:
        at = history.latest_step if step is None else step
        lines = ['<table class="nbw-table"><thead><tr>' + "".join(f"<th>{c}</th>" for c in COLUMNS) + "</tr></thead><tbody>"]
        for row in self.rows(history, step):
            problems = health(row, at or 0, self.thresholds)
            nonfinite = row["nonfinite"] + (row["grad nonfinite"] if np.isfinite(row["grad nonfinite"]) else 0)
            cells = [html.escape(row["name"]), "×".join(map(str, row["shape"])) or "scalar",
                     *(_number(row[k]) for k in ("mean", "std", "norm", "zero_fraction", "update_ratio", "grad norm")),
                     _number(nonfinite), html.escape(", ".join(problems)) or "ok"]
            marker = ' class="nbw-unhealthy"' if problems else ""
            lines.append(f"<tr{marker}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        lines.append("</tbody></table>")
        return set_html(self.table, "".join(lines))
