"""Offline image datasets as float tensors in [0, 1].

Every loader returns an :class:`ImageDataset`: images of shape ``(N, C, H, W)``,
``float32`` in ``[0, 1]``, integer labels of shape ``(N,)`` and the per-channel
mean/std that an :class:`rmqm.models.Encoder` applies *after* any alteration.

The default data need no network:

* ``fashion-mnist`` -- the original Fashion-MNIST idx files shipped by the Debian
  package ``dataset-fashion-mnist`` (60k train / 10k test, 28x28, 10 classes);
* ``digits`` -- scikit-learn's bundled 8x8 handwritten digits (1797 images),
  upscaled bilinearly to 28x28, a real transfer task that always exists.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "ImageDataset",
    "FASHION_MNIST_DIRS",
    "FashionMNISTNotFoundError",
    "available_datasets",
    "load_dataset",
    "load_fashion_mnist",
    "load_digits",
    "read_idx",
    "fashion_mnist_available",
]

#: Where the Fashion-MNIST idx files are looked for, in order (``RMQM_FASHION_MNIST``
#: overrides all of them).
FASHION_MNIST_DIRS: tuple[Path, ...] = (
    Path("/usr/share/datasets/fashion-mnist"),
    Path.home() / ".cache" / "rmqm" / "fashion-mnist",
    Path("data") / "fashion-mnist",
)

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

FASHION_MNIST_HELP = (
    "Fashion-MNIST idx files not found in {dirs}. On Debian/Ubuntu install them with "
    "`sudo apt-get update && sudo apt-get install -y dataset-fashion-mnist` "
    "(files land in /usr/share/datasets/fashion-mnist). Elsewhere, download "
    "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and "
    "t10k-labels-idx1-ubyte.gz from https://github.com/zalandoresearch/fashion-mnist "
    "into one folder and point the environment variable RMQM_FASHION_MNIST at it. "
    "Without them, use dataset='digits' (scikit-learn, always available)."
)


class FashionMNISTNotFoundError(FileNotFoundError):
    """Raised when the Fashion-MNIST files are missing; the message says how to get them."""


@dataclass(frozen=True)
class ImageDataset:
    """Images in ``[0, 1]`` with labels.

    Attributes:
        images: ``(N, C, H, W)`` float32 tensor, pixel values in ``[0, 1]``.
        labels: ``(N,)`` int64 tensor of class indices ``0..n_classes-1``.
        name: dataset name, e.g. ``"fashion-mnist/test"``.
        classes: human-readable class names, indexed by label.
        mean, std: per-channel normalisation statistics (length ``C``) that an
            encoder applies after perturbation.
    """

    images: torch.Tensor
    labels: torch.Tensor
    name: str
    classes: tuple[str, ...]
    mean: tuple[float, ...] = field(default=(0.5,))
    std: tuple[float, ...] = field(default=(0.5,))

    def __post_init__(self) -> None:
        if self.images.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W); got shape {tuple(self.images.shape)}")
        if self.labels.ndim != 1 or self.labels.shape[0] != self.images.shape[0]:
            raise ValueError(
                f"labels must be (N,) with N = {self.images.shape[0]}; got {tuple(self.labels.shape)}"
            )
        if len(self.mean) != self.images.shape[1] or len(self.std) != self.images.shape[1]:
            raise ValueError("mean and std need one value per channel")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def subset(self, indices: torch.Tensor | np.ndarray, suffix: str = "") -> "ImageDataset":
        """The points at ``indices`` (same classes and normalisation)."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        return ImageDataset(
            self.images[idx], self.labels[idx], self.name + suffix, self.classes, self.mean, self.std
        )

    def subsample(self, n: int | None, seed: int = 0, stratified: bool = True) -> "ImageDataset":
        """A seeded random subset of ``n`` points (all points if ``n`` is None or >= N).

        With ``stratified=True`` the class proportions are kept (up to rounding).
        """
        if n is None or n >= len(self):
            return self
        if n <= 0:
            raise ValueError(f"n must be a positive number of points; got {n}")
        rng = np.random.default_rng(seed)
        labels = self.labels.numpy()
        if stratified:
            from sklearn.model_selection import train_test_split

            try:
                idx, _ = train_test_split(
                    np.arange(len(self)), train_size=n, stratify=labels, random_state=seed
                )
            except ValueError:  # too few points per class to stratify
                idx = rng.choice(len(self), size=n, replace=False)
        else:
            idx = rng.choice(len(self), size=n, replace=False)
        return self.subset(np.sort(idx))

    def split(self, test_fraction: float = 0.5, seed: int = 0) -> tuple["ImageDataset", "ImageDataset"]:
        """A seeded, stratified (train, test) split."""
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must lie in (0, 1); got {test_fraction}")
        from sklearn.model_selection import train_test_split

        tr, te = train_test_split(
            np.arange(len(self)), test_size=test_fraction, stratify=self.labels.numpy(),
            random_state=seed,
        )
        return self.subset(np.sort(tr), "/train"), self.subset(np.sort(te), "/test")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an (optionally gzipped) IDX file (the MNIST format) into a numpy array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    dtype = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[raw[2]]
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path} is truncated: expected {int(np.prod(shape))} values, got {data.size}")
    return data.reshape(shape)


def _find_fashion_mnist(root: str | os.PathLike | None) -> Path:
    candidates: list[Path] = []
    if root is not None:
        candidates.append(Path(root))
    if os.environ.get("RMQM_FASHION_MNIST"):
        candidates.append(Path(os.environ["RMQM_FASHION_MNIST"]))
    candidates.extend(FASHION_MNIST_DIRS)
    for folder in candidates:
        if any((folder / f"t10k-images-idx3-ubyte{ext}").exists() for ext in (".gz", "")):
            return folder
    raise FashionMNISTNotFoundError(FASHION_MNIST_HELP.format(dirs=[str(c) for c in candidates]))


def fashion_mnist_available(root: str | os.PathLike | None = None) -> bool:
    """True when the Fashion-MNIST files can be found."""
    try:
        _find_fashion_mnist(root)
    except FashionMNISTNotFoundError:
        return False
    return True


def load_fashion_mnist(
    split: str = "test", n: int | None = None, seed: int = 0, root: str | os.PathLike | None = None
) -> ImageDataset:
    """Fashion-MNIST from local idx files (no download).

    Args:
        split: ``"train"`` (60k) or ``"test"`` (10k).
        n: keep a seeded, stratified subsample of ``n`` points.
        seed: seed of the subsample.
        root: folder holding the idx files; defaults to the Debian package's folder,
            ``$RMQM_FASHION_MNIST``, ``~/.cache/rmqm/fashion-mnist`` or ``./data/fashion-mnist``.
    """
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}")
    folder = _find_fashion_mnist(root)

    def pick(stem: str) -> Path:
        gz = folder / f"{stem}.gz"
        return gz if gz.exists() else folder / stem

    images = read_idx(pick(f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(pick(f"{prefix}-labels-idx1-ubyte"))
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    y = torch.from_numpy(labels.astype(np.int64))
    ds = ImageDataset(x, y, f"fashion-mnist/{split}", FASHION_MNIST_CLASSES, (0.2860,), (0.3530,))
    return ds.subsample(n, seed)


def load_digits(
    split: str = "all", n: int | None = None, seed: int = 0, size: int = 28
) -> ImageDataset:
    """scikit-learn's bundled 8x8 handwritten digits, upscaled to ``size`` x ``size``.

    Args:
        split: ``"all"`` (1797 images), or ``"train"`` / ``"test"`` halves of a fixed
            stratified split (seed 0) so that every caller sees the same split.
        n: keep a seeded, stratified subsample of ``n`` points.
        seed: seed of the subsample.
        size: output side length (bilinear upscaling; pixel values stay in [0, 1]).
    """
    from sklearn.datasets import load_digits as sk_digits

    if split not in ("all", "train", "test"):
        raise ValueError(f"split must be 'all', 'train' or 'test'; got {split!r}")
    bunch = sk_digits()
    x = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    if size != 8:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp_(0.0, 1.0)
    y = torch.from_numpy(bunch.target.astype(np.int64))
    ds = ImageDataset(x, y, "digits", tuple(str(i) for i in range(10)), (0.2,), (0.3,))
    if split != "all":
        train, test = ds.split(0.5, seed=0)
        ds = train if split == "train" else test
    return ds.subsample(n, seed)


_LOADERS: dict[str, Callable[..., ImageDataset]] = {
    "fashion-mnist": load_fashion_mnist,
    "digits": load_digits,
}


def available_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset`."""
    return sorted(_LOADERS)


def load_dataset(name: str, split: str = "test", n: int | None = None, seed: int = 0, **kwargs) -> ImageDataset:
    """Load a dataset by name (see :func:`available_datasets`)."""
    try:
        loader = _LOADERS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; choose one of {available_datasets()}") from None
    return loader(split=split, n=n, seed=seed, **kwargs)
