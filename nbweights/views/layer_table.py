"""Layer table: one row per parameter with its statistics; rows with a health signal are marked.

What is unhealthy is decided in one place, :mod:`nbweights.health`: the table marks a row when a
signal about that parameter (its weights or its gradient) fired at or before the step shown, the
same signals the health panel lists. A model with more tensors than :data:`MAX_ROWS` shows the
marked rows first, then the rows around the selected entry, so that one redraw stays small.
"""
from __future__ import annotations

import ipywidgets as widgets
import numpy as np

from ..health import LABELS, Signal, by_subject
from ..history.timeline import rows_through
from .base import View, ViewOptions
from .markup import cell, row, set_html, text

COLUMNS = ("parameter", "health", "shape", "mean", "std", "norm", "zeros", "update ratio", "grad norm",
           "non-finite")
#: Rows shown at most, whatever the model's size (about 200 bytes each).
MAX_ROWS = 40


def value_at(values: np.ndarray, steps: np.ndarray, step: int | None, earlier: bool = False
             ) -> tuple[float, int | None]:
    """``(value, its step)`` recorded at the latest step at or before ``step`` ((NaN, None) if none).

    ``earlier``: the latest such step where the value was measured (not NaN). Weights and
    gradients are recorded at different steps (gradients from step 1), and a step may lack a
    measure: ``w.snapshot()`` between optimizer steps records no update ratio, a capture whose
    gradient hooks were not armed records no gradient. Such steps show the last value measured.
    """
    last = rows_through(steps, step)
    measured = np.flatnonzero(~np.isnan(values[:last])) if earlier else np.arange(last)
    if not measured.size:
        return float("nan"), None
    return float(values[measured[-1]]), int(steps[measured[-1]])


def _number(value: float) -> str:
    return "–" if not np.isfinite(value) else f"{value:.3g}"


def rows_shown(names: list[str], marked: set[str], focus: str | None, most: int = MAX_ROWS) -> list[str]:
    """Which rows to show, in model order: all of a small model; else the marked ones (half the
    room at most), then the rows nearest the focused entry."""
    if len(names) <= most:
        return list(names)
    chosen = [n for n in names if n in marked][: most // 2]
    centre = names.index(focus) if focus in names else 0
    near = sorted(range(len(names)), key=lambda i: abs(i - centre))
    for i in near:
        if len(chosen) >= most:
            break
        if names[i] not in chosen:
            chosen.append(names[i])
    order = {n: i for i, n in enumerate(names)}
    return sorted(chosen, key=order.__getitem__)


class LayerTableView(View):
    """An HTML table (cheap to send once a second, and selectable text to copy).

    ``signals`` is set by the dashboard to the health search's latest result; ``focus`` to the
    entry shown.
    """

    css_class = "nbw-layer-table"

    def __init__(self, options: ViewOptions):
        self.table = widgets.HTML("")
        self.caption = widgets.HTML("")
        self.caption.add_class("nbw-note")
        super().__init__(widgets.VBox([self.caption, self.table]))
        self.signals: list[Signal] = []
        self.focus: str | None = None

    def row(self, history, name: str, step: int | None) -> dict:
        """The numbers of one parameter's row, each with the step it was measured at."""
        stats, steps = history.stats(name), history.steps(name)
        grads, grad_steps = history.stats(name, of="grad"), history.steps(name, of="grad")
        values, measured_at = {}, {}
        for key in ("mean", "std", "norm", "zero_fraction", "nonfinite"):
            values[key], measured_at[key] = value_at(stats[key], steps, step)
        values["update_ratio"], measured_at["update_ratio"] = value_at(stats["update_ratio"], steps, step, True)
        for key, stat in (("grad norm", "norm"), ("grad nonfinite", "nonfinite")):
            values[key], measured_at[key] = value_at(grads[stat], grad_steps, step, earlier=True)
        last = rows_through(steps, step)
        snapshot = int(steps[last - 1]) if last > 0 else None  # the weights' step shown
        return {"name": name, "shape": history.shape(name), **values, "measured at": measured_at,
                "snapshot": snapshot}

    def draw(self, history, step: int | None) -> None:
        at = history.latest_step if step is None else step
        problems = by_subject(self.signals, at)
        names = rows_shown(history.names, set(problems), self.focus)
        lines = ['<table class="nbw-table"><thead>', row([cell(c, header=True) for c in COLUMNS]), "</thead><tbody>"]
        for name in names:
            values = self.row(history, name, step)
            kinds = list(dict.fromkeys(LABELS[s.kind] for s in problems.get(name, [])))
            nonfinite = values["nonfinite"] + (values["grad nonfinite"] if np.isfinite(values["grad nonfinite"]) else 0)
            cells = [cell(name), cell(", ".join(kinds) or "ok", "nbw-health-cell"),
                     cell("×".join(map(str, values["shape"])) or "scalar"),
                     *(self._cell(values, k) for k in ("mean", "std", "norm", "zero_fraction", "update_ratio",
                                                       "grad norm")),
                     cell(_number(nonfinite))]
            lines.append(row(cells, "nbw-unhealthy" if kinds else ""))
        lines.append("</tbody></table>")
        shown = len(names)
        set_html(self.caption, "" if shown == len(history.names) else text(
            f"{shown} of {len(history.names)} parameters: those with a health signal, then those around "
            f"the entry shown (choose an entry above to see its neighbours)"))
        set_html(self.table, "".join(lines))

    @staticmethod
    def _cell(values: dict, key: str) -> str:
        """A number's cell; one measured before the snapshot shown says when (greyed, tooltip)."""
        measured = values["measured at"][key]
        if measured is not None and values["snapshot"] is not None and measured < values["snapshot"]:
            return cell(_number(values[key]), "nbw-earlier", hover=f"measured at step {measured}")
        return cell(_number(values[key]))
