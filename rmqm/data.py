"""Offline image datasets as float tensors in [0, 1].

Every loader returns an :class:`ImageDataset`: images of shape ``(N, C, H, W)``,
``float32`` in ``[0, 1]``, integer labels of shape ``(N,)`` and the per-channel
mean/std that an :class:`rmqm.models.Encoder` applies *after* any alteration.

The default data need no network:

* ``fashion-mnist`` -- the original Fashion-MNIST idx files shipped by the Debian
  package ``dataset-fashion-mnist`` (60k train / 10k test, 28x28, 10 classes);
* ``digits`` -- scikit-learn's bundled 8x8 handwritten digits (1797 images),
  upscaled bilinearly to 28x28, a real transfer task that always exists;
* ``faces`` -- scikit-image's LFW subset: 100 faces and 100 non-faces (25x25 -> 28x28);
* ``textures`` -- non-overlapping 28x28 patches of scikit-image's brick, grass and gravel
  photographs (3 classes, 81 patches each).

With local files (or ``download=True`` where the network allows) torchvision supplies
the reference study's data: ``mnist``, ``kmnist``, ``cifar10``, ``omniglot`` and
``caltech101`` (resized to 32x32). They are read from a data root (``root=``, else
``$RMQM_DATA``, else ``./data``) in torchvision's folder layout.

:func:`transfer_tasks` gives the downstream sets of each pretraining set: they always
differ from it, as in the paper (MNIST -> Omniglot, Fashion-MNIST, KMNIST; CIFAR-10 ->
Caltech-101; the offline default Fashion-MNIST -> digits, faces, textures).
"""

from __future__ import annotations

import gzip
import math
import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

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
    "load_faces",
    "load_textures",
    "load_mnist",
    "load_kmnist",
    "load_cifar10",
    "load_omniglot",
    "load_caltech101",
    "DatasetNotFoundError",
    "default_data_root",
    "transfer_tasks",
    "read_idx",
    "fashion_mnist_available",
    "check_real",
    "check_int",
    "check_image_batch",
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


class DatasetNotFoundError(FileNotFoundError):
    """Raised when a dataset's files are missing; the message says how to get them."""


class FashionMNISTNotFoundError(DatasetNotFoundError):
    """Raised when the Fashion-MNIST files are missing; the message says how to get them."""


# --------------------------------------------------------------------------- validators
# Small checks shared by the public entry points of data, pretrain and zoo.


def check_real(
    value: Any, name: str, *, low: float = -math.inf, high: float = math.inf, low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a finite float in ``[low, high]`` (open at ``low`` with ``low_open``, at
    ``high`` with ``high_open``).

    Raises:
        TypeError: ``value`` is not a real number (bools are refused).
        ValueError: ``value`` is NaN, infinite or out of range.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number; got {value}")
    if value < low or (low_open and value == low) or value > high or (high_open and value == high):
        if high == math.inf:
            bound = {(0.0, True): "positive", (0.0, False): "non-negative"}.get(
                (low, low_open), f"{'>' if low_open else '>='} {low:g}")
        else:
            bound = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be {bound}; got {value:g}")
    return value


def check_int(value: Any, name: str, *, low: int | None = None) -> int:
    """``value`` as an int (``>= low`` when given); bools and floats are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {type(value).__name__}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be an integer >= {low}; got {value}")
    return int(value)


def check_image_batch(images: Any, name: str = "images") -> torch.Tensor:
    """Raise unless ``images`` is a non-empty float32/float64 ``(B, C, H, W)`` tensor of finite
    pixels in ``[0, 1]``; returns it unchanged."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, C, H, W); got {type(images).__name__}")
    if images.ndim != 4:
        raise ValueError(f"{name} must be (B, C, H, W); got shape {tuple(images.shape)}")
    if images.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{name} must be float32 or float64 with pixels in [0, 1]; got {images.dtype}")
    if images.numel() == 0:
        raise ValueError(f"{name} are empty: shape {tuple(images.shape)} has a dimension of size 0")
    lo, hi = torch.aminmax(images.detach())
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi)) or not torch.isfinite(images).all():
        raise ValueError(f"{name} contain NaN or inf values")
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"{name} must have pixels in [0, 1]; got values in [{lo:.4g}, {hi:.4g}]")
    return images


def _check_side(size: Any, name: str = "size") -> int:
    return check_int(size, name, low=1)


def _subsample_indices(labels: np.ndarray, n: int, seed: int, stratified: bool = True) -> np.ndarray:
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
        check_int(seed, "seed", low=0)
        if n is None or n >= len(self):
            return self
        return self.subset(_subsample_indices(self.labels.numpy(), n, seed, stratified))

    def resized(self, size: int | tuple[int, int]) -> "ImageDataset":
        """The same images resized (bilinear, antialiased) to ``size``; values stay in [0, 1]."""
        if isinstance(size, numbers.Integral) and not isinstance(size, bool):
            hw = (_check_side(size), _check_side(size))
        elif isinstance(size, (tuple, list)) and len(size) == 2:
            hw = (_check_side(size[0], "height"), _check_side(size[1], "width"))
        else:
            raise TypeError(f"size must be a positive int or a (height, width) pair; got {size!r}")
        if tuple(self.images.shape[2:]) == hw:
            return self
        x = F.interpolate(self.images, size=hw, mode="bilinear", align_corners=False, antialias=True)
        return ImageDataset(x.clamp_(0.0, 1.0), self.labels, self.name, self.classes, self.mean, self.std)

    def split(self, test_fraction: float = 0.5, seed: int = 0) -> tuple["ImageDataset", "ImageDataset"]:
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
        candidates += [Path(root), Path(root) / "FashionMNIST" / "raw"]
    if os.environ.get("RMQM_FASHION_MNIST"):
        candidates.append(Path(os.environ["RMQM_FASHION_MNIST"]))
    candidates.extend(FASHION_MNIST_DIRS)
    candidates.append(default_data_root() / "FashionMNIST" / "raw")  # torchvision's layout
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
    split: str = "test",
    n: int | None = None,
    seed: int = 0,
    root: str | os.PathLike | None = None,
    download: bool = False,
) -> ImageDataset:
    """Fashion-MNIST from local idx files (no download).

    Args:
        split: ``"train"`` (60k) or ``"test"`` (10k).
        n: keep a seeded, stratified subsample of ``n`` points.
        seed: seed of the subsample.
        root: folder holding the idx files; defaults to the Debian package's folder,
            ``$RMQM_FASHION_MNIST``, ``~/.cache/rmqm/fashion-mnist``, ``./data/fashion-mnist``
            or torchvision's ``<data root>/FashionMNIST/raw``.
        download: when the files are missing, fetch them with torchvision into ``root``
            (default :func:`default_data_root`); needs network.
    """
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}")
    if download and not fashion_mnist_available(root):
        import torchvision.datasets as tvd

        _torchvision_dataset(
            "Fashion-MNIST", "<root>/FashionMNIST/raw/", lambda r, d: tvd.FashionMNIST(r, download=d),
            root, True,
        )
        root = Path(root if root is not None else default_data_root()) / "FashionMNIST" / "raw"
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
    size = _check_side(size)
    check_int(seed, "seed", low=0)
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


def _split_all(ds: ImageDataset, split: str) -> ImageDataset:
    """``"all"``, or the ``"train"``/``"test"`` half of a fixed stratified split (seed 0)."""
    if split not in ("all", "train", "test"):
        raise ValueError(f"split must be 'all', 'train' or 'test'; got {split!r}")
    if split == "all":
        return ds
    train, test = ds.split(0.5, seed=0)
    return train if split == "train" else test


def _channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(round(float(v), 4) for v in mean), tuple(round(float(v), 4) for v in std)


def load_faces(split: str = "all", n: int | None = None, seed: int = 0, size: int = 28) -> ImageDataset:
    """scikit-image's LFW subset: 100 face and 100 non-face crops (grayscale, 25x25 -> ``size``).

    Labels: 0 = face, 1 = non-face. Shipped with scikit-image, no download.
    ``split`` as in :func:`load_digits`.
    """
    from skimage.data import lfw_subset

    size = _check_side(size)
    check_int(seed, "seed", low=0)
    arr = lfw_subset().astype(np.float32)  # (200, 25, 25) in [0, 1]; first 100 are faces
    x = torch.from_numpy(arr).unsqueeze(1)
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp_(0.0, 1.0)
    y = torch.cat([torch.zeros(100, dtype=torch.long), torch.ones(len(arr) - 100, dtype=torch.long)])
    mean, std = _channel_stats(x)
    ds = ImageDataset(x, y, "faces", ("face", "non-face"), mean, std)
    return _split_all(ds, split).subsample(n, seed)


TEXTURE_IMAGES: tuple[str, ...] = ("brick", "grass", "gravel")


def load_textures(
    split: str = "all", n: int | None = None, seed: int = 0, size: int = 28, downscale: int = 2
) -> ImageDataset:
    """Texture classification: non-overlapping ``size`` x ``size`` patches of scikit-image's
    brick, grass and gravel photographs (512x512, shipped with scikit-image).

    Each photograph is first averaged down by ``downscale`` (so a patch spans more of the
    texture), then cut on a grid: with the defaults 81 patches per class, 243 in all.
    ``split`` as in :func:`load_digits`.
    """
    import skimage.data
    from skimage.transform import downscale_local_mean

    size, downscale = _check_side(size), check_int(downscale, "downscale", low=1)
    check_int(seed, "seed", low=0)
    patches, labels = [], []
    for label, name in enumerate(TEXTURE_IMAGES):
        img = getattr(skimage.data, name)().astype(np.float32) / 255.0
        if downscale > 1:
            img = downscale_local_mean(img, (downscale, downscale))
        rows, cols = img.shape[0] // size, img.shape[1] // size
        if rows * cols == 0:
            raise ValueError(f"patch size {size} exceeds the {img.shape} texture image")
        grid = img[: rows * size, : cols * size].reshape(rows, size, cols, size).transpose(0, 2, 1, 3)
        patches.append(grid.reshape(-1, size, size))
        labels += [label] * (rows * cols)
    x = torch.from_numpy(np.concatenate(patches)).unsqueeze(1).clamp_(0.0, 1.0)
    y = torch.tensor(labels, dtype=torch.long)
    mean, std = _channel_stats(x)
    ds = ImageDataset(x, y, "textures", TEXTURE_IMAGES, mean, std)
    return _split_all(ds, split).subsample(n, seed)


# --------------------------------------------------------------------------- torchvision data

DATA_ROOT_ENV = "RMQM_DATA"

TORCHVISION_HELP = (
    "{name} files not found under the data root {root!s} (torchvision layout: {layout}). "
    "Pass download=True (CLI: --download) to fetch them with torchvision where the network "
    "allows, or copy the files there; point ${env} or root= at another data root."
)


def default_data_root() -> Path:
    """``$RMQM_DATA`` when set, else ``./data``."""
    return Path(os.environ.get(DATA_ROOT_ENV) or "data")


def _torchvision_dataset(name: str, layout: str, factory: Callable, root, download: bool):
    root = Path(root) if root is not None else default_data_root()
    if download:
        root.mkdir(parents=True, exist_ok=True)
    try:
        return factory(str(root), download)
    except Exception as err:  # torchvision raises RuntimeError; a failed download anything
        if download:
            raise RuntimeError(f"could not download {name} into {root}: {err}") from err
        raise DatasetNotFoundError(
            TORCHVISION_HELP.format(name=name, root=root, layout=layout, env=DATA_ROOT_ENV)
        ) from err


def _idx_dataset(cls_name: str, pretty: str, classes: tuple[str, ...], mean: float, std: float):
    def load(split: str = "test", n: int | None = None, seed: int = 0, root=None, download: bool = False) -> ImageDataset:
        import torchvision.datasets as tvd

        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test'; got {split!r}")
        cls = getattr(tvd, cls_name)
        tv = _torchvision_dataset(
            pretty, f"<root>/{cls_name}/raw/{{train,t10k}}-{{images-idx3,labels-idx1}}-ubyte",
            lambda r, d: cls(r, train=split == "train", download=d), root, download,
        )
        x = (tv.data.to(torch.float32) / 255.0).unsqueeze(1)
        y = torch.as_tensor(tv.targets, dtype=torch.long)
        ds = ImageDataset(x, y, f"{pretty.lower()}/{split}", classes, (mean,), (std,))
        return ds.subsample(n, seed)

    load.__name__ = f"load_{pretty.lower()}"
    load.__doc__ = (
        f"{pretty} (28x28 grayscale, 10 classes) through torchvision from a local data root.\n\n"
        "Args:\n    split: ``\"train\"`` or ``\"test\"``.\n    n, seed: seeded stratified subsample.\n"
        "    root: data root (default :func:`default_data_root`).\n"
        "    download: fetch the files when missing (needs network).\n\n"
        "Raises:\n    DatasetNotFoundError: the files are missing and ``download`` is False."
    )
    return load


load_mnist = _idx_dataset("MNIST", "MNIST", tuple(str(i) for i in range(10)), 0.1307, 0.3081)
load_kmnist = _idx_dataset(
    "KMNIST", "KMNIST", ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"), 0.1918, 0.3483
)

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)


def load_cifar10(split: str = "test", n: int | None = None, seed: int = 0, root=None, download: bool = False) -> ImageDataset:
    """CIFAR-10 (32x32 RGB, 10 classes) through torchvision from a local data root.

    Raises:
        DatasetNotFoundError: the files are missing and ``download`` is False.
    """
    import torchvision.datasets as tvd

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}")
    tv = _torchvision_dataset(
        "CIFAR-10", "<root>/cifar-10-batches-py/", lambda r, d: tvd.CIFAR10(r, train=split == "train", download=d),
        root, download,
    )
    x = torch.from_numpy(np.asarray(tv.data)).permute(0, 3, 1, 2).to(torch.float32) / 255.0
    y = torch.as_tensor(tv.targets, dtype=torch.long)
    ds = ImageDataset(x, y, f"cifar10/{split}", CIFAR10_CLASSES, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
    return ds.subsample(n, seed)


def _pil_to_tensor(images: list, size: int, mode: str) -> torch.Tensor:
    from PIL import Image

    arrs = [np.asarray(im.convert(mode).resize((size, size), Image.BILINEAR), dtype=np.float32) / 255.0 for im in images]
    x = torch.from_numpy(np.stack(arrs))
    return x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)


def load_omniglot(
    split: str = "test", n: int | None = None, seed: int = 0, root=None, download: bool = False, size: int = 28
) -> ImageDataset:
    """Omniglot characters (grayscale, inverted to white strokes on black like MNIST, resized).

    ``split="train"`` is the 964-character background set, ``"test"`` the 659-character
    evaluation set; labels index characters. ``n`` subsamples before images are decoded.

    Raises:
        DatasetNotFoundError: the files are missing and ``download`` is False.
    """
    import torchvision.datasets as tvd

    size = _check_side(size)

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}")
    tv = _torchvision_dataset(
        "Omniglot", "<root>/omniglot-py/images_{background,evaluation}/",
        lambda r, d: tvd.Omniglot(r, background=split == "train", download=d), root, download,
    )
    labels = np.array([c for _, c in tv._flat_character_images], dtype=np.int64)
    idx = np.arange(len(labels)) if n is None or n >= len(labels) else _subsample_indices(labels, n, seed)
    x = 1.0 - _pil_to_tensor([tv[int(i)][0] for i in idx], size, "L")
    return ImageDataset(
        x, torch.from_numpy(labels[idx]), f"omniglot/{split}", tuple(tv._characters), (0.08,), (0.25,)
    )


def load_caltech101(
    split: str = "all", n: int | None = None, seed: int = 0, root=None, download: bool = False, size: int = 32
) -> ImageDataset:
    """Caltech-101 (101 categories, background class excluded) as ``size`` x ``size`` RGB.

    ``split`` as in :func:`load_digits` (a fixed stratified half split). ``n`` subsamples
    before images are decoded.

    Raises:
        DatasetNotFoundError: the files are missing and ``download`` is False.
    """
    import torchvision.datasets as tvd

    size = _check_side(size)

    if split not in ("all", "train", "test"):
        raise ValueError(f"split must be 'all', 'train' or 'test'; got {split!r}")
    tv = _torchvision_dataset(
        "Caltech-101", "<root>/caltech101/101_ObjectCategories/",
        lambda r, d: tvd.Caltech101(r, target_type="category", download=d), root, download,
    )
    labels = np.asarray(tv.y, dtype=np.int64)
    idx = np.arange(len(labels))
    if split != "all":
        from sklearn.model_selection import train_test_split

        tr, te = train_test_split(idx, test_size=0.5, stratify=labels, random_state=0)
        idx = np.sort(tr if split == "train" else te)
    if n is not None and n < len(idx):
        idx = idx[_subsample_indices(labels[idx], n, seed)]
    x = _pil_to_tensor([tv[int(i)][0] for i in idx], size, "RGB")
    mean, std = _channel_stats(x)
    return ImageDataset(x, torch.from_numpy(labels[idx]), f"caltech101/{split}", tuple(tv.categories), mean, std)


_LOADERS: dict[str, Callable[..., ImageDataset]] = {
    "fashion-mnist": load_fashion_mnist,
    "digits": load_digits,
    "faces": load_faces,
    "textures": load_textures,
    "mnist": load_mnist,
    "kmnist": load_kmnist,
    "cifar10": load_cifar10,
    "omniglot": load_omniglot,
    "caltech101": load_caltech101,
}

#: Datasets that ship with installed packages (always available, no files needed).
OFFLINE_DATASETS: tuple[str, ...] = ("digits", "faces", "textures")

#: Downstream transfer sets of each pretraining set (the paper's pairs, and the offline default's).
TRANSFER_TASKS: dict[str, tuple[str, ...]] = {
    "mnist": ("omniglot", "fashion-mnist", "kmnist"),
    "cifar10": ("caltech101",),
    "fashion-mnist": ("digits", "faces", "textures"),
    "digits": ("faces", "textures"),
    "kmnist": ("digits", "faces", "textures"),
}


def available_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset`."""
    return sorted(_LOADERS)


def transfer_tasks(pretraining: str) -> tuple[str, ...]:
    """The downstream sets judged for encoders pretrained on ``pretraining`` (never itself)."""
    if pretraining not in _LOADERS:
        raise ValueError(f"unknown dataset {pretraining!r}; choose one of {available_datasets()}")
    return TRANSFER_TASKS.get(pretraining, tuple(t for t in OFFLINE_DATASETS if t != pretraining))


def load_dataset(name: str, split: str = "test", n: int | None = None, seed: int = 0, **kwargs) -> ImageDataset:
    """Load a dataset by name (see :func:`available_datasets`).

    ``split`` is ``"train"`` or ``"test"`` (``"all"`` too for digits, faces, textures and
    caltech101); extra keyword arguments (``root``, ``download``, ``size``) go to the loader.
    """
    try:
        loader = _LOADERS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; choose one of {available_datasets()}") from None
    return loader(split=split, n=n, seed=seed, **kwargs)
