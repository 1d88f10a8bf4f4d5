"""Issue #15 in the browser: with JupyterLab's default windowing (``contentVisibility``: cells out
of view are not laid out) and its ``full`` mode (cells out of view leave the DOM), a person who
runs all cells and scrolls down to a dashboard that was created out of view sees it drawn: the
histogram's bars, the loss curve and the overview on screen, with no resize of the window.

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
from test_dashboard_live import assert_histograms, eventually

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

#: Where the dashboard is against the notebook's scrolled window, and whether its figures are
#: shown: bqplot hides a figure (visibility: hidden) until it has laid it out at a real size.
SEEN_JS = """(dash) => {
  const win = dash.closest('.jp-WindowedPanel-outer') || dash.closest('.jp-Notebook');
  const view = win.getBoundingClientRect(), box = dash.getBoundingClientRect();
  const shown = (el) => getComputedStyle(el).visibility !== 'hidden' && el.getBoundingClientRect().width > 10;
  const figures = [...dash.querySelectorAll('.nbw-stack .nbw-panel .nbw-histogram-figure, .nbw-metric-figure')];
  return {below: box.top - view.bottom, above: view.top - box.bottom,
          figures: figures.length, figures_shown: figures.filter(shown).length};
}"""

#: Installed before "Run All": where each dashboard was against the window when it first appeared.
WATCH_CREATION_JS = """() => {
  window.__nbwCreated = [];
  new MutationObserver(() => {
    for (const dash of document.querySelectorAll('.nbw-dashboard:not([data-nbw-seen])')) {
      dash.setAttribute('data-nbw-seen', '1');
      const win = dash.closest('.jp-WindowedPanel-outer') || dash.closest('.jp-Notebook');
      const view = win.getBoundingClientRect(), box = dash.getBoundingClientRect();
      window.__nbwCreated.push({below: Math.round(box.top - view.bottom), above: Math.round(view.top - box.bottom)});
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
    try:
        nb = open_notebook(NOTEBOOK)
        nb.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook").first.click()
        nb.page.evaluate(WATCH_CREATION_JS)
        _run_all_from_the_menu(nb)
        # The last cell prints its filler once everything above it ran.
        # (text_content: inner_text leaves out what the browser has not laid out.)
        eventually(lambda: nb.execution_count(len(CELLS) - 1) is not None, 180)
        assert "trained 60" in nb.output(TRAIN_CELL).text_content(), nb.output(TRAIN_CELL).text_content()
        created = nb.page.evaluate("window.__nbwCreated")
        print(f"\n[offscreen {mode or 'contentVisibility'}] dashboard first in the DOM at {created}")
        if mode is None:  # the default mode lays out no cell out of view: this one was out of view
            assert created and all(c["below"] > 0 or c["above"] > 0 for c in created), created
        # Back to the top, as a person reading from the start, then down to the dashboard.
        dash = DashboardUI(nb, DASHBOARD_CELL)
        _wheel(nb, -100_000)
        time.sleep(1)
        _scroll_with_the_wheel_to(nb, dash)
        started = time.monotonic()
        seen = eventually(lambda: _drawn_on_screen(dash), 20)
        print(f"[offscreen {mode or 'contentVisibility'}] drawn {time.monotonic() - started:.1f} s "
              f"after scrolling to it: {seen}")
        assert_histograms(dash.frame(), "0.weight")
        pixels = dash.image_pixels(dash.root.locator(".nbw-overview-image").first)
        assert pixels["colours"] > 1 and min(pixels["shown"]) > 0, f"overview not drawn: {pixels}"
        nb.screenshot(f"offscreen_{mode or 'contentVisibility'}", dash.root)
    finally:
        _set_windowing(jupyter_server, "none")


def _wheel(nb: NotebookUI, pixels: int) -> None:
    box = nb.panel.locator(".jp-Notebook").first.bounding_box()
    nb.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    nb.page.mouse.wheel(0, pixels)


def _scroll_with_the_wheel_to(nb: NotebookUI, dash: DashboardUI, most: int = 80) -> None:
    """Scroll the notebook with the mouse wheel, as a person does, until the dashboard is in view
    (JupyterLab's own scrolling estimates the heights of cells it has not laid out, and in
    ``full`` mode a cell out of view is not in the page at all)."""
    where = None
    for _ in range(most):
        where = dash.root.evaluate(SEEN_JS) if dash.root.count() else None
        if where and where["below"] < -300 and where["above"] < -300:
            return
        _wheel(nb, 400 if where is None or where["below"] >= -300 else -400)
        time.sleep(0.15)
    raise AssertionError(f"the dashboard is not in view after {most} turns of the wheel: {where}")


def _drawn_on_screen(dash: DashboardUI) -> dict | bool:
    """What a person sees of the dashboard's first histogram: its figures shown, and coloured
    bars in a screenshot of it (a blank plot's axes, text and grid are grey)."""
    seen = dash.root.evaluate(SEEN_JS)
    if seen["figures"] < 3 or seen["figures_shown"] != seen["figures"]:
        return False
    figure = dash.panel().locator(".nbw-histogram-figure").first.bounding_box()
    png = dash.page.screenshot(clip=figure)
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    coloured = float((rgb.max(2) - rgb.min(2) > 60).mean())
    seen["histogram_coloured_fraction"] = round(coloured, 3)
    return seen if coloured > 0.05 else False
