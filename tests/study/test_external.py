"""The user's encoders inside the study (rmqm.study.chapters.external): scored like a zoo model,
measured by every chapter, labelled, and left out of the zoo's statistics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from rmqm.experiments.cache import EXTERNAL_ATTACK, ZooRMQM, alteration_settings
from rmqm.experiments.store import ResultsStore
from rmqm.models.backbones import TinyCNN
from rmqm.study.chapters import downstream, external, noise_vs_pgd, zoo
from rmqm.study.encoders import EncoderSpecError

ROOT = Path(__file__).resolve().parents[2]
FACTORY = "tests.study.encoder_factories:tiny"  # found from the repository root (the factory's base_dir)


def zoo_table(seeds=(0, 1, 2), with_external: bool = True) -> pd.DataFrame:
    """A small zoo table: 4 encoders (2 families) x seeds, plus one user encoder per seed."""
    rows = []
    for seed in seeds:
        for i, (method, family) in enumerate([("cross-entropy", "supervised"), ("nt-xent", "self-supervised"),
                                              ("supervised-triplet", "supervised"), ("vicreg", "self-supervised")]):
            acc = 0.5 + 0.1 * i + 0.01 * seed
            rows.append(dict(name=f"{method}_s{seed}", data="digits", method=method, family=family, dim=16,
                             optimizer="adam", seed=seed, epoch=2, faces_1nn=acc, faces_knn=acc, faces_linear=acc,
                             rankme=10.0 + i, alpha_req=1.0 + 0.1 * i))
        if with_external:
            rows.append(dict(name="mine", data="digits", method="mine", family=external.EXTERNAL, dim=8,
                             optimizer=external.EXTERNAL, seed=seed, epoch=0, faces_1nn=0.1, faces_knn=0.1,
                             faces_linear=0.1, rankme=99.0, alpha_req=9.0))
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ the table helpers
def test_zoo_only_drops_exactly_the_user_encoders_by_family_or_optimizer():
    table = zoo_table()
    kept = external.zoo_only(table)
    assert len(kept) == len(table) - 3 and external.EXTERNAL not in set(kept["family"])
    assert external.zoo_only(table, include_encoders=True) is table
    no_family = table.drop(columns="family")  # e.g. the PGD-mode table: the optimizer column marks them
    assert len(external.zoo_only(no_family)) == len(kept)
    assert external.zoo_only(table.drop(columns=["family", "optimizer"])).shape[0] == len(table)
    assert external.external_names(table) == ["mine"] and external.external_names(kept) == []


def test_attack_notes_say_the_displacement_loss_for_own_loss_modes_only():
    table = zoo_table()
    notes = external.attack_notes(table, ["reference", "own-loss", "displacement"])
    assert len(notes) == 1 and "mine" in notes[0] and "displacement loss" in notes[0]
    assert "reference, own-loss" in notes[0]
    assert external.attack_notes(table, ["displacement"]) == []
    assert external.attack_notes(external.zoo_only(table), ["own-loss"]) == []
    assert external.encoder_lines(external.zoo_only(table)) == []
    assert "mine" in external.encoder_lines(table)[0]


def test_encoder_table_sets_the_encoders_beside_the_zoo_median():
    table = external.encoder_table(zoo_table(), ["rankme", "faces_1nn", "absent"])
    assert list(table.index) == ["mine", "zoo median"] and list(table.columns) == ["rankme", "faces_1nn"]
    assert table.loc["mine", "rankme"] == 99.0
    assert table.loc["zoo median", "rankme"] == pytest.approx(11.5)  # median of 10, 11, 12, 13


def test_external_rows_one_per_seed():
    model = external.external_model(
        external.EncoderSpec("mine", "factory"), TinyCNN(1, 5, width=4), 1, (8, 8), 5)
    rows = external.external_rows(model, {"rankme": 3.0}, "digits", [0, 2])
    assert rows["seed"].tolist() == [0, 2] and set(rows["family"]) == {external.EXTERNAL}
    assert set(rows["method"]) == {"mine"} and set(rows["dim"]) == {5} and set(rows["epoch"]) == {0}


# ------------------------------------------------------------------ the chapters leave them out of statistics
def test_zoo_reading_and_rank_agreements_do_not_change_with_a_user_encoder():
    with_ext, without = zoo_table(), zoo_table(with_external=False)
    lines_a, table_a = zoo.zoo_reading(with_ext)
    lines_b, table_b = zoo.zoo_reading(without)
    assert lines_a == lines_b
    assert "mine" in table_a.index.get_level_values("method") and "mine" not in table_b.index.get_level_values(
        "method")
    scores = with_ext.assign(noise=with_ext["rankme"], pgd=-with_ext["faces_1nn"])
    assert noise_vs_pgd.alteration_agreement(scores) == noise_vs_pgd.alteration_agreement(
        external.zoo_only(scores))


def _write_results(folder: Path, table: pd.DataFrame) -> None:
    table.to_parquet(folder / "zoo.parquet")
    rmqm = [dict(name=r["name"], seed=r["seed"], perturbation=p, rmqm=r["faces_1nn"] * (1 if p == "noise" else -1)
                 + 0.01 * r["seed"]) for _, r in table.iterrows() for p in ("noise", "pgd-displacement")]
    pd.DataFrame(rmqm).to_parquet(folder / "rmqm_scores.parquet")
    syn = [dict(name=r["name"], seed=r["seed"], threshold=0.7, epsilon=0.0, score=r["faces_linear"] + 0.01 * r["seed"])
           for _, r in table.iterrows()]
    pd.DataFrame(syn).to_parquet(folder / "synbench_scores.parquet")


def test_verdicts_leave_the_user_encoders_out_unless_asked(tmp_path: Path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _write_results(tmp_path / "a", zoo_table())
    _write_results(tmp_path / "b", zoo_table(with_external=False))
    scores = downstream.score_table(tmp_path / "a", 0.7, 0.0)
    plain = downstream.score_table(tmp_path / "b", 0.7, 0.0)
    # one row per (name, seed): the user encoder's seeds are not crossed with each other
    assert len(scores) == len(plain) + 3
    mine = scores[scores["name"] == "mine"].sort_values("seed")
    assert mine["rmqm_noise"].tolist() == pytest.approx([0.1, 0.11, 0.12])
    assert downstream.alpha_expectation(scores) == downstream.alpha_expectation(plain)
    kw = dict(n_resamples=100, random_state=0)
    a = downstream.verdicts(scores, tmp_path / "a", **kw)
    b = downstream.verdicts(plain, tmp_path / "b", **kw)
    pd.testing.assert_frame_equal(a, b)
    c = downstream.verdicts(scores, tmp_path / "a", include_encoders=True, **kw)
    assert c["n_configs"].max() == a["n_configs"].max() + 1  # the user encoder is one more configuration


# ------------------------------------------------------------------ notebook 01's step and the later chapters' loader
def _zoo_folder(tmp_path: Path) -> Path:
    results = tmp_path / "results"
    (results / "zoo").mkdir(parents=True)
    (results / "zoo" / "data_used.json").write_text(json.dumps({"transfer": [{"name": "faces"}]}))
    table = zoo_table(seeds=(0, 1), with_external=False)
    table.to_parquet(results / "zoo.parquet")
    return results


def test_add_encoders_scores_records_and_reloads_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RMQM_ALLOW_CODE", "1")  # a factory spec runs code: allowed explicitly
    results = _zoo_folder(tmp_path)
    torch.save(TinyCNN(1, 6, width=4).state_dict(), tmp_path / "mine.pt")
    specs = [{"name": "ckpt", "checkpoint": "mine.pt", "arch": "tiny", "dim": 6},
             {"name": "fact", "factory": FACTORY, "kwargs": {"dim": 3}}]
    base = pd.read_parquet(results / "zoo.parquet")
    out = external.add_encoders(results, base, specs, base_dir=tmp_path, n_transfer=60, n_eval=60)
    headline = pd.read_parquet(results / "zoo.parquet")
    ext = headline[headline["family"] == external.EXTERNAL]
    assert sorted(ext["name"].unique()) == ["ckpt", "fact"] and len(ext) == 4  # 2 encoders x 2 seeds
    assert ext.groupby("name")["dim"].first().to_dict() == {"ckpt": 6, "fact": 3}
    for col in ("faces_1nn", "faces_knn", "faces_linear", "indist_knn", "indist_linear", "rankme", "alpha_req"):
        assert ext[col].notna().all(), col
        assert ext.groupby("name")[col].nunique().eq(1).all()  # the same encoder on every seed
    assert len(pd.read_parquet(results / "zoo_checkpoints.parquet")) == len(out)
    models = external.load_external(results)
    assert sorted(models) == ["ckpt", "fact"]
    x = torch.rand(2, 1, 28, 28)
    assert models["ckpt"].encoder(x).shape == (2, 6) and models["fact"].encoder(x).shape == (2, 3)
    assert external.zoo_model("ckpt", results).name == "ckpt"
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        external.zoo_model("absent", results)
    # a rerun without encoders forgets them
    assert external.add_encoders(results, base, []) is base
    assert external.load_external(results) == {}


def test_add_encoders_names_a_spec_that_does_not_load(tmp_path: Path):
    results = _zoo_folder(tmp_path)
    with pytest.raises(EncoderSpecError, match=r"encoders\[0\] \('gone'\).*not found"):
        external.add_encoders(results, pd.read_parquet(results / "zoo.parquet"),
                              [{"name": "gone", "checkpoint": "missing.pt"}], base_dir=tmp_path)


def test_zoo_rmqm_attacks_a_user_encoder_with_the_displacement_loss(tmp_path: Path):
    settings = alteration_settings(3, 1.0, 3, 0.01, 0.3, pgd_mode="own-loss")
    model = external.external_model(
        external.EncoderSpec("mine", "factory"), TinyCNN(1, 5, width=4), 1, (28, 28), 5)
    rmqm_of = ZooRMQM(ResultsStore(tmp_path / "store"), tmp_path / "zoo", "digits", 8, settings, batch_size=8,
                      external={"mine": model})
    key = rmqm_of.key("mine", 0, "pgd")
    assert {k: key[k] for k in EXTERNAL_ATTACK.keywords()} == EXTERNAL_ATTACK.keywords() and key.get("head") is None
    tables = rmqm_of("mine", 0, "pgd")
    assert np.isfinite(tables["summary"]["rmqm"]).all()
    with pytest.raises(FileNotFoundError):
        rmqm_of.key("not-a-model", 0, "pgd")


# ------------------------------------------------------------------ the CI check of issue 15
@pytest.mark.slow
def test_tiny_study_shows_a_checkpoint_and_a_factory_encoder_in_every_chapter(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RMQM_ALLOW_CODE", "1")  # a factory spec runs code: allowed explicitly (kernels inherit it)
    from rmqm.study.run import run_study

    torch.save(TinyCNN(1, 12, width=4).state_dict(), tmp_path / "mine.pt")
    encoders = [{"name": "my-ckpt", "checkpoint": str(tmp_path / "mine.pt"), "arch": "tiny", "dim": 12},
                {"name": "my-factory", "factory": FACTORY, "kwargs": {"dim": 6}}]
    # syn_n_samples: the SynBench controls of notebook 04 need more samples than pixels (28 x 28)
    run_study("tiny", {"encoders": encoders, "syn_n_samples": 800}, root=ROOT, build_dir=tmp_path / "build",
              build=False, progress=False, log=lambda s: None)
    results = tmp_path / "build" / "tiny" / "results"
    names = {"my-ckpt", "my-factory"}
    for table in ("zoo.parquet", "zoo_checkpoints.parquet", "rmqm_scores.parquet", "synbench_scores.parquet",
                  "synbench_directions.parquet", "robust_attack.parquet", "all_scores.parquet"):
        frame = pd.read_parquet(results / table)
        assert names <= set(frame["name"]), table
        assert set(frame.loc[frame["name"].isin(names), "family"]) == {external.EXTERNAL}, table
    rmqm = pd.read_parquet(results / "rmqm_scores.parquet")
    assert set(rmqm.loc[rmqm["name"].isin(names), "perturbation"]) == set(rmqm["perturbation"])  # every mode
    claim1 = pd.read_parquet(results / "synbench_claim1.parquet")  # SynBench's claims count every encoder
    zoo_configs = pd.read_parquet(results / "zoo.parquet").groupby(["method", "dim", "optimizer"]).ngroups
    assert claim1["n_configs"].max() == zoo_configs
    verdicts = pd.read_parquet(results / "verdicts.parquet")  # the zoo's statistics: without them
    zoo_seeds = pd.read_parquet(results / "zoo.parquet")
    n_zoo = zoo_seeds[zoo_seeds["family"] != external.EXTERNAL].groupby(["method", "dim", "optimizer"]).ngroups
    zoo_rows = verdicts[verdicts["encoders"] == "without"]  # "with": the SynBench family that adds them
    assert zoo_rows["n_configs"].dropna().max() <= n_zoo
    for nb in ("02_ssl_vs_supervised", "03_noise_vs_pgd"):
        text = (tmp_path / "build" / "tiny" / "notebooks" / f"{nb}.ipynb").read_text()
        assert "my-ckpt (added encoder): no training loss" in text, nb


def test_pretrained_gate_refuses_a_pretrained_builtin_at_a_failing_size_and_names_one_that_passes():
    pytest.importorskip("efficientnet_lite_pytorch")
    from rmqm.models.adapters import InputAdapter
    from rmqm.models.pretrained import GateError, load_pretrained
    from rmqm.study.chapters.external import pretrained_gate

    try:
        net = load_pretrained("efficientnet-lite0")
        with pytest.raises(GateError, match=r"lite0-48px is not a working pretrained representation at 48 px: "
                                            r"0/20 .* input_size: \d+ or more"):
            pretrained_gate("lite0-48px", InputAdapter(net, 3, 48))
    except FileNotFoundError as error:  # foolbox's sample files missing
        pytest.skip(str(error))
    passing = pretrained_gate("lite0-224px", InputAdapter(net, 3, 224))
    assert passing is not None and passing.passed and passing.input_size == 224
    twin = load_pretrained("efficientnet-lite0", pretrained=False)
    assert pretrained_gate("lite0-random", InputAdapter(twin, 3, 48)) is None  # nothing to check
    assert pretrained_gate("flat", torch.nn.Flatten()) is None
