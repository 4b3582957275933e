"""Offline transfer sets, torchvision loaders on local files, and clear errors."""

import gzip

import numpy as np
import pytest
import torch

from rmqm.data.dataset import DataFallbackWarning, DatasetNotFoundError
from rmqm.data.offline import (
    FashionMNISTNotFoundError,
    fashion_mnist_available,
    load_digits,
    load_faces,
    load_fashion_mnist,
    load_textures,
    read_idx,
)
from rmqm.data.registry import (
    available_datasets,
    data_identity,
    data_record,
    load_dataset,
    resolve_data,
    transfer_tasks,
)
from rmqm.data.torchvision_sets import load_kmnist, load_mnist


def write_idx(path, array, gz=False):
    """Write an IDX file (the MNIST format) by hand."""
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    (gzip.open if gz else open)(path, "wb").write(header + array.tobytes())


def fake_mnist_folder(folder, n=12, seed=0, gz=False):
    rng = np.random.default_rng(seed)
    ext = ".gz" if gz else ""
    out = {}
    for prefix in ("train", "t10k"):
        images = rng.integers(0, 256, size=(n, 28, 28))
        labels = np.arange(n) % 10
        write_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", images, gz)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", labels, gz)
        out[prefix] = (images, labels)
    return out


def test_faces_are_balanced_images_in_unit_range():
    ds = load_faces()
    assert ds.images.shape == (200, 1, 28, 28) and ds.classes == ("face", "non-face")
    assert ds.labels.bincount().tolist() == [100, 100]
    assert 0.0 <= ds.images.min() and ds.images.max() <= 1.0
    train, test = load_faces("train"), load_faces("test")
    assert len(train) + len(test) == 200
    assert not (train.images[:, None] == test.images[None]).flatten(2).all(-1).any()  # disjoint halves


def test_textures_are_distinct_patches_of_three_images():
    ds = load_textures()
    assert ds.images.shape == (243, 1, 28, 28) and ds.labels.bincount().tolist() == [81, 81, 81]
    assert 0.0 <= ds.images.min() and ds.images.max() <= 1.0
    flat = ds.images.flatten(1)
    assert len(torch.unique(flat, dim=0)) == len(ds)
    assert load_textures(size=16, downscale=1).images.shape == (3 * 32 * 32, 1, 16, 16)
    with pytest.raises(ValueError, match="exceeds"):
        load_textures(size=300)


def test_transfer_sets_differ_from_the_pretraining_set():
    for name in available_datasets():
        tasks = transfer_tasks(name)
        assert tasks and name not in tasks and set(tasks) <= set(available_datasets())
    assert transfer_tasks("mnist") == ("fashion-mnist", "animal-mnist", "digits")  # offline stand-ins
    assert transfer_tasks("cifar10") == ("caltech101",)
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'"):
        transfer_tasks("imagenet")


@pytest.mark.parametrize("loader,folder", [(load_mnist, "MNIST"), (load_kmnist, "KMNIST")])
def test_torchvision_idx_loaders_read_a_local_root(tmp_path, loader, folder):
    files = fake_mnist_folder(tmp_path / folder / "raw")
    for split, prefix in (("train", "train"), ("test", "t10k")):
        ds = loader(split, root=tmp_path)
        images, labels = files[prefix]
        np.testing.assert_allclose(ds.images[:, 0].numpy(), images / 255.0, rtol=0, atol=1e-7)
        np.testing.assert_array_equal(ds.labels.numpy(), labels)
    assert len(load_dataset(folder.lower(), "test", n=5, root=tmp_path)) == 5


@pytest.mark.parametrize("name", ["mnist", "kmnist", "cifar10", "omniglot", "caltech101"])
def test_missing_torchvision_files_say_how_to_get_them(tmp_path, name):
    with pytest.raises(DatasetNotFoundError, match=r"download=True") as err:
        load_dataset(name, "test", root=tmp_path / "empty")
    assert str(tmp_path / "empty") in str(err.value)
    assert isinstance(err.value, FileNotFoundError)


def test_fashion_mnist_in_torchvision_layout(tmp_path, monkeypatch):
    files = fake_mnist_folder(tmp_path / "FashionMNIST" / "raw", gz=True)
    ds = load_fashion_mnist("test", root=tmp_path)
    np.testing.assert_array_equal(ds.labels.numpy(), files["t10k"][1])


def test_bad_names_and_splits_raise():
    with pytest.raises(ValueError, match="unknown dataset 'svhn'"):
        load_dataset("svhn")
    with pytest.raises(ValueError, match="split must be 'all', 'train' or 'test'"):
        load_faces("validation")
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        load_mnist("all")


def test_resized_keeps_range_and_labels():
    ds = load_faces(n=10)
    big = ds.resized(32)
    assert big.images.shape == (10, 1, 32, 32) and torch.equal(big.labels, ds.labels)
    assert 0.0 <= big.images.min() and big.images.max() <= 1.0
    assert ds.resized(28) is ds


@pytest.mark.skipif(not fashion_mnist_available(), reason="Fashion-MNIST files not installed")
def test_fashion_mnist_from_the_debian_package():
    ds = load_dataset("fashion-mnist", "test", n=50)
    assert ds.images.shape == (50, 1, 28, 28) and ds.n_classes == 10


def test_caltech101_from_a_local_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    base = tmp_path / "caltech101" / "101_ObjectCategories"
    for category, mode in (("BACKGROUND_Google", "RGB"), ("ant", "RGB"), ("bee", "L")):
        (base / category).mkdir(parents=True)
        for i in range(1, 5):
            shape = (40, 50, 3) if mode == "RGB" else (40, 50)
            Image.fromarray(rng.integers(0, 256, shape).astype(np.uint8), mode).save(base / category / f"image_{i:04d}.jpg")
    ds = load_dataset("caltech101", "all", root=tmp_path)
    assert ds.images.shape == (8, 3, 32, 32) and ds.classes == ("ant", "bee")  # background left out
    assert ds.labels.tolist() == [0] * 4 + [1] * 4
    assert 0.0 <= ds.images.min() and ds.images.max() <= 1.0
    assert torch.allclose(ds.images[4:, 0], ds.images[4:, 1])  # grayscale -> three equal channels
    assert len(load_dataset("caltech101", "train", root=tmp_path)) == 4


def test_omniglot_is_inverted_to_white_strokes(tmp_path, monkeypatch):
    import torchvision.datasets as tvd
    from PIL import Image

    class FakeOmniglot:  # torchvision's Omniglot needs its zip files; mimic its interface
        def __init__(self, root, background=True, download=False):
            self._characters = ["Latin/a", "Latin/b"]
            self._flat_character_images = [(f"{i}.png", i % 2) for i in range(6)]

        def __getitem__(self, i):
            img = np.full((105, 105), 255, np.uint8)  # white paper ...
            img[40:65, 40:65] = 0  # ... black stroke
            return Image.fromarray(img, "L"), i % 2

    monkeypatch.setattr(tvd, "Omniglot", FakeOmniglot)
    ds = load_dataset("omniglot", "train", root=tmp_path)
    assert ds.images.shape == (6, 1, 28, 28) and ds.labels.tolist() == [0, 1] * 3
    assert ds.images[0, 0, 14, 14] == pytest.approx(1.0) and ds.images[0, 0, 0, 0] == pytest.approx(0.0)
    assert len(load_dataset("omniglot", "test", n=4, root=tmp_path)) == 4


def test_fashion_mnist_pixels_are_uint8_over_255(tmp_path):
    files = fake_mnist_folder(tmp_path, n=20, gz=True)
    ds = load_fashion_mnist("train", root=tmp_path)
    expected = torch.from_numpy(files["train"][0].astype(np.uint8)).to(torch.float32) / 255.0
    assert ds.images.dtype == torch.float32 and torch.equal(ds.images[:, 0], expected)


def test_read_idx_names_a_damaged_file(tmp_path):
    write_idx(tmp_path / "ok", np.zeros((3, 2, 2)))
    assert read_idx(tmp_path / "ok").shape == (3, 2, 2)
    raw = (tmp_path / "ok").read_bytes()
    (tmp_path / "cut").write_bytes(raw[:-1])
    with pytest.raises(ValueError, match=r"cut is truncated or padded: its header announces 12 values"):
        read_idx(tmp_path / "cut")
    (tmp_path / "bad").write_bytes(b"\x01\x02" + raw[2:])
    with pytest.raises(ValueError, match="bad is not an IDX file"):
        read_idx(tmp_path / "bad")
    write_idx(tmp_path / "ok.gz", np.zeros((3, 2, 2)), gz=True)
    (tmp_path / "cut.gz").write_bytes((tmp_path / "ok.gz").read_bytes()[:-6])
    with pytest.raises(ValueError, match=r"cut.gz cannot be read as an IDX file \(EOFError"):
        read_idx(tmp_path / "cut.gz")


def test_fashion_mnist_variable_is_the_only_place_looked_at(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("RMQM_FASHION_MNIST", str(empty))
    with pytest.raises(FashionMNISTNotFoundError, match=f"RMQM_FASHION_MNIST points to {empty}, which lacks"):
        load_fashion_mnist("test")
    assert not fashion_mnist_available()
    monkeypatch.setenv("RMQM_FASHION_MNIST", str(tmp_path / "typo"))
    with pytest.raises(FashionMNISTNotFoundError, match="typo, which does not exist"):
        load_fashion_mnist("test")
    fake_mnist_folder(tmp_path / "fm", n=20, gz=True)
    monkeypatch.setenv("RMQM_FASHION_MNIST", str(tmp_path / "fm"))
    assert len(load_fashion_mnist("test")) == 20


def test_fallback_is_a_warning_and_the_data_used_is_identified(tmp_path, monkeypatch):
    monkeypatch.setenv("RMQM_FASHION_MNIST", str(tmp_path / "nothing-here"))
    with pytest.warns(DataFallbackWarning, match="using 'digits' instead of the requested 'fashion-mnist'"):
        assert resolve_data("fashion-mnist") == "digits"
    with pytest.warns(DataFallbackWarning):
        record = data_record("fashion-mnist")
    assert (record["used"], record["fallback"]) == ("digits", True)
    assert record["pretraining"]["content"] == load_digits("all").fingerprint()
    assert [t["name"] for t in record["transfer"]] == list(transfer_tasks("digits"))

    fake_mnist_folder(tmp_path / "fm", n=20, gz=True)
    monkeypatch.setenv("RMQM_FASHION_MNIST", str(tmp_path / "fm"))
    record = data_record("fashion-mnist")
    assert (record["used"], record["fallback"]) == ("fashion-mnist", False)
    files = dict(record["pretraining"]["files"])
    assert sorted(files) == sorted(p.name for p in (tmp_path / "fm").iterdir()) and len(files) == 4
    fake_mnist_folder(tmp_path / "fm", n=20, seed=1, gz=True)  # other images, same names
    assert dict(data_identity("fashion-mnist")["files"]) != files
    assert data_identity("mnist", root=tmp_path / "no-root") == {
        "name": "mnist", "available": False, "folder": str(tmp_path / "no-root" / "MNIST" / "raw")}


def test_dataset_fingerprint_is_its_content():
    ds = load_digits("test", n=30, seed=0)
    assert ds.fingerprint() == ds.subset(torch.arange(len(ds)), suffix="-renamed").fingerprint()
    images = ds.images.clone()
    images[0, 0, 0, 0] += 1e-6
    changed = type(ds)(images, ds.labels, ds.name, ds.classes, ds.mean, ds.std)
    assert changed.fingerprint() != ds.fingerprint()
    assert load_digits("test", n=30, seed=1).fingerprint() != ds.fingerprint()
