"""A saved run is never lost and the history stays whole and bounded: interrupted saves, saves
while another thread trains, thousands of interrupts inside records, and the memory bound."""
from __future__ import annotations

import os
import random
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import nbweights as nbw
from nbweights.history import History
from nbweights.summaries import FIELDS, Summary
from readable import check_reads
from training import train

HISTORY_CODE = str(Path(nbw.__file__).parent / "history")


def _arrays_nbytes(history: History) -> int:
    """Bytes of every array the history's stores hold, counted from the arrays themselves."""
    return sum(t._steps.nbytes + sum(c.nbytes for c in t._columns.values()) for t in history._timelines())


# ----- saves ------------------------------------------------------------------------------
def test_an_interrupted_save_keeps_the_previous_file(tmp_path, mlp, monkeypatch):
    opt = torch.optim.SGD(mlp.parameters(), lr=0.1)
    w = nbw.watch(mlp, opt, every=1)
    train(mlp, opt, 2)
    path = tmp_path / "run.nbw"
    w.save(path)
    train(mlp, opt, 3)
    write_array, calls = np.lib.format.write_array, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return write_array(*args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", interrupted)
    with pytest.raises(KeyboardInterrupt):
        w.save(path)
    monkeypatch.undo()
    np.testing.assert_array_equal(nbw.load(path).steps("0.weight"), [0, 1, 2])  # the previous save, whole
    assert os.listdir(tmp_path) == ["run.nbw"]  # no partial file left beside it
    w.save(path)
    np.testing.assert_array_equal(nbw.load(path).steps("0.weight"), [0, 1, 2, 3, 4, 5])


def test_saves_while_another_thread_trains_all_load(tmp_path, mlp):
    opt = torch.optim.SGD(mlp.parameters(), lr=0.01)
    w = nbw.watch(mlp, opt, every=1, max_bytes=40_000)  # thinning all the time
    done = threading.Event()

    def training() -> None:
        step = 0
        while not done.is_set():
            train(mlp, opt, 1, seed=step)
            w.log(loss=float(step))
            step += 1

    thread = threading.Thread(target=training)
    thread.start()
    try:
        for i in range(100):
            w.save(tmp_path / f"run{i}.nbw")
    finally:
        done.set()
        thread.join()
    latest = []
    for i in range(100):
        history = nbw.load(tmp_path / f"run{i}.nbw")
        check_reads(history)
        latest.append(history.latest_step)
    assert latest == sorted(latest) and latest[-1] > latest[0]  # training went on between saves


def test_save_takes_a_path(mlp, tmp_path):
    w = nbw.watch(mlp)
    with pytest.raises(TypeError, match=r"save\(\) expected a file path \(str or os.PathLike\), got int"):
        w.save(42)
    with pytest.raises(TypeError, match=r"load\(\) expected a file path"):
        nbw.load(None)
    assert not os.listdir(tmp_path)


# ----- interrupts inside records ------------------------------------------------------------
class Interrupter:
    """Raises KeyboardInterrupt at the ``countdown``-th line run in nbweights/history."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.countdown = 0
        self.fired = 0

    def arm(self, most: int) -> None:
        self.countdown = self.rng.randint(1, most)

    def __call__(self, frame, event, arg):
        if event == "call" and frame.f_code.co_filename.startswith(HISTORY_CODE):
            return self._line
        return None

    def _line(self, frame, event, arg):
        if event == "line" and self.countdown > 0:
            self.countdown -= 1
            if self.countdown == 0:
                self.fired += 1
                raise KeyboardInterrupt
        return self._line


def _check_whole(history: History) -> None:
    """Every store: steps that never decrease, one row of each column per step, and no
    registered picture, metric or feature-map store without a row; within the bound."""
    for timeline in history._timelines():
        steps = timeline.steps
        assert np.all(np.diff(steps) >= 0)
        assert all(len(timeline.column(c)) == len(steps) for c in timeline.column_names)
    stores = [t for _, t in history._pictures.values()] + [*history._metrics.values(), *history._feature_maps.values()]
    assert all(len(t) >= 1 for t in stores)
    assert _arrays_nbytes(history) <= history.max_bytes


def _summary(rng: np.random.Generator, count: int, bins: int) -> Summary:
    fields = rng.random((count, len(FIELDS)))
    return Summary(fields, rng.random((count, bins)).astype(np.float32), rng.random(count).astype(np.float32))


def test_thousands_of_interrupts_inside_records_leave_the_history_whole(tmp_path):
    names = ["a.weight", "a.bias", "b.weight"]
    shapes = [(8, 16), (8,), (4, 8)]
    history = History(max_bytes=24_000, bins=16)  # a few dozen steps: thinning at almost every record
    for group in ("weight", "grad"):
        history.declare(group, names, shapes)
    history.declare("activation", ["a", "b"], [(), ()])
    rng = np.random.default_rng(0)
    interrupter = Interrupter(0)
    step = 0
    previous = sys.gettrace()
    sys.settrace(interrupter)
    try:
        while interrupter.fired < 2000:
            interrupter.arm(400)
            try:
                step += 1
                history.record("weight", step, _summary(rng, 3, 16))
                history.record("grad", step, _summary(rng, 3, 16))
                history.record("activation", step, _summary(rng, 2, 16), extra=rng.random((2, 3)))
                for name, shape in zip(names, shapes):
                    history.record_picture(name, step, "values", rng.random(shape).astype(np.float32))
                history.record_feature_maps("a", step, rng.random((2, 4, 4)))
                history.log(step, loss=float(step), accuracy=0.5)
            except KeyboardInterrupt:
                sys.settrace(previous)
                _check_whole(history)
                if interrupter.fired % 100 == 0:
                    check_reads(history)
                sys.settrace(interrupter)
    finally:
        sys.settrace(previous)
    assert interrupter.fired == 2000
    check_reads(history)
    history.log(step + 1, loss=1.0)
    path = tmp_path / "after.nbw"
    from nbweights.history.fileformat import save_history
    save_history(history, path)
    loaded = nbw.load(path)
    check_reads(loaded)
    np.testing.assert_array_equal(loaded.steps("a.weight"), history.steps("a.weight"))


def test_interrupts_of_a_training_loop_leave_loadable_saves(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    w = nbw.watch(model, opt, every=1, max_bytes=30_000, activations=True)
    interrupter = Interrupter(1)
    previous = sys.gettrace()
    generator = torch.Generator().manual_seed(0)
    while interrupter.fired < 300:
        interrupter.arm(300)
        sys.settrace(interrupter)
        try:
            opt.zero_grad()
            model(torch.randn(8, 4, generator=generator)).pow(2).mean().backward()
            opt.step()
            w.log(loss=1.0)
        except KeyboardInterrupt:
            pass
        finally:
            sys.settrace(previous)
        _check_whole(w.history)
        if interrupter.fired % 50 == 0:
            w.save(tmp_path / "run.nbw")
            check_reads(nbw.load(tmp_path / "run.nbw"))
    w.close()


# ----- the memory bound ---------------------------------------------------------------------
@pytest.mark.parametrize("max_bytes", [20_000, 50_000, 100_000])
def test_max_bytes_is_never_exceeded_and_pictures_thin_first(mlp, max_bytes):
    opt = torch.optim.SGD(mlp.parameters(), lr=0.01)
    w = nbw.watch(mlp, opt, every=1, max_bytes=max_bytes)
    worst = 0
    for step in range(300):
        train(mlp, opt, 1, seed=step)
        w.log(loss=float(step))
        worst = max(worst, _arrays_nbytes(w.history))
    assert worst <= max_bytes
    assert w.history.nbytes == _arrays_nbytes(w.history)
    summary_rows = len(w.history.steps("0.weight"))
    picture_rows = [len(w.history.picture_steps(name)) for name in w.history.names]
    assert summary_rows > 2 and max(picture_rows) <= summary_rows  # the numbers outlast the pictures
    assert w.history.steps("0.weight")[0] == 0 and w.history.steps("0.weight")[-1] == 300


def test_the_latest_picture_goes_when_nothing_else_fits():
    history = History(max_bytes=8_000, bins=8)
    history.declare("weight", ["w"], [(40, 40)])
    for step in range(3):
        history.record("weight", step, _summary(np.random.default_rng(step), 1, 8))
        history.record_picture("w", step, "values", np.ones((40, 40), np.float32))  # 6.4 kB each
        assert _arrays_nbytes(history) <= 8_000
    np.testing.assert_array_equal(history.picture_steps("w"), [2])  # the latest picture replaced the one before
    assert history.steps("w")[0] == 0 and history.steps("w")[-1] == 2  # the summaries cover the run


@pytest.mark.parametrize("given, expected", [("8MB", 8_000_000), ("256 MiB", 256 * 2**20), ("1.5 GB", 1_500_000_000),
                                             (np.int64(100_000), 100_000), (65536, 65536)])
def test_max_bytes_takes_ints_and_sizes(given, expected):
    assert History(max_bytes=given).max_bytes == expected


@pytest.mark.parametrize("given, error, match", [
    (10, ValueError, "at least 4096 bytes, got 10"), ("8 parsecs", ValueError, "must be a number of bytes"),
    ("-5MB", ValueError, "must be a number of bytes"), (8.5e6, TypeError, "got float"), (True, TypeError, "got bool"),
    (None, TypeError, "got NoneType")])
def test_max_bytes_refuses_what_is_not_a_size(given, error, match):
    with pytest.raises(error, match=match):
        History(max_bytes=given)


def test_max_bytes_must_hold_two_snapshots(mlp):
    with pytest.raises(ValueError, match=r"cannot hold two snapshots .* give at least"):
        nbw.watch(mlp, max_bytes=5000)


def test_steps_must_be_integers():
    history = History()
    history.declare("weight", ["w"], [(3,)])
    for step in (0, 10):
        history.record("weight", step, _summary(np.random.default_rng(step), 1, 64))
    assert history.histogram("w", step=np.int64(5))[1].sum() == history.histogram("w", step=0)[1].sum()
    for bad in ("2", 2.0, True):
        with pytest.raises(TypeError, match="step= must be an int or None"):
            history.histogram("w", step=bad)
