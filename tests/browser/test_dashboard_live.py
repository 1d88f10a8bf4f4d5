"""The dashboard in a real JupyterLab: every view draws real content, it changes while a plain
synchronous training cell runs, the parameter Dropdown switches mid-run, the step slider goes
back in time, and the console stays free of widget errors.

One notebook, one kernel and one page serve the whole module (opening JupyterLab and importing
torch cost more than the checks). The model has one parameter of each kind a view needs:
``conv.weight`` [4, 1, 3, 3] (filter mosaic, trajectories), ``conv.bias`` [4] and ``linear.bias``
[10] (trajectories), ``linear.weight`` [10, 784] over 28x28 pixels (heatmap, class images).
"""
from __future__ import annotations

import time

import pytest
from jupyter_harness import DashboardUI, NotebookUI, distinct_frames

pytestmark = pytest.mark.browser

NOTEBOOK = "dashboard_live.ipynb"
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
PARAMETERS = ["conv.weight", "conv.bias", "linear.weight", "linear.bias"]
STOP_FILE = "stop-training"

SETUP = f"""\
import os, time
import torch
from torch import nn
import nbweights as nbw

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.linear = nn.Linear(784, 10)
    def forward(self, x):
        return self.linear(self.conv(x).mean(1).flatten(1))

torch.manual_seed(0)
model = Net()
opt = torch.optim.SGD(model.parameters(), lr=0.1)
images, targets = torch.randn(2000, 1, 28, 28), torch.randint(0, 10, (2000,))

def train(seconds):
    # A plain synchronous loop; the test ends it early by creating {STOP_FILE!r}.
    if os.path.exists({STOP_FILE!r}):
        os.remove({STOP_FILE!r})
    started, steps = time.time(), 0
    while time.time() - started < seconds and not os.path.exists({STOP_FILE!r}):
        batch = torch.randint(0, len(images), (100,))
        loss = nn.functional.cross_entropy(model(images[batch]), targets[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
        w.log(loss=loss.item())
        steps += 1
    print(f"{{steps}} steps in {{time.time() - started:.1f}} s, latest step {{w.history.latest_step}}")

w = nbw.watch(model, opt, class_names={CLASSES!r}, image_shape=(28, 28))
w
"""
CELLS = [SETUP, "train(8)", "train(30)"]
SHORT_RUN, LONG_RUN = 1, 2  # cell indices


class Live:
    """The module's notebook: its NotebookUI, the dashboard and the page's console."""

    def __init__(self, nb: NotebookUI, dash: DashboardUI, console, server):
        self.nb, self.dash, self.console, self.server = nb, dash, console, server
        self.trained = False

    def stop_training(self) -> None:
        (self.server.root_dir / STOP_FILE).touch()

    def run_short(self) -> list[dict]:
        """Run the short training cell; returns the frames sampled while it ran."""
        self.nb.run_cell(SHORT_RUN)
        samples = self.dash.sample(40, every_ms=30, running_cell=SHORT_RUN)
        self.nb.wait_cell_finished(SHORT_RUN, timeout=60)
        self.trained = True
        return samples

    def ensure_trained(self) -> None:
        if not self.trained:
            self.run_short()

    def select_idle(self, parameter: str) -> None:
        """Select a parameter between cells (the kernel hears it and redraws that panel in full)."""
        self.dash.select(parameter)
        self.dash.wait_title(f"{parameter} (values)")


def opened_with_dashboard(server, page, name: str, screenshot_dir) -> tuple[NotebookUI, DashboardUI]:
    """This module's notebook written as ``name`` and opened, its first cell run: the dashboard drawn."""
    server.write_notebook(name, CELLS)
    nb = NotebookUI(page, server, name, ui="lab", screenshot_dir=screenshot_dir).open(90)
    nb.run_cell_and_wait(0, timeout=120)
    return nb, DashboardUI(nb, 0).wait_drawn(60)


@pytest.fixture(scope="module")
def live(jupyter_server, module_page, screenshot_dir):
    page, console = module_page
    nb, dash = opened_with_dashboard(jupyter_server, page, NOTEBOOK, screenshot_dir)
    yield Live(nb, dash, console, jupyter_server)
    jupyter_server.shutdown_kernels()


def eventually(check, timeout: float = 15, interval: float = 0.2):
    """Call ``check`` until it returns a truthy value (returned) or raises no AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result is None or result:
                return result
            error = AssertionError(f"{check.__name__} returned {result!r}")
        except AssertionError as exc:
            error = exc
        if time.monotonic() > deadline:
            raise error
        time.sleep(interval)


def not_all_equal(values) -> bool:
    return len(values) > 1 and max(values) > 0 and len(set(values)) > 1


def assert_histograms(frame: dict, parameter: str) -> None:
    assert frame["title"] == f"{parameter} (values)", frame["title"]
    # 64 bins (the default), some bins fuller than others: a real distribution, not a flat line.
    assert len(frame["current"]) == 64 and not_all_equal(frame["current"]), \
        f"value histogram of {parameter}: bins {frame['current']}"
    assert len(frame["first"]) == 64 and max(frame["first"]) > 0, f"first-step histogram: bins {frame['first']}"
    assert frame["errors"] == [], f"views show errors: {frame['errors']}"


def assert_gradient_histogram(frame: dict, parameter: str) -> None:
    assert frame["grad_title"] == f"{parameter} (gradient)", frame["grad_title"]
    assert len(frame["grad_current"]) == 64 and not_all_equal(frame["grad_current"]), \
        f"gradient histogram of {parameter}: bins {frame['grad_current']}"


def require(condition: bool, message: str) -> None:
    assert condition, message


class Checks:
    """Runs every check and fails once at the end naming all that failed, so that one broken
    view does not hide the state of the others."""

    def __init__(self):
        self.failed: list[str] = []

    def __call__(self, what: str, check, *args, **kwargs) -> None:
        try:
            check(*args, **kwargs)
        except Exception as error:  # AssertionError, or a timeout waiting for an element
            first_line = (str(error).splitlines() or [""])[0][:300]
            self.failed.append(f"{what}: {type(error).__name__}: {first_line}")

    def assert_all(self) -> None:
        assert self.failed == [], "\n".join(self.failed)


def assert_has_lines(paths: list[str], at_least: int, what: str) -> None:
    drawn = [d for d in paths if d.count("L") >= 2]  # a polyline through 3+ points
    assert len(drawn) >= at_least, f"{what}: {len(drawn)} of {len(paths)} paths have data: {[d[:40] for d in paths]}"


def assert_picture(pixels: dict, what: str, width: int | None = None, height: int | None = None) -> None:
    assert pixels["src"] in ("blob:", "data:"), f"{what}: not a PNG URL: {pixels}"
    assert pixels["colours"] > 1, f"{what}: decodes to a single colour: {pixels}"
    assert min(pixels["shown"]) > 0, f"{what}: not shown on screen: {pixels}"
    if width is not None:
        assert (pixels["width"], pixels["height"]) == (width, height), f"{what}: size {pixels}"


def test_every_view_draws_real_content(live, screenshot_dir):
    live.ensure_trained()
    dash, panel, check = live.dash, live.dash.panel(), Checks()
    follow_latest(dash)  # the latest step, whatever the slider did (see test_dashboard_changes_...)

    # linear.weight [10, 784]: histograms, distribution bands, heatmap, class images.
    live.select_idle("linear.weight")
    frame = dash.frame()
    check("histogram", assert_histograms, frame, "linear.weight")
    check("gradient histogram", assert_gradient_histogram, frame, "linear.weight")
    check("distribution", assert_has_lines,
          dash.path_data(".nbw-stack .nbw-distribution-figure path.line"), 7, "distribution lines")
    check("distribution", assert_has_lines,
          dash.path_data(".nbw-stack .nbw-distribution-figure path.area"), 6, "distribution bands")
    heatmap = panel.locator("img.nbw-heatmap-image")
    check("heatmap", require, heatmap.count() == 1, f"{heatmap.count()} heatmap images (1 expected)")
    # One PNG pixel per weight: 784 input columns, 10 output rows.
    check("heatmap", eventually, lambda: assert_picture(dash.image_pixels(heatmap.first), "heatmap", 784, 10))
    class_panels = panel.locator(".nbw-class-panel")
    labels = [t.strip() for t in panel.locator(".nbw-class-panel .nbw-class-label").all_text_contents()]
    check("class images", require, labels == CLASSES, f"{class_panels.count()} panels labelled {labels}")
    for k in range(min(class_panels.count(), len(CLASSES))):
        check("class images", eventually, lambda: assert_picture(
            dash.image_pixels(class_panels.nth(k).locator("img")), f"class image {CLASSES[k]}", 28, 28))
    live.nb.screenshot("dashboard_linear_weight", live.dash.root)

    # conv.weight [4, 1, 3, 3]: filter mosaic and trajectories of single weights.
    live.select_idle("conv.weight")
    frame = dash.frame()
    check("histogram", assert_histograms, frame, "conv.weight")
    check("gradient histogram", assert_gradient_histogram, frame, "conv.weight")
    mosaic = panel.locator("img.nbw-filters-image")
    check("filter mosaic", require, mosaic.count() == 1, f"{mosaic.count()} mosaic images (1 expected)")
    check("filter mosaic", eventually, lambda: assert_picture(dash.image_pixels(mosaic.first), "filter mosaic"))
    trajectories = dash.path_data(".nbw-stack .nbw-trajectories-figure path.line")
    check("trajectories", assert_has_lines, trajectories, 32, "trajectories")  # 32 of the 36 weights
    check("trajectories", require, len(set(trajectories)) > 1, "every trajectory is the same line")
    live.nb.screenshot("dashboard_conv_weight", live.dash.root)

    # Whole-model views: one table row per parameter, in model order; the loss curve.
    rows = dash.root.locator(".nbw-layer-table tbody tr")
    names = [rows.nth(i).locator("td").first.text_content() for i in range(rows.count())]
    check("layer table", require, names == PARAMETERS, f"rows {names}")
    check("metrics", assert_has_lines, dash.path_data(".nbw-metric-figure path.line"), 1, "loss curve")
    check.assert_all()


def test_dashboard_changes_while_the_cell_runs(live):
    samples = live.run_short()
    frames, seconds, per_second = distinct_frames(samples)
    print(f"\n[live lab] {frames} distinct frames while the training cell ran, {seconds:.1f} s, "
          f"{per_second:.1f} frames/s (sampled every 30 ms); cell: {live.nb.output(SHORT_RUN).inner_text().strip()}")
    assert any(s["running"] for s in samples), "never saw the cell running"
    assert frames >= 3, f"only {frames} distinct frames while the cell ran: {[s['status'] for s in samples][:20]}"
    # Each of them a drawn histogram, not an empty figure.
    assert all(s["bars"] == 64 for s in samples if s["running"]), {s["bars"] for s in samples}
    # Nobody touched the controls: after the run the views show the latest step.
    assert_follows_latest(live.dash)


def assert_follows_latest(dash: DashboardUI) -> None:
    def slider_at_latest():
        frame = dash.frame()
        latest = frame["status"].split(" ")[1] if (frame["status"] or "").startswith("step ") else None
        assert frame["follow"] and frame["slider"] == latest, (
            f"the views do not follow the latest step: slider {frame['slider']!r}, 'follow latest' "
            f"{'on' if frame['follow'] else 'off'}, status {frame['status']!r}")
    eventually(slider_at_latest, timeout=5)


def test_dropdown_switches_the_panel_while_the_cell_runs(live):
    dash = live.dash
    live.ensure_trained()
    live.select_idle("conv.weight")
    before = dash.frame()

    live.nb.run_cell(LONG_RUN)
    try:
        # Training has started drawing: the conv.weight panel changes under our eyes.
        warmup = dash.sample(5, running_cell=LONG_RUN, until_idle=True)
        assert distinct_frames(warmup)[0] >= 2, "the dashboard did not change in the first 5 s of training"
        assert live.nb.is_cell_running(LONG_RUN), "the training cell ended before the switch"
        old = dash.frame()

        started = time.monotonic()
        dash.select("linear.weight")
        latency = dash.wait_title("linear.weight (values)")
        switched = dash.frame()
        after = dash.sample(4, running_cell=LONG_RUN, until_idle=True)
        still_running = live.nb.is_cell_running(LONG_RUN)
        print(f"\n[live lab] Dropdown conv.weight -> linear.weight mid-run: new title after "
              f"{1000 * latency:.0f} ms (select_option returned after {1000 * (time.monotonic() - started):.0f} ms "
              f"incl. sampling); {distinct_frames(after)[0]} distinct frames of the new panel in 4 s")
    finally:
        live.stop_training()
        live.nb.wait_cell_finished(LONG_RUN, timeout=60)

    assert still_running, "the cell finished before the switch could be observed: lengthen train()"
    assert before["title"] == old["title"] == "conv.weight (values)"
    assert switched["parameter"] == "linear.weight"
    assert_histograms(switched, "linear.weight")
    assert switched["current"] != old["current"], "the bars did not change with the parameter"
    # The new panel keeps up with training, not a picture frozen at the switch.
    running_after = [s for s in after if s["running"]]
    assert running_after and all(s["title"] == "linear.weight (values)" for s in running_after)
    assert distinct_frames(after)[0] >= 2, "the switched-to panel did not change while training ran"


def test_step_slider_goes_back_to_an_earlier_step(live):
    dash = live.dash
    live.ensure_trained()
    live.select_idle("linear.weight")
    follow_latest(dash)  # start from the latest step, whatever an earlier test left
    latest = dash.frame()
    assert latest["current"] != latest["first"], "training did not move the histogram away from step 0"
    heatmap_title = dash.panel().locator(".nbw-heatmap .nbw-title")
    assert "step 0" not in heatmap_title.text_content()

    handle = dash.root.locator(".nbw-step .noUi-handle")
    handle.focus()
    live.nb.page.keyboard.press("Home")  # the slider's minimum: step 0
    try:
        eventually(lambda: dash.frame()["slider"] == "0")
        # The kernel heard the slider (the cell has finished) and redrew every view at step 0.
        eventually(lambda: heatmap_title.text_content().endswith("step 0"), timeout=15)
        at_zero = dash.frame()
        live.nb.screenshot("dashboard_step_0", dash.root)
        assert at_zero["current"] == at_zero["first"], "the histogram at step 0 is not the first step's"
        assert "step 0" in dash.panel().locator(".nbw-class-images .nbw-title").text_content()
        assert "mod-active" not in (dash.root.locator(".nbw-follow").get_attribute("class") or ""), \
            "scrubbing back did not turn 'follow latest' off"
    finally:
        follow_latest(dash)
    assert dash.frame()["current"] == latest["current"]


def follow_latest(dash: DashboardUI) -> None:
    """Press 'follow latest' if it is off; wait until the views show the latest step."""
    if not dash.frame()["follow"]:
        dash.root.locator(".nbw-follow").click()
    assert_follows_latest(dash)


def test_console_shows_no_widget_errors(live):
    """Over everything the module did: opening, training, switching, scrubbing."""
    live.ensure_trained()
    assert live.console.widget_errors() == [], "\n".join(dict.fromkeys(live.console.widget_errors()))
