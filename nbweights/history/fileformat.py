"""The ``.nbw`` file: a history on disk, readable without pickle.

A ``.nbw`` file is a zip archive holding ``meta.json`` (format name and version, histogram
bins, the names and shapes of every recorded tensor, and what each array is) and one ``.npy``
file per array, read with ``allow_pickle=False``. Opening a file someone sent you runs no code
from it; a truncated or altered file raises ``ValueError``.
"""
from __future__ import annotations

import io
import json
import os
import zipfile
import zlib

import numpy as np

from .store import History

FORMAT = "nbweights-history"
VERSION = 1


def save_history(history: History, path: str | os.PathLike) -> None:
    """Write ``history`` to ``path`` (conventionally ending in ``.nbw``)."""
    meta, arrays = history.export()
    meta = {"format": FORMAT, "version": VERSION, **meta, "arrays": sorted(arrays)}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("meta.json", json.dumps(meta))
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            archive.writestr(f"{name}.npy", buffer.getvalue())


def load_history(path: str | os.PathLike) -> History:
    """Read a history written by :func:`save_history`; ValueError if it is not a sound one."""
    try:
        with zipfile.ZipFile(path) as archive:
            meta = json.loads(archive.read("meta.json"))
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                raise ValueError("not an nbweights history (meta.json names another format)")
            if meta.get("version") != VERSION:
                raise ValueError(f"history format version {meta.get('version')} is not {VERSION}")
            arrays = {}
            for name in meta["arrays"]:
                with archive.open(f"{name}.npy") as member:
                    arrays[name] = np.lib.format.read_array(io.BytesIO(member.read()), allow_pickle=False)
        return History.restore(meta, arrays)
    except FileNotFoundError:
        raise
    except ValueError as error:
        raise ValueError(f"{os.fspath(path)} is not a readable nbweights history: {error}") from None
    except (zipfile.BadZipFile, zlib.error, KeyError, TypeError, EOFError, OSError) as error:
        raise ValueError(f"{os.fspath(path)} is not a readable nbweights history "
                         f"({type(error).__name__}: {error})") from None
