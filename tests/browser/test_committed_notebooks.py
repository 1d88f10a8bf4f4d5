"""Each committed teaching notebook (notebooks/0*.ipynb) runs in JupyterLab, cell by cell, in
quick mode (NBWEIGHTS_QUICK=1 reaches the kernels through the server's environment), and every
dashboard it shows draws its histograms without a view error. A screenshot of each dashboard
is saved (``notebook_<name>_<k>.png`` in the screenshots folder printed at the start)."""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from jupyter_harness import DashboardUI

pytestmark = pytest.mark.browser

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("0*.ipynb"))
CELL_TIMEOUT_S = 240
DRAW_TIMEOUT_S = 20


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebook_shows_its_dashboards(path, jupyter_server, open_notebook, console):
    for helper in NOTEBOOK_DIR.glob("*.py"):  # what the notebooks import (nbw_data.py)
        jupyter_server.copy_notebook(helper)
    jupyter_server.copy_notebook(path)
    nb = open_notebook(path.name)
    nb.run_code_cells(CELL_TIMEOUT_S)

    assert nb.error_outputs() == [], "\n\n".join(nb.error_outputs())
    assert "RESULT " in nb.panel.inner_text(), "the notebook did not reach its RESULT line"
    dashboards = DashboardUI.all_in(nb)
    assert dashboards, f"{path.name} shows no dashboard"
    problems = []  # of every dashboard, so that one failure names them all
    deadline = time.monotonic() + DRAW_TIMEOUT_S  # all were shown by now: one wait for all
    for k, dash in enumerate(dashboards, 1):
        # A person scrolls to the dashboard (test_offscreen.py checks that one created out of
        # view under JupyterLab's default windowing draws when scrolled to, with no resize).
        dash.root.scroll_into_view_if_needed()
        try:
            dash.wait_drawn(max(1.0, deadline - time.monotonic()))
        except Exception:
            problems.append(f"dashboard {k}: no histogram bars drawn {DRAW_TIMEOUT_S} s after the last cell")
        frame = dash.frame()  # before the screenshot, which resizes the page
        shot = nb.screenshot(f"notebook_{path.stem}_{k}", dash.root)
        print(f"\n[{path.stem}] dashboard {k}: {frame['parameter']} | {frame['status']} -> {shot}")
        if len(frame["current"]) != 64 or max(frame["current"], default=0) <= 0:
            problems.append(f"dashboard {k}: histogram of {frame['parameter']} has bars {frame['current']}")
        if frame["errors"]:
            problems.append(f"dashboard {k}: view errors {frame['errors']}")
        # Every metric given to w.log has its curve and a y axis with ticks (of the finite part of
        # the values, should training diverge).
        curves = dash.root.evaluate("""d => [...d.querySelectorAll('.nbw-metric-figure')].map(f => {
            const axes = f.querySelectorAll('g.axis');
            const line = f.querySelector('path.line');
            return [(f.querySelector('text.mainheading') || {}).textContent,
                    ((line && line.getAttribute('d')) || '').split('L').length - 1,
                    axes.length > 1 ? axes[1].querySelectorAll('g.tick').length : 0]; })""")
        for title, segments, y_ticks in curves:
            if segments < 1 or y_ticks < 1:  # one logged value: one point, one tick
                problems.append(f"dashboard {k}: the {title!r} curve is not drawn "
                                f"({segments} segments, {y_ticks} y-axis ticks)")
    if console.widget_errors():
        print(f"[{path.stem}] console widget errors (asserted in test_dashboard_live): "
              f"{sorted(set(console.widget_errors()))}")
    assert problems == [], "\n".join(problems)
