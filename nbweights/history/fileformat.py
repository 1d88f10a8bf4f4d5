"""The ``.nbw`` file: a history on disk, readable without pickle, saved atomically.

A ``.nbw`` file is a zip archive holding ``meta.json`` (format name and version, histogram
bins, the names and shapes of every recorded tensor, and what each array is) and one ``.npy``
file per array. Opening a file someone sent you runs no code from it and takes memory bounded by
the history it describes: only regular files are opened, every declared size is checked against
``meta.json`` (:mod:`.schema`) before any data is read, each member is read once, straight into
its array, and ``.npy`` headers are parsed by a strict pattern, not evaluated. A truncated or
altered file raises ``ValueError`` naming what is wrong.

Saving writes a temporary file in the same folder and renames it over the target, so an
interrupted save leaves the previous file whole.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import stat
import struct
import tempfile
import zipfile
import zlib
from typing import Any, ContextManager

import numpy as np

from .budget import MaxBytes, parse_max_bytes
from .schema import FORMAT, VERSION, Layout, check_header, check_meta, restore
from .store import DEFAULT_MAX_BYTES, History

__all__ = ["FORMAT", "VERSION", "LOAD_LIMIT", "save_history", "load_history"]

#: Largest history ``load`` reads unless told more (``load(path, limit=...)``).
LOAD_LIMIT = 4 * DEFAULT_MAX_BYTES
META_LIMIT = 4 * 2**20
MAX_JSON_DEPTH = 8
MAX_MEMBERS = 100_000
#: zlib cannot inflate more than about 1032 bytes from one.
MAX_DEFLATE_RATIO = 1100
#: Saved histories inflate to a few times their file's size; past this ratio (and past
#: RATIO_FREE bytes) a file is a zip bomb, not a history.
MAX_FILE_RATIO = 200
RATIO_FREE = 64 * 2**20
_FLAGS_ALLOWED = 0x2 | 0x4 | 0x8 | 0x800  # deflate level, data descriptor, UTF-8 names
_MEMBER = re.compile(r"meta\.json|t\d{1,6}/[a-z]{1,16}\.npy")
_DESCRS = {f"{order}{code}" for order in "<>" for code in ("i8", "f8", "f4", "f2")}
_NPY_HEADER = re.compile(r"\{'descr': '([<>|=]?[A-Za-z]\d{0,3})', 'fortran_order': (False|True), "
                         r"'shape': \(([0-9, ]{0,400})\), \} *\n")
_CHUNK = 2**20
_BRACKETS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[{]}"))
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, struct.error, OverflowError,
               NotImplementedError, RuntimeError, KeyError, IndexError)


def check_path(path: Any, call: str) -> str:
    """``path`` as a str; TypeError unless it is a str or an os.PathLike."""
    if not isinstance(path, (str, os.PathLike)) or not isinstance(os.fspath(path), str):
        raise TypeError(f"{call}() expected a file path (str or os.PathLike), got {type(path).__name__}")
    return os.fspath(path)


# ----- saving -------------------------------------------------------------------------------
def save_history(history: History, path: str | os.PathLike, lock: ContextManager | None = None) -> None:
    """Write ``history`` to ``path`` (conventionally ending in ``.nbw``), atomically.

    ``lock`` (the watcher's) is held while the history is read, so that a training thread's
    records do not change it half-way; the file is written after it is released.
    """
    target = os.path.realpath(check_path(path, "save"))
    with lock if lock is not None else contextlib.nullcontext():
        meta, arrays = history.export()
    meta = {"format": FORMAT, "version": VERSION, **meta, "arrays": sorted(arrays)}
    folder, name = os.path.split(target)
    mode = stat.S_IMODE(os.stat(target).st_mode) if os.path.isfile(target) else 0o666 & ~_umask()
    descriptor, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(descriptor, "wb") as file:
            with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                archive.writestr("meta.json", json.dumps(meta))
                for array_name, array in arrays.items():
                    buffer = io.BytesIO()
                    np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
                    archive.writestr(f"{array_name}.npy", buffer.getvalue())
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:  # an interrupt too: the previous file stays, the partial one goes
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _umask() -> int:
    """The process's umask, read without changing it (os.umask would, for every thread)."""
    with contextlib.suppress(OSError, ValueError, StopIteration):
        with open("/proc/self/status") as status:
            return int(next(line for line in status if line.startswith("Umask:")).split()[1], 8)
    return 0o022


# ----- loading ------------------------------------------------------------------------------
def load_history(path: str | os.PathLike, *, limit: MaxBytes = LOAD_LIMIT) -> History:
    """Read a history written by :func:`save_history`; ValueError naming what is wrong if it is
    not a sound one. ``limit``: the most bytes its arrays may take (1 GiB unless told more)."""
    shown = check_path(path, "load")
    limit = parse_max_bytes(limit)
    # Non-blocking: opening a FIFO must not wait for a writer; it is refused just after.
    descriptor = os.open(shown, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        size = os.fstat(descriptor)
        if not stat.S_ISREG(size.st_mode):
            raise ValueError("not a regular file (a directory, device or pipe)")
        if size.st_size > limit + META_LIMIT:
            raise ValueError(f"{size.st_size} bytes is more than the limit of {limit} (load(..., limit=...))")
        with os.fdopen(descriptor, "rb") as file:
            descriptor = -1
            return _read(file, size.st_size, limit)
    except ValueError as error:
        raise ValueError(f"{shown} is not a readable nbweights history: {error}") from None
    except RecursionError:
        raise ValueError(f"{shown} is not a readable nbweights history: nested too deeply") from None
    except _ZIP_ERRORS as error:
        raise ValueError(f"{shown} is not a readable nbweights history "
                         f"({type(error).__name__}: {error})") from None
    finally:
        if descriptor >= 0:
            os.close(descriptor)


def _read(file: io.BufferedReader, file_size: int, limit: int) -> History:
    with zipfile.ZipFile(file) as archive:
        infos = archive.infolist()
        _check_members(infos, file_size, archive.start_dir, limit)
        members = {info.filename: info for info in infos}
        if "meta.json" not in members:
            raise ValueError("no meta.json")
        layout = check_meta(_parse_json(_read_member(archive, members["meta.json"])))
        expected = {"meta.json"} | {f"{name}.npy" for name in layout.arrays}
        if set(members) != expected:
            raise ValueError(f"members {sorted(set(members) - expected)[:3]} not named by meta.json, "
                             f"or arrays {sorted(expected - set(members))[:3]} missing")
        declared = sum(info.file_size for info in infos)
        if declared > 2 * layout.meta["max_bytes"] + 1024 * len(infos) + META_LIMIT:
            raise ValueError(f"its members hold {declared} bytes, more than its max_bytes="
                             f"{layout.meta['max_bytes']} allows")
        arrays: dict[str, np.ndarray] = {}
        rows: dict[int, int] = {}
        for name in layout.arrays:  # in the sorted order of the file's own list
            with archive.open(members[f"{name}.npy"]) as member:
                arrays[name] = _read_array(member, members[f"{name}.npy"].file_size, layout, name, rows)
    return restore(History, layout, arrays, copy=False)


def _check_members(infos: list[zipfile.ZipInfo], file_size: int, start_dir: int, limit: int) -> None:
    """Refuse what a zip bomb, a duplicated or overlapping member, or another tool's
    compression or encryption would need, from the central directory alone."""
    if len(infos) > MAX_MEMBERS:
        raise ValueError(f"{len(infos)} members (at most {MAX_MEMBERS})")
    names = [info.filename for info in infos]
    if len(set(names)) != len(names):
        raise ValueError(f"member {next(n for n in names if names.count(n) > 1)!r} appears more than once")
    end = 0
    for info in sorted(infos, key=lambda i: i.header_offset):
        if not _MEMBER.fullmatch(info.filename):
            raise ValueError(f"unexpected member {info.filename[:80]!r}")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or info.flag_bits & ~_FLAGS_ALLOWED:
            raise ValueError(f"{info.filename}: compression {info.compress_type} or flags {info.flag_bits:#x} "
                             f"not written by nbweights (stored or deflated, not encrypted)")
        stored = info.compress_type == zipfile.ZIP_STORED
        if info.compress_size > file_size or (stored and info.file_size != info.compress_size) or \
                info.file_size > MAX_DEFLATE_RATIO * info.compress_size + 1024:
            raise ValueError(f"{info.filename}: sizes {info.compress_size} -> {info.file_size} are impossible "
                             f"in a file of {file_size} bytes")
        if info.header_offset < end:
            raise ValueError(f"{info.filename} overlaps the member before it")
        end = info.header_offset + 30 + len(info.filename.encode()) + info.compress_size
    if end > start_dir:
        raise ValueError("the last member runs into the directory")
    total = sum(info.file_size for info in infos)
    if total > limit + META_LIMIT:
        raise ValueError(f"its members would take {total} bytes, more than the limit of {limit} "
                         f"(load(..., limit=...))")
    if total > max(RATIO_FREE, MAX_FILE_RATIO * file_size):
        raise ValueError(f"its members would inflate {file_size} bytes to {total} (a zip bomb?)")


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    if info.file_size > META_LIMIT:
        raise ValueError(f"{info.filename} declares {info.file_size} bytes (at most {META_LIMIT})")
    with archive.open(info) as member:
        data = member.read(info.file_size)
    if len(data) != info.file_size:
        raise ValueError(f"{info.filename} is truncated")
    return data


def _parse_json(data: bytes) -> Any:
    """Strict JSON: UTF-8, nested at most MAX_JSON_DEPTH deep, no NaN, no repeated keys."""
    text = data.decode("utf-8")
    # Brackets outside strings, as +1 and -1: their running sum is the depth (json.loads would
    # recurse that deep before any check of ours).
    outside = re.sub(rb'"(?:[^"\\]|\\.)*"', b"", data)
    steps = np.frombuffer(outside.translate(_BRACKETS, _NOT_BRACKETS), dtype=np.int8)
    depth, deepest = 0, 0
    for start in range(0, len(steps), _CHUNK):
        running = depth + np.cumsum(steps[start:start + _CHUNK], dtype=np.int32)
        deepest, depth = max(deepest, int(running.max())), int(running[-1])
    if deepest > MAX_JSON_DEPTH:
        raise ValueError(f"meta.json is nested {deepest} deep (at most {MAX_JSON_DEPTH})")

    def unique(pairs: list[tuple[str, Any]]) -> dict:
        keys = [key for key, _ in pairs]
        if len(set(keys)) != len(keys):
            raise ValueError(f"meta.json repeats a key among {keys[:8]}")
        return dict(pairs)

    def no_constant(name: str) -> None:
        raise ValueError(f"meta.json holds {name}, which JSON does not allow")

    return json.loads(text, object_pairs_hook=unique, parse_constant=no_constant)


def _read_array(member: zipfile.ZipExtFile, file_size: int, layout: Layout, name: str,
                rows: dict[int, int]) -> np.ndarray:
    """One ``.npy`` member, its header checked against the layout before its data is read."""
    magic = member.read(8)
    if len(magic) != 8 or magic[:6] != b"\x93NUMPY" or magic[6] not in (1, 2, 3) or magic[7] != 0:
        raise ValueError(f"{name}.npy is not a .npy array")
    size_bytes = 2 if magic[6] == 1 else 4
    length = int.from_bytes(member.read(size_bytes), "little")
    if length > 4096:
        raise ValueError(f"{name}.npy: header of {length} bytes")
    header = member.read(length)
    match = _NPY_HEADER.fullmatch(header.decode("latin1" if magic[6] < 3 else "utf-8", errors="replace"))
    if len(header) != length or match is None:
        raise ValueError(f"{name}.npy: header is not one numpy writes")
    descr, fortran, shape_text = match.groups()
    shape = tuple(int(d) for d in shape_text.replace(" ", "").split(",") if d)
    if descr not in _DESCRS or fortran == "True" or f"({', '.join(map(str, shape))}{',' * (len(shape) == 1)})" \
            != f"({shape_text})":
        raise ValueError(f"{name}.npy: descr {descr!r}, fortran_order {fortran} or shape ({shape_text}) "
                         f"is not what nbweights writes")
    dtype = np.dtype(descr)
    check_header(layout, name, dtype.newbyteorder("="), shape, rows)
    data_bytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if 8 + size_bytes + length + data_bytes != file_size:
        raise ValueError(f"{name}.npy: its header implies {data_bytes} bytes of data, the archive "
                         f"{file_size - 8 - size_bytes - length}")
    array = np.empty(shape, dtype)
    buffer = memoryview(array.reshape(-1).view(np.uint8))
    filled = 0
    while filled < data_bytes:
        chunk = member.read(min(_CHUNK, data_bytes - filled))
        if not chunk:
            raise ValueError(f"{name}.npy is truncated")
        buffer[filled:filled + len(chunk)] = chunk
        filled += len(chunk)
    return array if dtype.isnative else array.astype(dtype.newbyteorder("="))
