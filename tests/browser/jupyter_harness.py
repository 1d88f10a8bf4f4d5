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

    def __init__(self, root_dir: Path | None = None, startup_timeout: float = 60):
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

    def widget_errors(self) -> list[str]:
        """Unexpected errors that mention widgets / bqplot / comms."""
        pat = re.compile(r"widget|bqplot|bqscales|comm|jupyter-widgets|ipywidgets", re.I)
        return [e for e in self.unexpected() if pat.search(e)]


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

    # -- screenshots ---------------------------------------------------
    def screenshot(self, name: str, target=None) -> Path:
        """Screenshot of a live region without waiting for it to be stable
        (``locator.screenshot`` waits for animations and times out on plots
        that keep changing). ``target``: a locator, a bounding box dict, or
        None for the whole page."""
        if self.screenshot_dir is None:
            raise RuntimeError("no screenshot_dir configured")
        self.screenshot_dir.mkdir(parents=True, exist_ok=True)
        path = self.screenshot_dir / (name if name.endswith(".png") else name + ".png")
        if target is None:
            self.page.screenshot(path=str(path), animations="allow")
            return path
        if isinstance(target, dict):
            box = target
        else:
            # scrollIntoView without Playwright's stability wait, then clip to
            # the part of the element inside the viewport.
            target.evaluate("e => e.scrollIntoView({block: 'nearest', inline: 'nearest'})")
            box = target.bounding_box(timeout=5000)
            vp = self.page.viewport_size
            if box and vp:
                x0, y0 = max(box["x"], 0), max(box["y"], 0)
                x1 = min(box["x"] + box["width"], vp["width"])
                y1 = min(box["y"] + box["height"], vp["height"])
                box = {"x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0}
        if not box or box["width"] < 1 or box["height"] < 1:
            raise RuntimeError(f"nothing visible to screenshot for {name}: {box}")
        self.page.screenshot(path=str(path), clip=box, animations="allow")
        return path
