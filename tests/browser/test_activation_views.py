"""Issue #8's views in the browser: a module's output histogram, its dead/saturated fractions and
the probe input's feature maps draw real content in the same dashboard and Dropdown."""
from __future__ import annotations

import pytest
from jupyter_harness import DashboardUI, NotebookUI
from test_dashboard_live import assert_has_lines, assert_picture, eventually, not_all_equal

pytestmark = pytest.mark.browser

NOTEBOOK = "activation_views.ipynb"
CELLS = [
    """\
import torch
from torch import nn
import nbweights as nbw
torch.manual_seed(0)
model = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 8 * 8, 3), nn.Tanh())
opt = torch.optim.SGD(model.parameters(), lr=0.1)
w = nbw.watch(model, opt, every=1, activations=True)
w.probe(torch.randn(2, 1, 8, 8))
w""",
    """\
for _ in range(40):
    opt.zero_grad()
    model(torch.randn(16, 1, 8, 8)).pow(2).mean().backward()
    opt.step()
print(w.history.names_of("activation"), len(w.history.steps("1", of="activation")))""",
]


@pytest.fixture(scope="module")
def trained(jupyter_server, module_page, screenshot_dir):
    page, console = module_page
    jupyter_server.write_notebook(NOTEBOOK, CELLS)
    nb = NotebookUI(page, jupyter_server, NOTEBOOK, screenshot_dir=screenshot_dir).open(90)
    nb.run_cell_and_wait(0, timeout=120)
    dash = DashboardUI(nb, 0).wait_drawn(60)
    nb.run_cell_and_wait(1, timeout=120)
    assert "['0', '1', '3', '4'] 40" in nb.output(1).inner_text()
    yield nb, dash, console
    jupyter_server.shutdown_kernels()


def show(dash: DashboardUI, entry: str) -> dict:
    dash.select(f"activation: {entry}")
    dash.wait_title(f"{entry} (outputs)", timeout=20)
    return eventually(lambda: _drawn(dash.frame(), entry))


def _drawn(frame: dict, entry: str) -> dict:
    assert frame["current"], f"no output histogram drawn for {entry}: {frame}"
    return frame


def test_output_histograms_and_fractions_draw(trained):
    nb, dash, console = trained
    frame = show(dash, "1")  # the ReLU
    assert len(frame["current"]) == 64 and not_all_equal(frame["current"]), frame["current"]
    assert max(frame["first"]) > 0 and frame["errors"] == [], frame
    fractions = dash.path_data(".nbw-stack .nbw-activation-fractions-figure path.line")
    assert_has_lines(fractions, 1, "dead / saturated fractions of the ReLU")
    assert_has_lines(dash.path_data(".nbw-stack .nbw-distribution-figure path.line"), 7, "output bands")
    tanh = show(dash, "4")
    assert tanh["current"] != frame["current"]  # another module, other data
    nb.screenshot("activation_panel_tanh", dash.root)
    assert console.widget_errors() == []


def test_probe_feature_maps_draw(trained):
    nb, dash, console = trained
    show(dash, "0")  # the convolution: its outputs and the probe's feature maps
    image = dash.panel().locator("img.nbw-feature-maps-image")
    assert image.count() == 1
    eventually(lambda: assert_picture(dash.image_pixels(image.first), "feature maps"))
    nb.screenshot("activation_panel_conv_feature_maps", dash.root)
    assert console.widget_errors() == []
