"""Saving and loading a history: same numbers back, no pickle, clear errors on bad files."""
import zipfile

import numpy as np
import pytest
import torch

import nbweights as nbw
from training import train


@pytest.fixture
def saved(tmp_path, mlp):
    opt = torch.optim.SGD(mlp.parameters(), lr=0.1)
    w = nbw.watch(mlp, opt, every=1)
    for loss in range(3):
        train(mlp, opt, 1)
        w.log(loss=float(loss))
    path = tmp_path / "run.nbw"
    w.save(path)
    return w, path


def test_round_trip_keeps_every_record(saved):
    w, path = saved
    loaded = nbw.load(path)
    assert loaded.names == w.history.names
    for name in w.history.names:
        for group in ("weight", "grad"):
            np.testing.assert_array_equal(loaded.steps(name, of=group), w.history.steps(name, of=group))
            for key, values in w.history.stats(name, of=group).items():
                np.testing.assert_array_equal(loaded.stats(name, of=group)[key], values)
        np.testing.assert_array_equal(loaded.histogram(name, 2)[1], w.history.histogram(name, 2)[1])
        np.testing.assert_array_equal(loaded.picture(name).array, w.history.picture(name).array)
    np.testing.assert_array_equal(loaded.metric("loss")[1], [0.0, 1.0, 2.0])


def test_file_holds_only_json_and_plain_arrays(saved):
    _, path = saved
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        assert "meta.json" in names
        assert all(n == "meta.json" or n.endswith(".npy") for n in names)
        for name in names:
            if name.endswith(".npy"):
                header = archive.read(name)[:128]
                assert b"'descr': '|O'" not in header  # no object arrays, so nothing to unpickle


def test_truncated_file_gives_value_error(saved, tmp_path):
    _, path = saved
    data = path.read_bytes()
    broken = tmp_path / "broken.nbw"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable nbweights history"):
        nbw.load(broken)


def test_other_files_give_value_error(tmp_path, saved):
    text = tmp_path / "notes.nbw"
    text.write_text("hello")
    with pytest.raises(ValueError, match="not a readable"):
        nbw.load(text)
    other = tmp_path / "other.nbw"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("meta.json", '{"format": "something-else"}')
    with pytest.raises(ValueError, match="another format"):
        nbw.load(other)
    _, path = saved
    altered = tmp_path / "altered.nbw"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(altered, "w") as target:
        for item in source.namelist():
            data = source.read(item)
            if item.endswith("fields.npy"):
                data = data[:-40]  # array shorter than its header says
            target.writestr(item, data)
    with pytest.raises(ValueError):
        nbw.load(altered)


def test_pickled_arrays_are_refused(tmp_path, saved):
    _, path = saved
    evil = tmp_path / "evil.nbw"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(evil, "w") as target:
        for item in source.namelist():
            data = source.read(item)
            if item.endswith("t0/steps.npy"):
                import io
                buffer = io.BytesIO()
                np.save(buffer, np.array([object()], dtype=object), allow_pickle=True)
                data = buffer.getvalue()
            target.writestr(item, data)
    with pytest.raises(ValueError):
        nbw.load(evil)
