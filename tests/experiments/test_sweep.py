"""Sweeps: grids, resuming, executors giving identical tables, kill-and-resume, determinism."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest
import torch
from pandas.testing import assert_frame_equal

from rmqm._utils.hashing import code_fingerprint, config_hash
from rmqm.cli.sweep_cmd import main
from rmqm.experiments.jobs import embedding_stats, measure_job
from rmqm.experiments.store import ResultsStore, StoreWarning
from rmqm.experiments.sweep import Sweep, load_grid, resolve_job, run_sweep
from rmqm.stats.intervals import summarize_seeds

GRID = Sweep(axes={"dim": [4, 8], "seed": [0, 1]}, fixed={"n": 32, "measure": "stats"})
#: the small job of these tests: a random TinyCNN on digits, embedding statistics only
tiny_job = measure_job


def test_sweep_is_the_cartesian_product_in_order():
    grid = Sweep(axes={"a": [1, 2], "b": ["x", "y", "z"]}, fixed={"seed": 0})
    configs = grid.configs()
    assert len(grid) == 6 == len(configs)
    assert configs[0] == {"seed": 0, "a": 1, "b": "x"} and configs[1] == {"seed": 0, "a": 1, "b": "y"}
    assert configs[-1] == {"seed": 0, "a": 2, "b": "z"}
    # the order axes are given in, not their alphabetical order (which ParameterGrid would use)
    given = Sweep(axes={"seed": [0, 1], "dim": [8, 16]}).configs()
    assert [(c["seed"], c["dim"]) for c in given] == [(0, 8), (0, 16), (1, 8), (1, 16)]


@pytest.mark.parametrize(
    "axes, fixed, error, match",
    [
        ({}, {}, ValueError, "at least one axis"),
        ({"a": []}, {}, ValueError, "axis 'a' is empty"),
        ({"a": "abc"}, {}, TypeError, "must be a list"),
        ({"a": [1]}, {"a": 2}, ValueError, "both as axes and as fixed"),
        ([1], {}, TypeError, "axes must be a dict"),
        ({"a": [1]}, {"x": float("nan")}, ValueError, "finite"),
    ],
)
def test_bad_grids_are_rejected(axes, fixed, error, match):
    with pytest.raises(error, match=match):
        Sweep(axes=axes, fixed=fixed)


def test_load_grid_reads_yaml_and_names_problems(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text("axes:\n  seed: [0, 1]\nfixed:\n  n: 16\n")
    assert load_grid(path).configs() == [{"n": 16, "seed": 0}, {"n": 16, "seed": 1}]
    path.write_text("axes: [1, 2]\n")
    with pytest.raises(TypeError, match="axes must be a dict"):
        load_grid(path)
    path.write_text("axis:\n  seed: [0]\n")
    with pytest.raises(ValueError, match="unknown grid entries"):
        load_grid(path)
    path.write_text("axes: {seed: [0\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_grid(path)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_grid(tmp_path / "nope.yaml")


def test_run_sweep_validates_its_arguments(tmp_path):
    with pytest.raises(ValueError, match="integer 'seed'"):
        run_sweep([{"n": 1}], tiny_job, tmp_path, executor="serial")
    with pytest.raises(ValueError, match="same job"):
        run_sweep([{"seed": 0}, {"seed": 0}], tiny_job, tmp_path, executor="serial")
    with pytest.raises(ValueError, match="grid is empty"):
        run_sweep([], tiny_job, tmp_path, executor="serial")
    with pytest.raises(ValueError, match="unknown executor"):
        run_sweep(GRID, tiny_job, tmp_path, executor="threads")
    with pytest.raises(TypeError, match="cannot be sent to process workers"):
        run_sweep(GRID, lambda c: {"x": 1.0}, tmp_path, executor="process")
    with pytest.raises(ValueError, match="max_workers"):
        run_sweep(GRID, tiny_job, tmp_path, max_workers=0)
    with pytest.raises(ValueError, match="scheduler_address is only used"):
        run_sweep(GRID, tiny_job, tmp_path, executor="serial", scheduler_address="tcp://x:1")
    with pytest.raises(TypeError, match="not a single dict"):
        run_sweep({"seed": 0}, tiny_job, tmp_path, executor="serial")
    assert len(ResultsStore(tmp_path)) == 0


def _counting_job(calls: list):
    def job(config):
        calls.append(config_hash(config))
        return {"value": float(config["seed"]) * 10 + config["x"], "draw": float(torch.rand(()))}

    return job


def test_resume_skips_finished_jobs_and_recomputes_damaged_ones(tmp_path):
    grid = Sweep(axes={"x": [1, 2, 3], "seed": [0, 1]})
    calls: list = []
    job = _counting_job(calls)
    first = run_sweep(grid, job, tmp_path, executor="serial", progress=False)
    assert len(calls) == 6 and len(first) == 6
    assert list(first["value"]) == [1.0, 11.0, 2.0, 12.0, 3.0, 13.0]
    # torch's global RNG is seeded from the config: equal seeds, equal draws.
    assert first["draw"].iloc[0] == first["draw"].iloc[2] != first["draw"].iloc[1]

    calls.clear()
    assert_frame_equal(run_sweep(grid, job, tmp_path, executor="serial", progress=False), first)
    assert calls == []

    store = ResultsStore(tmp_path)
    store.delete({"x": 2, "seed": 1})
    damaged = store.path_of({"x": 3, "seed": 0})
    damaged.write_bytes(damaged.read_bytes()[:40])
    with pytest.warns(StoreWarning, match="damaged part-file"):
        again = run_sweep(grid, job, tmp_path, executor="serial", progress=False)
    assert sorted(calls) == sorted([config_hash({"x": 2, "seed": 1}), config_hash({"x": 3, "seed": 0})])
    assert_frame_equal(again, first)


def _failing_job(config):
    if config["x"] == 2:
        raise ValueError("x=2 is not allowed")
    return {"value": float(config["x"])}


def test_failing_job_stops_the_sweep_but_keeps_finished_results(tmp_path):
    grid = Sweep(axes={"x": [1, 2, 3]}, fixed={"seed": 0})
    with pytest.raises(ValueError, match="x=2 is not allowed") as info:
        run_sweep(grid, _failing_job, tmp_path, executor="serial", progress=False)
    assert any('"x": 2' in note for note in info.value.__notes__)
    assert ResultsStore(tmp_path).has({"x": 1, "seed": 0})

    table = run_sweep(grid, _failing_job, tmp_path, executor="serial", progress=False, on_error="skip")
    assert list(table["x"]) == [1, 3]
    [(config, error)] = table.attrs["failed"]
    assert config == {"seed": 0, "x": 2} and "x=2 is not allowed" in error


def test_job_returning_unstorable_rows_is_named(tmp_path):
    with pytest.raises(TypeError, match="job_fn returned rows the store cannot keep"):
        run_sweep([{"seed": 0}], lambda c: 42, tmp_path, executor="serial", progress=False)
    assert len(ResultsStore(tmp_path)) == 0


# --------------------------------------------------------------------- determinism


def test_same_config_gives_identical_numbers_on_cpu():
    config = {"seed": 5, "n": 40, "dim": 8, "measure": "stats"}
    a, b = tiny_job(config), tiny_job(dict(config))
    assert_frame_equal(a, b, check_exact=True)
    other = tiny_job({**config, "seed": 6})
    assert not np.array_equal(a.to_numpy(), other.to_numpy())


def test_same_config_gives_identical_rmqm_on_cpu():
    config = {"measure": "rmqm", "perturbation": "noise", "n_levels": 4, "n": 24, "seed": 1, "dim": 8}
    a, b = measure_job(config), measure_job(dict(config))
    assert_frame_equal(a, b, check_exact=True)
    assert np.isfinite(a["rmqm"]).all()
    pgd = measure_job({**config, "perturbation": "pgd"})
    assert (pgd["perturbation"] == "pgd").all()


def test_measure_job_attacks_the_random_tinycnn_with_nt_xent_in_the_own_loss_modes(monkeypatch):
    import rmqm.experiments.jobs as jobs

    seen: list[dict] = []
    real = jobs.measure_rmqm
    monkeypatch.setattr(jobs, "measure_rmqm", lambda *a, **kw: seen.append(a[2].keywords()) or real(*a, **kw))
    config = {"measure": "rmqm", "perturbation": "pgd", "n_levels": 3, "n": 12, "seed": 1, "dim": 8,
              "batch_size": 6}
    for mode in ("reference", "own-loss"):
        table = measure_job({**config, "pgd_mode": mode})
        assert np.isfinite(table["rmqm"]).all()
    measure_job({**config, "attack_loss": "instance-triplet"})
    measure_job(config)
    assert [(kw["pgd_mode"], kw["attack_loss"]) for kw in seen] == [
        ("reference", "nt-xent"), ("own-loss", "nt-xent"), ("own-loss", "instance-triplet"),
        ("displacement", "displacement")]
    assert seen[0]["augment_output"] is False
    with pytest.raises(ValueError, match="needs a classifier `head`"):  # the random TinyCNN has none
        measure_job({**config, "pgd_mode": "reference", "attack_loss": "cross-entropy"})
    with pytest.raises(TypeError, match="nested must be a bool"):  # a noise job reads (and checks) noise entries
        measure_job({**config, "perturbation": "noise", "attack_loss": "nt-xent", "nested": "yes"})


def test_trained_encoder_job_is_deterministic_from_scratch(tmp_path, monkeypatch):
    """Training the zoo encoder twice (two empty caches) gives the same numbers."""
    encoder = {"data": "digits", "method": "cross-entropy", "dim": 8, "width": 8, "epochs": 1,
               "n_train": 96, "batch_size": 32}
    configs = [{"encoder": encoder, "measure": m, "seed": 2, "n": 40} for m in ("probes", "baselines")]
    tables = []
    for run in ("a", "b"):
        monkeypatch.setenv("RMQM_ZOO_DIR", str(tmp_path / f"zoo-{run}"))
        tables.append(run_sweep(configs, measure_job, tmp_path / f"store-{run}", executor="serial", progress=False))
        assert len(list((tmp_path / f"zoo-{run}").glob("*.pt"))) == 1
    assert_frame_equal(tables[0], tables[1], check_exact=True)
    assert {"1nn", "knn", "linear", "rankme", "alpha_req", "encoder.method"} <= set(tables[0].columns)
    assert tables[0]["linear"].between(0, 1).iloc[0]


def test_embedding_stats_on_known_embeddings():
    z = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
    stats = embedding_stats(z, torch.tensor([0, 0, 1, 1]))
    assert stats["knn1_accuracy"] == 1.0
    assert stats["mean_norm"] == pytest.approx(1.75)
    assert 1.0 <= stats["effective_rank"] <= 2.0
    line = torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    assert embedding_stats(line, torch.tensor([0, 1, 0]))["effective_rank"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="N >= 2"):
        embedding_stats(torch.zeros(1, 3), torch.zeros(1))


def test_measure_job_names_unknown_choices():
    with pytest.raises(ValueError, match="unknown encoder 'resnet-9000'"):
        measure_job({"encoder": "resnet-9000", "seed": 0})
    with pytest.raises(ValueError, match="unknown measure .vibes."):
        measure_job({"measure": "vibes", "seed": 0})
    with pytest.raises(ValueError, match=r"unknown config entries \['n_level'\]"):
        measure_job({"measure": "rmqm", "n_level": 5, "seed": 0})
    with pytest.raises(ValueError, match="needs a 'seed'"):
        measure_job({"measure": "stats"})
    with pytest.raises(ValueError, match="unknown pretraining method"):
        measure_job({"encoder": {"method": "telepathy"}, "measure": "stats", "seed": 0})


def test_process_pool_equals_serial(tmp_path):
    serial = run_sweep(GRID, tiny_job, tmp_path / "serial", executor="serial", progress=False)
    pooled = run_sweep(GRID, tiny_job, tmp_path / "pool", executor="process", max_workers=2, progress=False)
    assert_frame_equal(pooled, serial, check_exact=True)


def test_dask_local_cluster_on_loopback_equals_serial(tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    serial = run_sweep(GRID, tiny_job, tmp_path / "serial", executor="serial", progress=False)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, host="127.0.0.1", protocol="tcp",
        dashboard_address=None,
    ) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        assert len(cluster.workers) == 2
        table = run_sweep(
            GRID, tiny_job, tmp_path / "dask", executor="dask",
            scheduler_address=cluster.scheduler_address, progress=False,
        )
    assert_frame_equal(table, serial, check_exact=True)


# ------------------------------------------------------------------ kill and resume

SLOW_JOB = textwrap.dedent(
    """
    import os, time
    from rmqm.experiments.jobs import measure_job

    def job(config):
        with open(os.environ["RMQM_TEST_JOB_LOG"], "a") as fh:
            fh.write(f"{config['seed']}\\n")
        time.sleep(0.3)
        return measure_job(config)
    """
)


@pytest.mark.slow
def test_sigkill_midway_then_resume_equals_uninterrupted_run(tmp_path):
    (tmp_path / "slowjob.py").write_text(SLOW_JOB)
    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text("axes:\n  seed: [0, 1, 2, 3, 4, 5, 6, 7]\nfixed:\n  n: 24\n  dim: 4\n  measure: stats\n")
    store_dir = tmp_path / "store"
    log = tmp_path / "jobs.log"
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "RMQM_TEST_JOB_LOG": str(log)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rmqm", "sweep", str(grid_file), "--store", str(store_dir),
         "--job", "slowjob:job", "--executor", "serial", "--no-progress"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    parts = store_dir / "parts"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if parts.exists() and len(list(parts.glob("[0-9a-f]*.parquet"))) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()

    killed = ResultsStore(store_dir)
    assert killed.verify() == []
    done = len(killed)
    assert 3 <= done < 8
    started = log.read_text().split()

    sys.path.insert(0, str(tmp_path))
    try:
        job = resolve_job("slowjob:job")
        os.environ["RMQM_TEST_JOB_LOG"] = str(log)
        resumed = run_sweep(load_grid(grid_file), job, store_dir, executor="serial", progress=False)
        resumed_runs = log.read_text().split()[len(started):]
        fresh = run_sweep(load_grid(grid_file), tiny_job, tmp_path / "fresh", executor="serial", progress=False)
    finally:
        sys.path.remove(str(tmp_path))
        os.environ.pop("RMQM_TEST_JOB_LOG", None)
        sys.modules.pop("slowjob", None)
    assert len(resumed_runs) == 8 - done  # only the unfinished jobs ran again
    assert_frame_equal(resumed, fresh, check_exact=True)


# -------------------------------------------------------------------------------- CLI


def test_cli_runs_a_grid_and_writes_the_table(tmp_path, capsys):
    grid_file = tmp_path / "grid.json"
    grid_file.write_text('{"axes": {"seed": [0, 1]}, "fixed": {"n": 16, "dim": 4, "measure": "stats"}}')
    out = tmp_path / "out" / "table.csv"
    code = main([str(grid_file), "--store", str(tmp_path / "s"), "--job", "rmqm.experiments.jobs:measure_job",
                 "--executor", "serial", "--no-progress", "--out", str(out)])
    assert code == 0
    table = pd.read_csv(out)
    assert list(table["seed"]) == [0, 1] and "knn1_accuracy" in capsys.readouterr().out
    expected = run_sweep(load_grid(grid_file), tiny_job, tmp_path / "s", executor="serial", progress=False)
    assert np.allclose(table["effective_rank"], expected["effective_rank"], rtol=1e-12)


def test_rmqm_cli_has_the_sweep_subcommand(tmp_path, capsys):
    from rmqm.cli.main import main as rmqm_main

    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text("axes:\n  seed: [3]\nfixed:\n  n: 16\n  dim: 4\n  measure: stats\n")
    table = rmqm_main(["sweep", str(grid_file), "--store", str(tmp_path / "s"), "--job", "rmqm.experiments.jobs:measure_job",
                       "--executor", "serial", "--no-progress"])
    code = code_fingerprint("rmqm.experiments.jobs")  # an rmqm job's records are keyed by its code
    assert_frame_equal(table, ResultsStore(tmp_path / "s").to_frame(
        [{"n": 16, "dim": 4, "measure": "stats", "seed": 3, "code": code}]))
    with pytest.raises(SystemExit):
        rmqm_main(["sweep", str(grid_file), "--job", "nomodule_xyz:job"])
    assert "cannot import job module" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--job", "nomodule_xyz:job"], "cannot import job module"),
        (["--job", "rmqm.experiments.jobs"], "module:function"),
        (["--job", ":"], "module:function"),
        (["--job", ".relative:job"], "cannot import job module"),
        (["--job", "rmqm.experiments.jobs:nothing"], "no job function"),
        (["--out", "table.xlsx"], "must end in .csv or .parquet"),
        (["--executor", "serial", "--workers", "0"], "max_workers"),
    ],
)
def test_cli_reports_bad_options(tmp_path, capsys, extra, match):
    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text("axes:\n  seed: [0]\n")
    with pytest.raises(SystemExit) as info:
        main([str(grid_file), "--store", str(tmp_path / "s"), "--executor", "serial", *extra])
    assert info.value.code == 2
    assert match in capsys.readouterr().err
    assert not (tmp_path / "s" / "parts").exists() or not any((tmp_path / "s" / "parts").iterdir())


def test_cli_missing_grid_file(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([str(tmp_path / "absent.yaml")])
    assert "grid file" in capsys.readouterr().err


# ------------------------------------------------------------------ seeds and intervals


def test_summarize_seeds_gives_the_t_interval():
    from scipy import stats

    table = pd.DataFrame({
        "encoder": ["a"] * 3 + ["b"] * 2,
        "seed": [0, 1, 2, 0, 1],
        "score": [1.0, 2.0, 3.0, 5.0, 5.0],
    })
    out = summarize_seeds(table, "score", by="encoder", confidence=0.9)
    a = out[out["encoder"] == "a"].iloc[0]
    half = stats.t.ppf(0.95, 2) * 1.0 / np.sqrt(3)
    assert a["n_seeds"] == 3 and a["mean"] == 2.0 and a["std"] == 1.0
    assert a["ci_low"] == pytest.approx(2.0 - half) and a["ci_high"] == pytest.approx(2.0 + half)
    b = out[out["encoder"] == "b"].iloc[0]
    assert b["ci_low"] == b["ci_high"] == 5.0
    empty = summarize_seeds(table.iloc[:0], "score", by="encoder")
    assert len(empty) == 0 and list(empty.columns) == ["encoder", "metric", "n_seeds", "mean", "std", "ci_low", "ci_high"]
    one = summarize_seeds(table.iloc[:1], "score")
    assert one["n_seeds"].iloc[0] == 1 and np.isnan(one["ci_low"].iloc[0])
    with pytest.raises(ValueError, match="repeat a"):
        summarize_seeds(table, "score")
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['nope'\]"):
        summarize_seeds(table, "nope", by="encoder")
    with pytest.raises(ValueError, match="confidence"):
        summarize_seeds(table, "score", by="encoder", confidence=1.0)
    clipped = summarize_seeds(table[table["encoder"] == "a"], "score", by="encoder", confidence=0.9, bounds=(0, 3.5))
    assert clipped["ci_high"].iloc[0] == 3.5 and clipped["ci_low"].iloc[0] == pytest.approx(2.0 - half)
    with pytest.raises(ValueError, match="outside bounds"):
        summarize_seeds(table, "score", by="encoder", bounds=(0, 4))  # b's mean 5 cannot lie outside
    with pytest.raises(ValueError, match="low < high"):
        summarize_seeds(table, "score", by="encoder", bounds=(1, 0))


# ------------------------------------------------------------------ multi-table jobs


def _two_tables(config):
    """A job returning two tables (module level: picklable for the process pool)."""
    rows = measure_job({k: v for k, v in config.items()})
    return {"stats": rows, "doubled": rows * 2.0}


def test_multi_table_jobs_store_each_table_and_resume(tmp_path):
    grid = Sweep(axes={"seed": [0, 1]}, fixed={"n": 16, "dim": 4, "measure": "stats"})
    serial = run_sweep(grid, _two_tables, tmp_path / "s", executor="serial", progress=False,
                       tables=("stats", "doubled"))
    assert set(serial) == {"stats", "doubled"} and list(serial["stats"]["seed"]) == [0, 1]
    assert np.allclose(serial["doubled"]["effective_rank"], 2 * serial["stats"]["effective_rank"])
    store = ResultsStore(tmp_path / "s")
    assert len(store) == 4 and store.has({**grid.configs()[0], "table": "doubled"})
    # a job counts as done only when every table is stored: lose one, and only that job reruns
    store.delete({**grid.configs()[1], "table": "stats"})
    calls = []
    again = run_sweep(grid, lambda c: calls.append(c["seed"]) or _two_tables(c), tmp_path / "s",
                      executor="serial", progress=False, tables=("stats", "doubled"))
    assert calls == [1]
    assert_frame_equal(again["stats"], serial["stats"], check_exact=True)
    pooled = run_sweep(grid, _two_tables, tmp_path / "p", executor="process", max_workers=2, progress=False,
                       tables=("stats", "doubled"))
    assert_frame_equal(pooled["doubled"], serial["doubled"], check_exact=True)


def test_multi_table_jobs_must_return_the_named_tables(tmp_path):
    with pytest.raises(TypeError, match=r"must return the tables \['a', 'b'\]"):
        run_sweep([{"seed": 0}], lambda c: {"a": {"x": 1}}, tmp_path, executor="serial", progress=False,
                  tables=("a", "b"))
    with pytest.raises(ValueError, match="non-empty list of table names"):
        run_sweep([{"seed": 0}], lambda c: {}, tmp_path, executor="serial", progress=False, tables=())
    with pytest.raises(ValueError, match="must not hold a 'table' entry"):
        run_sweep([{"seed": 0, "table": "a"}], lambda c: {}, tmp_path, executor="serial", progress=False,
                  tables=("a",))


def test_records_keyed_by_code_are_recomputed_when_the_code_changes(tmp_path, monkeypatch):
    grid = Sweep(axes={"seed": [0, 1]}, fixed={"n": 16, "dim": 4, "measure": "stats"})
    first = run_sweep(grid, measure_job, tmp_path, executor="serial", progress=False, code=["rmqm.experiments.jobs"])
    assert set(first["code"]) == {code_fingerprint("rmqm.experiments.jobs")}
    calls = []

    def counting(config):
        calls.append(config["seed"])
        return measure_job(config)

    run_sweep(grid, counting, tmp_path, executor="serial", progress=False, code=["rmqm.experiments.jobs"])
    assert calls == []  # same code: read back
    monkeypatch.setattr("rmqm.experiments.sweep.code_fingerprint", lambda *modules: "0" * 64)
    again = run_sweep(grid, counting, tmp_path, executor="serial", progress=False, code=["rmqm.experiments.jobs"])
    assert calls == [0, 1] and set(again["code"]) == {"0" * 64}  # other code: recomputed
