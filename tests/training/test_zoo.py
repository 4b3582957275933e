"""The model zoo: config-keyed cache, checkpoint round trip, default encoder."""

import logging

import pandas as pd
import pytest
import torch

import rmqm.training.checkpoints as checkpoints
import rmqm.training.methods as methods
import rmqm.training.zoo as zoo
from rmqm.models.encoder import Encoder


def test_default_encoder_trains_caches_and_reloads(tmp_path):
    model = checkpoints.default_encoder("digits", dim=8, n_train=256, epochs=1, cache_dir=tmp_path, progress=False)
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

    again = checkpoints.default_encoder("digits", dim=8, n_train=256, epochs=1, cache_dir=tmp_path, progress=False)
    assert again.path == files[0] and again.config == model.config
    torch.testing.assert_close(again.encoder(x), z, rtol=0, atol=0)
    torch.testing.assert_close(again.head(z), model.head(z), rtol=0, atol=0)
    pd.testing.assert_frame_equal(again.history, model.history, check_dtype=False)

    by_name = checkpoints.load_model(model.name, zoo_dir=tmp_path)
    torch.testing.assert_close(by_name.encoder(x), z, rtol=0, atol=0)


def test_default_encoder_falls_back_to_digits(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(checkpoints, "fashion_mnist_available", lambda: False)
    with caplog.at_level(logging.WARNING, logger="rmqm.training.checkpoints"):
        model = checkpoints.default_encoder(dim=4, n_train=128, epochs=1, cache_dir=tmp_path, progress=False)
    assert model.config["data"] == "digits"
    assert "Fashion-MNIST" in caplog.text


def test_config_is_validated_and_names_differ():
    with pytest.raises(ValueError, match="unknown pretraining method 'simclr2'"):
        checkpoints.model_config("digits", "simclr2")
    with pytest.raises(ValueError, match="unknown optimizer"):
        checkpoints.model_config("digits", optimizer="rmsprop")
    with pytest.raises(ValueError, match="unknown architecture"):
        checkpoints.model_config("digits", arch="vit")
    a = checkpoints.model_name(checkpoints.model_config("digits", "nt-xent", 16))
    b = checkpoints.model_name(checkpoints.model_config("digits", "nt-xent", 16, lr=2e-3))
    assert a != b and a.startswith("digits_tiny_nt-xent_d16_adam_s0_")


def test_load_model_missing_names_the_zoo(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint 'nope'"):
        checkpoints.load_model("nope", zoo_dir=tmp_path)
    bad = tmp_path / "bad.pt"
    torch.save({"hello": 1}, bad)
    with pytest.raises(ValueError, match="not an rmqm zoo checkpoint"):
        checkpoints.load_model(bad)


ZOO = dict(methods=("cross-entropy", "nt-xent", "random-init"), dims=(4,), data="digits",
           transfer=("faces",), n_train=64, epochs=1, batch_size=32, n_eval=100, progress=False)


def test_train_zoo_table_cache_and_resume(tmp_path, monkeypatch):
    table = zoo.train_zoo(cache_dir=tmp_path, **ZOO)
    assert list(table["method"]) == ["cross-entropy", "nt-xent", "random-init"]
    assert list(table["family"]) == ["supervised", "self-supervised", "random"]
    for col in ("faces_1nn", "faces_knn", "faces_linear"):
        assert table[col].between(0, 1).all()
    assert table["rankme"].between(1, 4).all() and table["alpha_req"].notna().all()
    assert table.loc[2, "train_time_s"] == 0.0 and table["stopped_early"].eq(False).all()
    assert len(list(tmp_path.glob("*.pt"))) == 3
    summary = zoo.family_summary(table)
    assert set(summary.index) == {"supervised", "self-supervised", "random"}

    def boom(*args, **kwargs):
        raise AssertionError("a cached model was retrained or re-evaluated")

    monkeypatch.setattr(checkpoints, "train_model", boom)
    monkeypatch.setattr(zoo, "evaluate_model", boom)
    pd.testing.assert_frame_equal(zoo.train_zoo(cache_dir=tmp_path, **ZOO), table)


def test_interrupted_zoo_keeps_finished_models(tmp_path, monkeypatch):
    real_evaluate = zoo.evaluate_model
    calls = []

    def fail_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(zoo, "evaluate_model", fail_second)
    with pytest.raises(KeyboardInterrupt):
        zoo.train_zoo(cache_dir=tmp_path, **ZOO)
    saved = {checkpoints.load_model(p).method: checkpoints.load_model(p) for p in tmp_path.glob("*.pt")}
    assert set(saved) == {"cross-entropy", "nt-xent"}  # the second was trained, then interrupted
    assert "faces_1nn" in saved["cross-entropy"].metrics and not saved["nt-xent"].metrics

    monkeypatch.setattr(zoo, "evaluate_model", real_evaluate)
    trained = []
    real_train = checkpoints.train_model
    monkeypatch.setattr(checkpoints, "train_model", lambda config, **kw: trained.append(config["method"]) or real_train(config, **kw))
    table = zoo.train_zoo(cache_dir=tmp_path, **ZOO)
    assert trained == ["random-init"] and table["faces_1nn"].notna().all()


def test_train_zoo_rejects_overlapping_transfer_and_empty_grid(tmp_path):
    with pytest.raises(ValueError, match="must differ from the pretraining set 'digits'"):
        zoo.train_zoo(cache_dir=tmp_path, **{**ZOO, "transfer": ("digits", "faces")})
    with pytest.raises(ValueError, match="zoo is empty"):
        zoo.train_zoo(cache_dir=tmp_path, **{**ZOO, "methods": ()})
    with pytest.raises(ValueError, match="unknown pretraining method"):
        methods.method_family("byol")


def test_cli_zoo_prints_the_table(tmp_path, capsys):
    from rmqm.cli.main import main

    out = tmp_path / "zoo.csv"
    table = main(["zoo", "--methods", "supervised-triplet", "vicreg", "--dims", "4", "6", "--data", "digits",
                  "--transfer", "textures", "--n-train", "64", "--epochs", "1", "--batch-size", "32",
                  "--n-eval", "100", "--zoo-dir", str(tmp_path / "zoo"), "--device", "cpu",
                  "--no-progress", "--data-root", str(tmp_path / "no-files-needed"), "--out", str(out)])
    assert len(table) == 4 and sorted(set(table["dim"])) == [4, 6]
    printed = capsys.readouterr().out
    assert "Model zoo: 4 models pretrained on digits" in printed
    assert "textures_1nn" in printed and "rankme" in printed and "Mean per family" in printed
    pd.testing.assert_frame_equal(pd.read_csv(out), table, check_dtype=False)
    with pytest.raises(SystemExit):
        main(["zoo", "--methods", "byol"])
