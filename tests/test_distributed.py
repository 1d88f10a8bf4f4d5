"""torchrun jobs (2 processes, gloo, CPU) under DDP and FSDP2, watched into a run directory.

The merged summaries are checked against one-process summaries of the gathered tensors that
the script saves at the same steps (tests/distributed_scripts/train.py).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import nbweights as nbw
from nbweights.health import find_signals
from nbweights.history.rundir import RunReader, load_run
from nbweights.summaries import FIELDS, derived_stats

SCRIPT = Path(__file__).parent / "distributed_scripts" / "train.py"
pytestmark = pytest.mark.slow


def torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            str(SCRIPT), *args]


def environment() -> dict[str, str]:
    """This checkout first on the workers' path (an editable install of another may be there too)."""
    root = str(Path(__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}


def run_job(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(torchrun(*args), env=environment(), capture_output=True, text=True, timeout=600)
    if check and done.returncode != 0:
        raise AssertionError(f"torchrun failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def column(fields: np.ndarray, name: str) -> np.ndarray:
    return fields[..., FIELDS.index(name)]


@pytest.mark.parametrize("mode", ["ddp", "fsdp"])
def test_merged_summaries_equal_the_whole_tensors(tmp_path: Path, mode: str) -> None:
    run_dir, reference_path = tmp_path / "run", tmp_path / "reference.npz"
    run_job("--mode", mode, "--run-dir", str(run_dir), "--reference", str(reference_path),
            "--steps", "6", "--every", "2", "--sample-size", "none")
    history, reference = load_run(run_dir), np.load(reference_path)
    assert list(history.names) == list(reference["names"])
    assert history.names[:2] == ["0.weight", "0.bias"]  # not DDP's "module.0.weight"
    for group in ("weight", "grad"):
        steps = reference[f"{group}/steps"]
        assert list(history.steps(history.names[0], group)) == list(steps) == ([0, 2, 4, 6] if group == "weight"
                                                                               else [2, 4, 6])
        timeline = history._summaries[group]
        fields, counts = timeline.column("fields"), timeline.column("counts")
        expected = reference[f"{group}/fields"]
        np.testing.assert_array_equal(counts, reference[f"{group}/counts"])  # histograms: exactly
        np.testing.assert_array_equal(timeline.column("ranges"), reference[f"{group}/ranges"])
        for name in ("count", "nonfinite", "min", "max", "sampled"):
            np.testing.assert_array_equal(column(fields, name), column(expected, name), err_msg=f"{group} {name}")
        ours, theirs = derived_stats(fields), derived_stats(expected)
        scale = theirs["norm"] / np.sqrt(column(expected, "count"))  # the rms: float32 sums round
        np.testing.assert_allclose(ours["mean"], theirs["mean"], rtol=0, atol=1e-4 * scale.max())
        np.testing.assert_allclose(ours["norm"], theirs["norm"], rtol=1e-4)
    for name in history.names:  # pictures assembled from pieces equal those of the whole tensor
        picture, key = history.picture(name), f"picture/{name}"
        expected = reference[key].astype(np.float16 if picture.kind != "values" else np.float32)
        np.testing.assert_allclose(picture.array, expected, rtol=1e-3, atol=1e-6, err_msg=name)
    kinds = {name: history.picture(name).kind for name in history.names}
    assert kinds["0.weight"] == "filters" and kinds["4.weight"] == "matrix"
    assert history.picture("4.weight").array.shape == (80, 114)  # block means, rows split 81/80


def test_follow_sees_steps_while_the_job_runs(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    job = subprocess.Popen(torchrun("--mode", "fsdp", "--run-dir", str(run_dir), "--steps", "16",
                                    "--every", "auto", "--sample-size", "1000", "--sleep", "0.4"),
                           env=environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 300
        while not (run_dir / "run.json").exists():
            assert job.poll() is None, job.stdout.read()
            assert time.monotonic() < deadline, "the job wrote no run header"
            time.sleep(0.2)
        seen: list[tuple[int, bool]] = []
        follower = nbw.follow(run_dir, interval=0.1)
        follower.add_listener(lambda step: seen.append((step, job.poll() is None)))
        output, _ = job.communicate(timeout=600)
        assert job.returncode == 0, output
    finally:
        if job.poll() is None:
            job.kill()
    follower.refresh()
    final = follower.history.steps(follower.history.names[0])
    while_running = [step for step, running in seen if running]
    assert while_running and min(while_running) < final[-1]  # a step arrived before the job ended
    assert follower.ended and follower.damaged is None
    # Every rank captured the same steps: rank 0 decided them and broadcast each decision.
    for rank in (0, 1):
        np.testing.assert_array_equal(np.load(run_dir / f"steps-rank{rank}.npy"), final)
    assert len(final) >= 2
    # With sampling, the shards' samples add up to sample_size: each rank took its share.
    fields = follower.history._summaries["weight"].column("fields")[-1]
    numels = column(fields, "count")
    np.testing.assert_array_equal(column(fields, "sampled"), np.minimum(numels, 1000))
    assert follower.health() == find_signals(load_run(run_dir))  # the followed history's signals
    follower.close()


def test_a_killed_rank_leaves_a_readable_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    done = run_job("--mode", "fsdp", "--run-dir", str(run_dir), "--steps", "30", "--every", "1",
                   "--kill-at", "4", "--kill-rank", "0", check=False)
    assert done.returncode != 0  # rank 0, the writer, was SIGKILLed: no atexit, no end mark
    reader = RunReader(run_dir)
    reader.poll()
    steps = reader.history.steps(reader.history.names[0])
    assert not reader.ended and reader.damaged is None
    np.testing.assert_array_equal(steps, np.arange(5))  # every capture up to the kill, complete
    np.testing.assert_array_equal(reader.history.steps(reader.history.names[0], "grad"), np.arange(1, 5))
    follower = nbw.follow(run_dir)
    assert follower.step == 4 and len(follower.history.picture_steps("4.weight")) == 5
    follower.close()
