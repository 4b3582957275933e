"""Resumable sweeps: a grid of independent jobs, run serially, on a process pool or on Dask.

A *job* is a picklable function ``job_fn(config) -> DataFrame`` whose result is fully
determined by ``config`` (every seed lives in the config). A *sweep* is a grid of
configs, e.g. encoder x method x perturbation x seed. :func:`run_sweep` skips the
configs already in a :class:`~rmqm.store.ResultsStore`, runs the rest, writes each
result atomically as soon as it finishes (so an interrupted sweep loses no finished
job and a rerun resumes) and returns one table in grid order.

The same table comes out whichever executor ran the jobs: each job runs with the
same number of torch threads (``threads_per_job``, 1 by default, because a CPU
reduction's rounding can depend on how it is split between threads) and with torch's
global RNG seeded from ``config["seed"]`` (covering code that draws from it, such as
``nn.Module`` initialisation), one job at a time per process.

Example::

    from rmqm.sweep import Sweep, run_sweep, measure_job
    grid = Sweep(
        axes={"measure": ["rmqm"], "perturbation": ["noise", "pgd"], "seed": [0, 1, 2]},
        fixed={"dataset": "digits", "n": 200, "n_levels": 10},
    )
    table = run_sweep(grid, measure_job, "results/store")                 # process pool
    table = run_sweep(grid, measure_job, "results/store", executor="dask",
                      scheduler_address="tcp://scheduler:8786")           # a Dask cluster
"""

from __future__ import annotations

import argparse
import copy
import importlib
import itertools
import json
import math
import os
import pickle
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from rmqm.store import ResultsStore, canonical_config, config_hash, provenance

__all__ = [
    "EXECUTORS",
    "MEASURES",
    "Sweep",
    "add_sweep_arguments",
    "embedding_stats",
    "load_grid",
    "main",
    "measure_job",
    "resolve_job",
    "run_sweep",
    "summarize_seeds",
    "sweep_command",
    "tiny_job",
]

EXECUTORS = ("serial", "process", "dask")
JobFn = Callable[[dict[str, Any]], Any]

# torch's global RNG and thread count are process-wide: jobs sharing a process (Dask
# threads) run one at a time so that each sees exactly the state its config sets.
_JOB_LOCK = threading.Lock()


# ------------------------------------------------------------------------------ grids


@dataclass(frozen=True)
class Sweep:
    """A grid of job configs: the Cartesian product of ``axes``, each merged with ``fixed``.

    Args:
        axes: axis name -> non-empty list of values, e.g. ``{"seed": [0, 1, 2]}``.
            Configs vary the last axis fastest.
        fixed: entries shared by every config (must not repeat an axis name).
    """

    axes: Mapping[str, Sequence[Any]]
    fixed: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.axes, Mapping):
            raise TypeError(f"axes must be a dict of name -> list of values; got {type(self.axes).__name__}")
        if not isinstance(self.fixed, Mapping):
            raise TypeError(f"fixed must be a dict; got {type(self.fixed).__name__}")
        if not self.axes:
            raise ValueError("a sweep needs at least one axis")
        for name, values in self.axes.items():
            if not isinstance(name, str):
                raise TypeError(f"axis names must be strings; got {name!r}")
            if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Sequence):
                raise TypeError(f"axis {name!r} must be a list of values; got {type(values).__name__}")
            if len(values) == 0:
                raise ValueError(f"axis {name!r} is empty: the sweep would have no jobs")
        clash = sorted(set(self.axes) & set(self.fixed))
        if clash:
            raise ValueError(f"{clash} appear both as axes and as fixed entries")
        canonical_config(dict(self.fixed))  # validate early

    def configs(self) -> list[dict[str, Any]]:
        """Every config of the grid, in a fixed order."""
        names = list(self.axes)
        return [
            {**copy.deepcopy(dict(self.fixed)), **dict(zip(names, copy.deepcopy(values)))}
            for values in itertools.product(*(list(self.axes[n]) for n in names))
        ]

    def __len__(self) -> int:
        return math.prod(len(v) for v in self.axes.values())

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.configs())

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> "Sweep":
        """A sweep from ``{"axes": {...}, "fixed": {...}}`` (the grid file format)."""
        if not isinstance(spec, Mapping):
            raise TypeError(f"a grid spec must be a mapping with 'axes' (and 'fixed'); got {type(spec).__name__}")
        unknown = sorted(set(spec) - {"axes", "fixed"})
        if unknown:
            raise ValueError(f"unknown grid entries {unknown}; a grid has 'axes' and optional 'fixed'")
        if "axes" not in spec:
            raise ValueError("a grid spec needs an 'axes' entry")
        return cls(axes=spec["axes"], fixed=spec.get("fixed") or {})


def load_grid(path: str | os.PathLike) -> Sweep:
    """Read a grid file (YAML or JSON) with ``axes`` and optional ``fixed`` entries."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"grid file {path} not found")
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"grid file {path} is not valid YAML/JSON: {err}") from None
    return Sweep.from_dict(spec)


def _grid_configs(grid: Sweep | Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(grid, Sweep):
        configs = grid.configs()
    elif isinstance(grid, Mapping) or isinstance(grid, (str, bytes)):
        raise TypeError("grid must be a Sweep or a list of config dicts, not a single dict or string")
    else:
        try:
            configs = list(grid)
        except TypeError:
            raise TypeError(f"grid must be a Sweep or a list of config dicts; got {type(grid).__name__}") from None
    if not configs:
        raise ValueError("the grid is empty: nothing to run")
    out, seen = [], {}
    for i, config in enumerate(configs):
        canonical = canonical_config(config)
        seed = canonical.get("seed")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(
                f"config #{i} {json.dumps(canonical, sort_keys=True)} needs an integer 'seed' entry: "
                "a job's config must fully determine its result"
            )
        h = config_hash(canonical)
        if h in seen:
            raise ValueError(f"configs #{seen[h]} and #{i} are the same job: {json.dumps(canonical, sort_keys=True)}")
        seen[h] = i
        out.append(canonical)
    return out


# -------------------------------------------------------------------------- execution


def _execute(job_fn: JobFn, config: dict[str, Any], threads: int | None) -> tuple[Any, float, dict[str, Any]]:
    """Run one job the same way in every executor; return (rows, wall time, provenance)."""
    with _JOB_LOCK:
        previous = torch.get_num_threads()
        if threads is not None:
            torch.set_num_threads(threads)
        try:
            start = time.perf_counter()
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(config["seed"])
                rows = job_fn(copy.deepcopy(config))
            wall = time.perf_counter() - start
        finally:
            torch.set_num_threads(previous)
    return rows, wall, provenance(wall)


def _check_picklable(job_fn: JobFn, executor: str) -> None:
    try:
        pickle.dumps(job_fn)
    except Exception as err:  # noqa: BLE001 - pickle raises several types
        raise TypeError(
            f"job_fn {job_fn!r} cannot be sent to {executor} workers ({err}); "
            "use a function defined at module level (not a lambda or a local function)"
        ) from None


def _annotate(err: BaseException, config: Mapping[str, Any]) -> BaseException:
    err.add_note(f"in sweep job {json.dumps(config, sort_keys=True)}")
    return err


class _Recorder:
    """Writes finished jobs to the store and keeps count; shared by all executors."""

    def __init__(self, store: ResultsStore, bar: tqdm, on_error: str) -> None:
        self.store, self.bar, self.on_error = store, bar, on_error
        self.failed: list[tuple[dict[str, Any], str]] = []

    def done(self, config: dict[str, Any], outcome: tuple[Any, float, dict[str, Any]]) -> None:
        rows, wall, info = outcome
        try:
            self.store.put(config, rows, wall_time_s=wall, provenance_info=info)
        except (TypeError, ValueError) as err:
            raise _annotate(
                type(err)(f"job_fn returned rows the store cannot keep: {err}"), config
            ) from None
        self.bar.update(1)

    def collect(self, config: dict[str, Any], future: Any) -> None:
        """Record a finished (process-pool or Dask) future: its result, or its error."""
        try:
            outcome = future.result()
        except Exception as err:  # noqa: BLE001 - on_error decides
            self.error(config, err)
            return
        self.done(config, outcome)

    def error(self, config: dict[str, Any], err: BaseException) -> None:
        if self.on_error == "raise":
            raise _annotate(err, config)
        self.failed.append((config, f"{type(err).__name__}: {err}"))
        self.bar.update(1)


def _run_serial(todo, job_fn, threads, rec: _Recorder) -> None:
    for config in todo:
        try:
            outcome = _execute(job_fn, config, threads)
        except Exception as err:  # noqa: BLE001 - reported or re-raised by the recorder
            rec.error(config, err)
            continue
        rec.done(config, outcome)


def _pool_context() -> BaseContext:
    """Forkserver where available (workers fork from a server that imported rmqm and torch
    once, but never ran a torch op), else spawn. Plain fork of a process whose torch
    thread pools are running can deadlock."""
    try:
        ctx = get_context("forkserver")
    except ValueError:  # no forkserver on this platform (Windows)
        return get_context("spawn")
    ctx.set_forkserver_preload(["rmqm.sweep"])
    return ctx


def _run_process(todo, job_fn, threads, rec: _Recorder, max_workers: int) -> None:
    pool = ProcessPoolExecutor(max_workers=max_workers, mp_context=_pool_context())
    try:
        pending: dict[Future, dict[str, Any]] = {pool.submit(_execute, job_fn, c, threads): c for c in todo}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                rec.collect(pending.pop(fut), fut)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_dask(todo, job_fn, threads, rec: _Recorder, scheduler_address, max_workers: int | None) -> None:
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "executor='dask' needs dask.distributed: pip install 'rmqm[distributed]'"
        ) from None
    cluster = None
    if isinstance(scheduler_address, Client):
        client, own_client = scheduler_address, False
    elif scheduler_address is None:
        cluster = LocalCluster(
            n_workers=max_workers or os.cpu_count() or 1, threads_per_worker=1,
            processes=True, dashboard_address=None,
        )
        client, own_client = Client(cluster), True
    elif isinstance(scheduler_address, str):
        client, own_client = Client(scheduler_address), True
    else:
        raise TypeError(
            f"scheduler_address must be an address string or a dask.distributed.Client; "
            f"got {type(scheduler_address).__name__}"
        )
    pending: dict[str, tuple[Any, dict[str, Any]]] = {}
    try:
        for config in todo:
            fut = client.submit(
                _execute, job_fn, config, threads, pure=False, key=f"rmqm-job-{config_hash(config)}",
            )
            pending[fut.key] = (fut, config)
        for fut in as_completed([f for f, _ in pending.values()]):
            _, config = pending.pop(fut.key)  # dropping the future lets the cluster free it
            rec.collect(config, fut)
    finally:
        for fut, _ in pending.values():
            fut.cancel()
        if own_client:
            client.close()
        if cluster is not None:
            cluster.close()


def run_sweep(
    grid: Sweep | Iterable[Mapping[str, Any]],
    job_fn: JobFn,
    store: ResultsStore | str | os.PathLike,
    executor: str = "process",
    scheduler_address: Any = None,
    max_workers: int | None = None,
    progress: bool = True,
    *,
    on_error: str = "raise",
    threads_per_job: int | None = 1,
) -> pd.DataFrame:
    """Run every job of ``grid`` that ``store`` does not hold yet; return the full table.

    Args:
        grid: a :class:`Sweep` or a list of config dicts; each needs an integer ``"seed"``.
        job_fn: ``job_fn(config) -> rows`` (a DataFrame, a dict or a list of dicts), a
            module-level function for the ``"process"`` and ``"dask"`` executors.
        store: a :class:`~rmqm.store.ResultsStore` or its folder.
        executor: ``"serial"`` (this process), ``"process"`` (a local process pool,
            default) or ``"dask"`` (a dask.distributed cluster).
        scheduler_address: with ``executor="dask"``: the scheduler's address, e.g.
            ``"tcp://10.0.0.5:8786"``, or a ``dask.distributed.Client``; None starts a
            ``LocalCluster`` of ``max_workers`` single-threaded worker processes.
        max_workers: pool size (default: the CPU count, at most the number of jobs).
        progress: show a tqdm bar over jobs.
        on_error: ``"raise"`` (stop at the first failing job; finished ones stay stored)
            or ``"skip"`` (leave failed jobs out; they are listed in
            ``table.attrs["failed"]`` and retried by the next run).
        threads_per_job: torch CPU threads per job (None leaves torch's setting alone);
            keep it fixed so every executor gives the same numbers.

    Returns:
        One table in grid order: config columns, ``config_hash``, ``seed``, metric
        columns (see :meth:`ResultsStore.to_frame`), read back from the store.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; choose one of {list(EXECUTORS)}")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip'; got {on_error!r}")
    if not callable(job_fn):
        raise TypeError(f"job_fn must be callable; got {type(job_fn).__name__}")
    if max_workers is not None and (
        isinstance(max_workers, bool) or not isinstance(max_workers, (int, np.integer)) or max_workers < 1
    ):
        raise ValueError(f"max_workers must be a positive integer or None; got {max_workers!r}")
    if threads_per_job is not None and (
        isinstance(threads_per_job, bool) or not isinstance(threads_per_job, (int, np.integer)) or threads_per_job < 1
    ):
        raise ValueError(f"threads_per_job must be a positive integer or None; got {threads_per_job!r}")
    if scheduler_address is not None and executor != "dask":
        raise ValueError("scheduler_address is only used with executor='dask'")
    if not isinstance(store, ResultsStore):
        store = ResultsStore(store)
    configs = _grid_configs(grid)
    if executor != "serial":
        _check_picklable(job_fn, executor)

    todo = [c for c in configs if not store.has(c)]
    bar = tqdm(
        total=len(configs), initial=len(configs) - len(todo), disable=not progress,
        unit="job", desc=f"sweep ({executor})",
    )
    rec = _Recorder(store, bar, on_error)
    try:
        if todo:
            workers = int(max_workers or os.cpu_count() or 1)
            if executor == "serial" or (executor == "process" and min(workers, len(todo)) == 1):
                _run_serial(todo, job_fn, threads_per_job, rec)
            elif executor == "process":
                _run_process(todo, job_fn, threads_per_job, rec, min(workers, len(todo)))
            else:
                _run_dask(todo, job_fn, threads_per_job, rec, scheduler_address, max_workers)
    finally:
        bar.close()
    table = store.to_frame(configs, missing="skip" if on_error == "skip" else "raise")
    table.attrs["failed"] = rec.failed
    return table


# ------------------------------------------------------------------------------- jobs


def embedding_stats(z: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Task-free and probe-free statistics of embeddings ``z`` ``(N, d)`` with labels ``(N,)``.

    Returns ``mean_norm`` (mean L2 norm), ``effective_rank`` (exp of the entropy of the
    normalised singular values of the centred embeddings; 1..d) and ``knn1_accuracy``
    (leave-one-out 1-nearest-neighbour accuracy on L2-normalised embeddings, in [0, 1]).
    """
    if not isinstance(z, torch.Tensor) or not isinstance(labels, torch.Tensor):
        raise TypeError("z and labels must be torch tensors")
    if z.ndim != 2 or z.shape[0] < 2 or z.shape[1] < 1:
        raise ValueError(f"z must be (N, d) with N >= 2 and d >= 1; got shape {tuple(z.shape)}")
    if labels.shape != (z.shape[0],):
        raise ValueError(f"labels must have shape ({z.shape[0]},); got {tuple(labels.shape)}")
    if not torch.isfinite(z).all():
        raise ValueError("z holds NaN or inf values")
    z = z.double()
    s = torch.linalg.svdvals(z - z.mean(0))
    p = s / s.sum() if s.sum() > 0 else torch.full_like(s, 1.0 / len(s))
    p = p[p > 0]
    u = torch.nn.functional.normalize(z, dim=1)
    dist = torch.cdist(u, u)
    dist.fill_diagonal_(float("inf"))
    nearest = dist.argmin(dim=1)
    return {
        "mean_norm": float(z.norm(dim=1).mean()),
        "effective_rank": float(torch.exp(-(p * p.log()).sum())),
        "knn1_accuracy": float((labels[nearest] == labels).double().mean()),
    }


#: What :func:`measure_job` can measure, and the config entries each one reads
#: (passed on as keyword arguments of the measuring function).
MEASURES: dict[str, tuple[str, ...]] = {
    "stats": (),
    "rmqm": ("perturbation", "n_levels", "sigma_max", "nested", "step_size", "epsilon", "attack_loss",
             "normalize", "batch_size"),
    "synbench": ("s_values", "epsilons", "n_train", "n_test", "thresholds", "n_bootstrap", "confidence",
                 "batch_size"),
    "probes": ("test_fraction", "k", "batch_size"),
    "baselines": (),
}
_COMMON_KEYS = ("seed", "encoder", "measure", "dataset", "split", "n", "data_seed", "dim", "width", "device", "tag")


def _dataset(config: Mapping[str, Any], default: str = "digits"):
    from rmqm.data import load_dataset

    return load_dataset(
        config.get("dataset", default), split=config.get("split", "test"), n=config.get("n", 64),
        seed=int(config.get("data_seed", 0)),
    )


def _tiny_encoder(config: Mapping[str, Any], dataset) -> torch.nn.Module:
    from rmqm.models import Encoder, TinyCNN

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(config["seed"]))
        backbone = TinyCNN(
            in_channels=dataset.input_shape[0], dim=int(config.get("dim", 16)), width=int(config.get("width", 8))
        )
    return Encoder(backbone, dataset.mean, dataset.std, name="tinycnn-random").eval()


def tiny_job(config: Mapping[str, Any]) -> pd.DataFrame:
    """A small, self-contained measurement: a randomly initialised TinyCNN on digits.

    Config entries: ``seed`` (weights), ``dim`` (16), ``width`` (8), ``dataset``
    (``"digits"``), ``split`` (``"test"``), ``n`` (64 points), ``data_seed`` (0).
    Returns one row of :func:`embedding_stats`.
    """
    dataset = _dataset(config)
    encoder = _tiny_encoder(config, dataset)
    with torch.no_grad():
        z = encoder(dataset.images)
    return pd.DataFrame([embedding_stats(z, dataset.labels)])


def _zoo_model(spec: Mapping[str, Any], seed: int, device: str):
    """The zoo model of ``spec`` (kwargs of :func:`rmqm.zoo.model_config`), trained once and cached
    in ``$RMQM_ZOO_DIR`` (default ``results/zoo``)."""
    from rmqm.zoo import load_or_train, model_config

    kwargs = {"seed": seed, "time_budget_s": None, **spec}  # a time budget would make training non-deterministic
    try:
        model_cfg = model_config(**kwargs)
    except TypeError as err:
        raise ValueError(f"bad encoder entry {dict(spec)}: {err}") from None
    return load_or_train(model_cfg, os.environ.get("RMQM_ZOO_DIR", "results/zoo"), device=device, progress=False)


def _own_attack_loss(model) -> str:
    from rmqm.pretrain import SELF_SUPERVISED_METHODS

    if model.head is not None:
        return "cross-entropy"
    return "nt-xent" if model.method in SELF_SUPERVISED_METHODS else "displacement"


def measure_job(config: Mapping[str, Any]) -> pd.DataFrame:
    """The sweep job of the study: build or load an encoder, measure it once, return the rows.

    Config entries:
        seed: seeds the encoder (initialisation and training), the data subsample of a
            trained encoder's training set, and the measurement.
        encoder: ``"tinycnn-random"`` (default; a TinyCNN at random init, options ``dim``
            (16) and ``width`` (8)) or a dict of :func:`rmqm.zoo.model_config` arguments,
            e.g. ``{"data": "digits", "method": "nt-xent", "dim": 16, "epochs": 1}``; the
            model is trained once and cached in ``$RMQM_ZOO_DIR`` (default ``results/zoo``),
            with no time budget unless the dict sets ``time_budget_s``.
        measure: ``"rmqm"`` (default; :func:`rmqm.measure.measure_rmqm`, its summary
            table), ``"synbench"`` (:func:`rmqm.synbench.evaluate_synbench`, its scores),
            ``"probes"`` (:func:`rmqm.probes.evaluate_probes`: 1-NN, k-NN and linear
            accuracy), ``"baselines"`` (:func:`rmqm.baselines.label_free_scores`) or
            ``"stats"`` (:func:`embedding_stats`).
        dataset, split, n, data_seed: the measured data (default: 64 points of the test
            split of the encoder's training data, or of ``"digits"``).
        <options>: the entries :data:`MEASURES` lists for the measure, passed on as
            keyword arguments (``attack_loss="own"`` attacks each model with its own
            training loss, as the reference does).
        device: ``"cpu"`` (default) or ``"cuda"``; part of the config because GPU
            numbers differ from CPU numbers in the last bits.
        tag: a free-form label (kept in the table, ignored by the job).

    Raises:
        ValueError: an unknown encoder, measure or config entry.
    """
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a dict; got {type(config).__name__}")
    measure = config.get("measure", "rmqm")
    if measure not in MEASURES:
        raise ValueError(f"unknown measure {measure!r}; choose one of {list(MEASURES)}")
    unknown = sorted(set(config) - set(_COMMON_KEYS) - set(MEASURES[measure]))
    if unknown:
        raise ValueError(
            f"unknown config entries {unknown} for measure {measure!r}; it reads "
            f"{sorted(set(_COMMON_KEYS) | set(MEASURES[measure]))}"
        )
    if "seed" not in config:
        raise ValueError("config needs a 'seed' entry: a job's config must fully determine its result")
    if isinstance(config["seed"], bool) or not isinstance(config["seed"], (int, np.integer)):
        raise TypeError(f"config 'seed' must be an integer; got {config['seed']!r}")
    seed = int(config["seed"])
    device = str(config.get("device", "cpu"))
    spec = config.get("encoder", "tinycnn-random")
    options = {k: config[k] for k in MEASURES[measure] if k in config}

    model = None
    if spec == "tinycnn-random":
        dataset = _dataset(config)
        encoder = _tiny_encoder(config, dataset)
    elif isinstance(spec, Mapping):
        model = _zoo_model(spec, seed, device)
        dataset = _dataset(config, default=model.config["data"]).resized(tuple(model.train_info["input_size"]))
        encoder = model.encoder
    else:
        raise ValueError(f"unknown encoder {spec!r}; give 'tinycnn-random' or a dict of rmqm.zoo.model_config arguments")
    encoder = encoder.to(device)

    if measure == "rmqm":
        from rmqm.measure import measure_rmqm

        extra = {}
        if options.get("attack_loss") == "own":
            options["attack_loss"] = "displacement" if model is None else _own_attack_loss(model)
        if model is not None:
            from rmqm.pretrain import augment

            extra = {"head": model.head, "augment": augment}
        return measure_rmqm(encoder, dataset, seed=seed, device=device, progress=False, **options, **extra).summary
    if measure == "synbench":
        from rmqm.synbench import evaluate_synbench

        result = evaluate_synbench(encoder, dataset.input_shape, seed=seed, device=device, progress=False, **options)
        return result.scores.assign(feature_dim=result.feature_dim)
    if measure == "probes":
        from rmqm.probes import evaluate_probes

        return pd.DataFrame([evaluate_probes(encoder, dataset, seed=seed, device=device, **options)])
    from rmqm.probes import embed_dataset

    z = embed_dataset(encoder, dataset.images, device=device)
    if measure == "baselines":
        from rmqm.baselines import label_free_scores

        return pd.DataFrame([label_free_scores(z)])
    return pd.DataFrame([embedding_stats(z, dataset.labels)])


def summarize_seeds(
    table: pd.DataFrame,
    values: str | Sequence[str],
    by: str | Sequence[str] = (),
    *,
    seed_column: str = "seed",
    confidence: float = 0.95,
    bounds: tuple[float, float] | None = None,
) -> pd.DataFrame:
    """Mean over seeds with a Student-t confidence interval, per group.

    Args:
        table: a sweep table (one row per seed and group, e.g. from :func:`run_sweep`).
        values: metric column(s) to summarise.
        by: column(s) that define a group (everything that is not the seed).
        seed_column: the column holding the seed; each group must list a seed once.
        confidence: level of the two-sided interval, in (0, 1).
        bounds: range the metric can take (e.g. ``(-1, 1)`` for a correlation); the
            interval is clipped to it (see :func:`rmqm.analysis.t_interval`).

    Returns:
        One row per group and metric: ``*by, metric, n_seeds, mean, std`` (ddof 1),
        ``ci_low, ci_high`` (``mean -/+ t_{(1+c)/2, n-1} * std / sqrt(n)``; NaN for one seed).
    """
    from rmqm.analysis import _check_confidence, check_bounds, t_interval

    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be a pandas DataFrame; got {type(table).__name__}")
    values = [values] if isinstance(values, str) else list(values)
    by = [by] if isinstance(by, str) else list(by)
    if not values:
        raise ValueError("name at least one value column")
    missing = [c for c in [*values, *by, seed_column] if c not in table.columns]
    if missing:
        raise ValueError(f"columns {missing} are not in the table; it has {list(table.columns)}")
    confidence = _check_confidence(confidence)
    bounds = check_bounds(bounds)
    keys = [*by, seed_column]
    duplicated = table.duplicated(subset=keys)
    if duplicated.any():
        raise ValueError(
            f"{int(duplicated.sum())} rows repeat a ({', '.join(keys)}) combination; add the column that "
            "tells them apart to `by`"
        )
    rows = []
    groups = table.groupby(by, sort=True, dropna=False) if by else [((), table)]
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        for metric in values:
            x = pd.to_numeric(group[metric], errors="raise").to_numpy(dtype=float)
            x = x[np.isfinite(x)]
            mean, low, high = t_interval(x, confidence, bounds)
            std = float(x.std(ddof=1)) if len(x) > 1 else float("nan")
            rows.append({**dict(zip(by, key)), "metric": metric, "n_seeds": len(x), "mean": mean, "std": std,
                         "ci_low": low, "ci_high": high})
    columns = [*by, "metric", "n_seeds", "mean", "std", "ci_low", "ci_high"]
    return pd.DataFrame(rows, columns=columns)


# -------------------------------------------------------------------------------- CLI


def resolve_job(spec: str) -> JobFn:
    """The job function named ``"package.module:function"``."""
    if not isinstance(spec, str) or spec.count(":") != 1 or "" in spec.split(":"):
        raise ValueError(f"a job is named 'package.module:function'; got {spec!r}")
    module_name, attr = spec.split(":")
    try:
        module = importlib.import_module(module_name)
    except (ImportError, ValueError, TypeError) as err:  # ValueError: e.g. a relative name like '.x'
        raise ValueError(f"cannot import job module {module_name!r}: {err}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ValueError(f"{module_name!r} has no job function {attr!r}")
    return fn


def add_sweep_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``sweep`` options to ``parser`` (used by ``rmqm sweep`` and ``python -m rmqm.sweep``)."""
    parser.add_argument("grid", help="grid file (YAML or JSON) with 'axes' and optional 'fixed'")
    parser.add_argument("--store", default="results/store", help="results store folder (default: %(default)s)")
    parser.add_argument("--job", default="rmqm.sweep:measure_job", help="job function, module:function (default: %(default)s)")
    parser.add_argument("--executor", choices=EXECUTORS, default="process", help="where jobs run (default: %(default)s)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="Dask scheduler address, e.g. tcp://host:8786 (implies --executor dask)")
    parser.add_argument("--workers", type=int, default=None, help="pool size / LocalCluster workers")
    parser.add_argument("--on-error", choices=("raise", "skip"), default="raise")
    parser.add_argument("--out", default=None, help="also write the table to this .csv or .parquet file")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=sweep_command)
    return parser


def sweep_command(args: argparse.Namespace) -> pd.DataFrame:
    """Run the sweep described by parsed ``args``; print, optionally save and return the table."""
    out = Path(args.out) if args.out else None
    if out is not None and out.suffix not in (".csv", ".parquet"):
        raise ValueError(f"--out must end in .csv or .parquet; got {out}")
    executor = "dask" if args.scheduler else args.executor
    table = run_sweep(
        load_grid(args.grid), resolve_job(args.job), args.store, executor=executor,
        scheduler_address=args.scheduler, max_workers=args.workers, progress=not args.no_progress,
        on_error=args.on_error,
    )
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".tmp-{os.getpid()}-{out.name}")
        if out.suffix == ".csv":
            table.to_csv(tmp, index=False)
        else:
            table.to_parquet(tmp, index=False)
        os.replace(tmp, out)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        shown = table.assign(config_hash=table["config_hash"].str[:12]) if len(table) else table
        print(shown.to_string(index=False, max_rows=50))
    for config, error in table.attrs.get("failed", []):
        print(f"FAILED {json.dumps(config, sort_keys=True)}: {error}", file=sys.stderr)
    return table


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rmqm.sweep GRID [options]``."""
    parser = add_sweep_arguments(argparse.ArgumentParser(prog="rmqm sweep", description=__doc__.splitlines()[0]))
    args = parser.parse_args(argv)
    try:
        table = args.func(args)
    except (ValueError, TypeError, FileNotFoundError, KeyError) as err:
        parser.exit(2, f"rmqm sweep: error: {err}\n")
    return 1 if table.attrs.get("failed") else 0


if __name__ == "__main__":
    sys.exit(main())
