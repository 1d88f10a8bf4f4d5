"""Helpers for the browser tests: a throw-away Jupyter server and a thin
Playwright driver for notebooks opened in JupyterLab 4 or Notebook 7.

Nothing here imports pytest, so the module can also be used from scripts.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# Only the notebook panel that is shown (JupyterLab keeps other documents in
# hidden tabs).
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"
_FINISHED_PROMPT = re.compile(r"^\[(\d+)\]:?$")


def find_chromium() -> str | None:
    """Path of a Chromium binary: $NBWEIGHTS_CHROMIUM, else the usual names."""
    env = os.environ.get("NBWEIGHTS_CHROMIUM")
    if env:
        return env if os.path.exists(env) else None
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser",
                 "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def missing_requirements() -> list[str]:
    """Human-readable list of what the browser tests need but can't find."""
    missing = []
    for mod in ("jupyterlab", "notebook", "ipykernel", "ipywidgets",
                "bqplot", "nbformat", "playwright"):
        try:
            __import__(mod)
        except Exception as exc:  # pragma: no cover - environment dependent
            missing.append(f"python package {mod!r} ({exc.__class__.__name__}: {exc})")
    if find_chromium() is None:
        missing.append("a Chromium binary (/usr/bin/chromium or $NBWEIGHTS_CHROMIUM)")
    return missing


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterServer:
    """A `jupyter lab` server in its own process group with isolated
    config/data/settings/workspace dirs and a `python3` kernelspec that points
    at ``sys.executable``."""

    def __init__(self, root_dir: Path | None = None, startup_timeout: float = 60,
                 env: dict | None = None):
        #: Extra environment for the server and so for every kernel it starts.
        self.extra_env = dict(env or {})
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.base = Path(tempfile.mkdtemp(prefix="nbweights-jupyter-"))
        self.root_dir = Path(root_dir) if root_dir else self.base / "root"
        self.root_dir.mkdir(parents=True, exist_ok=True)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.base / "server.log"
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen | None = None

    # -- lifecycle -----------------------------------------------------
    def _prepare_dirs(self) -> dict:
        jpath = self.base / "jupyter_path"
        spec_dir = jpath / "kernels" / "python3"
        spec_dir.mkdir(parents=True, exist_ok=True)
        (spec_dir / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
            "metadata": {"debugger": True},
        }))
        settings = self.base / "lab_settings"
        # Render every cell (no virtual scrolling), no news/update toasts.
        (settings / "@jupyterlab" / "notebook-extension").mkdir(parents=True, exist_ok=True)
        (settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings").write_text(
            json.dumps({"windowingMode": "none"}))
        (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True, exist_ok=True)
        (settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        for sub in ("config", "data", "runtime", "workspaces"):
            (self.base / sub).mkdir(exist_ok=True)
        env = dict(os.environ)
        env.update({
            "JUPYTER_PATH": str(jpath),            # searched before user/env/system dirs
            "JUPYTER_CONFIG_DIR": str(self.base / "config"),
            "JUPYTER_DATA_DIR": str(self.base / "data"),
            "JUPYTER_RUNTIME_DIR": str(self.base / "runtime"),
            "JUPYTERLAB_SETTINGS_DIR": str(settings),
            "JUPYTERLAB_WORKSPACES_DIR": str(self.base / "workspaces"),
            "JUPYTER_PLATFORM_DIRS": "1",
            "PYTHONUNBUFFERED": "1",
            "MPLBACKEND": "Agg",
        })
        env.update(self.extra_env)
        return env

    def start(self) -> "JupyterServer":
        env = self._prepare_dirs()
        cmd = [
            sys.executable, "-m", "jupyter", "lab", "--no-browser",
            "--ip=127.0.0.1", f"--port={self.port}", "--port-retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root_dir}",
            "--MappingKernelManager.default_kernel_name=python3",
            "--LabApp.news_url=", "--allow-root",
        ]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, cwd=self.root_dir, env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                status = self.api("/api/status", timeout=2)
                if "started" in status:
                    break
            except Exception:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"jupyter lab did not answer /api/status in "
                                   f"{self.startup_timeout}s:\n{self.log_tail()}")
            time.sleep(0.25)
        return self

    def stop(self) -> None:
        """Kill the whole process group (server and kernels)."""
        if self.proc is None:
            return
        try:
            pgid = os.getpgid(self.proc.pid)
        except ProcessLookupError:
            pgid = None
        if pgid is not None:
            for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
                try:
                    os.killpg(pgid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(wait)
                except subprocess.TimeoutExpired:
                    continue
                # Kernels live in the same group; make sure they are gone too.
                try:
                    os.killpg(pgid, 0)
                except ProcessLookupError:
                    break
        self.proc = None
        try:
            self._log.close()
        except Exception:
            pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- REST ----------------------------------------------------------
    def api(self, path: str, method: str = "GET", body=None, timeout: float = 10):
        req = urllib.request.Request(
            self.url + path, method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {self.token}",
                     "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            data = resp.read()
        return json.loads(data) if data else None

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    # -- notebooks -----------------------------------------------------
    def write_notebook(self, name: str, cells) -> Path:
        """Write a notebook into the server root. ``cells`` is a list of code
        strings (or nbformat cells), or a whole nbformat NotebookNode."""
        import nbformat
        from nbformat import v4

        if isinstance(cells, nbformat.NotebookNode) and "cells" in cells:
            nb = cells
        else:
            nb = v4.new_notebook()
            nb.cells = [v4.new_code_cell(c) if isinstance(c, str) else c for c in cells]
        nb.metadata.setdefault("kernelspec", {
            "name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"})
        path = self.root_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(path))
        return path

    def copy_notebook(self, src, name: str | None = None) -> Path:
        src = Path(src)
        dest = self.root_dir / (name or src.name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        return dest

    def lab_url(self, name: str) -> str:
        # A fresh workspace + ?reset so that no previously opened notebook
        # comes back in a hidden tab.
        return f"{self.url}/lab/workspaces/t{uuid.uuid4().hex[:12]}/tree/{name}?reset&token={self.token}"

    def notebook_url(self, name: str) -> str:
        return f"{self.url}/notebooks/{name}?token={self.token}"

    def kernel_id(self, name: str) -> str | None:
        """Id of the kernel of the session whose path ends with ``name``."""
        for s in self.api("/api/sessions") or []:
            if s.get("path", "").endswith(name) and s.get("kernel"):
                return s["kernel"]["id"]
        return None

    def interrupt_kernel(self, name: str) -> None:
        """Interrupt the running cell of notebook ``name`` (KeyboardInterrupt in the kernel)."""
        kernel = self.kernel_id(name)
        if kernel is None:
            raise RuntimeError(f"no kernel for {name}")
        self.api(f"/api/kernels/{kernel}/interrupt", method="POST")

    def shutdown_kernels(self) -> None:
        for s in self.api("/api/sessions") or []:
            try:
                self.api(f"/api/sessions/{s['id']}", method="DELETE")
            except Exception:
                pass


class ConsoleLog:
    """Collects console messages and uncaught page errors of one page."""

    def __init__(self):
        self.messages: list[tuple[str, str]] = []
        self.errors: list[str] = []

    def attach(self, page) -> None:
        def on_console(msg):
            self.messages.append((msg.type, msg.text))
            if msg.type == "error":
                self.errors.append(f"console.error: {msg.text}")

        page.on("console", on_console)
        page.on("pageerror", self._on_pageerror)

    def _on_pageerror(self, exc) -> None:
        stack = getattr(exc, "stack", None) or ""
        self.errors.append(f"pageerror: {exc}" + (f"\n{stack}" if stack else ""))

    # Errors of the Jupyter front ends themselves, seen here without any widget
    # on the page. Notebook 7.6.5: the first Shift+Enter makes the shortcuts
    # plugin read settings of a plugin that is not loaded.
    KNOWN_BENIGN = [
        re.compile(r"^pageerror: Cannot read properties of undefined \(reading 'schema'\)"),
    ]

    def unexpected(self) -> list[str]:
        """All errors except the known front-end noise in KNOWN_BENIGN."""
        return [e for e in self.errors if not any(p.search(e) for p in self.KNOWN_BENIGN)]

    # Errors of widget code that do not name it: d3 (bqplot) setting an invalid SVG attribute
    # logs only 'Error: <rect> attribute width: A negative value is not valid. ("-68")'.
    WIDGET_ERROR = re.compile(r"widget|bqplot|bqscales|\bcomms?\b|jupyter-widgets|ipywidgets"
                              r"|<\w+> attribute [\w-]+:", re.I)

    def widget_errors(self) -> list[str]:
        """Unexpected errors that mention widgets / bqplot / comms, or come from SVG plots."""
        return [e for e in self.unexpected() if self.WIDGET_ERROR.search(e)]


class NotebookUI:
    """Drives one notebook opened in the browser. Works for JupyterLab 4 and
    Notebook 7 (same notebook widget DOM)."""

    def __init__(self, page, server: JupyterServer, name: str, ui: str = "lab",
                 screenshot_dir: Path | None = None):
        self.page = page
        self.server = server
        self.name = name
        self.ui = ui
        self.screenshot_dir = Path(screenshot_dir) if screenshot_dir else None
        self._last_count: dict[int, int | None] = {}

    # -- opening -------------------------------------------------------
    def open(self, timeout: float = 60) -> "NotebookUI":
        url = self.server.lab_url(self.name) if self.ui == "lab" else self.server.notebook_url(self.name)
        self.page.goto(url, wait_until="domcontentloaded", timeout=timeout * 1000)
        self.page.locator(f"{PANEL} .jp-Cell").first.wait_for(state="visible", timeout=timeout * 1000)
        self.wait_kernel_ready(timeout)
        return self

    @property
    def panel(self):
        return self.page.locator(PANEL)

    def wait_kernel_ready(self, timeout: float = 60) -> None:
        """Wait until the server reports the notebook's kernel idle and the
        page's kernel indicator shows it connected and idle."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                sessions = self.server.api("/api/sessions")
                states = [s["kernel"]["execution_state"] for s in sessions
                          if s.get("path", "").endswith(self.name) and s.get("kernel")]
            except Exception:
                states = []
            if "idle" in states and self._frontend_kernel_idle():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"kernel for {self.name} not ready after {timeout}s "
                                   f"(server states {states})\n{self.server.log_tail(1500)}")
            time.sleep(0.2)

    def _frontend_kernel_idle(self) -> bool:
        return bool(self.page.evaluate(
            """() => {
                const el = document.querySelector('.jp-Notebook-ExecutionIndicator');
                if (el) return (el.getAttribute('data-status') || '') === 'idle';
                // fallback: the toolbar kernel status circle
                const c = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Toolbar-kernelStatus');
                return !c || !/busy|starting|unknown/i.test(c.getAttribute('title') || '');
            }"""))

    # -- cells ---------------------------------------------------------
    def cell(self, i: int):
        return self.page.locator(f"{PANEL} .jp-Notebook .jp-Notebook-cell").nth(i)

    def prompt(self, i: int):
        return self.cell(i).locator(".jp-InputArea-prompt").first

    def prompt_text(self, i: int) -> str:
        return (self.prompt(i).text_content(timeout=5000) or "").strip().replace("\xa0", "")

    def output(self, i: int):
        """The output area of cell i."""
        return self.cell(i).locator(".jp-OutputArea").first

    def execution_count(self, i: int) -> int | None:
        m = _FINISHED_PROMPT.match(self.prompt_text(i))
        return int(m.group(1)) if m else None

    def is_cell_running(self, i: int) -> bool:
        """True while the cell is running or queued (prompt shows ``*``)."""
        return "*" in self.prompt_text(i)

    def run_cell(self, i: int) -> None:
        """Select cell i (click its prompt) and press Shift+Enter. Returns
        once the prompt shows ``*`` (or the cell already finished)."""
        self._last_count[i] = self.execution_count(i)
        self.prompt(i).click()
        self.page.keyboard.press("Shift+Enter")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.is_cell_running(i) or self._finished_new(i):
                return
            time.sleep(0.02)
        raise TimeoutError(f"cell {i} did not start (prompt {self.prompt_text(i)!r})")

    def _finished_new(self, i: int) -> bool:
        count = self.execution_count(i)
        return count is not None and count != self._last_count.get(i)

    def wait_cell_finished(self, i: int, timeout: float = 60) -> int:
        """Wait until cell i shows a new execution count and no ``*``."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.prompt_text(i)
            if "*" not in text and self._finished_new(i):
                return self.execution_count(i)
            if time.monotonic() > deadline:
                raise TimeoutError(f"cell {i} not finished after {timeout}s (prompt {text!r})")
            time.sleep(0.05)

    def run_cell_and_wait(self, i: int, timeout: float = 60) -> int:
        self.run_cell(i)
        return self.wait_cell_finished(i, timeout)

    def run_all(self, timeout_per_cell: float = 60) -> None:
        n = self.page.locator(f"{PANEL} .jp-Notebook .jp-Notebook-cell").count()
        for i in range(n):
            self.run_cell_and_wait(i, timeout_per_cell)

    def code_cells(self) -> list[int]:
        """Indices (as for ``cell(i)``) of the code cells."""
        return self.page.evaluate(
            """(sel) => [...document.querySelectorAll(sel)].map((c, i) => [c, i])
                   .filter(([c]) => c.classList.contains('jp-CodeCell')).map(([, i]) => i)""",
            f"{PANEL} .jp-Notebook .jp-Notebook-cell")

    def run_code_cells(self, timeout_per_cell: float = 120) -> None:
        """Run every code cell in order, each to its end (markdown cells have no prompt to wait on)."""
        for i in self.code_cells():
            self.run_cell_and_wait(i, timeout_per_cell)

    def error_outputs(self) -> list[str]:
        """Texts of the tracebacks shown in the notebook."""
        return self.panel.locator(
            '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]').all_inner_texts()

    # -- screenshots ---------------------------------------------------
    def screenshot(self, name: str, target=None) -> Path:
        """Screenshot of a live region without waiting for it to be stable
        (``locator.screenshot`` waits for animations and times out on plots
        that keep changing). ``target``: a locator (the whole element, the
        viewport made taller if needed), a bounding box dict, or None for the
        whole page."""
        if self.screenshot_dir is None:
            raise RuntimeError("no screenshot_dir configured")
        self.screenshot_dir.mkdir(parents=True, exist_ok=True)
        path = self.screenshot_dir / (name if name.endswith(".png") else name + ".png")
        if target is None:
            self.page.screenshot(path=str(path), animations="allow")
        elif isinstance(target, dict):
            if target["width"] < 1 or target["height"] < 1:
                raise RuntimeError(f"nothing visible to screenshot for {name}: {target}")
            self.page.screenshot(path=str(path), clip=target, animations="allow")
        else:
            self._screenshot_whole(path, target)
        return path

    def _screenshot_whole(self, path: Path, target, most_height: int = 4000) -> Path:
        """Screenshot of a whole element: the notebook scrolls inside a <div>, not the page, so
        the viewport is made tall enough for the element (up to ``most_height``), then restored."""
        viewport = self.page.viewport_size
        height = (target.bounding_box(timeout=5000) or {}).get("height", 0)
        needed = min(int(height) + 240, most_height)  # room for the menu bar and toolbar
        if viewport and needed > viewport["height"]:
            self.page.set_viewport_size({"width": viewport["width"], "height": needed})
            self.page.wait_for_timeout(300)  # let JupyterLab lay out again
        try:
            target.evaluate("e => e.scrollIntoView({block: 'start', inline: 'nearest'})")
            box = target.bounding_box(timeout=5000)
            size = self.page.viewport_size
            x0, y0 = max(box["x"], 0), max(box["y"], 0)
            box = {"x": x0, "y": y0, "width": min(box["x"] + box["width"], size["width"]) - x0,
                   "height": min(box["y"] + box["height"], size["height"]) - y0}
            if box["width"] < 1 or box["height"] < 1:
                raise RuntimeError(f"nothing visible to screenshot for {path.name}: {box}")
            self.page.screenshot(path=str(path), clip=box, animations="allow")
        finally:
            if viewport and self.page.viewport_size != viewport:
                self.page.set_viewport_size(viewport)
        return path


# -- the nbweights dashboard as drawn in the page ----------------------------
# Shared by the tests and benchmarks/browser_fps.py. Selectors rely on the dashboard's CSS
# classes (nbw-*), on bqplot's SVG (``text.mainheading`` title, one ``g[clip-path]`` per mark,
# ``rect.bar`` per bar of Bars, ``path.line``/``path.area`` of Lines) and on ipywidgets' DOM (Stack renders only
# its selected child; IntSlider: noUiSlider handle + ``.widget-readout``).

_DASHBOARD_JS_LIB = r"""
const text = (el) => el ? el.textContent.replace(/\s+/g, ' ').trim() : null;
const marksOf = (fig) => fig ? [...fig.querySelectorAll('svg.svg-figure g[clip-path]')] : [];
const visible = (el) => !!el && el.getClientRects().length > 0;
// Bin heights (px) of a histogram mark: bqplot Bars (one rect.bar per bin) or a step line
// (interpolation "step-after": one horizontal segment per bin in the path.line's d).
function heights(mark, plotHeight) {
  if (!mark) return [];
  const rects = [...mark.querySelectorAll('rect.bar')];
  if (rects.length) return rects.map(r => +r.getAttribute('height'));
  const line = mark.querySelector('path.line');
  const numbers = ((line && line.getAttribute('d')) || '').match(/-?[\d.]+(?:e-?\d+)?/g) || [];
  const points = [];
  for (let i = 0; i + 1 < numbers.length; i += 2) points.push([+numbers[i], +numbers[i + 1]]);
  const bins = [];
  for (let i = 0; i + 1 < points.length; i++) {
    const [x0, y0] = points[i], [x1, y1] = points[i + 1];
    if (x1 > x0 && Math.abs(y1 - y0) < 1e-6) bins.push(+(plotHeight - y0).toFixed(3));
  }
  return bins;
}
function histogram(fig) {
  const marks = marksOf(fig);
  const area = fig && fig.querySelector('rect.plotarea_background');
  const plotHeight = area ? +area.getAttribute('height') : 0;
  return {title: fig ? text(fig.querySelector('text.mainheading')) : null,
          first: heights(marks[0], plotHeight), current: heights(marks[1], plotHeight)};
}
function frame(dash) {
  const panel = dash.querySelector('.nbw-stack .nbw-panel');
  const figs = panel ? [...panel.querySelectorAll('.nbw-histogram-figure')] : [];
  const values = histogram(figs[0]), grads = histogram(figs[1]);
  const select = dash.querySelector('.nbw-parameter select');
  return {
    status: text(dash.querySelector('.nbw-status')),
    parameter: select ? select.value : null,
    title: values.title, first: values.first, current: values.current,
    grad_title: grads.title, grad_current: grads.current,
    slider: text(dash.querySelector('.nbw-step .widget-readout')),
    follow: !!dash.querySelector('.nbw-follow.mod-active'),
    errors: [...dash.querySelectorAll('.nbw-error')].filter(visible).map(text),
    metrics: [...dash.querySelectorAll('.nbw-metric-figure path.line')].map(p => p.getAttribute('d') || ''),
  };
}
const signature = (f) => f.status + '|' + f.title + '|' + f.current.join(',');
const signatureAll = (f) => signature(f) + '|' + f.metrics.join('|');
"""

FRAME_JS = f"(dash) => {{ {_DASHBOARD_JS_LIB}; return frame(dash); }}"

# Samples the dashboard every ``every_ms`` (on animation frames) for at most ``ms``; stops early
# once the watched cell's prompt has shown '*' and then lost it. Runs wholly in the page, so the
# sampling rate does not depend on Playwright round trips.
SAMPLE_JS = f"""async ({{dash, prompt, ms, every_ms, until_idle}}) => {{
  {_DASHBOARD_JS_LIB};
  const out = []; const t0 = performance.now(); let last = -1e9, seenRunning = false;
  while (performance.now() - t0 < ms) {{
    await new Promise(r => {{ requestAnimationFrame(r); setTimeout(r, every_ms); }});
    const now = performance.now();
    if (now - last < every_ms) continue;
    last = now;
    const f = frame(dash);
    const running = prompt ? prompt.textContent.includes('*') : null;
    out.push({{t: (now - t0) / 1000, running, sig: signature(f), sig_all: signatureAll(f), title: f.title, status: f.status,
               bars: f.current.length}});
    if (running) seenRunning = true;
    if (until_idle && seenRunning && !running) break;
  }}
  return out;
}}"""

# Decodes an <img> (blob: or data: PNG) on a canvas; returns its size and number of colours.
IMAGE_PIXELS_JS = r"""async (img) => {
  if (!img.complete || !img.naturalWidth) { try { await img.decode(); } catch (e) {} }
  const canvas = document.createElement('canvas');
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  if (!canvas.width || !canvas.height) return {width: 0, height: 0, colours: 0, src: img.src.slice(0, 5)};
  const g = canvas.getContext('2d');
  g.drawImage(img, 0, 0);
  const data = g.getImageData(0, 0, canvas.width, canvas.height).data;
  const colours = new Set();
  for (let i = 0; i < data.length; i += 4) colours.add((data[i] << 24) | (data[i+1] << 16) | (data[i+2] << 8) | data[i+3]);
  return {width: canvas.width, height: canvas.height, colours: colours.size,
          src: img.src.slice(0, 5), shown: [img.clientWidth, img.clientHeight]};
}"""


class DashboardUI:
    """The ``nth`` nbweights dashboard in the output of cell ``cell`` of a NotebookUI (None: in
    the whole notebook)."""

    def __init__(self, nb: NotebookUI, cell: int | None = None, nth: int = 0):
        self.nb, self.page, self.cell = nb, nb.page, cell
        where = nb.output(cell) if cell is not None else nb.panel
        self.root = where.locator(".nbw-dashboard").nth(nth)

    @classmethod
    def all_in(cls, nb: NotebookUI) -> list["DashboardUI"]:
        """Every dashboard shown in the notebook, top to bottom."""
        return [cls(nb, None, k) for k in range(nb.panel.locator(".nbw-dashboard").count())]

    def wait_drawn(self, timeout: float = 60) -> "DashboardUI":
        """Wait until the selected panel's value histogram has bins drawn."""
        try:
            self.page.wait_for_function(
                f"(dash) => {{ {_DASHBOARD_JS_LIB}; return frame(dash).current.length > 0; }}",
                arg=self.root.element_handle(timeout=timeout * 1000), timeout=timeout * 1000, polling=200)
        except Exception as exc:
            try:
                shown = self.frame()
            except Exception:
                shown = "no dashboard"
            raise AssertionError(f"no histogram drawn after {timeout:.0f} s; the dashboard shows {shown}") from exc
        return self

    def frame(self) -> dict:
        """What is drawn now: status, parameter, histogram title and bar heights, slider readout,
        visible error lines of views."""
        return self.root.evaluate(FRAME_JS)

    def sample(self, seconds: float, every_ms: float = 30, running_cell: int | None = None,
               until_idle: bool = True) -> list[dict]:
        """Samples of the drawn content, taken in the page; each has ``t``, ``running`` (the
        prompt of ``running_cell`` shows '*'), ``sig`` (status + title + bar heights), ``title``."""
        prompt = self.nb.prompt(running_cell).element_handle() if running_cell is not None else None
        return self.page.evaluate(SAMPLE_JS, {
            "dash": self.root.element_handle(), "prompt": prompt, "ms": seconds * 1000,
            "every_ms": every_ms, "until_idle": until_idle})

    def select(self, parameter: str) -> None:
        self.root.locator(".nbw-parameter select").select_option(parameter)

    def wait_title(self, title: str, timeout: float = 10) -> float:
        """Seconds until the selected panel's value histogram has this title."""
        started = time.monotonic()
        self.page.wait_for_function(
            f"([dash, want]) => {{ {_DASHBOARD_JS_LIB}; return frame(dash).title === want; }}",
            arg=[self.root.element_handle(), title], timeout=timeout * 1000, polling="raf")
        return time.monotonic() - started

    def panel(self):
        return self.root.locator(".nbw-stack .nbw-panel").first

    def image_pixels(self, img_locator) -> dict:
        return img_locator.evaluate(IMAGE_PIXELS_JS, timeout=5000)

    def path_data(self, selector: str) -> list[str]:
        """``d`` of the SVG paths matching ``selector`` inside the selected panel and below."""
        return self.root.evaluate(
            "(dash, sel) => [...dash.querySelectorAll(sel)].map(p => p.getAttribute('d') || '')", selector)


def distinct_frames(samples: list[dict], running_only: bool = True, key: str = "sig"
                    ) -> tuple[int, float, float]:
    """(distinct frames, seconds covered, changes per second) among samples taken while the
    cell ran; a change is a sample whose signature differs from the previous one. ``key="sig"``
    looks at the status line and the shown histogram, ``"sig_all"`` at the metric curves too."""
    chosen = [s for s in samples if s["running"] or not running_only]
    if not chosen:
        return 0, 0.0, 0.0
    changes = sum(1 for a, b in zip(chosen, chosen[1:]) if a[key] != b[key])
    seconds = chosen[-1]["t"] - chosen[0]["t"]
    return len({s[key] for s in chosen}), seconds, (changes / seconds if seconds > 0 else 0.0)
