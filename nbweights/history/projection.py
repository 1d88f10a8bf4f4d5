"""Weights projected to 2-D: each output unit of a weight is a point, by PCA aligned across steps.

The projection is computed on the read side, from the bounded copy of each 2-D or convolution
weight that capture keeps anyway for the picture views (``capture/pictures.py``): it costs
nothing while training runs, only the steps a view or a user asks for are projected, and it is
bounded by what a picture keeps (block means of the rows of a large matrix; the first filters
and input channels of a convolution). PCA's axes have no sign of their own and swap when two
variances cross, so each step's points are rotated or reflected onto the previous step's
(orthogonal Procrustes): the points then move smoothly instead of flipping.
"""
from __future__ import annotations

import numpy as np
import torch

#: Units (points) projected at most: the first ones.
MAX_UNITS = 1024
METHODS = ("pca", "tsne", "umap")


def units_of(kind: str, array: np.ndarray) -> np.ndarray | None:
    """Rows = output units of a kept picture (conv filters flattened), or None for 1-D tensors."""
    if array.ndim < 2 or (kind == "values" and array.ndim not in (2, 3, 4)):
        return None
    units = np.asarray(array, np.float32).reshape(len(array), -1)[:MAX_UNITS]
    return np.nan_to_num(units, nan=0.0, posinf=0.0, neginf=0.0)


def pca_2d(units: np.ndarray) -> np.ndarray:
    """Coordinates [units, 2] of the units on their first two principal components (zeros where
    there are fewer than two).

    From the eigenvectors of the smaller of the two Gram matrices (units x units or inputs x
    inputs): for a 128 x 256 picture 7 ms against 16 ms for a full SVD (measured on this
    project's 2-core machine), and no random numbers are drawn (this may run on the redraw
    thread, beside training).
    """
    data = torch.from_numpy(np.ascontiguousarray(units, np.float32))
    centered = (data - data.mean(dim=0, keepdim=True)).double()
    coords = np.zeros((len(units), 2), np.float32)
    rank = min(2, *centered.shape)
    if rank == 0:
        return coords
    if centered.shape[0] <= centered.shape[1]:
        values, vectors = torch.linalg.eigh(centered @ centered.T)  # ascending
        top = vectors[:, -rank:].flip(1) * values[-rank:].flip(0).clamp(min=0).sqrt()
    else:
        _, vectors = torch.linalg.eigh(centered.T @ centered)
        top = centered @ vectors[:, -rank:].flip(1)
    coords[:, :rank] = top.numpy()
    return coords


def align(coords: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``coords`` rotated or reflected to lie nearest ``reference`` (orthogonal Procrustes)."""
    u, _, vt = np.linalg.svd(coords.T.astype(np.float64) @ reference.astype(np.float64))
    return (coords @ (u @ vt)).astype(np.float32)


def embed(units: np.ndarray, method: str) -> np.ndarray:
    """Coordinates [units, 2] by t-SNE (scikit-learn) or UMAP (umap-learn), for one step."""
    count = len(units)
    if count < 4:
        raise ValueError(f"method={method!r} needs at least 4 units to embed, got {count}")
    if method == "tsne":
        try:
            from sklearn.manifold import TSNE
        except ImportError as error:
            raise ImportError("method='tsne' needs scikit-learn: pip install nbweights[projection]") from error
        model = TSNE(n_components=2, perplexity=min(30.0, (count - 1) / 3), init="pca", random_state=0)
    else:
        try:
            from umap import UMAP
        except ImportError as error:
            raise ImportError("method='umap' needs umap-learn: pip install umap-learn") from error
        model = UMAP(n_components=2, n_neighbors=min(15, count - 1), random_state=0)
    return np.asarray(model.fit_transform(units), np.float32)


class AlignedProjections:
    """PCA coordinates of one weight's kept pictures, each step aligned to the step before;
    computed once per step and kept (a few KB), dropped when the picture is thinned."""

    def __init__(self) -> None:
        self._coords: dict[int, np.ndarray] = {}

    def series(self, kind: str, steps: np.ndarray, arrays: np.ndarray) -> np.ndarray:
        """Coordinates [steps, units, 2] of every kept step."""
        kept = {int(s) for s in steps}
        self._coords = {s: c for s, c in self._coords.items() if s in kept}
        previous, result = None, []
        for step, array in zip(steps.tolist(), arrays):
            coords = self._coords.get(step)
            if coords is None:
                coords = pca_2d(units_of(kind, array))
                if previous is not None and previous.shape == coords.shape:
                    coords = align(coords, previous)
                self._coords[step] = coords
            previous = coords
            result.append(coords)
        return np.stack(result) if result else np.zeros((0, 0, 2), np.float32)
