"""A torchrun job (FSDP2, 2 processes) followed from JupyterLab: the dashboard of ``nbw.follow``
advances while the job writes, with no cell running, and stays after the job ends.

The screenshot it saves (``followed_run.png``) is the README's picture of a followed run.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from jupyter_harness import DashboardUI
from test_dashboard_live import eventually

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCRIPT = Path(__file__).resolve().parents[1] / "distributed_scripts" / "train.py"
NOTEBOOK = "follow_live.ipynb"
SETUP = f"""\
import os, shutil, subprocess, sys, time
import nbweights as nbw

run_dir = os.path.abspath("followed_run")
shutil.rmtree(run_dir, ignore_errors=True)
job = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        {str(SCRIPT)!r}, "--mode", "fsdp", "--run-dir", run_dir,
                        "--steps", "40", "--every", "1", "--sleep", "0.5"])
while not os.path.exists(os.path.join(run_dir, "run.json")):
    assert job.poll() is None, "the job ended before writing its run directory"
    time.sleep(0.2)
run = nbw.follow(run_dir, interval=0.2)
run
"""
AFTER = "job.wait(); run.refresh(); print(job.returncode, run)"
STATE = "print(job.poll(), run, os.path.getsize(os.path.join(run_dir, 'records.log')), run.dashboard.slider.max)"


def status_step(dash: DashboardUI) -> int:
    """The step the dashboard's status line reports ("step 12 · 13 snapshots · ..."), or -1."""
    found = re.match(r"step (\d+) ", dash.frame()["status"] or "")
    return int(found.group(1)) if found else -1


def test_a_followed_run_redraws_while_the_job_writes(open_notebook, jupyter_server, screenshot_dir):
    jupyter_server.write_notebook(NOTEBOOK, [SETUP, AFTER, STATE])
    nb = open_notebook(NOTEBOOK)
    nb.run_cell_and_wait(0, timeout=240)  # ends once the job has written its header
    dash = DashboardUI(nb, 0).wait_drawn(120)
    seen, sliders = [], []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(set(seen)) < 4:
        seen.append(status_step(dash))  # no cell runs: the follower's thread drives the redraws
        sliders.append(dash.frame()["slider"])
        time.sleep(1.0)
    print(f"\n[follow] status steps {seen}; slider readouts {sliders}")
    distinct = sorted(set(s for s in seen if s >= 0))
    if len(distinct) < 3:
        nb.screenshot("followed_run_failed", dash.root)
        nb.run_cell_and_wait(2, timeout=60)
        raise AssertionError(f"the status line did not follow the job: read {seen}; the kernel says "
                             f"{nb.output(2).inner_text()!r}; the dashboard shows {dash.frame()['status']!r}")
    assert seen == sorted(seen), f"the status went back while following: {seen}"
    assert len(set(sliders)) >= 3, f"the step slider did not follow the job: {sliders}"
    assert dash.frame()["errors"] == []
    nb.screenshot("followed_run", dash.root)
    nb.run_cell_and_wait(1, timeout=240)
    printed = nb.output(1).inner_text()
    assert re.search(r"^0 <nbweights.Follower ended .* step 40,", printed, re.M), printed
    # The step controls followed too: the slider reads the last step and the panel draws it.
    eventually(lambda: dash.frame()["slider"] == "40", 15)
    frame = dash.frame()
    assert frame["follow"] and frame["current"], frame
