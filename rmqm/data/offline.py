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

__all__ = [
    "FASHION_MNIST_ENV", "FASHION_MNIST_DIRS", "FASHION_MNIST_FILES", "FASHION_MNIST_CLASSES", "FASHION_MNIST_HELP",
    "FashionMNISTNotFoundError", "read_idx", "fashion_mnist_files", "fashion_mnist_available", "load_fashion_mnist",
    "load_digits", "load_faces", "TEXTURE_IMAGES", "load_textures",
]


#: Environment variable naming the folder of the Fashion-MNIST idx files. When it is set,
#: that folder is the only place looked at (besides an explicit ``root``).
FASHION_MNIST_ENV = "RMQM_FASHION_MNIST"


#: Where the Fashion-MNIST idx files are looked for, in order, when ``RMQM_FASHION_MNIST``
#: is not set.
FASHION_MNIST_DIRS: tuple[Path, ...] = (
    Path("/usr/share/datasets/fashion-mnist"),
    Path.home() / ".cache" / "rmqm" / "fashion-mnist",
    Path("data") / "fashion-mnist",
)


#: The idx files of each split, ``(images, labels)``; each may be gzipped (``.gz``).
FASHION_MNIST_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


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


_IDX_DTYPES: dict[int, str] = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped when its name ends in ``.gz``.

    (torchvision's ``read_sn3_pascalvincent_tensor`` reads only uncompressed files and
    reports damage with bare assertions, hence this reader.)

    Returns:
        The array, of the file's dtype and shape (``uint8`` ``(N, 28, 28)`` for images).

    Raises:
        ValueError: the file is not an IDX file, is truncated or is not valid gzip; the
            message names it.
    """
    path = Path(path)
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as err:  # gzip.BadGzipFile is an OSError; a cut .gz an EOFError
        if isinstance(err, FileNotFoundError):
            raise
        raise ValueError(f"{path} cannot be read as an IDX file ({type(err).__name__}: {err})") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise ValueError(f"{path} is truncated: its header is cut")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    body = len(raw) - 4 - 4 * ndim
    if body != int(np.prod(shape)) * dtype.itemsize:
        raise ValueError(
            f"{path} is truncated or padded: its header announces {int(np.prod(shape))} values "
            f"of shape {shape}, it holds {body // dtype.itemsize}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim).reshape(shape)


def _complete_folder(folder: Path) -> dict[str, Path] | None:
    """The four idx files of ``folder`` (stem -> path, ``.gz`` preferred), or None if any is missing."""
    files = {}
    for stem in (s for pair in FASHION_MNIST_FILES.values() for s in pair):
        found = [folder / f"{stem}{ext}" for ext in (".gz", "") if (folder / f"{stem}{ext}").is_file()]
        if not found:
            return None
        files[stem] = found[0]
    return files


def fashion_mnist_files(root: str | os.PathLike | None = None) -> dict[str, Path]:
    """The four Fashion-MNIST idx files, ``{stem: path}`` (``stem`` as in :data:`FASHION_MNIST_FILES`).

    Looked for in ``root`` (and its torchvision layout ``root/FashionMNIST/raw``) when given,
    then in ``$RMQM_FASHION_MNIST`` when set (and only there), else in
    :data:`FASHION_MNIST_DIRS` and ``<data root>/FashionMNIST/raw``.

    Raises:
        FashionMNISTNotFoundError: no folder holds all four files; when
            ``RMQM_FASHION_MNIST`` is set, the message names it and its folder.
    """
    explicit = [Path(root), Path(root) / "FashionMNIST" / "raw"] if root is not None else []
    env = os.environ.get(FASHION_MNIST_ENV)
    if env:
        explicit.append(Path(env))
    defaults = [] if env else [*FASHION_MNIST_DIRS, default_data_root() / "FashionMNIST" / "raw"]
    for folder in explicit + defaults:
        if (files := _complete_folder(folder)) is not None:
            return files
    if env:
        folder = Path(env)
        state = "does not exist" if not folder.exists() else "is not a folder" if not folder.is_dir() else \
            f"lacks some of the idx files {[s + '.gz' for p in FASHION_MNIST_FILES.values() for s in p]}"
        raise FashionMNISTNotFoundError(
            f"${FASHION_MNIST_ENV} points to {folder}, which {state}; put the four Fashion-MNIST idx "
            f"files there or unset {FASHION_MNIST_ENV} (then {[str(d) for d in FASHION_MNIST_DIRS]} are searched)"
        )
    raise FashionMNISTNotFoundError(FASHION_MNIST_HELP.format(dirs=[str(c) for c in explicit + defaults]))


def fashion_mnist_available(root: str | os.PathLike | None = None) -> bool:
    """True when :func:`fashion_mnist_files` finds the four Fashion-MNIST files."""
    try:
        fashion_mnist_files(root)
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
        root: folder holding the idx files; by default :func:`fashion_mnist_files` looks in
            ``$RMQM_FASHION_MNIST`` when set, else in the Debian package's folder,
            ``~/.cache/rmqm/fashion-mnist``, ``./data/fashion-mnist`` and torchvision's
            ``<data root>/FashionMNIST/raw``.
        download: when the files are missing, fetch them with torchvision into ``root``
            (default :func:`default_data_root`); needs network.

    Returns:
        Images ``(N, 1, 28, 28)`` float32 in ``[0, 1]`` (``uint8 / 255``) with labels ``(N,)``.

    Raises:
        FashionMNISTNotFoundError: the files are missing (the message says where it looked).
        ValueError: bad ``split``, or a damaged idx file.
    """
    stems = FASHION_MNIST_FILES.get(split)
    if stems is None:
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}")
    if download and not fashion_mnist_available(root):
        import torchvision.datasets as tvd

        torchvision_dataset(
            "Fashion-MNIST", "<root>/FashionMNIST/raw/", lambda r, d: tvd.FashionMNIST(r, download=d),
            root, True,
        )
        root = Path(root if root is not None else default_data_root()) / "FashionMNIST" / "raw"
    files = fashion_mnist_files(root)
    images, labels = read_idx(files[stems[0]]), read_idx(files[stems[1]])
    if images.ndim != 3 or labels.shape != images.shape[:1]:
        raise ValueError(f"{files[stems[0]]} and {files[stems[1]]} do not hold (N, H, W) images with N labels; "
                         f"got shapes {images.shape} and {labels.shape}")
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
