"""The image dataset type of the library: float images in [0, 1] with labels."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rmqm._utils.hashing import tensors_digest
from rmqm._utils.validation import check_image_batch, check_int, check_real

__all__ = ['DatasetNotFoundError', 'DataFallbackWarning', 'ImageDataset', 'check_side', 'subsample_indices',
           'channel_stats']


class DatasetNotFoundError(FileNotFoundError):
    """Raised when a dataset's files are missing; the message says how to get them."""


class DataFallbackWarning(UserWarning):
    """The requested data set is missing and another one is used in its place: every result
    computed after it is about the replacement, not the requested data."""


def check_side(size: Any, name: str = "size") -> int:
    """``size`` as a positive int (an image side in pixels); ValueError/TypeError naming ``name``."""
    return check_int(size, name, low=1)


def subsample_indices(labels: np.ndarray, n: int, seed: int, stratified: bool = True) -> np.ndarray:
    """Sorted indices of a seeded (stratified where possible) subset of ``n`` of ``labels``."""
    if n <= 0:
        raise ValueError(f"n must be a positive number of points; got {n}")
    check_int(seed, "seed", low=0)
    rng = np.random.default_rng(seed)
    if stratified:
        from sklearn.model_selection import train_test_split

        try:
            idx, _ = train_test_split(
                np.arange(len(labels)), train_size=n, stratify=labels, random_state=seed
            )
        except ValueError:  # too few points per class to stratify
            idx = rng.choice(len(labels), size=n, replace=False)
    else:
        idx = rng.choice(len(labels), size=n, replace=False)
    return np.sort(idx)


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

    >>> import torch
    >>> ds = ImageDataset(torch.rand(6, 1, 8, 8), torch.tensor([0, 1, 0, 1, 0, 1]), "toy", ("even", "odd"))
    >>> len(ds), ds.n_classes
    (6, 2)
    >>> ImageDataset(torch.rand(2, 1, 8, 8) + 1, torch.tensor([0, 1]), "toy", ("a", "b"))
    Traceback (most recent call last):
    ...
    ValueError: ...
    """

    images: torch.Tensor
    labels: torch.Tensor
    name: str
    classes: tuple[str, ...]
    mean: tuple[float, ...] = field(default=(0.5,))
    std: tuple[float, ...] = field(default=(0.5,))

    def __post_init__(self) -> None:
        check_image_batch(self.images)
        if not isinstance(self.labels, torch.Tensor):
            raise TypeError(f"labels must be a torch.Tensor of shape (N,); got {type(self.labels).__name__}")
        if self.labels.is_floating_point() or self.labels.is_complex() or self.labels.dtype == torch.bool:
            raise TypeError(f"labels must be an integer tensor of class indices; got {self.labels.dtype}")
        if self.labels.numel() and int(self.labels.min()) < 0:
            raise ValueError(f"labels must be class indices >= 0; got {int(self.labels.min())}")
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

    def fingerprint(self) -> str:
        """SHA-256 (hex) of the data itself: images and labels bit for bit, class names and
        normalisation (not ``name``, a label). Equal fingerprints mean the same data."""
        head = torch.tensor(list(self.mean) + list(self.std), dtype=torch.float64)
        meta = torch.frombuffer(bytearray("\0".join(self.classes).encode()), dtype=torch.uint8) \
            if self.classes else torch.empty(0, dtype=torch.uint8)
        return tensors_digest([("images", self.images), ("labels", self.labels), ("mean_std", head),
                               ("classes", meta)])

    def subset(self, indices: torch.Tensor | np.ndarray, suffix: str = "") -> ImageDataset:
        """The points at ``indices`` (same classes and normalisation)."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        return ImageDataset(
            self.images[idx], self.labels[idx], self.name + suffix, self.classes, self.mean, self.std
        )

    def subsample(self, n: int | None, seed: int = 0, stratified: bool = True) -> ImageDataset:
        """A seeded random subset of ``n`` points (all points if ``n`` is None or >= N).

        With ``stratified=True`` the class proportions are kept (up to rounding).
        """
        check_int(seed, "seed", low=0)
        if n is None or n >= len(self):
            return self
        return self.subset(subsample_indices(self.labels.numpy(), n, seed, stratified))

    def resized(self, size: int | tuple[int, int]) -> ImageDataset:
        """The same images resized (bilinear, antialiased) to ``size``; values stay in [0, 1]."""
        if isinstance(size, numbers.Integral) and not isinstance(size, bool):
            hw = (check_side(size), check_side(size))
        elif isinstance(size, (tuple, list)) and len(size) == 2:
            hw = (check_side(size[0], "height"), check_side(size[1], "width"))
        else:
            raise TypeError(f"size must be a positive int or a (height, width) pair; got {size!r}")
        if tuple(self.images.shape[2:]) == hw:
            return self
        x = F.interpolate(self.images, size=hw, mode="bilinear", align_corners=False, antialias=True)
        return ImageDataset(x.clamp_(0.0, 1.0), self.labels, self.name, self.classes, self.mean, self.std)

    def split(self, test_fraction: float = 0.5, seed: int = 0) -> tuple[ImageDataset, ImageDataset]:
        """A seeded, stratified (train, test) split."""
        test_fraction = check_real(test_fraction, "test_fraction", low=0.0, high=1.0, low_open=True)
        if test_fraction == 1.0:
            raise ValueError("test_fraction must lie in (0, 1); got 1")
        check_int(seed, "seed", low=0)
        # sklearn's rules for a stratified split, checked here to name the problem
        counts = torch.bincount(self.labels)
        counts = counts[counts > 0]
        n_test = math.ceil(len(self) * test_fraction)
        if int(counts.min()) < 2:
            raise ValueError(f"cannot split {self.name!r} stratified: a class has a single member "
                             f"(class sizes {counts.tolist()})")
        if not len(counts) <= n_test <= len(self) - len(counts):
            raise ValueError(f"cannot split {len(self)} points of {len(counts)} classes with test_fraction "
                             f"{test_fraction:g}: both parts need at least one point per class")
        from sklearn.model_selection import train_test_split

        tr, te = train_test_split(
            np.arange(len(self)), test_size=test_fraction, stratify=self.labels.numpy(),
            random_state=seed,
        )
        return self.subset(np.sort(tr), "/train"), self.subset(np.sort(te), "/test")


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(round(float(v), 4) for v in mean), tuple(round(float(v), 4) for v in std)
