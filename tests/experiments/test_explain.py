"""Why a result is recomputed: parameters, code (which module), data or weights."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone

import pandas as pd
import torch

from rmqm._utils.hashing import PACKAGE_DIR, code_fingerprint
from rmqm.cli.main import main
from rmqm.data.offline import load_digits
from rmqm.experiments.cache import cached_rmqm
from rmqm.experiments.explain import (
    RECOMPUTE_LOG,
    RUN_STARTED_ENV,
    Change,
    explain_recompute,
    read_recomputes,
    recompute_summary,
    save_code_manifest,
)
from rmqm.experiments.store import ResultsStore
from rmqm.experiments.sweep import run_sweep
from rmqm.metrics.rmqm.alterations import WhiteNoise
from rmqm.models.backbones import TinyCNN
from rmqm.models.encoder import Encoder


def _job(config):
    return {"value": float(config["x"])}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


ALL = "9999"  # `before`: every record the store holds counts


def test_nothing_stored_is_new_and_a_stored_key_has_no_change(tmp_path):
    store = ResultsStore(tmp_path / "store")
    key = {"kind": "demo", "model": "m", "x": 1, "seed": 0}
    assert explain_recompute(store, key, before=ALL) == [Change("new", "never computed")]
    store.put(key, {"value": 1.0})
    assert explain_recompute(store, key, before=ALL) == []
    # a record of this very run is no reason: by default only what the store held when it began counts
    assert [c.part for c in explain_recompute(store, {**key, "x": 2})] == ["new"]
    assert explain_recompute(store, {**key, "x": 2}, before=ALL) == [Change("parameters", "x", "1", "2")]


def test_a_parameter_change_names_the_entry_and_both_values(tmp_path):
    store = ResultsStore(tmp_path / "store")
    store.put({"kind": "demo", "model": "m", "x": 1, "data": {"n": 10}, "seed": 0}, {"value": 1.0})
    store.put({"kind": "demo", "model": "other", "x": 9, "data": {"n": 99}, "seed": 0}, {"value": 9.0})
    changes = explain_recompute(store, {"kind": "demo", "model": "m", "x": 1, "data": {"n": 20}, "seed": 0},
                                before=ALL)
    assert changes == [Change("parameters", "data.n", "10", "20")]  # compared with its own model's key
    assert str(changes[0]) == "parameters: data.n 10 -> 20"


def test_data_content_and_weights_are_named_as_such(tmp_path):
    store = ResultsStore(tmp_path / "store")
    old = {"kind": "rmqm", "model": "m", "seed": 0, "data_content": "a" * 64, "encoder": "b" * 64,
           "data": {"files": [["train.idx", "c" * 64]]}}
    store.put(old, {"value": 1.0})
    new = {**old, "data_content": "d" * 64, "data": {"files": [["train.idx", "e" * 64]]}}
    changes = explain_recompute(store, new, before=ALL)
    # a data identity's file list names the file that changed, with both digests shortened
    assert changes == [Change("data", "data.files: train.idx", "c" * 10, "e" * 10),
                       Change("data", "data_content", "a" * 10, "d" * 10)]
    assert [c.part for c in explain_recompute(store, {**old, "encoder": "f" * 64}, before=ALL)] == ["weights"]
    # a "data" entry holding the fingerprints of the images read (claim 2's attacks) is data too
    attack = {"kind": "robust-attack", "model": "m", "seed": 0, "data": ["1" * 64, "2" * 64]}
    store.put(attack, {"value": 1.0})
    assert [c.part for c in explain_recompute(store, {**attack, "data": ["1" * 64, "3" * 64]}, before=ALL)] == [
        "data"]


def test_a_code_change_names_the_module_that_changed(tmp_path):
    edited = tmp_path / "edited" / "rmqm"
    shutil.copytree(PACKAGE_DIR, edited, ignore=shutil.ignore_patterns("__pycache__"))
    manifold = edited / "metrics" / "rmqm" / "manifold.py"
    manifold.write_text(manifold.read_text() + "\n_EDITED = 1\n")
    before = code_fingerprint("rmqm.metrics.rmqm.measure")
    after = code_fingerprint("rmqm.metrics.rmqm.measure", package_dir=edited)
    assert before != after
    store = ResultsStore(tmp_path / "store")
    key = {"kind": "rmqm", "model": "m", "seed": 0, "code": before}
    store.put(key, {"value": 1.0})
    assert save_code_manifest(store.root, before) and not save_code_manifest(store.root, before)
    assert explain_recompute(store, {**key, "code": after}, before=ALL) == [
        Change("code", "rmqm.metrics.rmqm.manifold", "changed")]
    # a sibling with the new code but another parameter is not the closest: same parameters win
    store.put({**key, "code": after, "seed": 1}, {"value": 2.0})
    assert explain_recompute(store, {**key, "code": after}, before=ALL) == [
        Change("code", "rmqm.metrics.rmqm.manifold", "changed")]
    # a fingerprint whose modules were never recorded is still named a code change
    unknown = explain_recompute(store, {**key, "code": "0" * 64}, before=ALL)
    assert [c.part for c in unknown] == ["code"] and "not recorded" in unknown[0].what


def test_a_sweep_logs_why_each_job_runs_and_the_cli_sums_it_up(tmp_path, capsys, monkeypatch):
    store = ResultsStore(tmp_path / "build" / "default" / "results" / "store")
    run_sweep([{"x": 1, "seed": 0}], _job, store, executor="serial", progress=False)
    monkeypatch.setenv(RUN_STARTED_ENV, _now())  # a second run (the study runner sets it per run)
    run_sweep([{"x": 1, "seed": 0}, {"x": 2, "seed": 0}, {"x": 3, "seed": 0}], _job, store, executor="serial",
              progress=False)
    changes, offset = read_recomputes(store.root)
    assert offset == (store.root / RECOMPUTE_LOG).stat().st_size
    assert changes["part"].tolist() == ["new", "parameters", "parameters"]
    assert set(recompute_summary(changes)) == {"new: never computed (1 record)",
                                               "parameters: x 1 -> 2 (1 record)", "parameters: x 1 -> 3 (1 record)"}
    main(["study", "explain", "--build-dir", str(tmp_path / "build"), "--out", str(tmp_path / "why.csv")])
    out = capsys.readouterr().out
    assert "store: 3 computations logged" in out and "parameters: x 1 -> 3 (1 record)" in out
    assert len(pd.read_csv(tmp_path / "why.csv")) == 3


def test_cached_rmqm_logs_a_changed_alteration(tmp_path, monkeypatch):
    torch.manual_seed(0)
    encoder = Encoder(TinyCNN(1, dim=4, width=2)).eval()
    data = load_digits("test", n=6, seed=0)
    store = ResultsStore(tmp_path / "store")
    cached_rmqm(store, "m", encoder, data, {"name": "digits"}, WhiteNoise(n_levels=3), seed=0)
    monkeypatch.setenv(RUN_STARTED_ENV, _now())
    cached_rmqm(store, "m", encoder, data, {"name": "digits"}, WhiteNoise(n_levels=4), seed=0)
    changes, _ = read_recomputes(store.root)
    assert changes.query("part == 'parameters'")[["what", "before", "after"]].values.tolist() == [
        ["n_levels", "3", "4"]]


def test_a_marked_run_start_reaches_child_processes_and_is_restored(monkeypatch):
    import subprocess
    import sys

    from rmqm.experiments.explain import marking_run_start, run_started

    monkeypatch.delenv(RUN_STARTED_ENV, raising=False)
    outside = run_started()  # this process's start
    with marking_run_start():
        inside = run_started()
        child = subprocess.run([sys.executable, "-c", f"import os; print(os.environ['{RUN_STARTED_ENV}'])"],
                               capture_output=True, text=True, check=True).stdout.strip()
    assert outside < inside == child and run_started() == outside
