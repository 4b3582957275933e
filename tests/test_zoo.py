"""The model zoo: config-keyed cache, checkpoint round trip, default encoder."""

import logging

import pandas as pd
import pytest
import torch

from rmqm import zoo
from rmqm.models import Encoder
from rmqm.pretrain import augment


def test_default_encoder_trains_caches_and_reloads(tmp_path):
    model = zoo.default_encoder("digits", dim=8, n_train=256, epochs=1, cache_dir=tmp_path, progress=False)
    assert isinstance(model.encoder, Encoder) and not model.encoder.training
    assert model.head is not None and not model.head.training
    assert model.config["method"] == "cross-entropy" and model.config["dim"] == 8
    assert isinstance(model.history, pd.DataFrame) and len(model.history) == 2  # 256 // 128 steps
    x = torch.rand(6, 1, 28, 28)
    z = model.encoder(x)
    assert z.shape == (6, 8)
    assert model.head(z).shape == (6, 10)
    files = list(tmp_path.glob("*.pt"))
    assert [f.stem for f in files] == [model.name]
    assert not list(tmp_path.glob("*.tmp"))  # atomic write left no temp file

    again = zoo.default_encoder("digits", dim=8, n_train=256, epochs=1, cache_dir=tmp_path, progress=False)
    assert again.path == files[0] and again.config == model.config
    torch.testing.assert_close(again.encoder(x), z, rtol=0, atol=0)
    torch.testing.assert_close(again.head(z), model.head(z), rtol=0, atol=0)
    pd.testing.assert_frame_equal(again.history, model.history, check_dtype=False)

    by_name = zoo.load_model(model.name, zoo_dir=tmp_path)
    torch.testing.assert_close(by_name.encoder(x), z, rtol=0, atol=0)


def test_default_encoder_falls_back_to_digits(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(zoo, "fashion_mnist_available", lambda: False)
    with caplog.at_level(logging.WARNING, logger="rmqm.zoo"):
        model = zoo.default_encoder(dim=4, n_train=128, epochs=1, cache_dir=tmp_path, progress=False)
    assert model.config["data"] == "digits"
    assert "Fashion-MNIST" in caplog.text


def test_config_is_validated_and_names_differ():
    with pytest.raises(ValueError, match="unknown pretraining method 'simclr2'"):
        zoo.model_config("digits", "simclr2")
    with pytest.raises(ValueError, match="unknown optimizer"):
        zoo.model_config("digits", optimizer="rmsprop")
    with pytest.raises(ValueError, match="unknown architecture"):
        zoo.model_config("digits", arch="vit")
    a = zoo.model_name(zoo.model_config("digits", "nt-xent", 16))
    b = zoo.model_name(zoo.model_config("digits", "nt-xent", 16, lr=2e-3))
    assert a != b and a.startswith("digits_tiny_nt-xent_d16_adam_s0_")


def test_load_model_missing_names_the_zoo(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint 'nope'"):
        zoo.load_model("nope", zoo_dir=tmp_path)
    bad = tmp_path / "bad.pt"
    torch.save({"hello": 1}, bad)
    with pytest.raises(ValueError, match="not an rmqm zoo checkpoint"):
        zoo.load_model(bad)


def test_augment_is_seeded_and_stays_in_range():
    x = torch.rand(4, 1, 28, 28)
    a = augment(x, torch.Generator().manual_seed(3))
    b = augment(x, torch.Generator().manual_seed(3))
    c = augment(x, torch.Generator().manual_seed(4))
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a, c)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        augment(torch.rand(28, 28), torch.Generator())
