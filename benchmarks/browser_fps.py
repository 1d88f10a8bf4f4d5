"""What a person sees of a live dashboard in a real browser (JupyterLab 4 + Chromium): frames per
second while a plain training cell runs, Dropdown switch latency mid-run, bytes per second on
the kernel's websocket.

    python benchmarks/browser_fps.py                 # ~10 s of training per measurement, ~1 min
    python benchmarks/browser_fps.py --seconds 5 --switches 3

The notebook is notebook 2's model: softmax regression 784 -> 10 on random data, batch 100,
SGD lr 0.1, ``w = nbw.watch(model, opt); w`` with default settings, then a training cell.
Frames are counted in the page: every ~30 ms (on animation frames) the status line, the shown
histogram's title and bar heights are read; a frame is a sample that differs from the one before.
Uses tests/browser/jupyter_harness.py (no pytest); needs Chromium, JupyterLab and Playwright.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "browser"))
from jupyter_harness import (  # noqa: E402
    CHROMIUM_ARGS, ConsoleLog, DashboardUI, JupyterServer, NotebookUI, distinct_frames, find_chromium,
    missing_requirements,
)

NOTEBOOK = "browser_fps.ipynb"
STOP_FILE = "stop-training"
SETUP = """\
import os, time
import torch
from torch import nn
import nbweights as nbw

torch.manual_seed(0)
model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
images, targets = torch.randn(10000, 1, 28, 28), torch.randint(0, 10, (10000,))
w = nbw.watch(model, opt)
w
"""
TRAIN = f"""\
if os.path.exists({STOP_FILE!r}):
    os.remove({STOP_FILE!r})
started, steps = time.time(), 0
while time.time() - started < SECONDS and not os.path.exists({STOP_FILE!r}):
    batch = torch.randint(0, len(images), (100,))
    loss = nn.functional.cross_entropy(model(images[batch]), targets[batch])
    opt.zero_grad()
    loss.backward()
    opt.step()
    w.log(loss=loss.item())
    steps += 1
elapsed = time.time() - started
redraws = w.dashboard.trigger.thread.redraws if w.dashboard.trigger.thread else 0
print(f"{{steps}} steps in {{elapsed:.1f}} s ({{steps / elapsed:.0f}} steps/s), "
      f"{{len(w.history.steps('1.weight'))}} snapshots; pacing saw captures of "
      f"{{1000 * w.pacer.capture_seconds:.2f}} ms and steps of {{1000 * w.pacer.step_seconds:.3f}} ms; "
      f"{{redraws}} redraws so far")
"""
PARAMETERS = ("1.weight", "1.bias")


class WebsocketBytes:
    """Bytes of the frames the page receives on its websockets (the kernel's channels)."""

    def __init__(self, page):
        self.total = 0
        page.on("websocket", lambda ws: ws.on("framereceived", self._count))

    def _count(self, payload) -> None:
        self.total += len(payload) if payload is not None else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="training seconds per run (default 10)")
    parser.add_argument("--switches", type=int, default=3, help="Dropdown switches timed mid-run (default 3)")
    parser.add_argument("--every-ms", type=float, default=30.0, help="sampling period in the page (default 30)")
    args = parser.parse_args()
    missing = missing_requirements()
    if missing:
        print("cannot run: missing " + "; ".join(missing), file=sys.stderr)
        return 2

    from playwright.sync_api import sync_playwright

    cells = [SETUP, f"SECONDS = {args.seconds}\n" + TRAIN,
             f"SECONDS = {max(args.seconds, 4.0 * args.switches + 6)}\n" + TRAIN]
    server = JupyterServer(env={"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}).start()
    try:
        server.write_notebook(NOTEBOOK, cells)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=find_chromium(), args=CHROMIUM_ARGS)
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            console = ConsoleLog()
            console.attach(page)
            received = WebsocketBytes(page)
            nb = NotebookUI(page, server, NOTEBOOK).open(90)
            nb.run_cell_and_wait(0, timeout=120)
            dash = DashboardUI(nb, 0).wait_drawn(60)

            # 1. Frames per second and websocket bytes while the training cell runs.
            nb.run_cell(1)
            bytes_before, started = received.total, time.monotonic()
            samples = dash.sample(args.seconds + 30, every_ms=args.every_ms, running_cell=1)
            nb.wait_cell_finished(1, timeout=60)
            wall = time.monotonic() - started
            bytes_per_second = (received.total - bytes_before) / wall
            frames, seconds, per_second = distinct_frames(samples)
            _, _, per_second_all = distinct_frames(samples, key="sig_all")
            sample_rate = len(samples) / samples[-1]["t"] if samples and samples[-1]["t"] > 0 else 0.0
            kernel_says = nb.output(1).inner_text().strip()

            # 2. Dropdown switch latency while another training cell runs (switched in the browser).
            nb.run_cell(2)
            latencies = []
            try:
                dash.sample(2, running_cell=2)  # training is drawing
                for k in range(args.switches):
                    parameter = PARAMETERS[(k + 1) % len(PARAMETERS)]
                    switched = time.monotonic()
                    dash.select(parameter)
                    dash.wait_title(f"{parameter} (values)")
                    latencies.append(time.monotonic() - switched)
                    if not nb.is_cell_running(2):
                        print(f"warning: switch {k + 1} ended after the training cell", file=sys.stderr)
                    time.sleep(1.0)
                mid_run = nb.is_cell_running(2)
            finally:
                (server.root_dir / STOP_FILE).touch()
                nb.wait_cell_finished(2, timeout=60)
            browser.close()
    finally:
        server.stop()

    rows = [
        ("training cell (kernel)", kernel_says),
        ("samples taken in the page", f"{len(samples)} ({sample_rate:.0f}/s, every {args.every_ms:.0f} ms asked)"),
        ("distinct frames while running", f"{frames} in {seconds:.1f} s"),
        ("frames per second: histogram + status", f"{per_second:.1f}"),
        ("frames per second: any view (loss curve too)", f"{per_second_all:.1f}"),
        ("Dropdown switch latency, median", f"{1000 * statistics.median(latencies):.0f} ms "
                                            f"(of {', '.join(f'{1000 * x:.0f}' for x in latencies)} ms"
                                            f"{'' if mid_run else '; the cell had ended'})"),
        ("websocket bytes received", f"{bytes_per_second / 1024:.1f} KiB/s over {wall:.1f} s"),
        ("console widget errors", str(len(console.widget_errors()))),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"\nnbweights in the browser: softmax regression 784->10, batch 100, default settings")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
