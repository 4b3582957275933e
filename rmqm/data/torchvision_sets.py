"""The reference study's data sets through torchvision, read from a local data root."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rmqm.data.dataset import (
    DatasetNotFoundError,
    ImageDataset,
    channel_stats,
    check_side,
    subsample_indices,
)

__all__ = [
    "DATA_ROOT_ENV", "TORCHVISION_HELP", "TORCHVISION_FOLDERS", "default_data_root", "torchvision_folder",
    "load_mnist", "load_kmnist", "CIFAR10_CLASSES", "load_cifar10", "load_omniglot", "load_caltech101",
]


DATA_ROOT_ENV = "RMQM_DATA"


TORCHVISION_HELP = (
    "{name} files not found under the data root {root!s} (torchvision layout: {layout}). "
    "Pass download=True (CLI: --download) to fetch them with torchvision where the network "
    "allows, or copy the files there; point ${env} or root= at another data root."
)


def default_data_root() -> Path:
    """``$RMQM_DATA`` when set, else ``./data``."""
    return Path(os.environ.get(DATA_ROOT_ENV) or "data")


#: The folder under the data root that holds each torchvision-backed data set's files.
TORCHVISION_FOLDERS: dict[str, str] = {
    "mnist": "MNIST/raw", "kmnist": "KMNIST/raw", "cifar10": "cifar-10-batches-py",
    "omniglot": "omniglot-py", "caltech101": "caltech101",
}


def torchvision_folder(name: str, root: str | os.PathLike | None = None) -> Path:
    """The folder of data set ``name`` (a key of :data:`TORCHVISION_FOLDERS`) under ``root``
    (default :func:`default_data_root`); it may not exist."""
    if name not in TORCHVISION_FOLDERS:
        raise ValueError(f"{name!r} is no torchvision-backed data set; have {sorted(TORCHVISION_FOLDERS)}")
    return Path(root if root is not None else default_data_root()) / TORCHVISION_FOLDERS[name]


def torchvision_dataset(name: str, layout: str, factory: Callable[[str, bool], Any],
                        root: str | os.PathLike | None, download: bool) -> Any:
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


def _idx_dataset(cls_name: str, pretty: str, classes: tuple[str, ...], mean: float,
                 std: float) -> Callable[..., ImageDataset]:
    def load(split: str = "test", n: int | None = None, seed: int = 0, root: str | os.PathLike | None = None,
             download: bool = False) -> ImageDataset:
        import torchvision.datasets as tvd

        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test'; got {split!r}")
        cls = getattr(tvd, cls_name)
        tv = torchvision_dataset(
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


def load_cifar10(split: str = "test", n: int | None = None, seed: int = 0, root: str | os.PathLike | None = None,
                 download: bool = False) -> ImageDataset:
    """CIFAR-10 (32x32 RGB, 10 classes) through torchvision from a local data root.

    Raises:
        DatasetNotFoundError: the files are missing and ``download`` is False.
    """
    import torchvision.datasets as tvd

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}")
    tv = torchvision_dataset(
        "CIFAR-10", "<root>/cifar-10-batches-py/", lambda r, d: tvd.CIFAR10(r, train=split == "train", download=d),
        root, download,
    )
    x = torch.from_numpy(np.asarray(tv.data)).permute(0, 3, 1, 2).to(torch.float32) / 255.0
    y = torch.as_tensor(tv.targets, dtype=torch.long)
    ds = ImageDataset(x, y, f"cifar10/{split}", CIFAR10_CLASSES, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
    return ds.subsample(n, seed)


def _pil_to_tensor(images: list, size: int, mode: str) -> torch.Tensor:
    from PIL import Image

    bilinear = Image.Resampling.BILINEAR
    arrs = [np.asarray(im.convert(mode).resize((size, size), bilinear), dtype=np.float32) / 255.0 for im in images]
    x = torch.from_numpy(np.stack(arrs))
    return x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)


def load_omniglot(
    split: str = "test", n: int | None = None, seed: int = 0, root: str | os.PathLike | None = None,
    download: bool = False, size: int = 28,
) -> ImageDataset:
    """Omniglot characters (grayscale, inverted to white strokes on black like MNIST, resized).

    ``split="train"`` is the 964-character background set, ``"test"`` the 659-character
    evaluation set; labels index characters. ``n`` subsamples before images are decoded.

    Raises:
        DatasetNotFoundError: the files are missing and ``download`` is False.
    """
    import torchvision.datasets as tvd

    size = check_side(size)

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}")
    tv = torchvision_dataset(
        "Omniglot", "<root>/omniglot-py/images_{background,evaluation}/",
        lambda r, d: tvd.Omniglot(r, background=split == "train", download=d), root, download,
    )
    labels = np.array([c for _, c in tv._flat_character_images], dtype=np.int64)
    idx = np.arange(len(labels)) if n is None or n >= len(labels) else subsample_indices(labels, n, seed)
    x = 1.0 - _pil_to_tensor([tv[int(i)][0] for i in idx], size, "L")
    return ImageDataset(
        x, torch.from_numpy(labels[idx]), f"omniglot/{split}", tuple(tv._characters), (0.08,), (0.25,)
    )


def load_caltech101(
    split: str = "all", n: int | None = None, seed: int = 0, root: str | os.PathLike | None = None,
    download: bool = False, size: int = 32,
) -> ImageDataset:
    """Caltech-101 (101 categories, background class excluded) as ``size`` x ``size`` RGB.

    ``split`` as in :func:`load_digits` (a fixed stratified half split). ``n`` subsamples
    before images are decoded.

    Raises:
        DatasetNotFoundError: the files are missing and ``download`` is False.
    """
    import torchvision.datasets as tvd

    size = check_side(size)

    if split not in ("all", "train", "test"):
        raise ValueError(f"split must be 'all', 'train' or 'test'; got {split!r}")
    tv = torchvision_dataset(
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
        idx = idx[subsample_indices(labels[idx], n, seed)]
    x = _pil_to_tensor([tv[int(i)][0] for i in idx], size, "RGB")
    mean, std = channel_stats(x)
    return ImageDataset(x, torch.from_numpy(labels[idx]), f"caltech101/{split}", tuple(tv.categories), mean, std)
