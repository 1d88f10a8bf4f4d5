"""Issue #15 in the browser: dashboards of a 150-tensor GPT-like encoder and a 1,000-tensor model
draw, the same size in the page; filtering to the 1,000th tensor opens it while the cell trains;
the loss curve and the layer table change mid-run; a dashboard shown after training opens at the
latest step; builds draw with JupyterLab's comms over subshells on (its default) and off.

Times are printed, never asserted (this machine is shared); what is asserted is what a person
would see: drawn histograms, the entry's title, curves and tables that change, the step shown.
"""
from __future__ import annotations

import json
import os
import time

import pytest
from jupyter_harness import DashboardUI, NotebookUI
from test_dashboard_live import assert_histograms, eventually

pytestmark = pytest.mark.browser

NOTEBOOK = "large_models.ipynb"
STOP_FILE = "stop-large"
SETUP = f"""\
import os, time
import torch
from torch import nn
import nbweights as nbw

class GPTLike(nn.Module):
    # 150 tensors: token and position embeddings, 12 encoder layers of 12, final norm, head.
    def __init__(self, width=64, layers=12, vocab=100, length=16):
        super().__init__()
        self.tokens = nn.Embedding(vocab, width)
        self.position = nn.Parameter(0.02 * torch.randn(length, width))
        layer = nn.TransformerEncoderLayer(width, 4, 2 * width, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm, self.head = nn.LayerNorm(width), nn.Linear(width, vocab)
    def forward(self, x):
        return self.head(self.norm(self.blocks(self.tokens(x) + self.position[: x.shape[1]])))

class Deep(nn.Module):
    # 1,000 tensors: 500 small residual layers.
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(8, 8) for _ in range(500))
    def forward(self, x):
        for layer in self.layers:
            x = x + 0.1 * torch.tanh(layer(x))
        return x

def train(model, opt, w, seconds, batch, fault=lambda elapsed: None):
    # A plain synchronous loop; the test ends it early by creating {STOP_FILE!r}.
    if os.path.exists({STOP_FILE!r}):
        os.remove({STOP_FILE!r})
    started = time.time()
    while time.time() - started < seconds and not os.path.exists({STOP_FILE!r}):
        fault(time.time() - started)
        x, y = batch()
        loss = nn.functional.mse_loss(model(x), y) if y is not None else model(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        w.log(loss=loss.item())
    print("latest step", w.history.latest_step)

torch.manual_seed(0)
gpt, deep = GPTLike(), Deep()
gpt_opt = torch.optim.AdamW(gpt.parameters(), lr=1e-3)
deep_opt = torch.optim.SGD(deep.parameters(), lr=0.01)
print(sum(1 for _ in gpt.parameters()), sum(1 for _ in deep.parameters()))
"""
GPT_CELL = "wg = nbw.watch(gpt, gpt_opt)\nwg"
DEEP_CELL = "wd = nbw.watch(deep, deep_opt)\nwd"
# A second in, one layer stops learning (frozen): a "stalled" health signal appears mid-run.
TRAIN_DEEP = ("train(deep, deep_opt, wd, 60, lambda: (torch.randn(32, 8), torch.zeros(32, 8)),\n"
              "      fault=lambda elapsed: elapsed > 1 and deep.layers[250].weight.requires_grad_(False))")
SHOW_AGAIN = "wd"
CELLS = [SETUP, GPT_CELL, DEEP_CELL, TRAIN_DEEP, SHOW_AGAIN]
SETUP_CELL, GPT, DEEP, TRAIN, AGAIN = range(5)
LAST = "layers.499.weight"
#: Builds per comms setting in the repeated-build test: 3 in CI (time), 20 for the issue's
#: "20 of 20" (``NBWEIGHTS_BUILDS=20``).
BUILDS = int(os.environ.get("NBWEIGHTS_BUILDS", "3"))

#: What changes mid-run besides the selected panel: the loss curve and the layer table.
ELSEWHERE_JS = """(dash) => ({
  metrics: [...dash.querySelectorAll('.nbw-metric-figure path.line')].map(p => p.getAttribute('d') || '').join('|'),
  table: (dash.querySelector('.nbw-layer-table') || {}).textContent || '',
  status: (dash.querySelector('.nbw-status') || {}).textContent || '',
  overview: (dash.querySelector('.nbw-overview-image') || {}).src || '',
  pictures: [...dash.querySelectorAll('.nbw-stack .nbw-panel img')].map(i => i.src).join('|'),
  health: (dash.querySelector('.nbw-health') || {}).textContent || '',
})"""


def drawn_after_run(nb: NotebookUI, cell: int, timeout: float = 120) -> tuple[DashboardUI, float]:
    """Run the cell; the dashboard in its output and the seconds until its histogram was drawn."""
    started = time.monotonic()
    nb.run_cell(cell)
    dash = DashboardUI(nb, cell).wait_drawn(timeout)
    seconds = time.monotonic() - started
    nb.wait_cell_finished(cell, timeout=timeout)
    return dash, seconds


def dom_nodes(dash: DashboardUI) -> int:
    return dash.root.evaluate("(dash) => dash.querySelectorAll('*').length")


@pytest.fixture(scope="module")
def large(jupyter_server, module_page, screenshot_dir):
    page, console = module_page
    jupyter_server.write_notebook(NOTEBOOK, CELLS)
    nb = NotebookUI(page, jupyter_server, NOTEBOOK, ui="lab", screenshot_dir=screenshot_dir).open(90)
    nb.run_cell_and_wait(SETUP_CELL, timeout=120)
    assert nb.output(SETUP_CELL).inner_text().strip() == "150 1000"
    yield nb, jupyter_server, console
    jupyter_server.shutdown_kernels()


def test_150_and_1000_tensor_dashboards_draw_at_the_same_size(large):
    nb, _, console = large
    gpt, gpt_seconds = drawn_after_run(nb, GPT)
    deep, deep_seconds = drawn_after_run(nb, DEEP)
    sizes = dom_nodes(gpt), dom_nodes(deep)
    print(f"\n[large] first drawn histogram after the cell: 150 tensors {gpt_seconds:.1f} s, "
          f"1,000 tensors {deep_seconds:.1f} s; DOM nodes {sizes[0]} / {sizes[1]}")
    assert_histograms(gpt.frame(), "position")
    assert_histograms(deep.frame(), "layers.0.weight")
    # The page holds one set of views whatever the model: DOM nodes within 10 % (plus the
    # overview's and table's few extra rows).
    assert sizes[1] <= sizes[0] * 1.1 + 100 and sizes[0] <= sizes[1] * 1.1 + 100, sizes
    assert console.widget_errors() == [], console.widget_errors()
    nb.screenshot("large_models_1000_tensors", deep.root)


def test_filtering_opens_the_1000th_tensor_while_the_cell_trains(large):
    nb, server, _ = large
    deep = DashboardUI(nb, DEEP).wait_drawn(30)
    before = deep.root.evaluate(ELSEWHERE_JS)
    nb.run_cell(TRAIN)
    try:
        time.sleep(3)  # training has started
        assert nb.is_cell_running(TRAIN), "the training cell ended before the filter was typed"
        started = time.monotonic()
        deep.root.locator(".nbw-filter input").fill("499 weight")
        eventually(lambda: LAST in deep.root.locator(".nbw-parameter select option").all_inner_texts(), 15)
        deep.select(LAST)
        latency = deep.wait_title(f"{LAST} (values)", timeout=15)
        opened = time.monotonic() - started
        switched = deep.frame()
        seen = [deep.root.evaluate(ELSEWHERE_JS)]
        for _ in range(8):  # what else is on screen keeps changing while the cell runs
            time.sleep(1.5)
            seen.append(deep.root.evaluate(ELSEWHERE_JS))
        still_running = nb.is_cell_running(TRAIN)
        # The health list: three captures of the frozen layer, then a search (at most 2 % of the
        # time on 1,000 tensors: seconds apart), all while the cell still runs.
        def stalled_while_running() -> str:
            assert nb.is_cell_running(TRAIN), "the cell ended before the health list named the frozen layer"
            health = deep.root.evaluate(ELSEWHERE_JS)["health"]
            assert "stalled" in health, health
            return health

        waited = time.monotonic()
        stalled = eventually(stalled_while_running, 30) if still_running else ""
        waited = time.monotonic() - waited
    finally:
        (server.root_dir / STOP_FILE).touch()
        nb.wait_cell_finished(TRAIN, timeout=90)
    print(f"\n[large] typed filter -> {LAST} drawn mid-run in {opened:.2f} s "
          f"(title after selection {latency:.2f} s); the frozen layer's signal {waited:.1f} s after the samples")
    assert still_running, "the cell finished before the mid-run checks ended: lengthen the training"
    assert switched["parameter"] == LAST
    assert_histograms(switched, LAST)
    assert seen[-1]["pictures"], "the entry shown has no picture"
    for part in ("metrics", "table", "status", "overview", "pictures"):
        values = [s[part] for s in seen]
        assert len(set(values)) >= 3, f"the {part} changed {len(set(values)) - 1} times in 12 s of training"
        assert values[-1] != before[part]
    assert "no health signals" in before["health"] and "stalled" in stalled, stalled


def test_a_dashboard_shown_after_training_opens_at_the_latest_step(large):
    nb, _, _ = large
    trained = nb.output(TRAIN).inner_text()
    latest = int(trained.split("latest step")[-1].split()[0])
    again, _ = drawn_after_run(nb, AGAIN)
    frame = again.frame()
    assert frame["status"].startswith(f"step {latest}"), frame["status"]
    assert frame["slider"] == str(latest) and frame["follow"], frame
    # The overview: one row per tensor, one column per recorded step, coloured by update ratio.
    pixels = again.image_pixels(again.root.locator(".nbw-overview-image").first)
    assert pixels["height"] == 1000 and pixels["width"] > 2, pixels
    assert pixels["colours"] > 1 and min(pixels["shown"]) > 0, f"overview not drawn: {pixels}"
    nb.screenshot("large_models_after_training", again.root)


def _set_comms_over_subshells(server, value: str) -> None:
    server.api("/lab/api/settings/@jupyterlab/apputils-extension:kernels-settings", method="PUT",
               body={"raw": json.dumps({"commsOverSubshells": value})})


@pytest.mark.parametrize("comms", ["disabled", "perCommTarget"])
def test_repeated_builds_of_the_150_tensor_dashboard_all_draw(large, comms):
    nb, server, console = large
    _set_comms_over_subshells(server, comms)
    try:
        nb.page.reload(wait_until="domcontentloaded")
        nb.page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(state="visible", timeout=90_000)
        nb.wait_kernel_ready(90)
        times = []
        for _ in range(BUILDS):
            dash, seconds = drawn_after_run(nb, GPT)
            assert_histograms(dash.frame(), "position")
            times.append(seconds)
        # Console errors are printed, not asserted: one run in three here logged "widget model not
        # found" while a re-run closed the earlier dashboard (every build still drew; issue #15 notes).
        print(f"\n[large] comms over subshells {comms}: 150-tensor builds drawn after "
              + ", ".join(f"{t:.1f} s" for t in times) + f"; widget console errors: {console.widget_errors()}")
    finally:
        _set_comms_over_subshells(server, "perCommTarget")
