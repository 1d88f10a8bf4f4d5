"""Colours and pictures for the views: a diverging colour map to uint8, and a tiny PNG encoder.

Matrices, filter mosaics and class images are coloured in numpy and sent to the browser as one
PNG each (an ipywidgets.Image) at one pixel per weight; the browser scales it up with square
pixels (CSS ``image-rendering: pixelated``). A 128x128 matrix as a palette PNG is a few KB,
against 131 KB as a float64 bqplot HeatMap. No Pillow: PNG is zlib plus CRCs.

>>> png = encode_png(diverging(weights, limit=abs(weights).max()), DIVERGING_PALETTE)
"""
from __future__ import annotations

import html
import struct
import zlib

import numpy as np

#: ColorBrewer RdBu reversed: dark blue (most negative) .. near-white (0) .. dark red (positive).
DIVERGING_STOPS = np.array([
    (5, 48, 97), (33, 102, 172), (67, 147, 195), (146, 197, 222), (209, 229, 240),
    (247, 247, 247),
    (253, 219, 199), (244, 165, 130), (214, 96, 77), (178, 24, 43), (103, 0, 31),
], dtype=np.float64)
#: Colour of NaN/Inf cells: a mid grey, visible on the light and the dark JupyterLab theme.
NONFINITE_RGB = (128, 128, 128)
#: Theme-neutral line and bar colours (readable on white and on JupyterLab's dark grey).
BLUE, ORANGE, GREY = "#3b7dd8", "#e8822a", "#8c8c8c"


def _lookup_table(stops: np.ndarray, size: int = 256) -> np.ndarray:
    positions = np.linspace(0, 1, len(stops))
    at = np.linspace(0, 1, size)
    return np.stack([np.interp(at, positions, stops[:, c]) for c in range(3)], axis=1).round().astype(np.uint8)


#: Palette of the diverging map: entries 0..254 from most negative to most positive, 127 is 0;
#: entry 255 is NaN/Inf. One byte per pixel: PNGs a third of RGB's size, and faster to deflate.
NONFINITE_INDEX = 255
DIVERGING_PALETTE = np.concatenate([_lookup_table(DIVERGING_STOPS, 255), np.array([NONFINITE_RGB], np.uint8)])


def symmetric_limit(values: np.ndarray) -> float:
    """The largest finite |value| (1.0 when there is none), so that 0 sits mid-scale."""
    finite = np.abs(values[np.isfinite(values)])
    limit = float(finite.max()) if finite.size else 0.0
    return limit if limit > 0 else 1.0


def diverging(values: np.ndarray, limit: float) -> np.ndarray:
    """Indices into :data:`DIVERGING_PALETTE` (uint8, same shape) of ``values`` over
    ``[-limit, limit]``: blue below 0, white at 0, red above."""
    values = np.asarray(values, dtype=np.float32)
    finite = np.isfinite(values)
    scaled = np.where(finite, values, 0) / np.float32(limit if limit > 0 else 1.0)
    index = np.clip(np.rint((scaled + 1) * 127), 0, 254).astype(np.uint8)
    index[~finite] = NONFINITE_INDEX
    return index


def fit_factor(size: int, target: int, most: int = 16) -> int:
    """The whole number of screen pixels per image pixel that brings ``size`` nearest ``target``."""
    return int(min(max(1, target // max(size, 1)), most))


def encode_png(image: np.ndarray, palette: np.ndarray | None = None, level: int = 6) -> bytes:
    """PNG bytes of a uint8 image [H, W, 3] (RGB), or [H, W] of indices into ``palette`` [N, 3]."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3) or (image.ndim == 2) != (palette is not None):
        raise ValueError(f"encode_png() expected [H, W, 3] RGB, or [H, W] indices with a palette; "
                         f"got shape {image.shape}, palette {'given' if palette is not None else 'None'}")
    height, width = image.shape[:2]
    color_type = 2 if image.ndim == 3 else 3
    rows = image.reshape(height, -1)
    # Filter type 0 (none) per row: upscaled pictures repeat rows, which deflate finds anyway.
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1).tobytes()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    colours = b"" if palette is None else chunk(b"PLTE", np.ascontiguousarray(palette, np.uint8).tobytes())
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + colours + chunk(b"IDAT", zlib.compress(raw, level))
            + chunk(b"IEND", b""))


def colorbar_html(limit: float, label: str) -> str:
    """A small horizontal legend of the diverging map over ``[-limit, limit]``."""
    stops = ", ".join(f"rgb({r},{g},{b})" for r, g, b in DIVERGING_STOPS.astype(int))
    return (f'<div class="nbw-colorbar"><span>{-limit:.3g}</span>'
            f'<span class="nbw-colorbar-ramp" style="background: linear-gradient(to right, {stops})"></span>'
            f'<span>{limit:.3g}</span> <span class="nbw-colorbar-label">{html.escape(label)}</span></div>')
