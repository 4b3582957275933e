"""The study's jobs on the engine: serial, a process pool and a Dask LocalCluster give the same tables."""

from __future__ import annotations

import pytest
from pandas.testing import assert_frame_equal

from rmqm.experiments.cache import ZooRMQM, alteration_settings
from rmqm.experiments.engine import engine_options, prefetch_rmqm, run_zoo
from rmqm.experiments.store import ResultsStore
from rmqm.training.configs import TrainingConfig

ZOO = dict(data="digits", training=TrainingConfig(epochs=1, n_train=200), n_eval=100, n_transfer=100)
GRID = (["cross-entropy", "nt-xent", "random-init"], [8], [0, 1])


def test_engine_options_name_where_jobs_run():
    assert engine_options(None) == {"executor": "serial", "threads_per_job": None}
    assert engine_options(None, threads_per_job=1)["threads_per_job"] == 1
    assert engine_options("serial")["executor"] == "serial"
    assert engine_options("process", 2) == {"executor": "process", "max_workers": 2, "threads_per_job": 1}
    remote = engine_options("tcp://10.0.0.5:8786")
    assert remote["executor"] == "dask" and remote["scheduler_address"] == "tcp://10.0.0.5:8786"
    with pytest.raises(ValueError, match="unknown scheduler 'threads'"):
        engine_options("threads")
    with pytest.raises(TypeError, match="scheduler must be a string"):
        engine_options(3)  # type: ignore[arg-type]


def _study(tmp_path, scheduler):
    """The zoo chapter and the RMQM chapter's measurements of a tiny study, run on ``scheduler``."""
    zoo = run_zoo(*GRID, cache_dir=tmp_path / "zoo", scheduler=scheduler, max_workers=2, threads_per_job=1, **ZOO)
    settings = alteration_settings(4, 0.5, 3, 2 / 255, 0.3)
    rmqm_of = ZooRMQM(ResultsStore(tmp_path / "store"), tmp_path / "zoo", "digits", 12, settings, batch_size=8)
    requests = [(row.name, row.seed, s) for row in zoo.itertuples() for s in settings]
    assert prefetch_rmqm(rmqm_of, requests, scheduler=scheduler, max_workers=2, threads_per_job=1) == len(requests)
    tables = {(name, seed, s): rmqm_of(name, seed, s) for name, seed, s in requests}
    return zoo.drop(columns=["train_time_s"]), tables


@pytest.mark.slow
def test_tiny_study_jobs_on_a_local_dask_cluster_give_the_serial_tables(tmp_path):
    # one torch thread per job in both runs: the thread count changes trained weights in the last bits
    serial_zoo, serial = _study(tmp_path / "serial", None)
    dask_zoo, on_dask = _study(tmp_path / "dask", "dask")
    assert_frame_equal(dask_zoo, serial_zoo, check_exact=True)
    assert on_dask.keys() == serial.keys()
    for key, tables in serial.items():
        for name, table in tables.items():
            assert_frame_equal(on_dask[key][name], table, check_exact=True)


def test_a_resumed_run_skips_finished_zoo_jobs(tmp_path, monkeypatch):
    first = run_zoo(["random-init"], [8], [0], cache_dir=tmp_path, **ZOO)
    assert len(ResultsStore(tmp_path / "jobs")) == 1

    def fail(config):
        raise AssertionError("a finished zoo job ran again")

    monkeypatch.setattr("rmqm.experiments.engine.zoo_model_job", fail)
    again = run_zoo(["random-init"], [8], [0], cache_dir=tmp_path, **ZOO)
    assert_frame_equal(again, first, check_exact=True)


def test_a_zoo_job_trains_once_and_returns_every_checkpoint(tmp_path, monkeypatch):
    import rmqm.training.checkpoints as checkpoints

    runs = []
    real_train = checkpoints.train_model
    monkeypatch.setattr(checkpoints, "train_model", lambda c, **kw: runs.append(c["epochs"]) or real_train(c, **kw))
    table = run_zoo(["nt-xent"], [4], [0], cache_dir=tmp_path, checkpoints=[1, 2],
                    **{**ZOO, "training": ZOO["training"].replace(n_train=64)})
    assert runs == [2] and len(ResultsStore(tmp_path / "jobs")) == 1
    assert table["epoch"].tolist() == [1, 2] and table["name"].is_unique
    assert table[["indist_knn", "indist_linear"]].notna().all().all()


def test_prefetch_runs_one_job_for_settings_that_resolve_to_one_attack(monkeypatch, tmp_path):
    # e.g. an ablation factor that does not apply to a model's loss: two settings, one measurement
    from types import SimpleNamespace

    captured = []
    monkeypatch.setattr("rmqm.experiments.engine.run_sweep", lambda keys, *a, **k: captured.append(keys))
    keys = {"a": {"x": 1, "y": [1, 2]}, "b": {"y": [1, 2], "x": 1}, "c": {"x": 2}}
    fake = SimpleNamespace(key=lambda name, seed, setting: keys[setting], zoo_dir=tmp_path, store=None)
    assert prefetch_rmqm(fake, [("m", 0, "a"), ("m", 0, "b"), ("m", 0, "c")]) == 2
    assert captured == [[keys["a"], keys["c"]]]
