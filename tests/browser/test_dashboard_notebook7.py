"""The same dashboard in Notebook 7 (not only JupyterLab): it draws, changes while a training
cell runs, its pictures decode, and the console stays free of widget errors."""
from __future__ import annotations

import pytest
from jupyter_harness import DashboardUI, NotebookUI, distinct_frames
from test_dashboard_live import (
    CELLS, SHORT_RUN, Checks, assert_gradient_histogram, assert_histograms, assert_picture, eventually,
)

pytestmark = pytest.mark.browser

NOTEBOOK = "dashboard_notebook7.ipynb"


@pytest.fixture(scope="module")
def notebook7(jupyter_server, module_page, screenshot_dir):
    page, console = module_page
    jupyter_server.write_notebook(NOTEBOOK, CELLS[:2])
    nb = NotebookUI(page, jupyter_server, NOTEBOOK, ui="notebook", screenshot_dir=screenshot_dir).open(90)
    nb.run_cell_and_wait(0, timeout=120)
    dash = DashboardUI(nb, 0).wait_drawn(60)
    yield nb, dash, console
    jupyter_server.shutdown_kernels()


def test_notebook7_dashboard_draws_and_changes_while_training(notebook7):
    nb, dash, _ = notebook7
    assert nb.page.locator("#jp-top-panel, .jp-NotebookPanel").count() > 0
    assert "/notebooks/" in nb.page.url, nb.page.url  # Notebook 7's page, not JupyterLab's

    nb.run_cell(SHORT_RUN)
    samples = dash.sample(40, running_cell=SHORT_RUN)
    nb.wait_cell_finished(SHORT_RUN, timeout=60)
    frames, seconds, per_second = distinct_frames(samples)
    print(f"\n[notebook 7] {frames} distinct frames while training ran, {seconds:.1f} s, {per_second:.1f} frames/s")
    assert frames >= 3, f"only {frames} distinct frames while the cell ran"

    check = Checks()
    frame = dash.frame()
    check("histogram", assert_histograms, frame, "conv.weight")  # the first parameter is shown first
    check("gradient histogram", assert_gradient_histogram, frame, "conv.weight")
    check("filter mosaic", eventually, lambda: assert_picture(
        dash.image_pixels(dash.panel().locator("img.nbw-filters-image").first), "filter mosaic"))
    dash.select("linear.weight")
    dash.wait_title("linear.weight (values)")
    frame = dash.frame()
    check("histogram", assert_histograms, frame, "linear.weight")
    check("heatmap", eventually, lambda: assert_picture(
        dash.image_pixels(dash.panel().locator("img.nbw-heatmap-image").first), "heatmap", 784, 10))
    check("class images", eventually, lambda: dash.panel().locator(".nbw-class-panel").count() == 10)
    nb.screenshot("notebook7_dashboard", dash.root)
    check.assert_all()


def test_notebook7_console_shows_no_widget_errors(notebook7):
    _, _, console = notebook7
    assert console.widget_errors() == [], "\n".join(dict.fromkeys(console.widget_errors()))
