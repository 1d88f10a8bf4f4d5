"""Notebook 02 as a Voilà app in Chromium: the dashboard is drawn, no code is shown, and (with the
progressive rendering that the repository's voila.json turns on) it redraws while a cell trains.

Voilà's default rendering executes every cell on the server before the page's scripts connect
to the kernel, so widgets appear only once the last cell has finished; with
``progressive_rendering`` the page connects first and asks for the cells to run, so messages
from the running kernel reach the widgets (read from voila 0.5's ``notebook_renderer.py``,
``tornado/execution_request_handler.py`` and its front end). The second test pins both.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import kernel_env
from jupyter_harness import _DASHBOARD_JS_LIB, free_port

pytest.importorskip("voila")
nbformat = pytest.importorskip("nbformat")

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
#: Seconds the test waits for a whole notebook to run and show its last output.
RUN_TIMEOUT_S = 240

#: A notebook whose training cell runs for a few seconds: 30 captured steps, 0.1 s apart.
SLOW_TRAINING = [
    "import time, torch\nfrom torch import nn\nimport nbweights as nbw\n"
    "torch.manual_seed(0)\nmodel = nn.Linear(8, 4)\n"
    "optimizer = torch.optim.SGD(model.parameters(), lr=0.1)\nw = nbw.watch(model, optimizer, every=1)",
    "w",
    "for step in range(30):\n    optimizer.zero_grad()\n    model(torch.randn(16, 8)).pow(2).mean().backward()\n"
    "    optimizer.step()\n    time.sleep(0.1)",
    "print('TRAINED', w.step)",
]


class Voila:
    """``voila <notebook>`` on 127.0.0.1 and a free port, in its own process group, with a
    ``python3`` kernel of this interpreter and the notebooks' quick mode."""

    def __init__(self, notebook: Path, cwd: Path, progressive: bool | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.base = Path(tempfile.mkdtemp(prefix="nbweights-voila-"))
        spec = self.base / "jupyter_path" / "kernels" / "python3"
        spec.mkdir(parents=True)
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3", "language": "python"}))
        env = {**os.environ, **kernel_env(), "JUPYTER_PATH": str(self.base / "jupyter_path"),
               "JUPYTER_CONFIG_DIR": str(self.base / "config"), "JUPYTER_RUNTIME_DIR": str(self.base / "runtime"),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        command = [sys.executable, "-m", "voila", "--no-browser", f"--port={self.port}", "--Voila.ip=127.0.0.1",
                   str(notebook)]
        if progressive is not None:
            command.insert(-1, f"--progressive_rendering={progressive}")
        self.log = open(self.base / "voila.log", "wb")
        self.proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"voila exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                urllib.request.urlopen(self.url + "static/", timeout=2)
            except urllib.error.HTTPError:
                break  # it answers (a 404 for the bare static folder is an answer)
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"voila did not answer in 60 s:\n{self.log_tail()}")
                time.sleep(0.3)
            else:
                break

    def log_tail(self) -> str:
        return (self.base / "voila.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        try:
            os.killpg(os.getpgid(self.proc.pid), signal.SIGTERM)
            self.proc.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(os.getpgid(self.proc.pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.log.close()


@pytest.fixture
def voila_app(request):
    started = []

    def start(notebook: Path, cwd: Path = REPO, progressive: bool | None = None) -> Voila:
        app = Voila(notebook, cwd, progressive)
        started.append(app)
        return app

    yield start
    for app in started:
        app.stop()


# Samples, in the page, the first dashboard's status line and shown histogram, until ``marker``
# appears in the page text (the last cell's output) or ``ms`` pass.
SAMPLE_UNTIL_JS = f"""async ({{marker, ms}}) => {{
  {_DASHBOARD_JS_LIB};
  const out = []; const t0 = performance.now();
  while (performance.now() - t0 < ms) {{
    await new Promise(r => setTimeout(r, 40));
    const dash = document.querySelector('.nbw-dashboard');
    const done = !!document.body && document.body.innerText.includes(marker);  // streamed: no body yet
    out.push({{t: (performance.now() - t0) / 1000, done, sig: dash ? signature(frame(dash)) : null}});
    if (done) break;
  }}
  return out;
}}"""


def test_notebook_02_is_an_app_with_the_dashboard_drawn_and_no_code(voila_app, page, screenshot_dir):
    app = voila_app(NOTEBOOKS / "02_linear_classifier.ipynb")  # voila.json: progressive rendering
    page.goto(app.url, timeout=60_000)
    page.wait_for_function("() => document.body.innerText.includes('RESULT')", timeout=RUN_TIMEOUT_S * 1000,
                           polling=500)
    page.wait_for_function(f"() => {{ {_DASHBOARD_JS_LIB}; const d = document.querySelector('.nbw-dashboard');"
                           " return d && frame(d).current.length > 0; }", timeout=30_000)
    dashboard = page.locator(".nbw-dashboard").first
    dashboard.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot_dir / "voila_02_linear_classifier.png"))
    frame = dashboard.evaluate(f"(d) => {{ {_DASHBOARD_JS_LIB}; return frame(d); }}")
    result = json.loads(page.evaluate("() => document.body.innerText").split("RESULT", 1)[1].splitlines()[0])
    assert frame["parameter"] == "linear.weight" and len(frame["current"]) > 1, frame
    assert page.locator(".nbw-dashboard svg .bqplot, .nbw-dashboard svg.svg-figure").count() > 0
    assert page.locator(".nbw-dashboard img").count() > 0  # the class images
    # No source code: Voilà strips inputs; none of the notebook's code appears in the page.
    text = page.evaluate("() => document.body.innerText")
    assert "def train_epoch" not in text and "nbw.watch(" not in text
    assert page.locator(".CodeMirror, .cm-editor").count() == 0
    # The lab template keeps code cells' input areas, empty; markdown cells show their prose.
    assert page.evaluate("() => [...document.querySelectorAll('.jp-CodeCell .jp-InputArea')]"
                         ".every(e => !e.innerText.trim())")
    assert "A linear classifier: one picture per class" in text
    assert result["accuracy"] > 0.5, result


@pytest.mark.slow
@pytest.mark.parametrize("progressive", [True, False], ids=["progressive", "default"])
def test_the_dashboard_redraws_while_a_cell_trains_only_with_progressive_rendering(
        voila_app, page, tmp_path, progressive):
    notebook = tmp_path / "slow_training.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code) for code in SLOW_TRAINING])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, notebook)
    app = voila_app(notebook, cwd=tmp_path, progressive=progressive)
    page.goto(app.url, wait_until="commit", timeout=60_000)
    samples = page.evaluate(SAMPLE_UNTIL_JS, {"marker": "TRAINED 30", "ms": RUN_TIMEOUT_S * 1000})
    assert samples[-1]["done"], app.log_tail()
    while_training = {s["sig"] for s in samples if not s["done"] and s["sig"] is not None}
    if progressive:
        assert len(while_training) >= 3, samples[-10:]
    else:
        assert len(while_training) <= 1, while_training  # drawn, if at all, only at the end
