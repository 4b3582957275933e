"""The results store: round trips, hashing, atomic writes, damaged and stale records."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pandas.testing import assert_frame_equal

import rmqm._utils.hashing as hashing_mod
import rmqm._utils.io as io_mod
from rmqm._utils.hashing import canonical_config, config_hash, flatten_config
from rmqm.experiments.store import PROVENANCE_COLUMNS, ResultsStore, StoreWarning

CONFIG = {"encoder": "tiny", "perturbation": "noise", "seed": 3, "opt": {"lr": 0.001, "dims": [16, 32]}}


def rows_for(config: dict) -> pd.DataFrame:
    rng = np.random.default_rng(config["seed"])
    return pd.DataFrame(
        {"scope": ["all", "label=0"], "rmqm": rng.normal(size=2), "n_points": [10, 4]}
    )


def test_put_get_round_trip_keeps_rows_and_provenance(tmp_path):
    store = ResultsStore(tmp_path / "s")
    rows = rows_for(CONFIG)
    h = store.put(CONFIG, rows, wall_time_s=1.25)
    assert h == config_hash(CONFIG) and len(h) == 64
    assert store.has(CONFIG)
    got = store.get(CONFIG)
    assert_frame_equal(got, rows, check_exact=True)
    meta = got.attrs
    assert meta["config"] == canonical_config(CONFIG)
    assert meta["config_hash"] == h and meta["seed"] == 3 and meta["n_rows"] == 2
    assert meta["wall_time_s"] == 1.25
    assert meta["versions"]["pandas"] == pd.__version__ and "torch" in meta["versions"]
    assert "git_commit" in meta and "created" in meta
    # A fresh object on the same folder sees the record.
    again = ResultsStore(tmp_path / "s")
    assert len(again) == 1 and again.has(CONFIG)
    assert_frame_equal(again.get(CONFIG), rows, check_exact=True)


def test_missing_config_is_not_found(tmp_path):
    store = ResultsStore(tmp_path)
    assert not store.has(CONFIG)
    with pytest.raises(KeyError, match="no result stored"):
        store.get(CONFIG)
    with pytest.raises(FileNotFoundError, match="no results store"):
        ResultsStore(tmp_path / "absent", create=False)


def test_put_replaces_and_delete_removes(tmp_path):
    store = ResultsStore(tmp_path)
    store.put(CONFIG, rows_for(CONFIG))
    new = pd.DataFrame({"scope": ["all"], "rmqm": [0.5], "n_points": [1]})
    store.put(CONFIG, new)
    assert_frame_equal(store.get(CONFIG), new)
    assert len(store) == 1
    assert store.delete(CONFIG) and not store.has(CONFIG) and not store.delete(CONFIG)


def test_config_hash_is_canonical():
    a = {"b": 1, "a": {"y": [1, 2], "x": "s"}, "seed": 0}
    b = {"seed": 0, "a": {"x": "s", "y": (1, 2)}, "b": 1}
    assert config_hash(a) == config_hash(b)
    assert config_hash({"x": 1, "seed": 0}) != config_hash({"x": 1.0, "seed": 0})
    assert config_hash({"x": np.int64(2), "seed": 0}) == config_hash({"x": 2, "seed": 0})
    assert config_hash({"x": 1, "seed": 0}) != config_hash({"x": 1, "seed": 1})


@pytest.mark.parametrize(
    "config, error, match",
    [
        ([1, 2], TypeError, "config must be a dict"),
        ({1: "a"}, TypeError, "config keys must be strings"),
        ({"a.b": 1}, ValueError, "contain no '.'"),
        ({"x": float("nan")}, ValueError, "finite"),
        ({"x": {"y": float("inf")}}, ValueError, r"config\.x\.y"),
        ({"x": object()}, TypeError, "config value at config.x has type object"),
        ({"x": np.zeros(3)}, TypeError, "ndarray"),
    ],
)
def test_bad_configs_are_rejected(tmp_path, config, error, match):
    store = ResultsStore(tmp_path)
    with pytest.raises(error, match=match):
        store.put(config, {"v": 1.0})
    assert list(store.parts_dir.iterdir()) == []


@pytest.mark.parametrize(
    "rows, error, match",
    [
        (pd.DataFrame({"v": []}), ValueError, "empty"),
        (pd.DataFrame(index=[0, 1]), ValueError, "no columns"),
        ("text", TypeError, "rows must be a pandas DataFrame"),
        (pd.DataFrame({0: [1.0]}), TypeError, "column names must be strings"),
        (pd.DataFrame({"config_hash": ["x"]}), ValueError, "reserved"),
        (pd.DataFrame({"v": [1, "a"]}), TypeError, "cannot be stored as Parquet"),
    ],
)
def test_bad_rows_are_rejected_and_nothing_is_written(tmp_path, rows, error, match):
    store = ResultsStore(tmp_path)
    with pytest.raises(error, match=match):
        store.put(CONFIG, rows)
    assert list(store.parts_dir.iterdir()) == []
    assert not store.has(CONFIG)


def test_to_frame_adds_config_columns_and_handles_clashes(tmp_path):
    store = ResultsStore(tmp_path)
    c1 = {"encoder": "a", "seed": 0, "opt": {"lr": 0.1}}
    c2 = {"encoder": "b", "seed": 1, "opt": {"lr": 0.2}}
    store.put(c1, pd.DataFrame({"encoder": ["a"], "score": [1.0]}))  # same value: one column
    store.put(c2, pd.DataFrame({"encoder": ["B-renamed"], "score": [2.0]}))  # differs: config.encoder
    table = store.to_frame([c2, c1])
    assert list(table["score"]) == [2.0, 1.0]
    assert list(table["encoder"]) == ["B-renamed", "a"]
    assert table["config.encoder"].iloc[0] == "b" and pd.isna(table["config.encoder"].iloc[1])
    assert list(table["opt.lr"]) == [0.2, 0.1]
    assert list(table["seed"]) == [1, 0]
    assert list(table["config_hash"]) == [config_hash(c2), config_hash(c1)]
    assert not set(PROVENANCE_COLUMNS) & set(table.columns)
    full = store.to_frame(provenance=True)
    assert set(PROVENANCE_COLUMNS) <= set(full.columns) and len(full) == 2
    assert json.loads(full["versions"].iloc[0])["pyarrow"]
    with pytest.raises(KeyError, match="no result stored"):
        store.to_frame([{"encoder": "zzz", "seed": 0}])
    assert len(store.to_frame([{"encoder": "zzz", "seed": 0}, c1], missing="skip")) == 1
    with pytest.raises(ValueError, match="missing must be"):
        store.to_frame(missing="ignore")


def test_flatten_config_nests_with_dots():
    assert flatten_config({"a": {"b": {"c": 1}}, "l": [1, [2]], "e": {}}) == {"a.b.c": 1, "l": (1, (2,)), "e": {}}


def test_empty_store_frame_has_key_columns(tmp_path):
    table = ResultsStore(tmp_path).to_frame()
    assert len(table) == 0 and {"config_hash", "seed"} <= set(table.columns)


# ----------------------------------------------------------------- damage and staleness


def _store_with_record(tmp_path):
    store = ResultsStore(tmp_path / "s")
    store.put(CONFIG, rows_for(CONFIG))
    return store, store.path_of(CONFIG)


def _expect_recomputed(tmp_path, reason):
    store = ResultsStore(tmp_path / "s")
    with pytest.warns(StoreWarning, match=reason):
        assert not store.has(CONFIG)
    assert len(store.problems) == 1 and reason.split()[0] in store.problems[0].reason
    assert store.problems[0].moved_to and os.path.exists(store.problems[0].moved_to)
    assert not store.path_of(CONFIG).exists() and len(store) == 0
    # Recompute: a new put is served again.
    store.put(CONFIG, rows_for(CONFIG))
    assert_frame_equal(ResultsStore(tmp_path / "s").get(CONFIG), rows_for(CONFIG))


def test_truncated_part_file_is_detected_quarantined_and_recomputed(tmp_path):
    _, path = _store_with_record(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _expect_recomputed(tmp_path, "damaged part-file")


def test_flipped_byte_fails_the_page_checksum(tmp_path):
    _, path = _store_with_record(tmp_path)
    data = bytearray(path.read_bytes())
    value = np.float64(rows_for(CONFIG)["rmqm"].iloc[0]).tobytes()
    at = bytes(data).find(value)
    assert at > 0
    data[at] ^= 0x01
    path.write_bytes(bytes(data))
    _expect_recomputed(tmp_path, "damaged part-file")


def test_changed_footer_metadata_is_caught_by_the_content_digest(tmp_path):
    # Parquet's page checksums do not cover the footer: a changed provenance value keeps the file
    # readable and the config's hash valid; the record's content SHA-256 catches it.
    _, path = _store_with_record(tmp_path)
    table = pq.read_table(path)
    meta = json.loads(table.schema.metadata[b"rmqm.record"])
    meta["wall_time_s"] = 1.0 if meta.get("wall_time_s") != 1.0 else 2.0
    table = table.replace_schema_metadata({**table.schema.metadata, b"rmqm.record": json.dumps(meta).encode()})
    pq.write_table(table, path, write_page_checksum=True)
    _expect_recomputed(tmp_path, "damaged part-file: its content does not match the SHA-256")


def test_rewritten_rows_with_valid_checksums_are_caught_by_the_content_digest(tmp_path):
    _, path = _store_with_record(tmp_path)
    table = pq.read_table(path)
    frame = table.to_pandas()
    frame.loc[0, "rmqm"] = np.nextafter(frame.loc[0, "rmqm"], np.inf)  # one mantissa bit, pages rewritten
    new = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(table.schema.metadata)
    pq.write_table(new, path, write_page_checksum=True)
    _expect_recomputed(tmp_path, "damaged part-file: its content does not match the SHA-256")


def test_edited_config_is_stale(tmp_path):
    _, path = _store_with_record(tmp_path)
    table = pq.read_table(path)
    meta = json.loads(table.schema.metadata[b"rmqm.record"])
    meta["config"]["seed"] = 4  # the stored hash no longer matches the stored config
    table = table.replace_schema_metadata({**table.schema.metadata, b"rmqm.record": json.dumps(meta).encode()})
    pq.write_table(table, path)
    _expect_recomputed(tmp_path, "stale: stored hash")


def test_changed_hash_scheme_makes_old_records_stale(tmp_path, monkeypatch):
    _store_with_record(tmp_path)
    monkeypatch.setattr(hashing_mod, "HASH_SCHEME", "rmqm-store-v2")
    # Under the new scheme the config maps to a new file name, so the old record is
    # simply absent for this config; opening the store re-validates what is on disk.
    store = ResultsStore(tmp_path / "s")
    assert not store.has(CONFIG)
    with pytest.warns(StoreWarning, match="stale: stored hash"):
        problems = store.verify()
    assert len(problems) == 1 and len(store) == 0


def test_renamed_part_file_is_stale(tmp_path):
    _, path = _store_with_record(tmp_path)
    other = {**CONFIG, "seed": 99}
    os.replace(path, path.with_name(f"{config_hash(other)}.parquet"))
    os.remove(tmp_path / "s" / "index.parquet")
    with pytest.warns(StoreWarning, match="file name"):
        store = ResultsStore(tmp_path / "s")
    assert len(store) == 0 and not store.has(other)


def test_missing_or_damaged_index_is_rebuilt_from_part_files(tmp_path):
    store = ResultsStore(tmp_path / "s")
    configs = [{**CONFIG, "seed": s} for s in range(3)]
    for c in configs:
        store.put(c, rows_for(c))
    os.remove(store.index_path)
    assert len(ResultsStore(tmp_path / "s")) == 3
    store.index_path.write_bytes(b"not parquet")
    with pytest.warns(StoreWarning, match="unreadable index"):
        rebuilt = ResultsStore(tmp_path / "s")
    assert len(rebuilt) == 3 and all(rebuilt.has(c) for c in configs)
    assert pq.read_table(store.index_path).num_rows == 3


def test_part_file_without_index_entry_is_picked_up(tmp_path):
    """A kill between writing a part-file and rewriting the index loses nothing."""
    store = ResultsStore(tmp_path / "s")
    store.put(CONFIG, rows_for(CONFIG))
    old_index = store.index_path.read_bytes()
    other = {**CONFIG, "seed": 4}
    store.put(other, rows_for(other))
    store.index_path.write_bytes(old_index)
    again = ResultsStore(tmp_path / "s")
    assert len(again) == 2 and again.has(other)


def test_crash_during_write_keeps_old_record_and_leaves_no_temp_file(tmp_path, monkeypatch):
    store = ResultsStore(tmp_path / "s")
    store.put(CONFIG, rows_for(CONFIG))

    def crash(table, where, **kwargs):
        where.write(b"PAR1 partial")
        raise OSError("disk full")

    monkeypatch.setattr(io_mod.pq, "write_table", crash)
    with pytest.raises(OSError, match="disk full"):
        store.put(CONFIG, pd.DataFrame({"scope": ["all"], "rmqm": [9.0], "n_points": [1]}))
    monkeypatch.undo()
    assert sorted(p.name for p in store.parts_dir.iterdir()) == [f"{config_hash(CONFIG)}.parquet"]
    assert_frame_equal(ResultsStore(tmp_path / "s").get(CONFIG), rows_for(CONFIG))


def test_leftover_temp_files_are_ignored_and_old_ones_removed(tmp_path):
    store = ResultsStore(tmp_path / "s")
    fresh = store.parts_dir / ".tmp-abc-x.parquet"
    old = store.parts_dir / ".tmp-def-y.parquet"
    fresh.write_bytes(b"half")
    old.write_bytes(b"half")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    again = ResultsStore(tmp_path / "s")
    assert len(again) == 0 and not again.problems
    assert fresh.exists() and not old.exists()


def test_not_a_folder(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        ResultsStore(f)
    with pytest.raises(TypeError, match="root must be a path"):
        ResultsStore(3)


WRITER = textwrap.dedent(
    """
    import sys, numpy as np, pandas as pd
    from rmqm.experiments.store import ResultsStore
    store = ResultsStore(sys.argv[1])
    print("ready", flush=True)
    i = 0
    while True:
        rows = pd.DataFrame({"i": np.arange(200) + i, "v": np.sin(np.arange(200) + i)})
        store.put({"i": i % 7, "seed": 0}, rows)
        i += 1
    """
)


@pytest.mark.slow
def test_sigkill_at_a_random_moment_leaves_a_readable_store(tmp_path):
    """A writer that rewrites records in a tight loop is killed; every record stays whole."""
    rng = np.random.default_rng()
    root = tmp_path / "s"
    for _ in range(2):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(root)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.time() + 60
        while not list(root.glob("parts/[0-9a-f]*.parquet")) and time.time() < deadline:
            time.sleep(0.01)  # at least one record, then a random moment
        time.sleep(float(rng.uniform(0.0, 0.5)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        store = ResultsStore(root)
        assert store.verify() == []
        assert 1 <= len(store) <= 7
        for config in store.configs():
            rows = store.get(config)
            i0 = int(rows["i"].iloc[0])
            assert i0 % 7 == config["i"] and len(rows) == 200
            assert np.array_equal(rows["v"].to_numpy(), np.sin(np.arange(200) + i0))
