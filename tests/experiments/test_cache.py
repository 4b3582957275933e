"""Store records keyed by the code that computes them and by what they measured."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

import rmqm.experiments.attack_cache as attack_cache
import rmqm.experiments.cache as cache
from rmqm._utils.hashing import PACKAGE_DIR, code_fingerprint, code_modules, file_digest, module_digest
from rmqm.data.offline import load_digits
from rmqm.experiments.store import ResultsStore
from rmqm.metrics.rmqm.alterations import PGD, WhiteNoise
from rmqm.metrics.rmqm.attacks import resolve_attack
from rmqm.models.backbones import TinyCNN
from rmqm.models.encoder import Encoder
from rmqm.training.augmentation import augment


def copy_package(dest: Path) -> Path:
    pkg = dest / "rmqm"
    shutil.copytree(PACKAGE_DIR, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    return pkg


def test_code_fingerprint_follows_code_not_docs_and_only_what_is_imported(tmp_path):
    before = copy_package(tmp_path / "before")
    fp = code_fingerprint("rmqm.metrics.rmqm.manifold", package_dir=before)
    assert len(fp) == 64 and fp == code_fingerprint("rmqm.metrics.rmqm.manifold")  # the copy is the package

    def edited(name: str, edit) -> Path:
        pkg = copy_package(tmp_path / name)
        path = pkg / "metrics" / "rmqm" / "manifold.py"
        old = path.read_text()
        new = edit(old)
        assert new != old  # the edit applied
        path.write_text(new)
        return pkg

    def reword(s: str) -> str:
        for old, new in (('"""RMQM and its components', '"""RMQM (reworded) and its'),
                         ("    if len(points) == 0:", "    # a new comment\n\n    if len(points) == 0:"),
                         ('raise ValueError("no points to score")', 'raise ValueError("nothing to score")')):
            assert old in s
            s = s.replace(old, new)
        return s

    docs = edited("docs", reword)
    assert code_fingerprint("rmqm.metrics.rmqm.manifold", package_dir=docs) == fp
    code = edited("code", lambda s: s.replace('"rmqm": float(np.log1p(', '"rmqm": 2 * float(np.log1p(', 1))
    assert code_fingerprint("rmqm.metrics.rmqm.manifold", package_dir=code) != fp
    # measure imports manifold, so it follows it; the CLI's help texts are imported by no metric
    assert code_fingerprint("rmqm.metrics.rmqm.measure", package_dir=code) != \
        code_fingerprint("rmqm.metrics.rmqm.measure", package_dir=before)
    help_text = copy_package(tmp_path / "help")
    cli = help_text / "cli" / "zoo_cmd.py"
    cli.write_text(cli.read_text() + "\nHELP = 'reworded help'\n")
    assert code_fingerprint("rmqm.metrics.rmqm.measure", package_dir=help_text) == \
        code_fingerprint("rmqm.metrics.rmqm.measure", package_dir=before)
    with pytest.raises(ModuleNotFoundError, match="no module 'rmqm.nope'"):
        code_fingerprint("rmqm.nope")
    # the __init__ of each package on the way counts, what it re-exports does not
    assert code_modules("rmqm.metrics.rmqm.manifold") == [
        "rmqm", "rmqm.metrics", "rmqm.metrics.rmqm", "rmqm.metrics.rmqm.manifold"]
    measure = code_modules("rmqm.metrics.rmqm.measure")
    assert {"rmqm.metrics.rmqm.perturbations", "rmqm.models.encoder"} <= set(measure)
    assert not any(m.startswith(("rmqm.metrics.synbench", "rmqm.cli", "rmqm.study")) for m in measure)


def test_file_and_module_digests(tmp_path):
    f = tmp_path / "x.bin"
    f.write_bytes(b"abc")
    first = file_digest(f)
    f.write_bytes(b"abd")
    assert file_digest(f) != first
    with pytest.raises(FileNotFoundError, match="not a file"):
        file_digest(tmp_path / "missing")
    torch.manual_seed(0)
    enc = Encoder(TinyCNN(1, dim=4, width=4), (0.2,), (0.3,))
    d = module_digest(enc)
    assert d == module_digest(enc)
    with torch.no_grad():
        next(enc.parameters()).view(-1)[0] += 1e-3
    assert module_digest(enc) != d
    torch.manual_seed(0)
    wider = Encoder(TinyCNN(1, dim=4, width=5), (0.2,), (0.3,))
    assert module_digest(wider) != d


@pytest.fixture
def setup(tmp_path):
    torch.manual_seed(0)
    encoder = Encoder(TinyCNN(1, dim=8, width=4), (0.2,), (0.3,)).eval()
    data = load_digits("test", n=12, seed=0)
    return ResultsStore(tmp_path / "store"), encoder, data


NOISE = WhiteNoise(n_levels=4)
KW = dict(seed=0)


def counting(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = cache.measure_rmqm
    monkeypatch.setattr(cache, "measure_rmqm", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    return calls


def test_rmqm_record_follows_the_measuring_code(setup, monkeypatch):
    store, encoder, data = setup
    calls = counting(monkeypatch)
    first = cache.cached_rmqm(store, "m", encoder, data, {"name": "digits"}, NOISE, **KW)
    cache.cached_rmqm(store, "m", encoder, data, {"name": "digits"}, NOISE, **KW)
    assert len(calls) == 1
    real_fp = cache.code_fingerprint
    monkeypatch.setattr(cache, "code_fingerprint", lambda *m: "edited-" + real_fp(*m))
    again = cache.cached_rmqm(store, "m", encoder, data, {"name": "digits"}, NOISE, **KW)
    assert len(calls) == 2 and again["summary"]["rmqm"].iloc[0] == first["summary"]["rmqm"].iloc[0]
    assert again["summary"].attrs["config"]["code"].startswith("edited-")


def test_rmqm_record_follows_the_weights_the_data_and_the_attack_objects(setup, monkeypatch):
    store, encoder, data = setup
    calls = counting(monkeypatch)
    cache.cached_rmqm(store, "m", encoder, data, {"name": "digits"}, NOISE, **KW)
    with torch.no_grad():
        next(encoder.parameters()).view(-1)[0] += 0.5  # same name, other weights (a retrained model)
    cache.cached_rmqm(store, "m", encoder, data, {"name": "digits"}, NOISE, **KW)
    assert len(calls) == 2
    other = load_digits("test", n=12, seed=1)  # same description, other images
    cache.cached_rmqm(store, "m", encoder, other, {"name": "digits"}, NOISE, **KW)
    assert len(calls) == 3
    pgd = PGD.for_method("nt-xent", n_levels=3, step_size=0.01, epsilon=0.1)
    cache.cached_rmqm(store, "m", encoder, data, {"name": "digits"}, pgd, augment=augment, seed=0)
    cache.cached_rmqm(store, "m", encoder, data, {"name": "digits"}, pgd, augment=augment, seed=0)
    assert len(calls) == 4
    key = store.configs()[-1]
    assert key["augment"].startswith("rmqm.training.augmentation.augment@") and len(key["data_content"]) == 64


def test_synbench_record_follows_the_encoder(setup, monkeypatch):
    store, encoder, _ = setup
    calls: list[int] = []
    real = cache.evaluate_synbench
    monkeypatch.setattr(cache, "evaluate_synbench", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    kw = dict(s_values=(1.0, 2.0), n_train=40, n_test=16, thresholds=(0.6,), n_bootstrap=0, seed=0)
    cache.cached_synbench(store, "m", encoder, (1, 28, 28), **kw)
    cache.cached_synbench(store, "m", encoder, (1, 28, 28), **kw)
    assert len(calls) == 1
    with torch.no_grad():
        next(encoder.parameters()).view(-1)[0] += 0.5
    cache.cached_synbench(store, "m", encoder, (1, 28, 28), **kw)
    assert len(calls) == 2


def test_cached_table_keys_the_code_of_its_modules(tmp_path, monkeypatch):
    store = ResultsStore(tmp_path / "store")
    calls: list[int] = []

    def compute():
        import pandas as pd

        calls.append(1)
        return pd.DataFrame({"x": [1.0]})

    cache.cached_table(store, {"kind": "t", "seed": 0}, compute, code=["rmqm.stats.intervals"])
    cache.cached_table(store, {"kind": "t", "seed": 0}, compute, code=["rmqm.stats.intervals"])
    assert len(calls) == 1 and len(store.configs()[0]["code"]) == 64
    real_fp = cache.code_fingerprint
    monkeypatch.setattr(cache, "code_fingerprint", lambda *m: "edited-" + real_fp(*m))
    cache.cached_table(store, {"kind": "t", "seed": 0}, compute, code=["rmqm.stats.intervals"])
    assert len(calls) == 2


def test_alteration_settings_name_the_pgd_mode_and_the_noise_schedule():
    base = (4, 0.5, 3, 2 / 255, 0.3)
    disp = cache.alteration_settings(*base)
    assert disp["pgd"]["pgd_mode"] == "displacement" and disp["pgd"]["attack_loss"] == "displacement"
    assert disp["noise"]["nested"] is False and disp["noise"]["drop"] == "per-series"
    ref = cache.alteration_settings(*base, pgd_mode="reference", attack_batch_size=128)
    assert ref["pgd"]["pgd_mode"] == "reference" and "attack_loss" not in ref["pgd"]  # each model's own
    assert ref["pgd"]["batch_size"] == 128
    assert cache.alteration_settings(*base, "nt-xent")["pgd"]["pgd_mode"] == "own-loss"  # one loss for all
    nested = cache.alteration_settings(*base, noise_schedule="nested", drop="joint")
    assert nested["noise"]["nested"] is True and nested["pgd"]["drop"] == "joint"
    with pytest.raises(ValueError, match="noise schedule"):
        cache.alteration_settings(*base, noise_schedule="stale")
    with pytest.raises(ValueError, match="does not fit"):
        cache.alteration_settings(*base, "nt-xent", pgd_mode="displacement")
    # the random init is attacked with NT-Xent; its clean view is redrawn every step, its result not rotated
    assert resolve_attack("random-init", "reference").keywords() == {
        "pgd_mode": "reference", "attack_loss": "nt-xent", "augment_output": False, "augment_gradient": True,
        "restarts": True, "rotation": "batch"}
    assert resolve_attack("supervised-triplet", "own-loss").keywords() == {
        "pgd_mode": "own-loss", "attack_loss": "supervised-triplet", "augment_output": False,
        "augment_gradient": False, "restarts": False, "rotation": "image"}
    assert resolve_attack("cross-entropy", "reference", restarts=False).keywords()["restarts"] is False
    cell = cache.alteration_settings(*base, pgd_mode="reference", factors={"augment_output": False})
    assert cell["pgd"]["augment_output"] is False and "attack_loss" not in cell["pgd"]
    with pytest.raises(ValueError, match="unknown attack factors"):
        cache.alteration_settings(*base, pgd_mode="reference", factors={"flip": True})
    with pytest.raises(ValueError, match="belong to pgd mode 'reference'"):
        cache.alteration_settings(*base, pgd_mode="own-loss", factors={"restarts": True})


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory):
    from rmqm.training.checkpoints import load_or_train
    from rmqm.training.configs import model_config

    folder = tmp_path_factory.mktemp("zoo")
    names = {}
    for method, epochs in (("random-init", 0), ("cross-entropy", 1)):
        config = model_config("digits", method, 8, width=4, epochs=epochs, n_train=64, batch_size=32,
                              time_budget_s=None)
        names[method] = load_or_train(config, folder, progress=False).name
    return folder, names


def test_zoo_rmqm_keys_hold_the_pgd_mode_and_each_models_own_loss(tmp_path, tiny_zoo, monkeypatch):
    folder, names = tiny_zoo
    base = (3, 0.5, 3, 2 / 255, 0.3)
    settings = {"disp": cache.alteration_settings(*base)["pgd"],
                "own": cache.alteration_settings(*base, pgd_mode="own-loss")["pgd"],
                "ref": cache.alteration_settings(*base, pgd_mode="reference", attack_batch_size=4)["pgd"]}
    rmqm_of = cache.ZooRMQM(ResultsStore(tmp_path / "store"), folder, "digits", 8, settings, batch_size=8)
    keys = {s: rmqm_of.key(names["random-init"], 0, s) for s in settings}
    assert [keys[s]["pgd_mode"] for s in settings] == ["displacement", "own-loss", "reference"]
    assert keys["own"]["attack_loss"] == keys["ref"]["attack_loss"] == "nt-xent"  # the random init, as the reference
    assert keys["ref"]["augment_output"] is False and keys["ref"]["batch_size"] == 4 and keys["own"]["batch_size"] == 8
    ce = rmqm_of.key(names["cross-entropy"], 0, "ref")
    assert ce["attack_loss"] == "cross-entropy" and ce["augment_output"] is True and len(ce["head"]) == 64
    # a loss given for one call on the displacement setting implies the own-loss mode (and the head)
    calls = counting(monkeypatch)
    rmqm_of(names["cross-entropy"], 0, "disp", attack_loss="cross-entropy")
    key = rmqm_of.store.configs()[-1]
    assert (key["pgd_mode"], key["attack_loss"], len(key["head"])) == ("own-loss", "cross-entropy", 64)
    # ... the very measurement of the own-loss setting (read back), and the reference one is another
    tables = {s: rmqm_of(names["cross-entropy"], 0, s)["summary"] for s in ("own", "ref")}
    rmqm_of(names["cross-entropy"], 0, "ref")
    assert len(calls) == 2 and not tables["own"].equals(tables["ref"])


def test_n_points_beyond_the_test_set_attacks_it_whole_and_in_order(tmp_path):
    # the full profile's n_points (10000 on MNIST) keeps the test set whole and in its order, as the
    # reference's DataLoader(test, batch_size=128, shuffle=False): the same images for every seed
    from rmqm.data.registry import load_dataset

    rmqm_of = cache.ZooRMQM(ResultsStore(tmp_path / "store"), tmp_path, "digits", 10**6, {})
    whole = load_dataset("digits", split="test")
    for seed in (0, 1):
        data = rmqm_of.data(seed)
        assert torch.equal(data.images, whole.images) and torch.equal(data.labels, whole.labels)


def test_robust_attack_record_follows_the_attack_code_only(setup, monkeypatch):
    store, encoder, _ = setup
    train, test = load_digits("test", n=40, seed=0).split(0.5, seed=0)
    kw = dict(attack_n=3, epsilons=[0.0, 0.2], radius=0.05, n_steps=2, seed=0, batch_size=8)
    first = attack_cache.cached_robust_attack(store, "m", encoder, train, test, {"task": "digits"}, **kw)
    key = store.configs()[-1]
    # the attack's own module (and what it imports), not the chapter that asked for it
    assert key["code"] == code_fingerprint(*attack_cache.ROBUST_ATTACK_MODULES) and key["radius"] == 0.05
    monkeypatch.setattr(attack_cache, "attack_robust_probes", lambda *a, **k: (_ for _ in ()).throw(AssertionError("again")))
    again = attack_cache.cached_robust_attack(store, "m", encoder, train, test, {"task": "digits"}, **kw)
    assert again.equals(first)
    with pytest.raises(ValueError, match=r"radius must be an L-inf radius in \(0, 1\]"):
        attack_cache.cached_robust_attack(store, "m", encoder, train, test, {"task": "digits"}, **{**kw, "radius": 2.0})
