"""Per-view controls heard while a plain synchronous training cell runs (issue #15): the values
histogram's "log count", the trajectories' index picker and the filter mosaic's range switch
redraw their view before the cell ends, through the kernel subshell the dashboard routes them to.

Its own notebook and kernel (the model and training loop of test_dashboard_live), and its own
console check: switching "log count" back off used to log bqplot's NaN errors and leave the y
tick labels stacked at the top (zero heights and a 0 tick drawn on the log scale before the
browser swapped it).
"""
from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image
from jupyter_harness import DashboardUI
from test_dashboard_live import LONG_RUN, SHORT_RUN, STOP_FILE, eventually, opened_with_dashboard

pytestmark = pytest.mark.browser

NOTEBOOK = "view_controls_live.ipynb"


@pytest.fixture(scope="module")
def controls(jupyter_server, module_page, screenshot_dir):
    page, console = module_page
    nb, dash = opened_with_dashboard(jupyter_server, page, NOTEBOOK, screenshot_dir)
    nb.run_cell_and_wait(SHORT_RUN, timeout=60)
    dash.select("conv.weight")
    dash.wait_title("conv.weight (values)")
    yield nb, dash, console, jupyter_server
    jupyter_server.shutdown_kernels()


#: The axes a person sees, x first (the histogram hides the y axis of the scale not shown).
SHOWN_AXES = "const shownAxes = (fig) => [...fig.querySelectorAll('g.axis')].filter(a => a.parentNode.style.display !== 'none')"

#: What the per-view controls of the conv.weight panel show: the values histogram's y tick
#: labels (log count on or off), the trajectories' title (indices picked) and the mosaic's colour
#: bar (per filter or shared range).
CONTROLLED_JS = """(dash) => {
  SHOWN_AXES;
  const panel = dash.querySelector('.nbw-stack .nbw-panel');
  const y_axis = shownAxes(panel.querySelector('.nbw-histogram-figure'))[1];
  return {
    y_ticks: [...y_axis.querySelectorAll('g.tick text')].map(t => t.textContent),
    trajectories: (panel.querySelector('.nbw-trajectories-figure text.mainheading') || {}).textContent || '',
    mosaic_bar: (panel.querySelector('.nbw-filters') || {}).textContent || '',
  };
}""".replace("SHOWN_AXES", SHOWN_AXES)


def test_view_controls_are_heard_while_the_cell_runs(controls):
    """Log count, the trajectories' index picker and the mosaic's range switch, changed while a
    plain synchronous loop trains, redraw their view before the cell ends (kernel subshell)."""
    nb, dash, _, server = controls
    panel = dash.panel()
    before = dash.root.evaluate(CONTROLLED_JS)
    nb.run_cell(LONG_RUN)
    try:
        time.sleep(3)
        assert nb.is_cell_running(LONG_RUN), "the training cell ended before the controls were changed"
        started = time.monotonic()
        panel.locator(".nbw-histogram .widget-checkbox input").first.check()
        picker = panel.locator(".nbw-trajectories input[type=text]")
        picker.fill("0-2")
        picker.press("Enter")
        panel.locator(".nbw-filters button", has_text="shared").click()
        after = eventually(lambda: _all_controls_heard(dash, before), 15)
        heard = time.monotonic() - started
        log_places = dash.root.evaluate(Y_TICK_PLACES_JS)
        # And back, still mid-run: the default 32 trajectories again.
        picker.fill("")
        picker.press("Enter")
        eventually(lambda: dash.root.evaluate(CONTROLLED_JS)["trajectories"].startswith("conv.weight: 32 of 36"), 15)
        still_running = nb.is_cell_running(LONG_RUN)
    finally:
        (server.root_dir / STOP_FILE).touch()
        nb.wait_cell_finished(LONG_RUN, timeout=60)
        panel.locator(".nbw-histogram .widget-checkbox input").first.uncheck()
        panel.locator(".nbw-filters button", has_text="per filter").click()
    print(f"\n[controls] log count, indices and mosaic range changed mid-run: all redrawn after {heard:.2f} s: {after}")
    assert still_running, "the cell finished before the controls were heard: lengthen train()"
    assert len(set(log_places)) == len(log_places) >= 2 and not any("NaN" in p for p in log_places), log_places


def _all_controls_heard(dash: DashboardUI, before: dict) -> dict:
    now = dash.root.evaluate(CONTROLLED_JS)
    assert "0" in before["y_ticks"] and "0" not in now["y_ticks"] and now["y_ticks"], \
        f"log count: y ticks {before['y_ticks']} -> {now['y_ticks']}"
    assert now["trajectories"].startswith("conv.weight: 3 of 36 weights"), now["trajectories"]
    assert "each filter over its own" in before["mosaic_bar"] and "each filter" not in now["mosaic_bar"], \
        f"mosaic range: {before['mosaic_bar']!r} -> {now['mosaic_bar']!r}"
    return now


#: Where the values histogram's y tick labels sit (the vertical offset of each tick's transform).
Y_TICK_PLACES_JS = """(dash) => {
  SHOWN_AXES;
  const y_axis = shownAxes(dash.querySelector('.nbw-stack .nbw-panel .nbw-histogram-figure'))[1];
  return [...y_axis.querySelectorAll('g.tick')].map(t => t.getAttribute('transform'));
}""".replace("SHOWN_AXES", SHOWN_AXES)


def test_console_shows_no_widget_errors_after_mid_run_controls(controls):
    """After the controls changed mid-run and "log count" was switched off again: no widget
    error in the console, and the values histogram's y tick labels at distinct heights."""
    nb, dash, console, _ = controls
    panel = dash.panel()
    picker = panel.locator(".nbw-trajectories input[type=text]")
    picker.fill("4-6")  # a change after the run, as a person trying another pick
    picker.press("Enter")
    eventually(lambda: dash.root.evaluate(CONTROLLED_JS)["trajectories"].startswith("conv.weight: 3 of 36"), 15)
    time.sleep(2)
    assert console.widget_errors() == [], "\n".join(dict.fromkeys(console.widget_errors()))
    places = dash.root.evaluate(Y_TICK_PLACES_JS)
    assert len(places) >= 2 and len(set(places)) == len(places) and not any("NaN" in p for p in places), places


def _use_theme(page, theme: str) -> None:
    """Settings → Theme → ``theme``, from JupyterLab's menu bar, as a person switches it."""
    page.locator(".lm-MenuBar-itemLabel", has_text="Settings").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Theme").first.hover()
    page.locator(".lm-Menu-itemLabel", has_text=theme).first.click()


def _luminance(rgb: np.ndarray) -> np.ndarray:
    """Relative luminance (WCAG) of sRGB colours, [..., 3] in 0-255."""
    c = rgb / 255.0
    c = np.where(c <= 0.03928, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return c @ np.array([0.2126, 0.7152, 0.0722])


def test_the_dark_theme_keeps_the_percentile_bands_apart(controls):
    """In JupyterLab Dark the distribution's outer band stands off the background and each band
    off the next (bqplot's inline fills at 15-45 % opacity of the line colour nearly vanished:
    contrast 1.16 against the background)."""
    nb, dash, console, _ = controls
    page = nb.page
    _use_theme(page, "JupyterLab Dark")
    try:
        eventually(lambda: page.evaluate("document.body.dataset.jpThemeLight") == "false", 15)
        figure = dash.panel().locator(".nbw-distribution-figure").first
        figure.scroll_into_view_if_needed()
        time.sleep(1.5)  # the theme's CSS transitions
        area = dash.panel().locator(".nbw-distribution-figure rect.plotarea_background").first.bounding_box()
        png = page.screenshot(clip=area)
        nb.screenshot("view_controls_dark_bands", figure)
    finally:
        _use_theme(page, "JupyterLab Light")
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float64)
    column = _luminance(pixels[:, pixels.shape[1] * 3 // 4])  # a step between grid lines
    # Flat runs of at least 4 px are the background and the bands (not edges, grid or median line).
    edges = np.flatnonzero(np.abs(np.diff(column)) > 1e-4) + 1
    runs = [run for run in np.split(column, edges) if len(run) >= 4]
    background = min(float(run[0]) for run in runs)  # the darkest flat stretch
    levels = sorted({round(float(run[0]), 4) for run in runs})
    contrast = (np.array(levels) + 0.05) / (background + 0.05)
    bands = contrast[contrast > 1.02]
    assert len(bands) >= 3, (levels, background)
    assert bands.min() >= 1.25, f"outer band against the background: {bands.min():.2f}"
    assert console.widget_errors() == [], "\n".join(dict.fromkeys(console.widget_errors()))
