"""The model zoo: config-, code- and data-keyed cache, checkpoint round trip and
quarantine, default encoder."""

import json

import pandas as pd
import pytest
import torch

import rmqm.training.checkpoints as checkpoints
import rmqm.training.methods as methods
import rmqm.training.zoo as zoo
from rmqm.data.dataset import DataFallbackWarning
from rmqm.models.encoder import Encoder
from rmqm.training.configs import TrainingConfig


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


def test_default_encoder_falls_back_to_digits_loudly(tmp_path, monkeypatch):
    empty = tmp_path / "no-files"
    empty.mkdir()
    monkeypatch.setenv("RMQM_FASHION_MNIST", str(empty))
    with pytest.warns(DataFallbackWarning, match=r"using 'digits' instead of the requested 'fashion-mnist'.*"
                                                 r"RMQM_FASHION_MNIST points to .*no-files"):
        model = checkpoints.default_encoder(dim=4, n_train=128, epochs=1, cache_dir=tmp_path, progress=False)
    assert model.config["data"] == "digits"
    assert model.training["data"]["name"] == "digits" and model.training["data"]["content"]


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


def test_zero_epochs_are_refused_except_for_random_init():
    with pytest.raises(ValueError, match=r"epochs must be at least 1 for method 'cross-entropy'; got 0.*random-init"):
        checkpoints.model_config("digits", "cross-entropy", epochs=0)
    with pytest.raises(ValueError, match="epochs must be an integer >= 0"):
        checkpoints.model_config("digits", "nt-xent", epochs=-1)
    assert checkpoints.model_config("digits", "random-init", epochs=0)["epochs"] == 0


def test_load_model_missing_names_the_zoo(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint 'nope'"):
        checkpoints.load_model("nope", zoo_dir=tmp_path)
    bad = tmp_path / "bad.pt"
    torch.save({"hello": 1}, bad)
    with pytest.raises(ValueError, match="not an rmqm zoo checkpoint"):
        checkpoints.load_model(bad)
    assert bad.is_file()  # a file named by path is the caller's: never moved


SMALL = dict(dim=4, n_train=64, epochs=1, progress=False)


def test_truncated_checkpoint_is_quarantined_and_retrained(tmp_path):
    model = checkpoints.default_encoder("digits", cache_dir=tmp_path, **SMALL)
    raw = model.path.read_bytes()
    model.path.write_bytes(raw[: len(raw) // 2])
    # loading it by name (as the study's notebooks do) moves it aside and says how to retrain it
    with pytest.warns(checkpoints.CheckpointWarning, match=f"damaged zoo checkpoint .*{model.name}.pt moved to"):
        with pytest.raises(checkpoints.CorruptCheckpointError, match=r"not a readable .*\n.*quarantine.*rerunning the zoo"):
            checkpoints.load_model(model.name, tmp_path)
    assert not model.path.exists() and len(list((tmp_path / "quarantine").iterdir())) == 1
    again = checkpoints.default_encoder("digits", cache_dir=tmp_path, **SMALL)  # retrained, same numbers
    x = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(again.encoder(x), model.encoder(x), rtol=0, atol=0)

    # load_or_train itself quarantines a damaged file and retrains in one go
    again.path.write_bytes(b"garbage")
    with pytest.warns(checkpoints.CheckpointWarning, match="retraining it"):
        third = checkpoints.default_encoder("digits", cache_dir=tmp_path, **SMALL)
    assert third.path.is_file() and len(list((tmp_path / "quarantine").iterdir())) == 2


def test_checkpoint_of_other_training_code_or_data_is_retrained(tmp_path, monkeypatch):
    model = checkpoints.default_encoder("digits", cache_dir=tmp_path, **SMALL)
    assert set(model.training) == {"code", "data"} and len(model.training["code"]) == 64
    trained = []
    real_train = checkpoints.train_model
    monkeypatch.setattr(checkpoints, "train_model", lambda config, **kw: trained.append(1) or real_train(config, **kw))
    checkpoints.default_encoder("digits", cache_dir=tmp_path, **SMALL)
    assert trained == []  # same code, same data: reused

    real_fp = checkpoints.code_fingerprint
    monkeypatch.setattr(checkpoints, "code_fingerprint", lambda *m: "edited-" + real_fp(*m))
    changed = checkpoints.default_encoder("digits", cache_dir=tmp_path, **SMALL)
    assert trained == [1] and changed.training["code"].startswith("edited-")
    assert checkpoints.load_model(model.name, tmp_path).training == changed.training  # the file was replaced

    monkeypatch.setattr(checkpoints, "data_identity", lambda name, **kw: {"name": name, "content": "other"})
    checkpoints.default_encoder("digits", cache_dir=tmp_path, **SMALL)
    assert trained == [1, 1]


ZOO = dict(methods=("cross-entropy", "nt-xent", "random-init"), dims=(4,), data="digits",
           transfer=("faces",), training=TrainingConfig(n_train=64, epochs=1, batch_size=32), n_eval=100,
           progress=False)


@pytest.mark.slow
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


@pytest.mark.slow
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
    curves = main(["zoo", "--methods", "vicreg", "--dims", "4", "--data", "digits", "--transfer", "textures",
                   "--n-train", "64", "--checkpoints", "2", "1", "--batch-size", "32", "--accumulate", "2",
                   "--n-eval", "100", "--zoo-dir", str(tmp_path / "zoo"), "--device", "cpu", "--no-progress"])
    assert curves["epoch"].tolist() == [1, 2]
    printed = capsys.readouterr().out
    assert "Model zoo: 1 models at epochs 1, 2" in printed and "plateau" in printed


def test_scores_follow_the_evaluation_code_and_data_and_the_data_used_is_recorded(tmp_path, monkeypatch):
    table = zoo.train_zoo(cache_dir=tmp_path, **ZOO)
    used = json.loads((tmp_path / zoo.DATA_USED).read_text())
    assert used["requested"] == used["used"] == "digits" and used["fallback"] is False
    assert [t["name"] for t in used["transfer"]] == ["faces"] and used["transfer"][0]["content"]

    evaluated, trained = [], []
    real_eval, real_train = zoo.evaluate_model, checkpoints.train_model
    monkeypatch.setattr(zoo, "evaluate_model", lambda *a, **kw: evaluated.append(1) or real_eval(*a, **kw))
    monkeypatch.setattr(checkpoints, "train_model", lambda *a, **kw: trained.append(1) or real_train(*a, **kw))
    real_fp = zoo.code_fingerprint
    monkeypatch.setattr(zoo, "code_fingerprint", lambda *m: "edited-" + real_fp(*m))  # e.g. RankMe changed
    again = zoo.train_zoo(cache_dir=tmp_path, **ZOO)
    assert len(evaluated) == 3 and trained == []  # scores recomputed, models reused
    pd.testing.assert_frame_equal(again, table)  # same code behaviour, same numbers

    real_identity = zoo.data_record
    monkeypatch.setattr(zoo, "data_record", lambda *a, **kw: {
        **(r := real_identity(*a, **kw)), "transfer": [{**r["transfer"][0], "content": "new faces"}]})
    zoo.train_zoo(cache_dir=tmp_path, **ZOO)
    assert len(evaluated) == 6 and trained == []  # other transfer data: scored again


# ---------------------------------------------------------------- checkpoints along training


def test_checkpoint_of_a_longer_run_is_the_model_of_fewer_epochs_and_is_cached(tmp_path, monkeypatch):
    config = checkpoints.model_config("digits", "nt-xent", 4, width=4, epochs=2, n_train=64, batch_size=16,
                                      accumulate=3, time_budget_s=None)
    models = checkpoints.load_or_train_checkpoints(config, [2, 1], tmp_path, progress=False)
    assert list(models) == [1, 2]
    assert [m.config["epochs"] for m in models.values()] == [1, 2]
    assert {p.stem for p in tmp_path.glob("*.pt")} == {m.name for m in models.values()}
    one = checkpoints.train_model(checkpoints.model_config(**{**config, "epochs": 1}), progress=False)
    assert one.name == models[1].name
    for name, value in one.encoder.state_dict().items():
        assert torch.equal(value, models[1].encoder.state_dict()[name]), name
    pd.testing.assert_frame_equal(one.history.drop(columns="elapsed_s"),
                                  models[1].history.drop(columns="elapsed_s"), check_dtype=False)
    assert not any(torch.equal(v, models[2].encoder.state_dict()[k]) for k, v in one.encoder.state_dict().items()
                   if v.is_floating_point() and v.numel() > 1)

    def boom(*args, **kwargs):
        raise AssertionError("a cached checkpoint was retrained")

    monkeypatch.setattr(checkpoints, "train_model", boom)
    again = checkpoints.load_or_train_checkpoints(config, [1, 2], tmp_path, progress=False)
    assert all(torch.equal(again[2].encoder.state_dict()[k], v) for k, v in models[2].encoder.state_dict().items())
    with pytest.raises(ValueError, match="epochs must be at least 1 for method .nt-xent."):  # 0: random-init only
        checkpoints.load_or_train_checkpoints(config, [0], tmp_path)


def test_a_missing_checkpoint_retrains_once_and_keeps_the_others(tmp_path, monkeypatch):
    config = checkpoints.model_config("digits", "cross-entropy", 4, width=4, epochs=4, n_train=64, batch_size=32,
                                      time_budget_s=None)
    models = checkpoints.load_or_train_checkpoints(config, [1, 2, 4], tmp_path, progress=False)
    models[2].path.unlink()
    kept = models[4].path.stat().st_mtime_ns
    runs = []
    real_train = checkpoints.train_model
    monkeypatch.setattr(checkpoints, "train_model", lambda c, **kw: runs.append(c["epochs"]) or real_train(c, **kw))
    again = checkpoints.load_or_train_checkpoints(config, [1, 2, 4], tmp_path, progress=False)
    assert runs == [2] and models[4].path.stat().st_mtime_ns == kept
    assert all(torch.equal(again[2].encoder.state_dict()[k], v) for k, v in models[2].encoder.state_dict().items())


@pytest.mark.slow
def test_train_zoo_keeps_a_row_per_checkpoint_and_reloads_them(tmp_path, monkeypatch):
    evaluated = []
    real_eval = zoo.evaluate_model
    monkeypatch.setattr(zoo, "evaluate_model", lambda *a, **kw: evaluated.append(a[0].name) or real_eval(*a, **kw))
    table = zoo.train_zoo(cache_dir=tmp_path, **{**ZOO, "checkpoints": [1, 2]})
    assert list(zip(table["method"], table["epoch"], strict=True)) == [
        ("cross-entropy", 1), ("cross-entropy", 2), ("nt-xent", 1), ("nt-xent", 2), ("random-init", 1),
        ("random-init", 2)]
    assert table["name"].is_unique and len(list(tmp_path.glob("*.pt"))) == 6
    assert len(evaluated) == 5  # the random init's checkpoints are one model, scored once
    for col in ("indist_knn", "indist_linear", "faces_knn"):
        assert table[col].between(0, 1).all()
    ri = table[table["method"] == "random-init"]
    assert ri.drop(columns=["name", "epoch"]).nunique().le(1).all()
    assert table.loc[table["method"] == "cross-entropy", "epochs_completed"].tolist() == [1, 2]

    def boom(*args, **kwargs):
        raise AssertionError("a cached model was retrained or re-evaluated")

    monkeypatch.setattr(checkpoints, "train_model", boom)
    monkeypatch.setattr(zoo, "evaluate_model", boom)
    pd.testing.assert_frame_equal(zoo.train_zoo(cache_dir=tmp_path, **{**ZOO, "checkpoints": [2, 1]}), table)
    # the zoo of epochs=1 alone is the first checkpoint, already there
    pd.testing.assert_frame_equal(zoo.train_zoo(cache_dir=tmp_path, **ZOO),
                                  table[table["epoch"] == 1].reset_index(drop=True))


def test_zoo_checkpoints_are_validated():
    assert zoo.zoo_checkpoints(None, 3) == [3]
    assert zoo.zoo_checkpoints([4, 1, 2, 4], 3) == [1, 2, 4]
    with pytest.raises(ValueError, match="checkpoints is empty"):
        zoo.zoo_checkpoints([], 3)
    with pytest.raises(ValueError, match="checkpoint epoch must be an integer >= 1"):
        zoo.zoo_checkpoints([0, 1], 3)
    with pytest.raises(TypeError, match="list of epoch counts"):
        zoo.zoo_checkpoints(5, 3)


def test_training_config_is_the_checkpoint_key_and_refuses_bad_values():
    config = TrainingConfig("digits", "nt-xent", 8, epochs=3, n_train=None)
    assert checkpoints.model_config("digits", "nt-xent", 8, epochs=3, n_train=None) == config.key()
    assert TrainingConfig.from_key(config.key()) == config and config.replace(epochs=1).epochs == 1
    assert TrainingConfig(arch="lenet").key()["width"] is None  # width belongs to the tiny CNN only
    with pytest.raises(ValueError, match=r"unknown training config entries \['colour'\]"):
        TrainingConfig.from_key({**config.key(), "colour": "red"})
    with pytest.raises(ValueError, match="unknown pretraining method"):
        config.replace(method="dreaming")
    with pytest.raises(TypeError, match="training must be a TrainingConfig"):
        zoo.train_zoo(["nt-xent"], [4], training=config.key())
