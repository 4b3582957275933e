"""Data sets that need no network: Fashion-MNIST (Debian package), digits, faces, textures."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rmqm._utils.validation import check_int
from rmqm.data.dataset import (
    DatasetNotFoundError,
    ImageDataset,
    channel_stats,
    check_side,
)
from rmqm.data.torchvision_sets import default_data_root, torchvision_dataset

__all__ = ['FASHION_MNIST_DIRS', 'FASHION_MNIST_CLASSES', 'FASHION_MNIST_HELP', 'FashionMNISTNotFoundError', 'read_idx', 'fashion_mnist_available', 'load_fashion_mnist', 'load_digits', 'load_faces', 'TEXTURE_IMAGES', 'load_textures']


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


class FashionMNISTNotFoundError(DatasetNotFoundError):
    """Raised when the Fashion-MNIST files are missing; the message says how to get them."""


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

        torchvision_dataset(
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
    size = check_side(size)
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




def load_faces(split: str = "all", n: int | None = None, seed: int = 0, size: int = 28) -> ImageDataset:
    """scikit-image's LFW subset: 100 face and 100 non-face crops (grayscale, 25x25 -> ``size``).

    Labels: 0 = face, 1 = non-face. Shipped with scikit-image, no download.
    ``split`` as in :func:`load_digits`.
    """
    from skimage.data import lfw_subset

    size = check_side(size)
    check_int(seed, "seed", low=0)
    arr = lfw_subset().astype(np.float32)  # (200, 25, 25) in [0, 1]; first 100 are faces
    x = torch.from_numpy(arr).unsqueeze(1)
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp_(0.0, 1.0)
    y = torch.cat([torch.zeros(100, dtype=torch.long), torch.ones(len(arr) - 100, dtype=torch.long)])
    mean, std = channel_stats(x)
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

    size, downscale = check_side(size), check_int(downscale, "downscale", low=1)
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
    mean, std = channel_stats(x)
    ds = ImageDataset(x, y, "textures", TEXTURE_IMAGES, mean, std)
    return _split_all(ds, split).subsample(n, seed)
