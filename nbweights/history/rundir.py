"""A run directory: a history written while it is recorded, crash-safe, for ``nbweights.follow``.

``run_dir/run.json`` (written once, atomically: a temporary file renamed) names the format,
the histogram bins and every recorded tensor. ``run_dir/records.log`` is append-only: a
sequence of frames, one per capture (and one per second of logged metrics at most), each

    b"NBWF" | payload length (u64, little-endian) | CRC-32 of the payload (u32) | payload

where the payload is a JSON index (u32 length, then UTF-8) followed by the ``.npy`` bytes of
every array it lists (read with ``allow_pickle=False``: opening a run runs no code from it).
A reader stops at the first frame that is incomplete or fails its checksum, so it never sees a
torn record, and a killed job leaves a directory readable up to its last complete capture.
``.nbw`` (:mod:`.fileformat`) stays the format to export a finished history to one file.
"""
from __future__ import annotations

import atexit
import io
import json
import logging
import os
import struct
import time
import uuid
import weakref
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..summaries import Summary
from .store import GROUPS, History

log = logging.getLogger("nbweights")

FORMAT = "nbweights-run"
VERSION = 1
HEADER, LOG = "run.json", "records.log"
MAGIC = b"NBWF"
_FRAME = struct.Struct("<4sQI")
#: Frames of metrics alone are written at most this often (captures are written at once).
METRICS_INTERVAL = 1.0


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()  # np.asarray, not ascontiguousarray: that makes a 0-d metric 1-d
    np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


def encode_frame(entries: list[dict], blobs: list[bytes], end: bool = False) -> bytes:
    """One frame holding ``entries`` (JSON-ready) and the ``.npy`` bytes they list, in order."""
    index = json.dumps({"entries": entries, "end": end}).encode()
    payload = b"".join([struct.pack("<I", len(index)), index, *blobs])
    return _FRAME.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


class RunWriter:
    """Appends every row recorded in ``history`` to a run directory (a History observer).

    ``flush(step)`` is a Watcher listener: a capture's rows go to disk as one frame at the end of
    the capture (then fsync'd), metrics alone at most every second. ``close()`` writes the rest
    and an end mark; it is safe to repeat, and runs at interpreter exit too.
    """

    def __init__(self, run_dir: str | os.PathLike, history: History, world_size: int = 1):
        if not isinstance(run_dir, (str, os.PathLike)):
            raise TypeError(f"run_dir= expected a path (str or os.PathLike), got {type(run_dir).__name__}")
        self.path = Path(run_dir)
        self.path.mkdir(parents=True, exist_ok=True)
        if (self.path / HEADER).exists():
            log.warning("nbweights: %s held a run; it is replaced by this one", self.path)
        meta, _ = history.export()
        header = {"format": FORMAT, "version": VERSION, "run_id": uuid.uuid4().hex, "created": time.time(),
                  "world_size": int(world_size), "bins": meta["bins"], "max_bytes": meta["max_bytes"],
                  "groups": meta["groups"]}
        # The log first, then the header that points readers at it: never a header with an old log.
        self._fd = os.open(self.path / LOG, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        temporary = self.path / f".{HEADER}.{os.getpid()}.tmp"
        with open(temporary, "w") as file:
            json.dump(header, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.path / HEADER)
        self.run_id = header["run_id"]
        self.bytes_written = 0
        self._entries: list[dict] = []
        self._blobs: list[bytes] = []
        self._has_capture = False
        self._last_write = time.monotonic()
        self._history = weakref.ref(history)
        history.observers.append(self._observe)
        atexit.register(_close_at_exit, weakref.ref(self))

    @property
    def closed(self) -> bool:
        return self._fd is None

    def _observe(self, timeline: Any, step: int, row: dict[str, np.ndarray]) -> None:
        history = self._history()
        if self._fd is None or history is None:
            return
        try:  # called inside a capture: a failure here must never break training
            description = describe(history, timeline)
            names = sorted(row)
            blobs = [_npy(np.asarray(row[name])) for name in names]
        except Exception:
            log.exception("nbweights: a record could not be written to %s (left out)", self.path)
            return
        self._entries.append({"store": description, "step": int(step), "columns": names})
        self._blobs.extend(blobs)
        self._has_capture = self._has_capture or description["store"] != "metric"

    def flush(self, step: int | None = None, force: bool = False) -> None:
        """Write what was recorded since the last frame (see the class docstring for when)."""
        if self._fd is None or not self._entries:
            return
        if not (force or self._has_capture or time.monotonic() - self._last_write >= METRICS_INTERVAL):
            return
        self._write(encode_frame(self._entries, self._blobs), sync=self._has_capture)

    def _write(self, frame: bytes, sync: bool) -> None:
        self._entries, self._blobs, self._has_capture = [], [], False
        view = memoryview(frame)
        while view:
            view = view[os.write(self._fd, view):]
        if sync:
            os.fsync(self._fd)
        self.bytes_written += len(frame)
        self._last_write = time.monotonic()

    def remove(self) -> None:
        """:meth:`close`, named as a hook handle's method: ``Watcher.close()`` removes its handles."""
        self.close()

    def close(self) -> None:
        """Write what is pending and an end mark, and close the log. Safe to repeat."""
        if self._fd is None:
            return
        try:
            entries, blobs = self._entries, self._blobs
            self._write(encode_frame(entries, blobs, end=True), sync=True)
        finally:
            os.close(self._fd)
            self._fd = None
            history = self._history()
            if history is not None and self._observe in history.observers:
                history.observers.remove(self._observe)


def describe(history: History, timeline: Any) -> dict:
    """The :meth:`History.export` description of the store that ``timeline`` is (by identity)."""
    for group, candidate in history._summaries.items():
        if candidate is timeline:
            return {"store": "summaries", "group": group}
    for name, (kind, candidate) in history._pictures.items():
        if candidate is timeline:
            return {"store": "picture", "name": name, "kind": kind}
    if timeline is getattr(history, "_attributions", None):
        ndims = {c: int(timeline.column(c).ndim - 1) for c in timeline.column_names}
        return {"store": "attributions", "ndims": ndims}
    for store, timelines in (("metric", history._metrics), ("feature_maps", history._feature_maps),
                             ("attention", getattr(history, "_attention", {}))):
        for name, candidate in timelines.items():
            if candidate is timeline:
                return {"store": store, "name": name}
    raise LookupError("a timeline that this history does not hold")


def _close_at_exit(ref: "weakref.ref[RunWriter]") -> None:
    writer = ref()
    if writer is not None:
        writer.close()


class RunReader:
    """Reads a run directory into a :class:`History`, a little more at each :meth:`poll`."""

    def __init__(self, run_dir: str | os.PathLike):
        if not isinstance(run_dir, (str, os.PathLike)):
            raise TypeError(f"follow() expected a run directory path, got {type(run_dir).__name__}")
        self.path = Path(run_dir)
        header_path = self.path / HEADER
        if not header_path.exists():
            raise FileNotFoundError(f"{self.path} holds no nbweights run ({HEADER} is missing): start the job "
                                    f"with nbw.watch(model, optimizer, run_dir={os.fspath(run_dir)!r})")
        try:
            header = json.loads(header_path.read_text())
        except (OSError, ValueError) as error:
            raise ValueError(f"{header_path} is not a readable nbweights run header: {error}") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise ValueError(f"{header_path} is not an nbweights run header (format {header.get('format')!r})")
        if header.get("version") != VERSION:
            raise ValueError(f"{header_path}: run format version {header.get('version')} is not {VERSION}")
        self.header = header
        self.history = History(max_bytes=int(header["max_bytes"]), bins=int(header["bins"]))
        for group in GROUPS:
            declared = header["groups"][group]
            self.history.declare(group, declared["names"], [tuple(s) for s in declared["shapes"]])
        self.offset = 0
        #: Whether the job closed its watcher (an end mark was read).
        self.ended = False
        #: Why reading stopped before the end of the log, if a frame failed its checksum.
        self.damaged: str | None = None

    def poll(self) -> int:
        """Read the complete frames written since the last poll; returns how many rows were added."""
        try:
            with open(self.path / LOG, "rb") as file:
                file.seek(self.offset)
                data = file.read()
        except FileNotFoundError:
            return 0
        added, position = 0, 0
        while len(data) - position >= _FRAME.size:
            magic, length, checksum = _FRAME.unpack_from(data, position)
            start, stop = position + _FRAME.size, position + _FRAME.size + length
            if magic != MAGIC:
                self.damaged = f"no frame at byte {self.offset + position} of {LOG}"
                break
            if stop > len(data):
                break  # still being written, or torn by a crash: stop before it
            payload = memoryview(data)[start:stop]
            if zlib.crc32(payload) != checksum:
                self.damaged = f"frame at byte {self.offset + position} of {LOG} fails its checksum"
                break
            try:
                added += self._apply(payload)
            except (ValueError, KeyError, TypeError, EOFError) as error:
                self.damaged = f"frame at byte {self.offset + position} of {LOG} is unreadable: {error}"
                position = stop  # its rows may be half applied: never apply them twice
                break
            position = stop
        self.offset += position
        return added

    def _apply(self, payload: memoryview) -> int:
        (index_length,) = struct.unpack_from("<I", payload, 0)
        index = json.loads(bytes(payload[4:4 + index_length]))
        stream = io.BytesIO(payload[4 + index_length:])
        for entry in index["entries"]:
            row = {name: np.lib.format.read_array(stream, allow_pickle=False) for name in entry["columns"]}
            self._record(entry["store"], int(entry["step"]), row)
        self.ended = self.ended or bool(index.get("end"))
        return len(index["entries"])

    def _record(self, store: dict[str, Any], step: int, row: dict[str, np.ndarray]) -> None:
        history, kind = self.history, store["store"]
        if kind == "summaries":
            summary = Summary(row["fields"], row["counts"], row["ranges"])
            history.record(store["group"], step, summary, extra=row.get("extra"))
        elif kind == "picture":
            history.record_picture(store["name"], step, store["kind"], row["data"])
        elif kind == "metric":
            history.log(step, **{store["name"]: float(row["value"])})
        elif kind == "feature_maps":
            history.record_feature_maps(store["name"], step, row["data"])
        elif kind == "attention":
            history.record_attention(store["name"], step, row["data"])
        elif kind == "attributions":
            history.record_attributions(step, **row)
        else:
            raise ValueError(f"unknown store {kind!r} in {self.path / LOG}")


def load_run(run_dir: str | os.PathLike) -> History:
    """Everything a run directory holds now, as a :class:`History`."""
    reader = RunReader(run_dir)
    reader.poll()
    return reader.history
