"""Data sets by name, and the transfer tasks of each pretraining set."""

from __future__ import annotations

from typing import Callable

from rmqm.data.dataset import ImageDataset
from rmqm.data.offline import load_digits, load_faces, load_fashion_mnist, load_textures
from rmqm.data.torchvision_sets import (
    load_caltech101,
    load_cifar10,
    load_kmnist,
    load_mnist,
    load_omniglot,
)

__all__ = ['OFFLINE_DATASETS', 'TRANSFER_TASKS', 'available_datasets', 'transfer_tasks', 'load_dataset']


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
