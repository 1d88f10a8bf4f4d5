"""Proves the browser harness: widget updates sent by a plain synchronous loop
show up in the DOM while the cell is still running."""
import time

import pytest

pytestmark = pytest.mark.browser

SETUP = """\
import ipywidgets as W, bqplot as bq, numpy as np
from IPython.display import display
label = W.Label(value="step -1"); label.add_class("nbw-status")
box = W.IntText(value=0, description="step")
xs = bq.OrdinalScale(); ys = bq.LinearScale(min=0.0, max=1.0)
bars = bq.Bars(x=np.arange(16), y=np.zeros(16), scales={"x": xs, "y": ys})
fig = bq.Figure(marks=[bars], axes=[bq.Axis(scale=xs), bq.Axis(scale=ys, orientation="vertical")],
                layout=W.Layout(width="500px", height="300px"), animation_duration=0)
display(W.VBox([W.HBox([box, label]), fig]))
"""

LOOP = """\
import time
rng = np.random.default_rng(0)
for step in range(60):          # ~6 s, plain synchronous loop
    with bars.hold_sync():
        bars.y = rng.random(16)
    label.value = f"step {step}"
    box.value = step
    time.sleep(0.1)
"""

FRAME_JS = """(cell) => {
  const rects = [...cell.querySelectorAll('.bqplot rect.bar')];
  const label = cell.querySelector(".nbw-status");
  return {heights: rects.map(r => r.getAttribute('height')).join(','),
          label: label ? label.textContent : null, n: rects.length};
}"""


def test_live_updates_while_cell_runs(jupyter_server, open_notebook, console):
    jupyter_server.write_notebook("harness.ipynb", [SETUP, LOOP])
    nb = open_notebook("harness.ipynb")

    nb.run_cell_and_wait(0, timeout=60)
    nb.output(0).locator(".bqplot rect.bar").first.wait_for(state="attached", timeout=30_000)
    first = nb.cell(0).evaluate(FRAME_JS)
    assert first["n"] == 16 and first["label"] == "step -1", first

    nb.run_cell(1)
    t0 = time.monotonic()
    frames = set()
    shot = None
    while time.monotonic() - t0 < 20:
        if not nb.is_cell_running(1):
            break
        frame = nb.cell(0).evaluate(FRAME_JS)
        if nb.is_cell_running(1):           # only count frames seen mid-run
            frames.add((frame["heights"], frame["label"]))
            if shot is None and len(frames) >= 3:
                shot = nb.screenshot("harness_midrun", nb.output(0))
        time.sleep(0.25)
    still_running = nb.is_cell_running(1)
    print(f"distinct frames seen while the loop ran: {len(frames)} in {time.monotonic() - t0:.1f}s")
    nb.wait_cell_finished(1, timeout=30)

    assert len(frames) >= 3, f"saw only {len(frames)} distinct frames while the loop ran: {frames}"
    assert shot is not None and shot.stat().st_size > 0
    assert not still_running
    final = nb.cell(0).evaluate(FRAME_JS)
    assert final["label"] == "step 59", final
    assert not console.unexpected(), console.errors
