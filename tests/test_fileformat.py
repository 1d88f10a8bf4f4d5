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


# ----- hostile and altered files (issue 12) -------------------------------------------------
import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import threading  # noqa: E402
import tracemalloc  # noqa: E402

from readable import check_readable  # noqa: E402


def _rezip(path, target, change=lambda name, data: data, extra=(), compression=zipfile.ZIP_DEFLATED):
    """Copy ``path`` to ``target`` with each member changed by ``change`` (None drops it)."""
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(target, "w", compression=compression) as archive:
        for name in source.namelist():
            data = change(name, source.read(name))
            if data is not None:
                archive.writestr(name, data)
        for name, data in extra:
            archive.writestr(name, data)
    return target


def _meta_change(edit):
    def change(name, data):
        if name != "meta.json":
            return data
        meta = json.loads(data)
        edit(meta)
        return json.dumps(meta).encode()
    return change


def _array_change(member, array):
    def change(name, data):
        if name != member:
            return data
        buffer = io.BytesIO()
        np.save(buffer, array)
        return buffer.getvalue()
    return change


def _load_in_thread(path, seconds=20):
    """Load ``path`` on a thread: returns the exception raised (a hang fails the test)."""
    outcome = []

    def run():
        try:
            nbw.load(path)
            outcome.append(None)
        except BaseException as error:  # noqa: BLE001 - handed to the test
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"load({path}) did not return within {seconds} s"
    return outcome[0]


def test_only_regular_files_are_opened(tmp_path):
    fifo = tmp_path / "pipe.nbw"
    os.mkfifo(fifo)  # no writer: reading it would wait for ever
    for path in ("/dev/zero", tmp_path, fifo):
        error = _load_in_thread(path)
        assert isinstance(error, ValueError) and "not a regular file" in str(error), (path, error)


def _bomb(path, target, member, size):
    """``path`` with ``member`` replaced by ``size`` zero bytes, deflated (a few kB on disk)."""
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in source.namelist():
            if name != member:
                archive.writestr(name, source.read(name))
            else:
                with archive.open(name, "w", force_zip64=True) as out:
                    chunk = bytes(2**20)
                    for _ in range(size // 2**20):
                        out.write(chunk)
    return target


def test_sizes_are_checked_before_anything_is_inflated(saved, tmp_path):
    _, path = saved
    bomb = _bomb(path, tmp_path / "bomb.nbw", "t0/fields.npy", 300 * 2**20)
    assert bomb.stat().st_size < 2 * 2**20
    tracemalloc.start()
    with pytest.raises(ValueError, match="a zip bomb"):
        nbw.load(bomb)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 4 * 2**20  # nothing of the 300 MB was inflated
    huge = _rezip(path, tmp_path / "huge.nbw", lambda name, data: data if name != "t0/fields.npy" else
                  data[:6] + b"\x01\x00" + (118).to_bytes(2, "little")
                  + b"{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000, 4, 10), }".ljust(117) + b"\n")
    with pytest.raises(ValueError, match=r"t0/fields: 1000000000000 rows where the other columns of its timeline have 4"):
        nbw.load(huge)


def test_each_member_is_read_once_and_duplicates_are_refused(saved, tmp_path):
    _, path = saved
    with zipfile.ZipFile(path) as source:
        fields = source.read("t0/fields.npy")
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate names: that is the point
        doubled = _rezip(path, tmp_path / "doubled.nbw", extra=[("t0/fields.npy", fields)] * 7)
    with pytest.raises(ValueError, match="t0/fields.npy' appears more than once"):
        nbw.load(doubled)


def _drop_column(meta):
    meta["timelines"][0]["columns"].remove("counts")
    meta["arrays"].remove("t0/counts")


ALTERED = {
    # name: (how the file is changed, what the error must say)
    "fields as strings": (_array_change("t0/fields.npy", np.full((4, 4, 10), "x")), "descr '<U1'"),
    "fields as bool": (_array_change("t0/fields.npy", np.ones((4, 4, 10), bool)), "descr '|b1'"),
    "fields too short": (_array_change("t0/fields.npy", np.ones((4, 3, 10))), r"shape must be \[rows, 4, 10\]"),
    "counts not finite": (_array_change("t0/counts.npy", np.full((4, 4, 64), np.nan, np.float32)),
                          "histogram counts must be finite"),
    "steps decreasing": (_array_change("t0/steps.npy", np.array([0, 2, 1, 3])), "steps must not decrease"),
    "steps misaligned": (_array_change("t0/steps.npy", np.array([0, 1])), "rows where the other columns of its timeline"),
    "shapes shorter than names": (_meta_change(lambda m: m["groups"]["weight"]["shapes"].pop()),
                                  "a list of 4 shapes"),
    "grad names differ": (_meta_change(lambda m: m["groups"]["grad"]["names"].reverse()),
                          "gradients' names and shapes must be the weights'"),
    "missing column": (_meta_change(_drop_column), r"timelines\[0\].columns must be"),
    "unknown kind": (_meta_change(lambda m: next(t for t in m["timelines"] if t["store"] == "picture")
                                  .update(kind="evil")), "kind must be one of"),
    "picture of no weight": (_meta_change(lambda m: next(t for t in m["timelines"] if t["store"] == "picture")
                                          .update(name="nowhere")), "must be the name of a weight"),
    "bins as a string": (_meta_change(lambda m: m.update(bins="64")), "bins must be an integer"),
    "bool for an int": (_meta_change(lambda m: m.update(bins=True)), "bins must be an integer"),
    "negative shape": (_meta_change(lambda m: m["groups"]["weight"]["shapes"].__setitem__(0, [-16, 4])),
                       "a tensor shape"),
    "unknown store": (_meta_change(lambda m: m["timelines"][0].update(store="pickle")), "store must be"),
    "name not a string": (_meta_change(lambda m: m["groups"]["weight"]["names"].__setitem__(0, 7)),
                          "a list of names"),
    "unknown key": (_meta_change(lambda m: m.update(code="import os")), "keys"),
    "deep JSON": (lambda name, data: data if name != "meta.json" else data[:-1] + b', "x": ' + b"[" * 100_000
                  + b"]" * 100_000 + b"}", "nested 100001 deep"),
    "NaN in JSON": (lambda name, data: data if name != "meta.json" else data.replace(b'"bins": 64', b'"bins": NaN'),
                    "holds NaN"),
    "huge number in JSON": (lambda name, data: data if name != "meta.json" else
                            data.replace(b'"bins": 64', b'"bins": 1' + b"0" * 5000), "digits|integer"),
    "npy header as code": (lambda name, data: data if name != "t0/steps.npy" else
                           data[:10] + b"{'descr': '<i8', 'fortran_order': False, 'shape': (1+2,), }".ljust(117)
                           + b"\n" + data[128:], "header is not one numpy writes"),
    "object array": (lambda name, data: data.replace(b"'<i8'", b"'|O' ") if name == "t0/steps.npy" else data,
                     "header is not one numpy writes|descr"),
}


@pytest.mark.parametrize("case", sorted(ALTERED))
def test_each_altered_file_names_what_is_wrong(saved, tmp_path, case):
    _, path = saved
    change, message = ALTERED[case]
    altered = _rezip(path, tmp_path / "altered.nbw", change)
    with pytest.raises(ValueError, match=message):
        nbw.load(altered)


@pytest.mark.parametrize("compression, flags, message", [
    (zipfile.ZIP_LZMA, None, "compression 14"), (zipfile.ZIP_BZIP2, None, "compression 12"),
    (zipfile.ZIP_DEFLATED, 0x1, "flags 0x1"), (zipfile.ZIP_DEFLATED, 0x40, "flags 0x40")])
def test_other_compressions_and_encryption_are_refused(saved, tmp_path, compression, flags, message):
    _, path = saved
    altered = _rezip(path, tmp_path / "altered.nbw", compression=compression)
    if flags is not None:  # the flag bits of the first member's central-directory entry
        data = bytearray(altered.read_bytes())
        entry = data.find(b"PK\x01\x02")
        data[entry + 8:entry + 10] = flags.to_bytes(2, "little")
        altered.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=message):
        nbw.load(altered)


def test_a_loaded_history_reads_and_draws_whole(saved):
    _, path = saved
    check_readable(nbw.load(path))


def test_saving_replaces_the_file_in_one_step(saved, tmp_path, monkeypatch):
    w, path = saved
    replaced = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (replaced.append((src, dst)), real_replace(src, dst)))
    w.save(path)
    [(temporary, target)] = replaced
    assert os.path.dirname(temporary) == str(tmp_path) and target == str(path) and not os.path.exists(temporary)
    assert nbw.load(path).names == w.history.names
