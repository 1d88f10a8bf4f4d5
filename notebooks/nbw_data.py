"""Data for the nbweights teaching notebooks: 28x28 images as tensors, loaded once, offline-safe.

>>> from nbw_data import load_images, QUICK
>>> data = load_images()            # MNIST, else Fashion-MNIST, else a synthetic set; says which
>>> data.train_x.shape              # (N, 1, 28, 28) float32 in [0, 1]; labels in data.train_y

Where the images come from, first that works:

1. ``NBWEIGHTS_DATASET=mnist|fashion-mnist|synthetic`` forces a choice;
2. MNIST already in the cache, or downloaded with torchvision when the internet is reachable;
3. Fashion-MNIST from the cache, or from ``/usr/share/datasets/fashion-mnist/`` (Debian package
   ``dataset-fashion-mnist``): its ``.gz`` files are unpacked once into the cache, where
   torchvision's ``FashionMNIST(root, download=False)`` reads them;
4. a small synthetic set (oriented bars, one angle per class), so a notebook never fails offline.

The cache is ``$NBWEIGHTS_DATA`` or ``~/.cache/nbweights``. ``NBWEIGHTS_QUICK=1`` (used by CI)
makes the notebooks cut epochs and data so that each runs in seconds.
"""
from __future__ import annotations

import gzip
import math
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import torch

#: True when the notebooks should run in seconds (CI): fewer epochs, less data.
QUICK = os.environ.get("NBWEIGHTS_QUICK", "").lower() in ("1", "true", "yes")

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
MNIST_HOST = "ossci-datasets.s3.amazonaws.com"  # torchvision's first MNIST mirror
RAW_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
DIGITS = [str(d) for d in range(10)]
FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


@dataclass
class ImageData:
    """A labelled image set as tensors: ``*_x`` is (N, 1, 28, 28) float32 in [0, 1]."""

    name: str
    classes: list[str]
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor

    def subset(self, train: int | None = None, test: int | None = None) -> "ImageData":
        """The first ``train`` training and ``test`` test images (None: all)."""
        return ImageData(self.name, self.classes, self.train_x[:train], self.train_y[:train],
                         self.test_x[:test], self.test_y[:test])

    def __repr__(self) -> str:
        return (f"<ImageData {self.name}: {len(self.train_x)} training and {len(self.test_x)} "
                f"test images of {tuple(self.train_x.shape[1:])}, {len(self.classes)} classes>")


def cache_dir() -> Path:
    """Where downloads and unpacked files go: ``$NBWEIGHTS_DATA`` or ``~/.cache/nbweights``."""
    path = Path(os.environ.get("NBWEIGHTS_DATA") or Path.home() / ".cache" / "nbweights")
    path.mkdir(parents=True, exist_ok=True)
    return path


def online(host: str = MNIST_HOST, timeout: float = 3.0) -> bool:
    """Whether ``host`` answers on port 443 within ``timeout`` seconds (no data is sent)."""
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def load_images(dataset: str | None = None) -> ImageData:
    """The first image set that loads (see the module docstring); prints which and why."""
    dataset = (dataset or os.environ.get("NBWEIGHTS_DATASET") or "auto").lower()
    loaders = {"mnist": _mnist, "fashion-mnist": _fashion_mnist, "synthetic": _synthetic}
    if dataset != "auto":
        if dataset not in loaders:
            raise ValueError(f"dataset must be one of {['auto', *loaders]}, got {dataset!r}")
        data = loaders[dataset]()
        if data is None:
            raise RuntimeError(f"{dataset} was asked for (NBWEIGHTS_DATASET) but could not be loaded")
        print(f"Using {data!r}")
        return data
    data = _mnist() or _fashion_mnist()
    if data is None:
        print("Neither MNIST nor Fashion-MNIST is available: using 28x28 pictures of bars at ten "
              "angles instead (learnable, but not a real data set).")
        data = _synthetic()
    print(f"Using {data!r}")
    return data


def _tensors(name: str, classes: list[str], train, test) -> ImageData:
    # The whole set as one float tensor: no DataLoader, no per-image transforms, fast epochs.
    def images(dataset) -> torch.Tensor:
        return (dataset.data.float() / 255.0).unsqueeze(1)
    return ImageData(name, classes, images(train), train.targets.clone(), images(test), test.targets.clone())


def _mnist() -> ImageData | None:
    from torchvision.datasets import MNIST
    root = cache_dir()
    cached = all((root / "MNIST" / "raw" / f).exists() for f in RAW_FILES)
    if not cached:
        if not online():
            print(f"MNIST: not in {root} and {MNIST_HOST} is unreachable (offline?).")
            return None
        print(f"MNIST: downloading to {root} (about 12 MB, once).")
    try:
        train = MNIST(root, train=True, download=not cached)
        test = MNIST(root, train=False, download=not cached)
    except Exception as error:  # a failed or partial download: fall back, never stop the lesson
        print(f"MNIST: could not load ({type(error).__name__}: {error}).")
        return None
    return _tensors("MNIST", DIGITS, train, test)


def _fashion_mnist() -> ImageData | None:
    from torchvision.datasets import FashionMNIST
    root = cache_dir()
    raw = root / "FashionMNIST" / "raw"
    missing = [f for f in RAW_FILES if not (raw / f).exists()]
    if missing:
        sources = [DEBIAN_FASHION_MNIST / f"{f}.gz" for f in missing]
        if not all(s.exists() for s in sources):
            print(f"Fashion-MNIST: not in {raw} nor in {DEBIAN_FASHION_MNIST} "
                  "(apt-get install dataset-fashion-mnist).")
            return None
        print(f"Fashion-MNIST: unpacking {DEBIAN_FASHION_MNIST} into {raw} (once).")
        raw.mkdir(parents=True, exist_ok=True)
        for source, name in zip(sources, missing):
            partial = raw / f"{name}.part"  # rename at the end: an interrupted unpack is redone
            with gzip.open(source, "rb") as packed, open(partial, "wb") as unpacked:
                shutil.copyfileobj(packed, unpacked)
            partial.rename(raw / name)
    try:
        train = FashionMNIST(root, train=True, download=False)
        test = FashionMNIST(root, train=False, download=False)
    except Exception as error:
        print(f"Fashion-MNIST: could not load ({type(error).__name__}: {error}).")
        return None
    return _tensors("Fashion-MNIST", FASHION, train, test)


def _synthetic(train: int = 6000, test: int = 1000, seed: int = 0) -> ImageData:
    """Bars through the middle of the image at ten angles (one per class), shifted and noisy."""
    generator = torch.Generator().manual_seed(seed)
    count = train + test
    labels = torch.randint(0, 10, (count,), generator=generator)
    angles = labels.float() * math.pi / 10
    coords = torch.arange(28, dtype=torch.float32) - 13.5
    rows, cols = coords[:, None], coords[None, :]
    shift = torch.randn(count, generator=generator) * 2.0
    # Distance of each pixel to the line at `angle` through the centre, moved by `shift`.
    distance = (cols * torch.sin(angles)[:, None, None] - rows * torch.cos(angles)[:, None, None]
                - shift[:, None, None])
    images = torch.exp(-distance ** 2 / 4.0) + 0.15 * torch.randn(count, 28, 28, generator=generator)
    images = images.clamp(0, 1).unsqueeze(1)
    classes = [f"bar {18 * k}°" for k in range(10)]
    return ImageData("synthetic bars", classes, images[:train], labels[:train],
                     images[train:], labels[train:])
