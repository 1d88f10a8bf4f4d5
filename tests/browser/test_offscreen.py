"""Issue #15 in the browser: with JupyterLab's default windowing (``contentVisibility``: cells out
of view are not laid out) and its ``full`` mode (cells out of view are hidden, ``display: none``,
or leave the DOM), a person who runs all cells, stays at the top while they run, then scrolls down
sees the dashboard drawn: the histogram's bars and the overview, then the loss curve below them,
each drawn once in view, with no resize of the window.

Elsewhere the harness renders every cell (``windowingMode: none``) so that tests can read any
output; this module switches the setting back for its own notebook and restores it afterwards.
"""
from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest
from PIL import Image
from jupyter_harness import DashboardUI, NotebookUI
from test_dashboard_live import assert_has_lines, assert_histograms, eventually

pytestmark = pytest.mark.browser

NOTEBOOK = "offscreen.ipynb"
FILLER = "for line in range(150):\n    print('line', line)"
CELLS = [
    "import torch\nfrom torch import nn\nimport nbweights as nbw\n" + FILLER,
    FILLER,
    # The dashboard is shown while the view is far above it, then trained while still out of view.
    "torch.manual_seed(0)\nmodel = nn.Sequential(nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))\n"
    "opt = torch.optim.SGD(model.parameters(), lr=0.1)\nw = nbw.watch(model, opt)\nw",
    "for step in range(60):\n"
    "    x, y = torch.randn(64, 784), torch.randint(0, 10, (64,))\n"
    "    loss = nn.functional.cross_entropy(model(x), y)\n"
    "    opt.zero_grad(); loss.backward(); opt.step(); w.log(loss=loss.item())\n"
    "print('trained', w.history.latest_step)",
    FILLER,
]
DASHBOARD_CELL, TRAIN_CELL = 2, 3

#: Where an element is against the notebook's scrolled window (no box: not laid out, e.g. in a
#: cell that ``full`` windowing keeps hidden), and whether bqplot shows it: a figure stays
#: ``visibility: hidden`` until bqplot laid it out at a real size, which it does only once the
#: figure has been in view.
WHERE_JS = """(el) => {
  const win = el.closest('.jp-WindowedPanel-outer') || el.closest('.jp-Notebook');
  const view = win.getBoundingClientRect(), box = el.getBoundingClientRect();
  return {top: box.top - view.top, bottom: box.bottom - view.bottom, height: box.height,
          view: view.height, shown: getComputedStyle(el).visibility !== 'hidden' && box.width > 10};
}"""

#: Installed before "Run All": where each dashboard was against the window when it first appeared.
WATCH_CREATION_JS = """() => {
  window.__nbwCreated = [];
  new MutationObserver(() => {
    for (const dash of document.querySelectorAll('.nbw-dashboard:not([data-nbw-seen])')) {
      dash.setAttribute('data-nbw-seen', '1');
      const win = dash.closest('.jp-WindowedPanel-outer') || dash.closest('.jp-Notebook');
      const view = win.getBoundingClientRect(), box = dash.getBoundingClientRect();
      window.__nbwCreated.push({below: Math.round(box.top - view.bottom), above: Math.round(view.top - box.bottom),
                                height: Math.round(box.height)});
    }
  }).observe(document.body, {childList: true, subtree: true});
}"""


def _set_windowing(server, mode: str | None) -> None:
    raw = {} if mode is None else {"windowingMode": mode}
    server.api("/lab/api/settings/@jupyterlab/notebook-extension:tracker", method="PUT",
               body={"raw": json.dumps(raw)})


def _run_all_from_the_menu(nb: NotebookUI) -> None:
    nb.page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    nb.page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()


@pytest.mark.parametrize("mode", [None, "full"], ids=["default-contentVisibility", "full"])
def test_a_dashboard_created_out_of_view_is_drawn_when_scrolled_to(mode, jupyter_server, open_notebook,
                                                                   screenshot_dir):
    jupyter_server.write_notebook(NOTEBOOK, CELLS)
    _set_windowing(jupyter_server, mode)
    label = mode or "contentVisibility"
    try:
        nb = open_notebook(NOTEBOOK)
        nb.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook").first.click()
        nb.page.evaluate(WATCH_CREATION_JS)
        _run_all_from_the_menu(nb)
        # A person who runs all and reads from the top while the cells run: the dashboard is
        # created below the view (``full`` mode: in a cell it keeps hidden, with no box at all).
        # The last cell prints its filler once everything above it ran.
        # (text_content: inner_text leaves out what the browser has not laid out.)
        eventually(lambda: _wheel(nb, -100_000) or nb.execution_count(len(CELLS) - 1) is not None, 180)
        assert "trained 60" in nb.output(TRAIN_CELL).text_content(), nb.output(TRAIN_CELL).text_content()
        created = nb.page.evaluate("window.__nbwCreated")
        print(f"\n[offscreen {label}] dashboard first in the DOM at {created}")
        assert created and all(c["below"] > 0 or c["height"] == 0 for c in created), created
        # Down to the dashboard with the wheel: its histogram first, then on to the loss curve.
        dash = DashboardUI(nb, DASHBOARD_CELL)
        time.sleep(1)
        for what, figure, least in (("histogram", dash.panel().locator(".nbw-histogram-figure").first, 0.05),
                                    ("loss curve", dash.root.locator(".nbw-metric-figure").first, 0.003)):
            _scroll_with_the_wheel_to(nb, figure)
            started = time.monotonic()
            seen = eventually(lambda: _drawn_on_screen(nb, figure, least), 20)
            print(f"[offscreen {label}] {what} drawn {time.monotonic() - started:.1f} s after scrolling to it: {seen}")
            if what == "histogram":
                assert_histograms(dash.frame(), "0.weight")
                pixels = dash.image_pixels(dash.root.locator(".nbw-overview-image").first)
                assert pixels["colours"] > 1 and min(pixels["shown"]) > 0, f"overview not drawn: {pixels}"
                nb.screenshot(f"offscreen_{label}", dash.root)
        assert_has_lines(dash.path_data(".nbw-metric-figure path.line"), 1, "loss curve")
    finally:
        _set_windowing(jupyter_server, "none")


def _wheel(nb: NotebookUI, pixels: int) -> None:
    box = nb.panel.locator(".jp-Notebook").first.bounding_box()
    nb.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    nb.page.mouse.wheel(0, pixels)


def _scroll_with_the_wheel_to(nb: NotebookUI, element, most: int = 80, step: int = 300) -> None:
    """Scroll the notebook down from the top with the mouse wheel, as a person does, until
    ``element`` is wholly in view (JupyterLab's own scrolling estimates the heights of cells it has
    not laid out, and in ``full`` mode a cell out of view has no box, or is not in the page)."""
    where = None
    for _ in range(most):
        where = element.evaluate(WHERE_JS) if element.count() else None
        if where and where["height"] > 0 and where["top"] >= 0 and where["bottom"] <= 0:
            return
        # Not in the page or not laid out: further down, as we came from the top.
        up = where is not None and where["height"] > 0 and where["top"] < 0
        _wheel(nb, -step if up else step)
        time.sleep(0.15)
    raise AssertionError(f"not wholly in view after {most} turns of the wheel: {where}")


def _drawn_on_screen(nb: NotebookUI, figure, least: float) -> dict | bool:
    """What a person sees of a figure in view: bqplot shows it, and a screenshot of it has
    coloured pixels (bars, a curve) on at least ``least`` of its area (a blank plot's axes, text
    and grid are grey)."""
    seen = figure.evaluate(WHERE_JS)
    if not seen["shown"]:
        return False
    png = nb.page.screenshot(clip=figure.bounding_box())
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    seen["coloured_fraction"] = round(float((rgb.max(2) - rgb.min(2) > 60).mean()), 4)
    return seen if seen["coloured_fraction"] > least else False
