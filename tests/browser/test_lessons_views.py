"""Issue #17's views in the browser: the attention mosaic, the attributions sheet and the weight
projection scatter draw real content, and change while a training cell runs."""
from __future__ import annotations

import pytest
from jupyter_harness import DashboardUI, NotebookUI
from test_dashboard_live import assert_picture, eventually

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NOTEBOOK = "lessons_views.ipynb"
UNITS = 6  # classes: points of the projection of head.weight
CELLS = [
    f"""\
import time
import torch
from torch import nn
import nbweights as nbw
torch.manual_seed(0)

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
        self.head = nn.Linear(8, {UNITS})
    def forward(self, x):
        return self.head(self.layer(torch.relu(self.conv(x)).flatten(2).transpose(1, 2)).mean(1))

model = Net()
opt = torch.optim.SGD(model.parameters(), lr=0.5)
w = nbw.watch(model, opt, every=1)
w.probe(torch.rand(3, 1, 6, 6, generator=torch.Generator().manual_seed(1)), attributions=True)

def train(steps):
    for _ in range(steps):
        x = torch.rand(16, 1, 6, 6)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), (x.mean((1, 2, 3)) * {UNITS}).long().clamp(max={UNITS - 1})).backward()
        opt.step()
        time.sleep(0.05)
    print("trained", w.step)
w""",
    "train(100)",
    "train(100)",
    # Without attributions a step is faster: more captures, more redraws in which the panel's
    # pictures (three of them for head.weight) take their turn.
    "w.probe(torch.rand(3, 1, 6, 6, generator=torch.Generator().manual_seed(1)))",
    "train(150)",
]

# Samples the given attribute of the elements matching a selector every 50 ms while a cell runs.
SAMPLE_JS = r"""async ({root, prompt, selector, attr, ms}) => {
  const out = [], t0 = performance.now();
  while (performance.now() - t0 < ms) {
    const running = (prompt.textContent || '').includes('*');
    const found = [...root.querySelectorAll(selector)];
    out.push({running, count: found.length, sig: found.map(e => e.getAttribute(attr) || '').join('|')});
    if (!running && out.some(s => s.running)) break;
    await new Promise(r => setTimeout(r, 50));
  }
  return out;
}"""


@pytest.fixture(scope="module")
def lessons(jupyter_server, module_page, screenshot_dir):
    page, console = module_page
    jupyter_server.write_notebook(NOTEBOOK, CELLS)
    nb = NotebookUI(page, jupyter_server, NOTEBOOK, screenshot_dir=screenshot_dir).open(90)
    nb.run_cell_and_wait(0, timeout=180)
    dash = DashboardUI(nb, 0).wait_drawn(90)
    yield nb, dash, console
    jupyter_server.shutdown_kernels()


def changes_while_training(nb: NotebookUI, dash: DashboardUI, cell: int, selector: str, attr: str) -> list[dict]:
    """Run a training cell; samples of what ``selector`` draws, taken while it ran."""
    nb.run_cell(cell)
    samples = dash.page.evaluate(SAMPLE_JS, {"root": dash.root.element_handle(), "prompt": nb.prompt(cell).element_handle(),
                                             "selector": selector, "attr": attr, "ms": 90_000})
    nb.wait_cell_finished(cell, timeout=120)
    running = [s for s in samples if s["running"]]
    assert running, f"never saw the training cell running; it printed {nb.output(cell).inner_text()!r}"
    distinct = {s["sig"] for s in running if s["count"]}
    # At least one new drawing mid-run: images are redrawn in turn with the other parts (ui/dashboard.py).
    assert len(distinct) >= 2, f"{selector}: {len(distinct)} distinct drawings while the cell ran"
    return running


def test_attention_mosaic_draws_and_changes_while_training(lessons):
    nb, dash, console = lessons
    dash.select("attention: layer.self_attn")
    image = dash.root.locator("img.nbw-attention-image")
    eventually(lambda: assert_picture(dash.image_pixels(image.first), "attention", 2 * 37 + 1, 37 + 1), timeout=20)
    changes_while_training(nb, dash, 1, "img.nbw-attention-image", "src")
    assert "36 queries (down) x 36 keys" in dash.root.locator(".nbw-attention .nbw-title").first.inner_text()
    nb.screenshot("lessons_attention", dash.root)
    assert console.widget_errors() == []


def test_attributions_sheet_draws_and_changes_while_training(lessons):
    nb, dash, console = lessons
    dash.select("attributions: probe samples")
    image = dash.root.locator("img.nbw-attributions-image")
    # 3 samples x (input, integrated gradients, 4 interior gradients) of 6 x 6, 1-pixel gaps
    eventually(lambda: assert_picture(dash.image_pixels(image.first), "attributions", 6 * 7 + 1, 3 * 7 + 1), timeout=20)
    changes_while_training(nb, dash, 2, "img.nbw-attributions-image", "src")
    assert dash.image_pixels(image.first)["colours"] > 20  # grey inputs and red/blue maps
    nb.screenshot("lessons_attributions", dash.root)
    assert console.widget_errors() == []


def test_projection_scatter_draws_one_point_per_unit_and_moves_over_a_run(lessons):
    nb, dash, console = lessons
    dash.select("head.weight")
    dots = ".nbw-projection-figure .object_grp"  # one group per point, placed by its transform
    eventually(lambda: dash.root.locator(dots).count() == UNITS, timeout=20)
    nb.run_cell_and_wait(3, timeout=60)
    before = dash.root.evaluate(f"(d) => [...d.querySelectorAll('{dots}')].map(e => e.getAttribute('transform')).join('|')")
    nb.run_cell(4)
    samples = dash.page.evaluate(SAMPLE_JS, {"root": dash.root.element_handle(), "prompt": nb.prompt(4).element_handle(),
                                             "selector": dots, "attr": "transform", "ms": 90_000})
    nb.wait_cell_finished(4, timeout=120)
    running = [s for s in samples if s["running"]]
    assert running and all(s["count"] == UNITS for s in running), {s["count"] for s in running}
    assert len(set(running[-1]["sig"].split("|"))) == UNITS  # distinct positions: real coordinates, not a stub
    # The panel of head.weight holds three pictures, redrawn in turn within the dashboard's redraw
    # budget: while this short cell runs they may not come round, so the motion is checked over it.
    eventually(lambda: samples[-1]["sig"] != before or dash.root.evaluate(
        f"(d) => [...d.querySelectorAll('{dots}')].map(e => e.getAttribute('transform')).join('|')") != before,
        timeout=20)
    nb.screenshot("lessons_projection", dash.root)
    assert console.widget_errors() == []
