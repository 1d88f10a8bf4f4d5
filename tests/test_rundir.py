"""Run directories (append-only, crash-safe), following them, and the pieces of the distributed
merge that run in one process: sample shares and pictures assembled from shards."""
from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import nbweights as nbw
from nbweights.capture.layouts import Layout
from nbweights.capture.shardsummaries import quota
from nbweights.capture.pictures import PictureLimits, picture_of
from nbweights.capture.shardpictures import assemble, picture_plan
from nbweights.history.rundir import LOG, MAGIC, RunReader, load_run
from training import train


def watched_run(run_dir: Path, steps: int = 6, keep: list | None = None) -> nbw.Watcher:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    watcher = nbw.watch(model, optimizer, every=2, run_dir=str(run_dir))
    for _ in range(steps):
        loss = model(torch.randn(8, 4)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        watcher.log(loss=loss.item())
    if keep is not None:
        keep.append(model)  # the watcher holds only a weak reference
    return watcher


def assert_same_history(a: nbw.History, b: nbw.History) -> None:
    assert a.names == b.names
    for name in a.names:
        for group in ("weight", "grad"):
            np.testing.assert_array_equal(a.steps(name, group), b.steps(name, group))
            for key, values in a.stats(name, group).items():
                np.testing.assert_array_equal(values, b.stats(name, group)[key])
            np.testing.assert_array_equal(a.histograms(name, group)[2], b.histograms(name, group)[2])
        np.testing.assert_array_equal(a.picture(name).array, b.picture(name).array)
    np.testing.assert_array_equal(a.metric("loss")[1], b.metric("loss")[1])


def test_a_run_directory_holds_what_the_watcher_recorded(tmp_path: Path) -> None:
    watcher = watched_run(tmp_path / "run")
    watcher.close()
    header = json.loads((tmp_path / "run" / "run.json").read_text())
    assert header["format"] == "nbweights-run" and header["groups"]["weight"]["names"] == watcher.history.names
    reader = RunReader(tmp_path / "run")
    reader.poll()
    assert reader.ended and reader.damaged is None
    assert_same_history(watcher.history, reader.history)
    assert list(reader.history.steps("0.weight")) == [0, 2, 4, 6]


def test_a_torn_or_altered_log_is_read_up_to_its_last_sound_frame(tmp_path: Path) -> None:
    watcher = watched_run(tmp_path / "run")
    watcher.close()
    log = (tmp_path / "run" / LOG).read_bytes()
    starts = [i for i in range(len(log)) if log.startswith(MAGIC, i)]
    # Cut inside the frame of step 4's capture: steps 0 and 2 stay, nothing of 4 shows.
    capture_frames = [start for start in starts if b'"step": 4' in log[start:start + 4000][:600]]
    cut = capture_frames[0] + 100
    (tmp_path / "run" / LOG).write_bytes(log[:cut])
    reader = RunReader(tmp_path / "run")
    reader.poll()
    assert list(reader.history.steps("0.weight")) == [0, 2] and not reader.ended and reader.damaged is None
    # The rest arrives (the writer finished its frame): the reader goes on where it stopped.
    (tmp_path / "run" / LOG).write_bytes(log)
    reader.poll()
    assert list(reader.history.steps("0.weight")) == [0, 2, 4, 6] and reader.ended
    # One flipped byte in a frame: reading stops before it and says why.
    altered = bytearray(log)
    altered[cut] ^= 0xFF
    (tmp_path / "run" / LOG).write_bytes(bytes(altered))
    reader = RunReader(tmp_path / "run")
    reader.poll()
    assert list(reader.history.steps("0.weight")) == [0, 2] and "checksum" in reader.damaged


def test_follow_tells_its_listeners_as_records_arrive(tmp_path: Path) -> None:
    kept: list = []
    watcher = watched_run(tmp_path / "run", steps=0, keep=kept)
    follower = nbw.follow(tmp_path / "run", interval=0.05)
    assert follower.step == 0 and not follower.ended
    arrived = threading.Event()
    steps: list[int] = []
    follower.add_listener(lambda step: (steps.append(step), arrived.set()))
    watcher.snapshot()  # step 0 again, written at once as a capture
    assert arrived.wait(timeout=60), "the polling thread never read the new records"
    assert steps == [0] and len(follower.history.steps("0.weight")) == 2
    watcher.close()
    follower.close()
    follower.close()  # safe to repeat
    assert follower.closed


def test_follow_refuses_what_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="run.json"):
        nbw.follow(tmp_path)
    with pytest.raises(TypeError, match="got int"):
        nbw.follow(3)
    (tmp_path / "run.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match="not an nbweights run"):
        nbw.follow(tmp_path)
    with pytest.raises(ValueError, match="interval"):
        nbw.follow(tmp_path, interval=0)


def test_a_followed_run_has_the_dashboard_of_a_watcher(tmp_path: Path) -> None:
    watched_run(tmp_path / "run").close()
    follower = nbw.follow(tmp_path / "run")
    dashboard = follower.dashboard
    assert dashboard.history is follower.history and dashboard.watcher is follower
    assert dashboard.entries[:2] == ["0.weight", "0.bias"] and dashboard.shown.name == "0.weight"
    dashboard.close()
    follower.close()


def test_sample_shares_add_up_and_follow_the_shard_sizes() -> None:
    held = np.array([81 * 800, 80 * 800])
    shares = [quota(held, rank, 1000) for rank in (0, 1)]
    assert sum(shares) == 1000 and shares == [503, 497]
    assert quota(np.array([0, 5000]), 0, 1000) == 0 and quota(np.array([0, 5000]), 1, 1000) == 1000
    assert quota(held, 0, None) is None and quota(np.array([300, 200]), 0, 1000) is None


@pytest.mark.parametrize("shape", [(161, 800), (5, 161), (200, 3, 3, 3), (3, 200)])
def test_pictures_of_shards_add_up_to_the_picture_of_the_whole(shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    whole = torch.randn(shape)
    limits = PictureLimits()
    plan = picture_plan(shape, limits)
    kind, expected = picture_of(whole, limits)
    assert plan.kind == kind and plan.out_shape == tuple(expected.shape)
    chunk = -(-shape[0] // 2)  # torch.chunk's split of dim 0, as FSDP2 shards it
    pieces = []
    for start in (0, chunk):
        block = whole[start:start + chunk]
        layout = Layout(True, (start,) + (0,) * (len(shape) - 1), tuple(block.shape))
        pieces.append(assemble(plan, block, layout))
    pieces.append(assemble(plan, whole, Layout(False, (0,) * len(shape), shape)))  # a replica: nothing
    torch.testing.assert_close(sum(pieces), expected, rtol=1e-5, atol=1e-6)


def test_watch_refuses_a_run_dir_that_is_not_a_path(tmp_path: Path) -> None:
    model = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="run_dir= expected a path"):
        nbw.watch(model, run_dir=3)


def test_a_run_directory_of_a_run_without_optimizer_matches_too(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    watcher = nbw.watch(model, every=1, run_dir=tmp_path / "run")
    train(model, None, steps=4)
    watcher.close()
    loaded = load_run(tmp_path / "run")
    for name in watcher.history.names:
        np.testing.assert_array_equal(loaded.steps(name), watcher.history.steps(name))
        np.testing.assert_array_equal(loaded.stats(name, "grad")["norm"], watcher.history.stats(name, "grad")["norm"])
