"""TensorBoard export: the events read back with TensorBoard's EventAccumulator equal the history."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import nbweights as nbw
from nbweights.__main__ import main
from nbweights.summaries import histogram_edges

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run() -> nbw.Watcher:
    """Five steps of a model with one tensor larger than the histogram sample (scaled counts)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(100, 64), nn.ReLU(), nn.Linear(64, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    watcher = nbw.watch(model, optimizer, every=1, activations=True, bins=16)
    generator = torch.Generator().manual_seed(0)
    for _ in range(5):
        optimizer.zero_grad()
        loss = model(torch.randn(32, 100, generator=generator)).pow(2).mean()
        loss.backward()
        optimizer.step()
        watcher.log(loss=loss.item())
    watcher.close()
    return watcher


def read(logdir: Path):
    events = event_accumulator.EventAccumulator(str(logdir), size_guidance={
        event_accumulator.HISTOGRAMS: 0, event_accumulator.SCALARS: 0})
    return events.Reload()


def test_histograms_have_the_history_bins_and_counts_at_its_steps(run, tmp_path):
    done = nbw.export_tensorboard(run.history, tmp_path)
    events = read(tmp_path)
    assert Path(done.path).parent == tmp_path and Path(done.path).name.startswith("events.out.tfevents")
    history = run.history
    expected = 0
    for group in ("weight", "grad", "activation"):
        for name in history.names_of(group):
            steps, ranges, counts = history.histograms(name, of=group)
            stats = history.stats(name, of=group)
            written = events.Histograms(f"{group}/{name}")
            assert [e.step for e in written] == steps.tolist(), (group, name)
            for t, event in enumerate(written):
                value = event.histogram_value
                np.testing.assert_allclose(value.bucket_limit, histogram_edges(ranges[t], history.bins))
                assert value.bucket[0] == 0
                np.testing.assert_allclose(value.bucket[1:], counts[t], rtol=1e-12)
                assert value.num == stats["count"][t] - stats["nonfinite"][t]
                assert value.min == pytest.approx(stats["min"][t]) and value.max == pytest.approx(stats["max"][t])
            expected += len(steps)
    assert done.histograms == expected
    big = events.Histograms("weight/0.weight")[-1].histogram_value
    assert sum(big.bucket) == pytest.approx(100 * 64)  # scaled up from the 4096-element sample
    assert history.steps("0.weight").tolist() == [0, 1, 2, 3, 4, 5]


def test_scalars_are_the_history_norms_update_ratios_and_metrics(run, tmp_path):
    nbw.export_tensorboard(run, tmp_path)  # a Watcher is taken as its history
    events = read(tmp_path)
    history = run.history
    for name in history.names:
        stats = history.stats(name)
        norms = events.Scalars(f"weight_norm/{name}")
        assert [e.step for e in norms] == history.steps(name).tolist()
        np.testing.assert_allclose([e.value for e in norms], stats["norm"], rtol=1e-6)
        ratios = events.Scalars(f"update_ratio/{name}")  # not measured at step 0: left out
        assert [e.step for e in ratios] == [1, 2, 3, 4, 5]
        np.testing.assert_allclose([e.value for e in ratios], stats["update_ratio"][1:], rtol=1e-6)
        assert [e.value for e in events.Scalars(f"grad_nonfinite/{name}")] == [0] * 5
    dead = events.Scalars("dead_fraction/1")
    np.testing.assert_allclose([e.value for e in dead], history.stats("1", of="activation")["dead_fraction"], rtol=1e-6)
    steps, losses = history.metric("loss")
    loss = events.Scalars("loss")
    assert [e.step for e in loss] == steps.tolist() == [1, 2, 3, 4, 5]
    np.testing.assert_allclose([e.value for e in loss], losses, rtol=1e-6)


@pytest.mark.slow  # a fresh interpreter imports torch
def test_the_command_line_exports_a_saved_run(run, tmp_path):
    path = tmp_path / "run.nbw"
    run.save(str(path))
    done = subprocess.run([sys.executable, "-m", "nbweights", "export", str(path), "--tensorboard",
                           str(tmp_path / "logs")], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    histograms = sum(len(run.history.steps(n, of=g)) for g in ("weight", "grad", "activation")
                     for n in run.history.names_of(g))
    assert f"wrote {histograms} histograms" in done.stdout
    assert read(tmp_path / "logs").Histograms("grad/2.weight")[-1].step == 5


@pytest.mark.parametrize("content, message", [(None, "no such file"), (b"not a zip", "not a readable nbweights history")])
def test_the_command_line_says_what_is_wrong_with_the_file(tmp_path, capsys, content, message):
    path = tmp_path / "run.nbw"
    if content is not None:
        path.write_bytes(content)
    assert main(["export", str(path), "--tensorboard", str(tmp_path / "logs")]) == 2
    assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: the format is required
        main(["export", str(path)])
    assert "--tensorboard" in capsys.readouterr().err


def test_bad_arguments_are_refused_by_name(tmp_path):
    with pytest.raises(TypeError, match="got int"):
        nbw.export_tensorboard(3, tmp_path)
    with pytest.raises(TypeError, match="logdir, got NoneType"):
        nbw.export_tensorboard(nbw.History(), None)


def test_without_tensorboard_the_import_error_names_the_extra(monkeypatch, tmp_path):
    for name in ("tensorboard", "tensorboard.compat.proto.event_pb2", "tensorboard.compat.proto.summary_pb2",
                 "tensorboard.summary.writer.event_file_writer"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match=r"pip install nbweights\[tensorboard\]"):
        nbw.export_tensorboard(nbw.History(), tmp_path)
