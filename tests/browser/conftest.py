"""Fixtures for the real-browser tests (JupyterLab 4 / Notebook 7 + Chromium).

Fixtures
--------
jupyter_server   (session)  JupyterServer: .url .token .root_dir, .write_notebook(name, cells),
                            .copy_notebook(src, name=None), .lab_url(name), .notebook_url(name), .api(path),
                            .interrupt_kernel(name); its kernels get KERNEL_ENV (quick notebooks)
browser          (session)  Playwright Chromium Browser (system chromium, no sandbox/GPU)
console          (function) ConsoleLog: .errors (console.error + page errors), .messages,
                            .unexpected() (minus known front-end noise), .widget_errors()
page             (function) fresh Playwright Page (1400x1000) whose console goes to ``console``
screenshot_dir   (session)  Path ($NBWEIGHTS_SCREENSHOTS or tests/browser/screenshots)
module_page      (module)   (page, console) shared by the tests of one module (one notebook, one kernel)
open_notebook    (function) open_notebook(name, ui="lab"|"notebook", timeout=90) -> NotebookUI
                            NotebookUI: run_cell(i), wait_cell_finished(i, timeout), run_cell_and_wait(i),
                            is_cell_running(i), cell(i), output(i), prompt_text(i), execution_count(i),
                            wait_kernel_ready(), screenshot(name, locator_or_box=None)
DashboardUI (jupyter_harness): the nbweights dashboard in a cell's output: frame(), sample(), select(),
                            wait_title(), image_pixels(img)

Missing Chromium / Jupyter: the tests fail (pytest.fail) when $CI is set, are skipped otherwise.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from jupyter_harness import (  # noqa: E402
    CHROMIUM_ARGS, ConsoleLog, JupyterServer, NotebookUI, find_chromium, missing_requirements,
)

HERE = Path(__file__).parent
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def kernel_env() -> dict:
    """Environment of every kernel: the notebooks' quick mode (as in CI), one math thread (the
    browser needs the other cores), Fashion-MNIST from the Debian package when it is there;
    NBWEIGHTS_DATA (the data cache) is inherited from this process."""
    env = {"NBWEIGHTS_QUICK": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    if DEBIAN_FASHION_MNIST.is_dir() and "NBWEIGHTS_DATASET" not in os.environ:
        env["NBWEIGHTS_DATASET"] = "fashion-mnist"
    return env
SCREENSHOT_DIR = Path(os.environ.get("NBWEIGHTS_SCREENSHOTS") or HERE / "screenshots").resolve()


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "browser: real-browser test (JupyterLab/Notebook 7 in Chromium via Playwright)")
    config.addinivalue_line(
        "markers", "slow: takes tens of seconds (runs in CI all the same; deselect with -m 'not slow')")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if str(item.fspath).startswith(str(HERE)):
            item.add_marker(pytest.mark.browser)


def pytest_report_header(config):
    return f"nbweights browser screenshots: {SCREENSHOT_DIR}"


def pytest_terminal_summary(terminalreporter):
    if SCREENSHOT_DIR.exists() and any(SCREENSHOT_DIR.glob("*.png")):
        terminalreporter.write_line(f"nbweights browser screenshots written to {SCREENSHOT_DIR}")


def _unavailable(reason: str):
    msg = f"browser tests cannot run: {reason}"
    if os.environ.get("CI"):
        pytest.fail(msg + " (CI is set, so this is an error, not a skip)", pytrace=False)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    # Printed once per session; visible with -s and in the terminal summary.
    print(f"\n[nbweights] browser screenshots -> {SCREENSHOT_DIR}", file=sys.__stderr__, flush=True)
    return SCREENSHOT_DIR


@pytest.fixture(scope="session")
def jupyter_server():
    missing = missing_requirements()
    if missing:
        _unavailable("missing " + "; ".join(missing))
    server = JupyterServer(env=kernel_env())
    try:
        server.start()
    except Exception as exc:
        server.stop()
        _unavailable(f"jupyter lab did not start: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def _playwright():
    try:
        from playwright.sync_api import sync_playwright
    except Exception as exc:
        _unavailable(f"playwright not importable: {exc}")
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser(_playwright):
    exe = find_chromium()
    if exe is None:
        _unavailable("no Chromium found (/usr/bin/chromium or $NBWEIGHTS_CHROMIUM)")
    try:
        b = _playwright.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS,
                                        headless=not os.environ.get("NBWEIGHTS_HEADED"))
    except Exception as exc:
        _unavailable(f"Chromium at {exe} did not launch: {exc}")
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def console() -> ConsoleLog:
    return ConsoleLog()


@pytest.fixture
def page(browser, console):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    console.attach(pg)
    try:
        yield pg
    finally:
        context.close()


@pytest.fixture(scope="module")
def module_page(browser):
    """(page, console) for all the tests of a module: one notebook opened once, one kernel."""
    log = ConsoleLog()
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    log.attach(pg)
    try:
        yield pg, log
    finally:
        context.close()


@pytest.fixture
def open_notebook(jupyter_server, page, screenshot_dir):
    """Factory: open_notebook("x.ipynb", ui="lab") -> NotebookUI (kernel ready).
    Kernels of the notebooks opened by the test are shut down afterwards."""
    opened = []

    def _open(name: str, ui: str = "lab", timeout: float = 90) -> NotebookUI:
        if ui not in ("lab", "notebook"):
            raise ValueError("ui must be 'lab' or 'notebook'")
        nb = NotebookUI(page, jupyter_server, name, ui=ui, screenshot_dir=screenshot_dir)
        opened.append(nb)
        return nb.open(timeout)

    yield _open
    if opened:
        try:
            page.close()
        except Exception:
            pass
        jupyter_server.shutdown_kernels()
