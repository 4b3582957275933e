"""The execution engine: a grid of jobs, run serially, on a process pool or a Dask cluster, resumable."""

from __future__ import annotations

import copy
import importlib
import itertools
import json
import math
import os
import pickle
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

from rmqm._utils.hashing import canonical_config, config_hash
from rmqm._utils.provenance import provenance
from rmqm.experiments.store import ResultsStore

__all__ = ['EXECUTORS', 'JobFn', 'Sweep', 'load_grid', 'run_sweep', 'resolve_job']


EXECUTORS = ("serial", "process", "dask")


JobFn = Callable[[dict[str, Any]], Any]


# torch's global RNG and thread count are process-wide: jobs sharing a process (Dask
# threads) run one at a time so that each sees exactly the state its config sets.
_JOB_LOCK = threading.Lock()


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
    ctx.set_forkserver_preload(["rmqm.experiments.jobs"])
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
        store: a :class:`~rmqm.experiments.store.ResultsStore` or its folder.
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
