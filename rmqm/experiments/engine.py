"""The study's work as jobs of the sweep engine: zoo models and RMQM measurements.

The study trains its zoo and measures it through :func:`rmqm.experiments.sweep.run_sweep`,
so the same notebooks run serially (the default), on a local process pool or on a Dask
cluster (``scheduler="tcp://host:8786"``, e.g. GPU workers sharing the build folder). A job
computes and caches one piece of work (a checkpoint with its scores, or the tables of one
RMQM measurement); the notebooks then assemble their tables from those caches with
:func:`rmqm.training.zoo.train_zoo` and :class:`rmqm.experiments.cache.ZooRMQM`, exactly
as a serial run would.

Workers must see the same file system as the caller (the zoo folder and the results
store). Numbers computed on another device, or with another torch thread count, can
differ from a serial CPU run in the last bits: the device is part of every key, the
thread count is fixed per job by ``threads_per_job``.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from rmqm._utils.hashing import code_fingerprint, content_identity, module_digest
from rmqm.data.registry import data_record, load_dataset
from rmqm.experiments.cache import RMQM_TABLES, ZooRMQM, rmqm_request
from rmqm.experiments.store import ResultsStore
from rmqm.experiments.sweep import EXECUTORS, run_sweep
from rmqm.metrics.rmqm.measure import measure_rmqm
from rmqm.training.checkpoints import load_model
from rmqm.training.configs import TrainingConfig
from rmqm.training.zoo import TINY_TRAINING, train_zoo

__all__ = ["engine_options", "zoo_model_job", "run_zoo", "zoo_rmqm_job", "prefetch_rmqm"]

#: The folder (inside a zoo's cache folder) where the engine records finished zoo jobs.
ZOO_JOBS = "jobs"


_UNSET: Any = object()


def engine_options(scheduler: str | None = None, max_workers: int | None = None,
                   threads_per_job: int | None = _UNSET) -> dict[str, Any]:
    """``run_sweep`` keywords for a study ``scheduler``: None or ``"serial"`` (this process),
    ``"process"`` (a local pool), ``"dask"`` (a LocalCluster) or a Dask scheduler address
    (``"tcp://host:8786"``).

    A serial run leaves torch's thread setting alone (so its numbers are those of a plain
    in-process call); jobs elsewhere run with one torch thread each. The thread count can
    change trained weights in the last bits, so a cluster run equals a serial run made with
    ``threads_per_job=1``.

    Raises:
        ValueError: anything else.
    """
    if scheduler is None or scheduler == "serial":
        return {"executor": "serial", "threads_per_job": None if threads_per_job is _UNSET else threads_per_job}
    if not isinstance(scheduler, str):
        raise TypeError(f"scheduler must be a string or None; got {type(scheduler).__name__}")
    threads = 1 if threads_per_job is _UNSET else threads_per_job
    if scheduler in EXECUTORS:
        return {"executor": scheduler, "max_workers": max_workers, "threads_per_job": threads}
    if "://" in scheduler:
        return {"executor": "dask", "scheduler_address": scheduler, "max_workers": max_workers,
                "threads_per_job": threads}
    raise ValueError(f"unknown scheduler {scheduler!r}; use null (serial), 'process', 'dask' or a Dask "
                     "scheduler address such as tcp://host:8786")


def zoo_model_job(config: Mapping[str, Any], cache_dir: str | None = None) -> pd.DataFrame:
    """Train (or load), score and save one zoo model at each of its checkpoints; its rows of the
    zoo table (one per checkpoint epoch).

    ``config``: ``method``, ``dim``, ``optimizer``, ``seed`` and ``zoo`` (the remaining
    keyword arguments of :func:`rmqm.training.zoo.train_zoo`, ``checkpoints`` included); the
    checkpoints' folder ``cache_dir`` is passed apart, so that the job's record (its key) names
    no place on this machine. The model is trained once, to the last checkpoint.
    """
    zoo = dict(config["zoo"]) | ({} if cache_dir is None else {"cache_dir": cache_dir})
    zoo["training"] = TrainingConfig.from_key(zoo["training"])
    return train_zoo([config["method"]], [config["dim"]], [config["seed"]], optimizers=[config["optimizer"]],
                     progress=False, **zoo)


def run_zoo(
    methods: Sequence[str],
    dims: Sequence[int],
    seeds: Sequence[int],
    *,
    optimizers: Sequence[str] = ("adam",),
    checkpoints: Sequence[int] | None = None,
    cache_dir: str | os.PathLike = "results/zoo",
    scheduler: str | None = None,
    max_workers: int | None = None,
    threads_per_job: int | None = _UNSET,
    progress: bool = False,
    **train_zoo_kwargs: Any,
) -> pd.DataFrame:
    """:func:`rmqm.training.zoo.train_zoo`, each model a job of the engine.

    The jobs train, score and save the checkpoints (one job per (method, dim, optimizer,
    seed), which trains once to ``max(checkpoints)`` and keeps every checkpoint; recorded in
    ``cache_dir/jobs`` so a resumed run skips finished ones); the table is then assembled
    from the checkpoints by ``train_zoo`` itself, so it is the same table a serial
    ``train_zoo`` call returns.

    Args:
        checkpoints: epochs at which each model is kept and scored (None: ``epochs`` only).
        scheduler, max_workers, threads_per_job: where and how the jobs run (:func:`engine_options`).
        **train_zoo_kwargs: the other keyword arguments of ``train_zoo`` (JSON-like values).
    """
    cache_dir = Path(cache_dir)
    kept = None if checkpoints is None else [int(e) for e in checkpoints]
    training = train_zoo_kwargs.pop("training", TINY_TRAINING)
    if not isinstance(training, TrainingConfig):
        raise TypeError(f"training must be a TrainingConfig; got {type(training).__name__}")
    # the job's key: JSON only, and no cache_dir, so that a moved build folder keeps its records
    zoo = {**train_zoo_kwargs, "training": training.key(), "checkpoints": kept}
    code = code_fingerprint("rmqm.training.zoo")
    loader = {k: train_zoo_kwargs[k] for k in ("root", "download") if k in train_zoo_kwargs}
    # what the data hold, not where they live: changed files rerun the jobs (and say so), a moved folder does not
    data = content_identity(data_record(str(train_zoo_kwargs.get("data", "fashion-mnist")),
                                        train_zoo_kwargs.get("transfer"), **loader))
    jobs = [
        {"method": m, "dim": int(d), "optimizer": o, "seed": int(s), "zoo": zoo, "data": data, "code": code}
        for s in seeds for o in optimizers for d in dims for m in methods
    ]
    if jobs:
        run_sweep(jobs, functools.partial(zoo_model_job, cache_dir=str(cache_dir)), ResultsStore(cache_dir / ZOO_JOBS),
                  progress=progress,
                  **engine_options(scheduler, max_workers, threads_per_job))
    return train_zoo(methods, dims, seeds, optimizers=optimizers, checkpoints=kept, cache_dir=cache_dir,
                     training=training, progress=progress, **train_zoo_kwargs)


def zoo_rmqm_job(config: Mapping[str, Any], *, zoo_dir: str) -> dict[str, pd.DataFrame]:
    """The tables of one :class:`~rmqm.experiments.cache.ZooRMQM` measurement, recomputed
    from its store key (:func:`rmqm.experiments.cache.rmqm_key`) and the zoo folder.

    Raises:
        ValueError: the checkpoint or the data no longer match the key.
    """
    model = load_model(config["model"], zoo_dir)
    data = load_dataset(config["data"]["name"], split=config["data"]["split"], n=config["data"]["n"],
                        seed=config["data"]["seed"])
    if module_digest(model.encoder) != config["encoder"] or data.fingerprint() != config["data_content"]:
        raise ValueError(f"checkpoint {config['model']} or its data changed since this job was made; rerun")
    alteration, options = rmqm_request(config)
    if config.get("head") is not None:  # an attack through the classifier head (cross-/triplet-entropy)
        if model.head is None or module_digest(model.head) != config["head"]:
            raise ValueError(f"checkpoint {config['model']}'s classifier head changed since this job was made; rerun")
        options["head"] = model.head
    result = measure_rmqm(model.encoder, data, alteration, progress=False, **options)
    return {"summary": result.summary, "points": result.points, "levels": result.levels}


def prefetch_rmqm(
    rmqm_of: ZooRMQM,
    requests: Iterable[tuple[str, int, str]],
    *,
    scheduler: str | None = None,
    max_workers: int | None = None,
    threads_per_job: int | None = _UNSET,
) -> int:
    """Measure every ``(model name, seed, setting)`` of ``requests`` that ``rmqm_of``'s store
    lacks, as jobs of the engine; afterwards ``rmqm_of(name, seed, setting)`` reads them.

    Returns:
        The number of distinct measurements requested.
    """
    keys, seen = [], set()
    for name, seed, setting in requests:
        key = rmqm_of.key(name, seed, setting)
        text = json.dumps(key, sort_keys=True, default=str)
        if text not in seen:  # two settings that resolve to one attack for a model (e.g. an
            seen.add(text)    # ablation factor that does not apply to its loss) are one job
            keys.append(key)
    if keys:
        job = functools.partial(zoo_rmqm_job, zoo_dir=str(rmqm_of.zoo_dir))
        run_sweep(keys, job, rmqm_of.store, progress=True, tables=RMQM_TABLES,
                  **engine_options(scheduler, max_workers, threads_per_job))
    return len(keys)
